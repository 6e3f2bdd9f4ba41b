package trace

// The main trace layout of VM v1 (docs/vm.md, Trace layout): Width columns
// per row, in this order. A row holds the state before a step (pc, prog,
// registers), the decoded instruction at that pc (flags, register selectors,
// imm) and the helper values that keep every constraint at degree ≤ 3.
const (
	ColPC   = 0 // program counter
	ColProg = 1 // index of the running program in the header's program list
	ColR0   = 2 // registers r0..r15 at ColR0+i

	ColFlag0 = ColR0 + NumRegs // opcode flags, one-hot: ColFlag0+op

	// Register selectors: each register operand x ∈ {d, a, b} is one-hot in
	// two groups of four, hi (index div 4) and lo (index mod 4); register
	// i = 4j+k is selected by hi_j·lo_k.
	ColDHi0 = ColFlag0 + 11 // rd hi one-hot, 4 columns (after the 11 flags)
	ColDLo0 = ColDHi0 + 4   // rd lo one-hot
	ColAHi0 = ColDLo0 + 4   // ra hi one-hot
	ColALo0 = ColAHi0 + 4   // ra lo one-hot
	ColBHi0 = ColALo0 + 4   // rb hi one-hot
	ColBLo0 = ColBHi0 + 4   // rb lo one-hot

	ColImm = ColBLo0 + 4 // immediate or jump target
	ColVA  = ColImm + 1  // value of register ra
	ColVB  = ColVA + 1   // value of register rb
	ColVD  = ColVB + 1   // value written to rd (its old value when the op writes nothing)
	ColInv = ColVD + 1   // JZ/JNZ: inverse of va (0 when va = 0); 0 on other rows
	ColIsZ = ColInv + 1  // JZ/JNZ: 1 when va = 0 else 0; 0 on other rows

	// Width is the number of main-trace columns.
	Width = ColIsZ + 1
)

// ColReg returns the column of register i.
func ColReg(i int) int { return ColR0 + i }

// ColFlag returns the column of the opcode's flag.
func ColFlag(op Opcode) int { return ColFlag0 + int(op) }

// ColumnNames returns the names of the Width columns, as docs/vm.md writes
// them (pc, prog, r0..r15, f_add.., dhi0.., imm, va, vb, vd, inv, isz).
func ColumnNames() []string {
	names := make([]string, Width)
	names[ColPC], names[ColProg] = "pc", "prog"
	for i := 0; i < NumRegs; i++ {
		names[ColReg(i)] = "r" + itoa(i)
	}
	for op := Opcode(0); op < NumOpcodes; op++ {
		names[ColFlag(op)] = "f_" + lower(op.String())
	}
	for j := 0; j < 4; j++ {
		names[ColDHi0+j] = "dhi" + itoa(j)
		names[ColDLo0+j] = "dlo" + itoa(j)
		names[ColAHi0+j] = "ahi" + itoa(j)
		names[ColALo0+j] = "alo" + itoa(j)
		names[ColBHi0+j] = "bhi" + itoa(j)
		names[ColBLo0+j] = "blo" + itoa(j)
	}
	names[ColImm], names[ColVA], names[ColVB], names[ColVD] = "imm", "va", "vb", "vd"
	names[ColInv], names[ColIsZ] = "inv", "isz"
	return names
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return string(rune('0'+i/10)) + string(rune('0'+i%10))
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// The flag block must hold exactly one column per opcode.
var _ = [1]struct{}{}[ColDHi0-ColFlag0-int(NumOpcodes)]
