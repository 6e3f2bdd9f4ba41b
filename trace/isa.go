package trace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/zeebo/blake3"

	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/trace/gl"
)

// VMVersion is the version of the VM this package implements (docs/vm.md).
const VMVersion = 1

// NumRegs is the number of registers r0..r15.
const NumRegs = 16

// MaxProgramLen is the largest number of instructions in one program; a pc is
// always < MaxProgramLen.
const MaxProgramLen = 1 << 16

// Opcode is an instruction's operation. Its numeric value is the op field of
// the instruction word and the weight of its flag column in the lookup.
type Opcode uint8

// The instruction set of VM v1, exactly these (docs/vm.md, Instructions).
const (
	OpADD  Opcode = iota // rd = ra + rb
	OpSUB                // rd = ra - rb
	OpMUL                // rd = ra * rb
	OpADDI               // rd = ra + imm
	OpMULI               // rd = ra * imm
	OpMOV                // rd = ra
	OpLI                 // rd = imm
	OpJMP                // pc = imm
	OpJZ                 // if ra == 0 { pc = imm }
	OpJNZ                // if ra != 0 { pc = imm }
	OpHALT               // stop; pc and registers stay
	NumOpcodes
)

var opNames = [NumOpcodes]string{"ADD", "SUB", "MUL", "ADDI", "MULI", "MOV", "LI", "JMP", "JZ", "JNZ", "HALT"}

// String returns the assembler mnemonic.
func (o Opcode) String() string {
	if o < NumOpcodes {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Writes reports whether the opcode writes register rd.
func (o Opcode) Writes() bool { return o <= OpLI }

// Instr is one decoded instruction. Fields an opcode does not use hold the
// canonical values of docs/vm.md (Encoding): zero, except that instructions
// which write no register carry rd = ra.
type Instr struct {
	Op         Opcode
	Rd, Ra, Rb uint8
	Imm        uint64 // immediate (ADDI, MULI, LI) or jump target (JMP, JZ, JNZ)
}

// Word is the instruction word: op + 16·rd + 256·ra + 4096·rb.
func (in Instr) Word() uint64 {
	return uint64(in.Op) | uint64(in.Rd)<<4 | uint64(in.Ra)<<8 | uint64(in.Rb)<<12
}

// ErrProgram marks a program that breaks the encoding rules of docs/vm.md.
var ErrProgram = errors.New("invalid program")

// check validates one instruction of a program of n instructions.
func (in Instr) check(n int) error {
	if in.Op >= NumOpcodes {
		return fmt.Errorf("opcode %d out of range", in.Op)
	}
	if in.Rd >= NumRegs || in.Ra >= NumRegs || in.Rb >= NumRegs {
		return errors.New("register index out of range")
	}
	if !gl.Canonical(in.Imm) {
		return errors.New("immediate is not a canonical field element")
	}
	zero := func(what string, v uint64) error {
		if v != 0 {
			return fmt.Errorf("%s: %s must be 0", in.Op, what)
		}
		return nil
	}
	switch in.Op {
	case OpADD, OpSUB, OpMUL:
		return zero("imm", in.Imm)
	case OpADDI, OpMULI:
		return zero("rb", uint64(in.Rb))
	case OpMOV:
		return errors.Join(zero("rb", uint64(in.Rb)), zero("imm", in.Imm))
	case OpLI:
		return errors.Join(zero("ra", uint64(in.Ra)), zero("rb", uint64(in.Rb)))
	case OpJMP, OpHALT:
		if err := errors.Join(zero("rd", uint64(in.Rd)), zero("ra", uint64(in.Ra)), zero("rb", uint64(in.Rb))); err != nil {
			return err
		}
		if in.Op == OpHALT {
			return zero("imm", in.Imm)
		}
	case OpJZ, OpJNZ:
		if in.Rd != in.Ra {
			return fmt.Errorf("%s: rd must equal ra", in.Op)
		}
		if err := zero("rb", uint64(in.Rb)); err != nil {
			return err
		}
	}
	if in.Op >= OpJMP && in.Op <= OpJNZ && in.Imm >= uint64(n) {
		return fmt.Errorf("%s: jump target %d outside the program (%d instructions)", in.Op, in.Imm, n)
	}
	return nil
}

// Program is a VM program: its instructions (pc i runs Instrs[i]), how many
// leading registers take public inputs, and which registers are its public
// outputs at HALT.
type Program struct {
	Instrs    []Instr
	NumInputs int     // r0..r(NumInputs-1) are set from the inputs; the rest start at 0
	Outputs   []uint8 // registers read as public outputs at HALT, distinct
}

// programMagic starts every program encoding (domain separation of the hash).
var programMagic = [8]byte{'P', 'O', 'U', 'W', 'P', 'R', 'G', 1}

// Validate checks every rule of docs/vm.md (Programs).
func (p *Program) Validate() error {
	if len(p.Instrs) == 0 || len(p.Instrs) > MaxProgramLen {
		return fmt.Errorf("%w: %d instructions (want 1..%d)", ErrProgram, len(p.Instrs), MaxProgramLen)
	}
	if p.NumInputs < 0 || p.NumInputs > NumRegs {
		return fmt.Errorf("%w: %d inputs (want 0..16)", ErrProgram, p.NumInputs)
	}
	if len(p.Outputs) > NumRegs {
		return fmt.Errorf("%w: %d outputs (want 0..16)", ErrProgram, len(p.Outputs))
	}
	var seen [NumRegs]bool
	for _, r := range p.Outputs {
		if r >= NumRegs || seen[r] {
			return fmt.Errorf("%w: output register %d out of range or repeated", ErrProgram, r)
		}
		seen[r] = true
	}
	for i, in := range p.Instrs {
		if err := in.check(len(p.Instrs)); err != nil {
			return fmt.Errorf("%w: pc %d: %w", ErrProgram, i, err)
		}
	}
	return nil
}

// EncodedLen is the length of the program's binary encoding.
func (p *Program) EncodedLen() int { return 8 + 1 + 1 + len(p.Outputs) + 4 + 16*len(p.Instrs) }

// MarshalBinary returns the program encoding of docs/vm.md (Program
// encoding). It does not validate; call Validate first.
func (p *Program) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, p.EncodedLen())
	b = append(b, programMagic[:]...)
	b = append(b, byte(p.NumInputs), byte(len(p.Outputs)))
	b = append(b, p.Outputs...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(p.Instrs)))
	for _, in := range p.Instrs {
		b = binary.LittleEndian.AppendUint64(b, in.Word())
		b = binary.LittleEndian.AppendUint64(b, in.Imm)
	}
	return b, nil
}

