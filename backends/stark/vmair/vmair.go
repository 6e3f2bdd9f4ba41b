// Package vmair is the AIR of the pouw VM v1 exactly as docs/vm.md writes it:
// the 59 main columns, the 56 row constraints (divisor x^N − 1), the 22
// transition constraints (all rows but the last and the row before each
// segment start), the boundary assertions per segment, the Micro window exit
// constraints (single-row, at the last row, public end state substituted),
// and the program-table logUp argument as one auxiliary column φ over the
// quadratic extension, built from the challenges α, β after the main
// commitment.
//
// It imports air and field of the STARK and the trace package (the layout
// and header); nothing else of this module.
package vmair

import (
	"context"
	"errors"
	"fmt"

	"github.com/pouwfarm/pouwfarm/backends/stark/air"
	"github.com/pouwfarm/pouwfarm/backends/stark/field"
	"github.com/pouwfarm/pouwfarm/backends/stark/internal/par"
	"github.com/pouwfarm/pouwfarm/trace"
)

// ErrChallenge is returned when α hits a program-table entry (probability
// about table size / p²), which docs/vm.md §9 says the verifier rejects.
var ErrChallenge = errors.New("vmair: lookup challenge collides with a table entry")

type groupKind uint8

const (
	kindRow groupKind = iota
	kindTransition
	kindExit
	kindLookupStep
	kindLookupFirst
)

type entry struct {
	prog, pc, word, imm, mult uint64
}

// AIR is the VM relation for one trace header.
type AIR struct {
	h       *trace.Header
	n       int
	excl    []int // rows with no transition into the next: N−1 and b_s − 1
	groups  []air.Group
	kinds   []groupKind
	asserts []air.Assertion
	table   []entry
	// Exit constants of a window (Micro): the public end state.
	exitB  []field.Base // pc, prog, r0..r15
	exitE  []field.Ext
	hasExt bool
}

// New builds the AIR from a header, which must have passed
// trace.Header.Validate.
func New(h *trace.Header) (*AIR, error) {
	if h.Rows < 1 || h.Rows > 1<<30 {
		return nil, fmt.Errorf("vmair: %d rows (the STARK proves 1..2^30)", h.Rows)
	}
	n := int(h.Rows)
	a := &AIR{h: h, n: n}
	a.excl = []int{n - 1}
	for s, seg := range h.Segments {
		if s > 0 && seg.StartRow > 0 {
			a.excl = append(a.excl, int(seg.StartRow)-1)
		}
	}
	a.groups = []air.Group{{Divisor: air.AllRows, Degrees: rowDegrees}}
	a.kinds = []groupKind{kindRow}
	// A one-row window (W = 1) has no transition at all: every row is
	// excluded, and the group (whose divisor would be the constant 1) is
	// left out; so is lookup_step.
	if n > 1 {
		a.groups = append(a.groups, air.Group{Divisor: air.AllRowsExcept, Rows: a.excl, Degrees: transitionDegrees})
		a.kinds = append(a.kinds, kindTransition)
	}
	for _, seg := range h.Segments {
		b, e := int(seg.StartRow), int(seg.EndRow)
		if e >= n || b > e {
			return nil, fmt.Errorf("vmair: segment rows %d..%d outside %d rows", b, e, n)
		}
		a.asserts = append(a.asserts,
			air.Assertion{Column: trace.ColPC, Row: b, Value: field.New(seg.Start.PC)},
			air.Assertion{Column: trace.ColProg, Row: b, Value: field.New(uint64(seg.Program))})
		for i := range trace.NumRegs {
			a.asserts = append(a.asserts, air.Assertion{Column: trace.ColReg(i), Row: b, Value: field.New(seg.Start.Regs[i])})
		}
		switch seg.Kind {
		case trace.SegIntent:
			a.asserts = append(a.asserts, air.Assertion{Column: trace.ColFlag(trace.OpHALT), Row: e, Value: field.New(1)})
			if e > b {
				a.asserts = append(a.asserts, air.Assertion{Column: trace.ColFlag(trace.OpHALT), Row: e - 1, Value: field.New(0)})
			}
			outs := h.Programs[seg.Program].Outputs
			if len(outs) != len(seg.Outputs) {
				return nil, fmt.Errorf("vmair: segment has %d outputs, program %d", len(seg.Outputs), len(outs))
			}
			for o, reg := range outs {
				a.asserts = append(a.asserts, air.Assertion{Column: trace.ColReg(int(reg)), Row: e, Value: field.New(seg.Outputs[o])})
			}
		case trace.SegWindow:
			if a.hasExt || e != n-1 {
				return nil, errors.New("vmair: a window segment must be the only one and end at the last row")
			}
			a.hasExt = true
			a.exitB = make([]field.Base, 2+trace.NumRegs)
			a.exitB[0] = field.New(seg.End.PC)
			a.exitB[1] = field.New(uint64(seg.Program))
			for i := range trace.NumRegs {
				a.exitB[2+i] = field.New(seg.End.Regs[i])
			}
			a.exitE = make([]field.Ext, len(a.exitB))
			for i := range a.exitB {
				a.exitE[i] = field.Lift(a.exitB[i])
			}
			a.groups = append(a.groups, air.Group{Divisor: air.OneRow, Rows: []int{e}, Degrees: transitionDegrees})
			a.kinds = append(a.kinds, kindExit)
		default:
			return nil, fmt.Errorf("vmair: segment kind %d", seg.Kind)
		}
	}
	if n > 1 {
		a.groups = append(a.groups, air.Group{Divisor: air.AllRowsExcept, Rows: []int{n - 1}, Degrees: []int{2}, Aux: true})
		a.kinds = append(a.kinds, kindLookupStep)
	}
	a.groups = append(a.groups, air.Group{Divisor: air.OneRow, Rows: []int{0}, Degrees: []int{2}, Aux: true})
	a.kinds = append(a.kinds, kindLookupFirst)
	if len(h.Multiplicities) != len(h.Programs) {
		return nil, errors.New("vmair: multiplicities do not match the programs")
	}
	for g, p := range h.Programs {
		if len(h.Multiplicities[g]) != len(p.Instrs) {
			return nil, errors.New("vmair: multiplicities do not match the program")
		}
		for j, in := range p.Instrs {
			a.table = append(a.table, entry{prog: uint64(g), pc: uint64(j), word: in.Word(), imm: in.Imm, mult: h.Multiplicities[g][j]})
		}
	}
	return a, nil
}

