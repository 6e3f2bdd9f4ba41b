// Package tracetest holds fixtures shared by the tests of every backend that
// proves pouw VM traces. It imports nothing; tests assemble its sources with
// trace.Assemble.
package tracetest

// FibSource is docs/vm.md's example program: r1 = fib(r0) (mod p), a loop
// with a data-dependent exit.
const FibSource = `
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
`
