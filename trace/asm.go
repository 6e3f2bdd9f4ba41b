package trace

import (
	"bufio"
	"fmt"
	"io"
	"math/big"
	"strconv"
	"strings"

	"github.com/pouwfarm/pouwfarm/trace/gl"
)

// ErrAsm marks assembler input that is not a valid program text.
var ErrAsm = fmt.Errorf("%w: assembly", ErrProgram)

var mnemonics = func() map[string]Opcode {
	m := map[string]Opcode{}
	for op := Opcode(0); op < NumOpcodes; op++ {
		m[op.String()] = op
	}
	return m
}()

// Assemble parses the text form of docs/vm.md §5 into a validated program.
// Errors name the line.
func Assemble(src string) (*Program, error) {
	type pending struct {
		line int
		op   Opcode
		args []string
	}
	var (
		p       = &Program{}
		insts   []pending
		labels  = map[string]int{}
		sawIn   bool
		sawOut  bool
		lineNum int
	)
	fail := func(format string, a ...any) error {
		return fmt.Errorf("%w: line %d: %s", ErrAsm, lineNum, fmt.Sprintf(format, a...))
	}
	sc := bufio.NewScanner(strings.NewReader(src))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		lineNum++
		line := sc.Text()
		if k := strings.IndexAny(line, ";#"); k >= 0 {
			line = line[:k]
		}
		line = strings.TrimSpace(line)
		for {
			k := strings.Index(line, ":")
			if k < 0 {
				break
			}
			name := strings.TrimSpace(line[:k])
			if !isIdent(name) {
				return nil, fail("bad label %q", name)
			}
			if _, dup := labels[name]; dup {
				return nil, fail("label %q defined twice", name)
			}
			labels[name] = len(insts)
			line = strings.TrimSpace(line[k+1:])
		}
		if line == "" {
			continue
		}
		fields := strings.SplitN(line, " ", 2)
		head := strings.ToUpper(strings.TrimSpace(fields[0]))
		var args []string
		if len(fields) == 2 && strings.TrimSpace(fields[1]) != "" {
			for _, a := range strings.Split(fields[1], ",") {
				args = append(args, strings.TrimSpace(a))
			}
		}
		switch head {
		case ".INPUTS":
			if sawIn || len(insts) > 0 || len(args) != 1 {
				return nil, fail(".inputs takes one number, once, before the first instruction")
			}
			n, err := strconv.Atoi(args[0])
			if err != nil || n < 0 || n > NumRegs {
				return nil, fail(".inputs %q: want 0..16", args[0])
			}
			p.NumInputs, sawIn = n, true
			continue
		case ".OUTPUTS":
			if sawOut || len(insts) > 0 {
				return nil, fail(".outputs appears once, before the first instruction")
			}
			for _, a := range args {
				r, err := parseReg(a)
				if err != nil {
					return nil, fail("%v", err)
				}
				p.Outputs = append(p.Outputs, r)
			}
			sawOut = true
			continue
		}
		op, ok := mnemonics[head]
		if !ok {
			return nil, fail("unknown instruction %q", fields[0])
		}
		insts = append(insts, pending{line: lineNum, op: op, args: args})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrAsm, err)
	}
	for _, pi := range insts {
		lineNum = pi.line
		in := Instr{Op: pi.op}
		want := map[Opcode]int{OpADD: 3, OpSUB: 3, OpMUL: 3, OpADDI: 3, OpMULI: 3, OpMOV: 2, OpLI: 2, OpJMP: 1, OpJZ: 2, OpJNZ: 2, OpHALT: 0}[pi.op]
		if len(pi.args) != want {
			return nil, fail("%s takes %d operands, got %d", pi.op, want, len(pi.args))
		}
		var err error
		reg := func(k int) uint8 {
			if err != nil {
				return 0
			}
			var r uint8
			r, err = parseReg(pi.args[k])
			return r
		}
		target := func(k int) uint64 {
			if err != nil {
				return 0
			}
			if pc, ok := labels[pi.args[k]]; ok {
				return uint64(pc)
			}
			v, e := strconv.ParseUint(pi.args[k], 0, 32)
			if e != nil {
				err = fmt.Errorf("unknown label or pc %q", pi.args[k])
			}
			return v
		}
		imm := func(k int) uint64 {
			if err != nil {
				return 0
			}
			var v uint64
			v, err = parseImm(pi.args[k])
			return v
		}
		switch pi.op {
		case OpADD, OpSUB, OpMUL:
			in.Rd, in.Ra, in.Rb = reg(0), reg(1), reg(2)
		case OpADDI, OpMULI:
			in.Rd, in.Ra, in.Imm = reg(0), reg(1), imm(2)
		case OpMOV:
			in.Rd, in.Ra = reg(0), reg(1)
		case OpLI:
			in.Rd, in.Imm = reg(0), imm(1)
		case OpJMP:
			in.Imm = target(0)
		case OpJZ, OpJNZ:
			in.Ra = reg(0)
			in.Rd = in.Ra
			in.Imm = target(1)
		}
		if err != nil {
			return nil, fail("%v", err)
		}
		p.Instrs = append(p.Instrs, in)
	}
	lineNum = 0
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}