func (a *AIR) TraceLength() int            { return a.n }
func (a *AIR) MainWidth() int              { return trace.Width }
func (a *AIR) AuxWidth() int               { return 1 }
func (a *AIR) NumChallenges() int          { return 2 }
func (a *AIR) Groups() []air.Group         { return a.groups }
func (a *AIR) Assertions() []air.Assertion { return a.asserts }

func (a *AIR) Eval(g int, cur, next []field.Base, out []field.Base) {
	switch a.kinds[g] {
	case kindRow:
		rowConstraintsBase(baseConsts, cur, out)
	case kindTransition:
		transitionConstraintsBase(baseConsts, cur, &next[trace.ColPC], &next[trace.ColProg], next[trace.ColR0:trace.ColR0+trace.NumRegs], out)
	case kindExit:
		transitionConstraintsBase(baseConsts, cur, &a.exitB[0], &a.exitB[1], a.exitB[2:], out)
	}
}

// tupleBase is c = prog + β·pc + β²·word + β³·imm for a base-field row.
func tupleBase(r []field.Base, bp *[4]field.Ext) field.Ext {
	w := wordBase(baseConsts, r)
	c := field.Lift(r[trace.ColProg])
	field.AddMulBase(&c, &bp[1], &r[trace.ColPC])
	field.AddMulBase(&c, &bp[2], &w)
	field.AddMulBase(&c, &bp[3], &r[trace.ColImm])
	return c
}

func tupleExt(r []field.Ext, bp *[4]field.Ext) field.Ext {
	w := word(extConsts, r)
	c := r[trace.ColProg]
	for _, t := range [3]struct{ p, v *field.Ext }{{&bp[1], &r[trace.ColPC]}, {&bp[2], &w}, {&bp[3], &r[trace.ColImm]}} {
		var x field.Ext
		x.Mul(t.p, t.v)
		c.Add(&c, &x)
	}
	return c
}

func betaPowers(beta field.Ext) *[4]field.Ext {
	var bp [4]field.Ext
	bp[0].SetOne()
	for i := 1; i < 4; i++ {
		bp[i].Mul(&bp[i-1], &beta)
	}
	return &bp
}

// lookup writes (φ' − φ)·(α − c') − 1 (step) or φ·(α − c) − 1 (first).
func lookup(kind groupKind, alpha, c, phi, phiNext field.Ext, out []field.Ext) {
	var d, t field.Ext
	d.Sub(&alpha, &c)
	if kind == kindLookupStep {
		t.Sub(&phiNext, &phi)
	} else {
		t = phi
	}
	t.Mul(&t, &d)
	one := field.Lift(field.New(1))
	out[0].Sub(&t, &one)
}