// Hash is the program hash: BLAKE3 of its encoding.
func (p *Program) Hash() pouw.Hash {
	b, _ := p.MarshalBinary()
	return pouw.Hash(blake3.Sum256(b))
}

// ReadProgram decodes one program encoding from r, reading at most limit
// bytes, and validates it.
func ReadProgram(r io.Reader, limit int64) (*Program, error) {
	d := &decoder{r: r, left: limit}
	p := d.program()
	if d.err != nil {
		return nil, d.err
	}
	return p, nil
}

// UnmarshalProgram decodes a complete program encoding.
func UnmarshalProgram(b []byte) (*Program, error) {
	// one byte of slack so a short input reads as truncated, not too large
	d := &decoder{r: &byteReader{b: b}, left: int64(len(b)) + 1}
	p := d.program()
	if d.err != nil {
		return nil, fmt.Errorf("%w: %w", ErrProgram, d.err)
	}
	if d.read != int64(len(b)) {
		return nil, fmt.Errorf("%w: %d trailing bytes after the program", ErrProgram, int64(len(b))-d.read)
	}
	return p, nil
}

// Decode splits an instruction word and immediate into an Instr (no rule
// checks beyond the field widths).
func decodeInstr(word, imm uint64) (Instr, error) {
	if word>>16 != 0 {
		return Instr{}, fmt.Errorf("instruction word %#x has bits above 16", word)
	}
	return Instr{Op: Opcode(word & 15), Rd: uint8(word >> 4 & 15), Ra: uint8(word >> 8 & 15), Rb: uint8(word >> 12 & 15), Imm: imm}, nil
}
