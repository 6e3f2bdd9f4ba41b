package trace

import (
	"errors"
	"fmt"
	"strings"

	"github.com/pouwfarm/pouwfarm/trace/gl"
)

// ErrConstraint marks a trace whose rows break a constraint of docs/vm.md.
var ErrConstraint = errors.New("trace violates a constraint")

// Violation is one failed constraint: its name as docs/vm.md §8–9 writes it
// and the row it is evaluated at. A transition constraint at Row relates rows
// Row and Row+1; Row is -1 for a multiplicity never executed.
type Violation struct {
	Row        int64
	Constraint string
	Transition bool // it reads row Row+1 too
}

func (v Violation) String() string { return fmt.Sprintf("row %d: %s", v.Row, v.Constraint) }

// CheckError lists the violations Check found, in row order (at most
// maxViolations are kept; Total counts all).
type CheckError struct {
	Violations []Violation
	Total      int
}

const maxViolations = 64

func (e *CheckError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d constraint violations", e.Total)
	for i, v := range e.Violations {
		if i == 4 {
			b.WriteString(", ...")
			break
		}
		b.WriteString("; ")
		b.WriteString(v.String())
	}
	return b.String()
}

// Unwrap lets errors.Is(err, ErrConstraint) match.
func (e *CheckError) Unwrap() error { return ErrConstraint }

// First returns the first violation.
func (e *CheckError) First() Violation { return e.Violations[0] }

type checker struct {
	err CheckError
}

func (c *checker) add(row int64, name string, transition bool) {
	c.err.Total++
	if len(c.err.Violations) < maxViolations {
		c.err.Violations = append(c.err.Violations, Violation{Row: row, Constraint: name, Transition: transition})
	}
}

// Check validates t against every rule of docs/vm.md: the header (§11), the
// row constraints (§8.1), the transition constraints on the rows of T (§8.2),
// the boundary and window exit constraints (§8.3–8.4) and the program table
// (§9). It evaluates the polynomials as written, independently of the
// interpreter. It returns nil, an error wrapping ErrHeader, or a *CheckError
// (wrapping ErrConstraint) naming each failing row and constraint.
func Check(t *Trace) error {
	h := &t.Header
	if err := h.Validate(); err != nil {
		return err
	}
	if uint64(len(t.Cells)) != h.Rows*Width {
		return fmt.Errorf("%w: %d cells for %d rows of %d columns", ErrHeader, len(t.Cells), h.Rows, Width)
	}
	for i, v := range t.Cells {
		if !gl.Canonical(v) {
			return fmt.Errorf("%w: cell (row %d, column %d) is ≥ p", ErrConstraint, i/Width, i%Width)
		}
	}
	c := &checker{}
	n := h.Rows
	starts := make(map[uint64]bool, len(h.Segments))
	for _, s := range h.Segments {
		starts[s.StartRow] = true
	}
	counts := make([][]uint64, len(h.Programs))
	firstUse := make([][]int64, len(h.Programs))
	for g, p := range h.Programs {
		counts[g] = make([]uint64, len(p.Instrs))
		firstUse[g] = make([]int64, len(p.Instrs))
		for j := range firstUse[g] {
			firstUse[g][j] = -1
		}
	}
	for i := uint64(0); i < n; i++ {
		r := t.Row(i)
		c.rowConstraints(int64(i), r)
		c.lookup(int64(i), r, h, counts, firstUse)
		if i+1 < n && !starts[i+1] {
			nx := t.Row(i + 1)
			c.transition(int64(i), r, nx[ColPC], nx[ColProg], nx[ColR0:ColR0+NumRegs], "")
		}
	}
	c.boundaries(t)
	for g := range counts {
		for j, m := range counts[g] {
			if m != h.Multiplicities[g][j] {
				c.add(firstUse[g][j], fmt.Sprintf("multiplicity[%d][%d]", g, j), false)
			}
		}
	}
	if c.err.Total == 0 {
		return nil
	}
	sortViolations(c.err.Violations)
	return &c.err
}

func sortViolations(vs []Violation) {
	// insertion sort: the list is short and nearly sorted; row -1 (an entry
	// never executed) goes last
	key := func(v Violation) uint64 { return uint64(v.Row) }
	for i := 1; i < len(vs); i++ {
		for j := i; j > 0 && key(vs[j]) < key(vs[j-1]); j-- {
			vs[j], vs[j-1] = vs[j-1], vs[j]
		}
	}
}