func (a *AIR) EvalAux(g int, cur, next []field.Base, auxCur, auxNext, ch []field.Ext, out []field.Ext) {
	bp := betaPowers(ch[1])
	row := cur
	if a.kinds[g] == kindLookupStep {
		row = next
	}
	lookup(a.kinds[g], ch[0], tupleBase(row, bp), auxCur[0], auxNext[0], out)
}

func (a *AIR) EvalExt(g int, cur, next, auxCur, auxNext, ch []field.Ext, out []field.Ext) {
	switch k := a.kinds[g]; k {
	case kindRow:
		rowConstraints(extConsts, cur, out)
	case kindTransition:
		transitionConstraints(extConsts, cur, &next[trace.ColPC], &next[trace.ColProg], next[trace.ColR0:trace.ColR0+trace.NumRegs], out)
	case kindExit:
		transitionConstraints(extConsts, cur, &a.exitE[0], &a.exitE[1], a.exitE[2:], out)
	default:
		bp := betaPowers(ch[1])
		row := cur
		if k == kindLookupStep {
			row = next
		}
		lookup(k, ch[0], tupleExt(row, bp), auxCur[0], auxNext[0], out)
	}
}

// tableDenominators returns α − t for every table entry.
func (a *AIR) tableDenominators(ch []field.Ext) []field.Ext {
	bp := betaPowers(ch[1])
	d := make([]field.Ext, len(a.table))
	for i, e := range a.table {
		c := field.Lift(field.New(e.prog))
		for _, t := range [3]struct {
			p *field.Ext
			v uint64
		}{{&bp[1], e.pc}, {&bp[2], e.word}, {&bp[3], e.imm}} {
			b := field.New(t.v)
			field.AddMulBase(&c, t.p, &b)
		}
		d[i].Sub(&ch[0], &c)
	}
	return d
}

// CheckChallenges rejects challenges where α equals a table entry.
func (a *AIR) CheckChallenges(ch []field.Ext) error {
	for _, d := range a.tableDenominators(ch) {
		if d.IsZero() {
			return ErrChallenge
		}
	}
	return nil
}

// AuxAssertions pins φ_{N−1} to RHS = Σ_{g,j} m_{g,j}/(α − t_{g,j}), which
// the verifier computes from the header.
func (a *AIR) AuxAssertions(ch []field.Ext) []air.AuxAssertion {
	inv := field.BatchInvertExt(a.tableDenominators(ch))
	var rhs field.Ext
	for i, e := range a.table {
		if e.mult == 0 {
			continue
		}
		m := field.New(e.mult)
		field.AddMulBase(&rhs, &inv[i], &m)
	}
	return []air.AuxAssertion{{Column: 0, Row: a.n - 1, Value: rhs}}
}

// BuildAux builds φ_i = Σ_{i' ≤ i} 1/(α − c_{i'}).
func (a *AIR) BuildAux(main [][]field.Base, ch []field.Ext) ([][]field.Ext, error) {
	bp := betaPowers(ch[1])
	d := make([]field.Ext, a.n)
	_ = par.For(context.Background(), a.n, 1<<12, func(lo, hi int) {
		row := make([]field.Base, trace.Width)
		for i := lo; i < hi; i++ {
			for c := range row {
				row[c] = main[c][i]
			}
			c := tupleBase(row, bp)
			d[i].Sub(&ch[0], &c)
		}
	})
	for i := range d {
		if d[i].IsZero() {
			return nil, ErrChallenge
		}
	}
	phi := field.BatchInvertExt(d)
	for i := 1; i < a.n; i++ {
		phi[i].Add(&phi[i], &phi[i-1])
	}
	return [][]field.Ext{phi}, nil
}

// Columns converts a trace's row-major cells into the main trace's
// column-major base-field columns.
func Columns(ctx context.Context, t *trace.Trace) ([][]field.Base, error) {
	n := int(t.Header.Rows)
	if len(t.Cells) != n*trace.Width {
		return nil, fmt.Errorf("vmair: %d cells for %d rows", len(t.Cells), n)
	}
	cols := make([][]field.Base, trace.Width)
	for c := range cols {
		cols[c] = make([]field.Base, n)
	}
	err := par.For(ctx, n, 1<<12, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			row := t.Cells[i*trace.Width : (i+1)*trace.Width]
			for c, v := range row {
				cols[c][i] = field.New(v)
			}
		}
	})
	return cols, err
}
