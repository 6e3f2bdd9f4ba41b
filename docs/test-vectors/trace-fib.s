; fib: r1 = fib(r0) mod p (test vector program, docs/vm.md §5)
.inputs 1
.outputs r1
        LI   r1, 0
        LI   r2, 1
        JZ   r0, done
loop:   ADD  r3, r1, r2
        MOV  r1, r2
        MOV  r2, r3
        ADDI r0, r0, -1
        JNZ  r0, loop
done:   HALT