// selected returns Σ_{j,k} hi_j·lo_k·r_{4j+k} as the polynomial reads it.
func selected(r []uint64, hi, lo int) uint64 {
	var s uint64
	for j := 0; j < 4; j++ {
		for k := 0; k < 4; k++ {
			s = gl.Add(s, gl.Mul(gl.Mul(r[hi+j], r[lo+k]), r[ColR0+4*j+k]))
		}
	}
	return s
}

var boolNames = func() []string {
	names := ColumnNames()
	out := make([]string, Width)
	for col := ColFlag0; col < ColImm; col++ {
		out[col] = "bool[" + names[col] + "]"
	}
	return out
}()

var onehotGroups = []struct {
	name       string
	first, len int
}{
	{"onehot[flags]", ColFlag0, int(NumOpcodes)},
	{"onehot[dhi]", ColDHi0, 4}, {"onehot[dlo]", ColDLo0, 4},
	{"onehot[ahi]", ColAHi0, 4}, {"onehot[alo]", ColALo0, 4},
	{"onehot[bhi]", ColBHi0, 4}, {"onehot[blo]", ColBLo0, 4},
}

// rowConstraints evaluates §8.1 on row r.
func (c *checker) rowConstraints(i int64, r []uint64) {
	for col := ColFlag0; col < ColImm; col++ {
		x := r[col]
		if gl.Mul(x, gl.Sub(x, 1)) != 0 {
			c.add(i, boolNames[col], false)
		}
	}
	for _, g := range onehotGroups {
		var s uint64
		for k := 0; k < g.len; k++ {
			s = gl.Add(s, r[g.first+k])
		}
		if s != 1 {
			c.add(i, g.name, false)
		}
	}
	va, vb, vd, imm := r[ColVA], r[ColVB], r[ColVD], r[ColImm]
	if gl.Sub(va, selected(r, ColAHi0, ColALo0)) != 0 {
		c.add(i, "va", false)
	}
	if gl.Sub(vb, selected(r, ColBHi0, ColBLo0)) != 0 {
		c.add(i, "vb", false)
	}
	f := func(op Opcode) uint64 { return r[ColFlag(op)] }
	ops := []struct {
		name string
		v    uint64
	}{
		{"op_add", gl.Mul(f(OpADD), gl.Sub(gl.Sub(vd, va), vb))},
		{"op_sub", gl.Mul(f(OpSUB), gl.Add(gl.Sub(vd, va), vb))},
		{"op_mul", gl.Mul(f(OpMUL), gl.Sub(vd, gl.Mul(va, vb)))},
		{"op_addi", gl.Mul(f(OpADDI), gl.Sub(gl.Sub(vd, va), imm))},
		{"op_muli", gl.Mul(f(OpMULI), gl.Sub(vd, gl.Mul(va, imm)))},
		{"op_li", gl.Mul(f(OpLI), gl.Sub(vd, imm))},
		{"op_keep", gl.Mul(gl.Add(gl.Add(gl.Add(gl.Add(f(OpMOV), f(OpJMP)), f(OpJZ)), f(OpJNZ)), f(OpHALT)), gl.Sub(vd, va))},
	}
	for _, o := range ops {
		if o.v != 0 {
			c.add(i, o.name, false)
		}
	}
	inv, isz := r[ColInv], r[ColIsZ]
	br := gl.Add(f(OpJZ), f(OpJNZ))
	idle := gl.Sub(1, br)
	if gl.Mul(br, gl.Sub(gl.Sub(1, gl.Mul(va, inv)), isz)) != 0 {
		c.add(i, "zero_inv", false)
	}
	if gl.Mul(va, isz) != 0 {
		c.add(i, "zero_va", false)
	}
	if gl.Mul(inv, isz) != 0 {
		c.add(i, "zero_isz", false)
	}
	if gl.Mul(idle, inv) != 0 {
		c.add(i, "idle_inv", false)
	}
	if gl.Mul(idle, isz) != 0 {
		c.add(i, "idle_isz", false)
	}
}

var regNames = func() (out [NumRegs]string) {
	for i := range out {
		out[i] = "reg[" + itoa(i) + "]"
	}
	return
}()