// MustAssemble is Assemble for program texts fixed in code; it panics on error.
func MustAssemble(src string) *Program {
	p, err := Assemble(src)
	if err != nil {
		panic(err)
	}
	return p
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if c == '_' || c == '.' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9') {
			continue
		}
		return false
	}
	return true
}

func parseReg(s string) (uint8, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if !strings.HasPrefix(s, "r") {
		return 0, fmt.Errorf("want a register r0..r15, got %q", s)
	}
	n, err := strconv.Atoi(s[1:])
	if err != nil || n < 0 || n >= NumRegs {
		return 0, fmt.Errorf("want a register r0..r15, got %q", s)
	}
	return uint8(n), nil
}

var bigP = new(big.Int).SetUint64(gl.P)

// parseImm reads a decimal, 0x-hex or negative immediate; negatives are p - n.
func parseImm(s string) (uint64, error) {
	v, ok := new(big.Int).SetString(strings.TrimSpace(s), 0)
	if !ok {
		return 0, fmt.Errorf("bad immediate %q", s)
	}
	if v.Sign() < 0 {
		if v.CmpAbs(bigP) >= 0 {
			return 0, fmt.Errorf("immediate %s out of range", s)
		}
		v.Add(v, bigP)
	}
	if v.Cmp(bigP) >= 0 {
		return 0, fmt.Errorf("immediate %s is ≥ p", s)
	}
	return v.Uint64(), nil
}

// Disassemble writes p in the text form Assemble reads (jump targets as
// labels L<pc>), so Assemble(Disassemble(p)) encodes identically.
func Disassemble(w io.Writer, p *Program) error {
	bw := bufio.NewWriter(w)
	targets := map[uint64]bool{}
	for _, in := range p.Instrs {
		if in.Op >= OpJMP && in.Op <= OpJNZ {
			targets[in.Imm] = true
		}
	}
	fmt.Fprintf(bw, ".inputs %d\n", p.NumInputs)
	if len(p.Outputs) > 0 {
		regs := make([]string, len(p.Outputs))
		for i, r := range p.Outputs {
			regs[i] = "r" + strconv.Itoa(int(r))
		}
		fmt.Fprintf(bw, ".outputs %s\n", strings.Join(regs, ", "))
	}
	for pc, in := range p.Instrs {
		label := ""
		if targets[uint64(pc)] {
			label = fmt.Sprintf("L%d:", pc)
		}
		fmt.Fprintf(bw, "%-8s%s\n", label, in.text())
	}
	return bw.Flush()
}

func (in Instr) text() string {
	r := func(x uint8) string { return "r" + strconv.Itoa(int(x)) }
	switch in.Op {
	case OpADD, OpSUB, OpMUL:
		return fmt.Sprintf("%-5s %s, %s, %s", in.Op, r(in.Rd), r(in.Ra), r(in.Rb))
	case OpADDI, OpMULI:
		return fmt.Sprintf("%-5s %s, %s, %s", in.Op, r(in.Rd), r(in.Ra), immText(in.Imm))
	case OpMOV:
		return fmt.Sprintf("%-5s %s, %s", in.Op, r(in.Rd), r(in.Ra))
	case OpLI:
		return fmt.Sprintf("%-5s %s, %s", in.Op, r(in.Rd), immText(in.Imm))
	case OpJMP:
		return fmt.Sprintf("%-5s L%d", in.Op, in.Imm)
	case OpJZ, OpJNZ:
		return fmt.Sprintf("%-5s %s, L%d", in.Op, r(in.Ra), in.Imm)
	}
	return in.Op.String()
}

// immText prints immediates above p/2 as negatives (p - n reads back as -n).
func immText(v uint64) string {
	if v > gl.P/2 {
		return "-" + strconv.FormatUint(gl.P-v, 10)
	}
	return strconv.FormatUint(v, 10)
}
