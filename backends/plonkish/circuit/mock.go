package circuit

import (
	"fmt"

	"github.com/consensys/gnark-crypto/ecc/bn254/fr"
)

// Failure is one constraint a witness breaks, as the MockProver reports it.
type Failure struct {
	Kind string // "gate", "lookup" or "copy"
	Name string // gate or lookup name
	Poly int    // polynomial index within the gate, input index within the lookup
	Row  int
	Info string
}

func (f Failure) String() string {
	s := fmt.Sprintf("%s %q #%d fails at row %d", f.Kind, f.Name, f.Poly, f.Row)
	if f.Info != "" {
		s += ": " + f.Info
	}
	return s
}

// MockProve checks a witness against every gate (on all 2^k rows), every
// lookup and every copy constraint (on the usable rows) without any
// cryptography, and lists the failures in row order within each kind.
// It is the debugging aid Halo2 calls MockProver.
func MockProve(k int, c Circuit, instance [][]fr.Element) ([]Failure, error) {
	cs := &ConstraintSystem{}
	c.Configure(cs)
	if err := cs.finalize(); err != nil {
		return nil, err
	}
	n := 1 << k
	a, err := newAssignment(cs, n, instance)
	if err != nil {
		return nil, err
	}
	if err := c.Synthesize(a); err != nil {
		return nil, err
	}
	if a.err != nil {
		return nil, a.err
	}
	getter := func(row int) func(Query) fr.Element {
		return func(q Query) fr.Element {
			return a.Get(q.Col, ((row+q.Rot)%n+n)%n)
		}
	}
	var fails []Failure
	for row := 0; row < n; row++ {
		get := getter(row)
		for _, g := range cs.Gates {
			for pi, p := range g.Polys {
				if v := p.Eval(get); !v.IsZero() {
					fails = append(fails, Failure{Kind: "gate", Name: g.Name, Poly: pi, Row: row})
				}
			}
		}
	}
	// lookups compare raw tuples (no challenge needed)
	for _, l := range cs.Lookups {
		table := map[string]bool{}
		for row := 0; row < n-1; row++ {
			table[tupleKey(l.Table, getter(row))] = true
		}
		for row := 0; row < n-1; row++ {
			get := getter(row)
			for ii := range l.Inputs {
				in := &l.Inputs[ii]
				w := in.weight().Eval(get)
				if w.IsZero() {
					continue
				}
				if !w.IsOne() {
					fails = append(fails, Failure{Kind: "lookup", Name: l.Name, Poly: ii, Row: row, Info: "weight is not 0 or 1"})
					continue
				}
				if key := tupleKey(in.Tuple, get); !table[key] {
					fails = append(fails, Failure{Kind: "lookup", Name: l.Name, Poly: ii, Row: row, Info: "value " + key + " not in table"})
				}
			}
		}
	}
	if err := checkCopies(cs, a.copies); err != nil {
		return nil, err
	}
	for i, cp := range a.copies {
		v1, v2 := a.Get(cp[0].col, cp[0].row), a.Get(cp[1].col, cp[1].row)
		if !v1.Equal(&v2) {
			fails = append(fails, Failure{Kind: "copy", Name: fmt.Sprintf("%s[%d]=%s[%d]", cp[0].col, cp[0].row, cp[1].col, cp[1].row), Poly: i, Row: cp[0].row})
		}
	}
	return fails, nil
}

func tupleKey(t []*Expr, get func(Query) fr.Element) string {
	s := ""
	for i, e := range t {
		if i > 0 {
			s += ","
		}
		v := e.Eval(get)
		s += v.String()
	}
	return "(" + s + ")"
}