// transition evaluates §8.2 on row r with the next state (pcN, progN, regsN):
// the next row's, or for a window's exit (§8.4) the public end state, with
// prefix "exit:".
func (c *checker) transition(i int64, r []uint64, pcN, progN uint64, regsN []uint64, prefix string) {
	f := func(op Opcode) uint64 { return r[ColFlag(op)] }
	pc, imm, isz, vd := r[ColPC], r[ColImm], r[ColIsZ], r[ColVD]
	seq := uint64(0)
	for op := OpADD; op <= OpLI; op++ {
		seq = gl.Add(seq, f(op))
	}
	pc1 := gl.Add(pc, 1)
	tr := prefix == ""
	checks := []struct {
		name string
		v    uint64
	}{
		{"pc_seq", gl.Mul(seq, gl.Sub(pcN, pc1))},
		{"pc_jmp", gl.Mul(f(OpJMP), gl.Sub(pcN, imm))},
		{"pc_jz", gl.Mul(f(OpJZ), gl.Sub(gl.Sub(pcN, pc1), gl.Mul(isz, gl.Sub(imm, pc1))))},
		{"pc_jnz", gl.Mul(f(OpJNZ), gl.Sub(gl.Sub(pcN, imm), gl.Mul(isz, gl.Sub(pc1, imm))))},
		{"pc_halt", gl.Mul(f(OpHALT), gl.Sub(pcN, pc))},
		{"prog", gl.Sub(progN, r[ColProg])},
	}
	for _, ch := range checks {
		if ch.v != 0 {
			c.add(i, prefix+ch.name, tr)
		}
	}
	for j := 0; j < 4; j++ {
		for k := 0; k < 4; k++ {
			ri := 4*j + k
			x := r[ColR0+ri]
			sel := gl.Mul(r[ColDHi0+j], r[ColDLo0+k])
			if gl.Sub(gl.Sub(regsN[ri], x), gl.Mul(sel, gl.Sub(vd, x))) != 0 {
				c.add(i, prefix+regNames[ri], tr)
			}
		}
	}
}

// word is the linear form of §9: Σ op·f_op + 16·rd + 256·ra + 4096·rb.
func word(r []uint64) uint64 {
	var w uint64
	for op := Opcode(0); op < NumOpcodes; op++ {
		w = gl.Add(w, gl.Mul(uint64(op), r[ColFlag(op)]))
	}
	idx := func(hi, lo int) uint64 {
		var v uint64
		for j := 0; j < 4; j++ {
			v = gl.Add(v, gl.Add(gl.Mul(uint64(4*j), r[hi+j]), gl.Mul(uint64(j), r[lo+j])))
		}
		return v
	}
	w = gl.Add(w, gl.Mul(16, idx(ColDHi0, ColDLo0)))
	w = gl.Add(w, gl.Mul(256, idx(ColAHi0, ColALo0)))
	w = gl.Add(w, gl.Mul(4096, idx(ColBHi0, ColBLo0)))
	return w
}

// lookup checks that row r's tuple (prog, pc, word, imm) is a table entry
// and counts it.
func (c *checker) lookup(i int64, r []uint64, h *Header, counts [][]uint64, firstUse [][]int64) {
	g, pc := r[ColProg], r[ColPC]
	if g >= uint64(len(h.Programs)) || pc >= uint64(len(h.Programs[g].Instrs)) {
		c.add(i, "lookup", false)
		return
	}
	in := h.Programs[g].Instrs[pc]
	if word(r) != in.Word() || r[ColImm] != in.Imm {
		c.add(i, "lookup", false)
		return
	}
	counts[g][pc]++
	if firstUse[g][pc] < 0 {
		firstUse[g][pc] = i
	}
}

// boundaries checks §8.3 and §8.4 for every segment.
func (c *checker) boundaries(t *Trace) {
	h := &t.Header
	for _, s := range h.Segments {
		b, e := s.StartRow, s.EndRow
		rb := t.Row(b)
		if rb[ColPC] != s.Start.PC {
			c.add(int64(b), "start_pc", false)
		}
		if rb[ColProg] != uint64(s.Program) {
			c.add(int64(b), "start_prog", false)
		}
		for i := 0; i < NumRegs; i++ {
			if rb[ColR0+i] != s.Start.Regs[i] {
				c.add(int64(b), "start_"+regNames[i], false)
			}
		}
		re := t.Row(e)
		switch s.Kind {
		case SegIntent:
			if re[ColFlag(OpHALT)] != 1 {
				c.add(int64(e), "halt", false)
			}
			if e > b && t.At(e-1, ColFlag(OpHALT)) != 0 {
				c.add(int64(e-1), "halt_first", false)
			}
			for o, reg := range h.Programs[s.Program].Outputs {
				if re[ColR0+int(reg)] != s.Outputs[o] {
					c.add(int64(e), "output["+itoa(o)+"]", false)
				}
			}
		case SegWindow:
			c.transition(int64(e), re, s.End.PC, uint64(s.Program), s.End.Regs[:], "exit:")
		}
	}
}
