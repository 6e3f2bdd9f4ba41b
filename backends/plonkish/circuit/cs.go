package circuit

import (
	"errors"
	"fmt"
	"sort"

	"github.com/consensys/gnark-crypto/ecc/bn254/fr"
	"github.com/zeebo/blake3"
)

// Sentinel errors callers branch on.
var (
	ErrUnsatisfied = errors.New("circuit: witness does not satisfy the circuit")
	ErrVerify      = errors.New("circuit: proof rejected")
	ErrConfig      = errors.New("circuit: invalid circuit")
)

// minDegree is the smallest constraint degree the argument is laid out
// for: the permutation argument packs degree-2 columns per running
// product and the quotient lives on a 4n extended domain anyway.
const minDegree = 5

// Gate is a named set of polynomials that must vanish on every row.
type Gate struct {
	Name  string
	Polys []*Expr
}

// LookupInput is a tuple of expressions that must, on every usable row
// where Weight is 1, equal some row of the lookup's table. Weight (a
// selector, nil for always) must be boolean: a circuit constrains that.
type LookupInput struct {
	Weight *Expr
	Tuple  []*Expr
}

// Lookup is a logUp argument: with verifier challenges theta (tuple
// compression) and lambda, sum over usable rows and inputs of
// weight/(lambda + f) equals sum over usable rows of m/(lambda + t), m
// being prover-supplied multiplicities. The table is made of expressions
// over fixed and instance columns only (the verifier trusts them); pad it
// to every usable row by repeating one of its rows.
type Lookup struct {
	Name   string
	Table  []*Expr
	Inputs []LookupInput
	groups [][]int // inputs sharing one helper column
}

// unitWeight is the weight of an input without a selector (expressions
// are immutable once built, so one instance serves every lookup).
var unitWeight = Const(1)

func (in *LookupInput) weight() *Expr {
	if in.Weight == nil {
		return unitWeight
	}
	return in.Weight
}

func tupleDegree(t []*Expr) int {
	d := 0
	for _, e := range t {
		d = max(d, e.Degree())
	}
	return d
}

// ConstraintSystem is what Configure builds: the columns, gates, the
// columns under copy constraints and the lookups.
type ConstraintSystem struct {
	NumFixed, NumAdvice, NumInstance int
	Gates                            []Gate
	Lookups                          []*Lookup
	Perm                             []Column
	permIndex                        map[Column]int

	degree  int     // max constraint degree D, with D-1 a power of two
	queries []Query // every cell query of gates and lookups, sorted
}

// Circuit is the Halo2-style circuit API: Configure declares the layout
// (deterministically: keys depend on it), Synthesize fills it in.
type Circuit interface {
	Configure(cs *ConstraintSystem)
	Synthesize(a *Assignment) error
}

func (cs *ConstraintSystem) FixedColumn() Column {
	cs.NumFixed++
	return Column{Fixed, cs.NumFixed - 1}
}

func (cs *ConstraintSystem) AdviceColumn() Column {
	cs.NumAdvice++
	return Column{Advice, cs.NumAdvice - 1}
}

func (cs *ConstraintSystem) InstanceColumn() Column {
	cs.NumInstance++
	return Column{Instance, cs.NumInstance - 1}
}

// EnableEquality lets Copy constrain cells of the column.
func (cs *ConstraintSystem) EnableEquality(c Column) {
	if cs.permIndex == nil {
		cs.permIndex = map[Column]int{}
	}
	if _, ok := cs.permIndex[c]; ok {
		return
	}
	cs.permIndex[c] = len(cs.Perm)
	cs.Perm = append(cs.Perm, c)
}

// CreateGate adds polynomials that must vanish on every row (multiply by a
// fixed selector column to restrict the rows).
func (cs *ConstraintSystem) CreateGate(name string, polys ...*Expr) {
	cs.Gates = append(cs.Gates, Gate{Name: name, Polys: polys})
}

// AddLookup adds a tuple lookup into a table of fixed/instance expressions.
func (cs *ConstraintSystem) AddLookup(name string, table []*Expr, inputs ...LookupInput) {
	cs.Lookups = append(cs.Lookups, &Lookup{Name: name, Table: table, Inputs: inputs})
}

// AddRangeLookup constrains each expression to a value of a fixed column.
func (cs *ConstraintSystem) AddRangeLookup(name string, table Column, inputs ...*Expr) {
	ins := make([]LookupInput, len(inputs))
	for i, e := range inputs {
		ins[i] = LookupInput{Tuple: []*Expr{e}}
	}
	cs.AddLookup(name, []*Expr{table.Cur()}, ins...)
}

// finalize checks the system, fixes its degree and groups lookup inputs.
func (cs *ConstraintSystem) finalize() error {
	d := minDegree
	for _, g := range cs.Gates {
		for _, p := range g.Polys {
			d = max(d, p.Degree())
		}
	}
	for _, l := range cs.Lookups {
		tq := map[Query]bool{}
		for _, t := range l.Table {
			t.queries(tq)
		}
		for q := range tq {
			if q.Col.Kind == Advice {
				return fmt.Errorf("%w: lookup %q: table reads an advice column", ErrConfig, l.Name)
			}
		}
		if len(l.Table) == 0 {
			return fmt.Errorf("%w: lookup %q: empty table tuple", ErrConfig, l.Name)
		}
		d = max(d, 2+tupleDegree(l.Table))
		for _, in := range l.Inputs {
			if len(in.Tuple) != len(l.Table) {
				return fmt.Errorf("%w: lookup %q: input of %d expressions for a table of %d", ErrConfig, l.Name, len(in.Tuple), len(l.Table))
			}
			d = max(d, 1+tupleDegree(in.Tuple), in.weight().Degree())
		}
	}
	// D-1 a power of two: the extended domain has (D-1)n points
	for (d-1)&(d-2) != 0 {
		d++
	}
	if d > 17 {
		return fmt.Errorf("%w: constraint degree %d above 17", ErrConfig, d)
	}
	cs.degree = d
	// lookup helper h_g satisfies h_g * prod(l+f_i) = sum_i w_i prod_{j!=i}(l+f_j):
	// packed greedily while that identity's degree stays within D
	for _, l := range cs.Lookups {
		l.groups = nil
		var cur []int
		for i := range l.Inputs {
			if len(cur) > 0 && groupDegree(l, append(cur[:len(cur):len(cur)], i)) > d {
				l.groups = append(l.groups, cur)
				cur = nil
			}
			cur = append(cur, i)
		}
		if len(cur) > 0 {
			l.groups = append(l.groups, cur)
		}
	}
	qs := map[Query]bool{}
	for _, g := range cs.Gates {
		for _, p := range g.Polys {
			p.queries(qs)
		}
	}
	for _, l := range cs.Lookups {
		for _, in := range l.Inputs {
			in.weight().queries(qs)
			for _, e := range in.Tuple {
				e.queries(qs)
			}
		}
		for _, e := range l.Table {
			e.queries(qs)
		}
	}
	for _, c := range cs.Perm {
		qs[Query{c, 0}] = true
	}
	cs.queries = cs.queries[:0]
	for q := range qs {
		cs.queries = append(cs.queries, q)
	}
	sort.Slice(cs.queries, func(i, j int) bool {
		a, b := cs.queries[i], cs.queries[j]
		if a.Col.Kind != b.Col.Kind {
			return a.Col.Kind < b.Col.Kind
		}
		if a.Col.Index != b.Col.Index {
			return a.Col.Index < b.Col.Index
		}
		return a.Rot < b.Rot
	})
	for _, q := range cs.queries {
		if q.Col.Index >= cs.count(q.Col.Kind) || q.Col.Index < 0 {
			return fmt.Errorf("%w: query of undeclared column %s", ErrConfig, q.Col)
		}
	}
	return nil
}

func (cs *ConstraintSystem) count(k ColumnKind) int {
	switch k {
	case Fixed:
		return cs.NumFixed
	case Advice:
		return cs.NumAdvice
	default:
		return cs.NumInstance
	}
}

// Finalize checks the system and fixes its layout (Keygen, Prove and
// MockProve call it; exported for tools that report a circuit's shape).
func (cs *ConstraintSystem) Finalize() error { return cs.finalize() }

// NumLookupHelpers is the number of committed lookup helper columns.
func (cs *ConstraintSystem) NumLookupHelpers() int { return cs.numLookupHelpers() }

// Degree is the maximum constraint degree the argument uses.
func (cs *ConstraintSystem) Degree() int { return cs.degree }

// permChunk is how many columns one permutation running product covers.
func (cs *ConstraintSystem) permChunk() int { return cs.degree - 2 }

func (cs *ConstraintSystem) numPermZ() int {
	c := cs.permChunk()
	return (len(cs.Perm) + c - 1) / c
}

func (cs *ConstraintSystem) numLookupHelpers() int {
	n := 0
	for _, l := range cs.Lookups {
		n += len(l.groups)
	}
	return n
}

// NumConstraints counts the polynomial identities checked per row: gate
// polynomials plus the lookup and permutation argument's own.
func (cs *ConstraintSystem) NumConstraints() (gates, arguments int) {
	for _, g := range cs.Gates {
		gates += len(g.Polys)
	}
	arguments = cs.numLookupHelpers() + 3*len(cs.Lookups)
	if len(cs.Perm) > 0 {
		arguments += 2 + 2*cs.numPermZ() - 1
	}
	return gates, arguments
}

// digest hashes the system's shape and constraints.
func (cs *ConstraintSystem) digest() [32]byte {
	h := blake3.New()
	fmt.Fprintf(h, "cs/v1 fixed=%d advice=%d instance=%d degree=%d\n", cs.NumFixed, cs.NumAdvice, cs.NumInstance, cs.degree)
	for _, g := range cs.Gates {
		fmt.Fprintf(h, "gate %q %d\n", g.Name, len(g.Polys))
		for _, p := range g.Polys {
			fmt.Fprintf(h, "%s\n", p)
		}
	}
	for _, l := range cs.Lookups {
		fmt.Fprintf(h, "lookup %q %d %v\n", l.Name, len(l.Inputs), l.groups)
		for _, e := range l.Table {
			fmt.Fprintf(h, "t %s\n", e)
		}
		for _, in := range l.Inputs {
			fmt.Fprintf(h, "w %s\n", in.weight())
			for _, e := range in.Tuple {
				fmt.Fprintf(h, "f %s\n", e)
			}
		}
	}
	fmt.Fprintf(h, "perm %v\n", cs.Perm)
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// Assignment is the table Synthesize fills: n rows, of which the last is
// reserved for the arguments' running products (Usable rows are 0..n-2).
// Errors are sticky: the first misuse is reported by Err.
type Assignment struct {
	N        int
	Fixed    [][]fr.Element
	Advice   [][]fr.Element
	Instance [][]fr.Element
	copies   [][2]cell
	err      error
}

type cell struct {
	col Column
	row int
}

func newAssignment(cs *ConstraintSystem, n int, instance [][]fr.Element) (*Assignment, error) {
	if len(instance) != cs.NumInstance {
		return nil, fmt.Errorf("%w: %d instance columns, want %d", ErrConfig, len(instance), cs.NumInstance)
	}
	a := &Assignment{N: n}
	mk := func(k int) [][]fr.Element {
		m := make([][]fr.Element, k)
		for i := range m {
			m[i] = make([]fr.Element, n)
		}
		return m
	}
	a.Fixed, a.Advice, a.Instance = mk(cs.NumFixed), mk(cs.NumAdvice), mk(cs.NumInstance)
	for i, col := range instance {
		if len(col) > n-1 {
			return nil, fmt.Errorf("%w: instance column %d has %d values for %d usable rows", ErrConfig, i, len(col), n-1)
		}
		copy(a.Instance[i], col)
	}
	return a, nil
}

// Usable is the number of rows a circuit may assign.
func (a *Assignment) Usable() int { return a.N - 1 }

func (a *Assignment) check(c Column, row int, cols [][]fr.Element) bool {
	if a.err != nil {
		return false
	}
	if row < 0 || row >= a.N-1 || c.Index < 0 || c.Index >= len(cols) {
		a.err = fmt.Errorf("%w: cell %s row %d outside the table (%d usable rows)", ErrConfig, c, row, a.N-1)
		return false
	}
	return true
}

// Set assigns a fixed or advice cell.
func (a *Assignment) Set(c Column, row int, v fr.Element) {
	switch c.Kind {
	case Fixed:
		if a.check(c, row, a.Fixed) {
			a.Fixed[c.Index][row] = v
		}
	case Advice:
		if a.check(c, row, a.Advice) {
			a.Advice[c.Index][row] = v
		}
	default:
		if a.err == nil {
			a.err = fmt.Errorf("%w: instance cells come from the statement", ErrConfig)
		}
	}
}

// SetUint64 assigns a small value.
func (a *Assignment) SetUint64(c Column, row int, v uint64) {
	var e fr.Element
	e.SetUint64(v)
	a.Set(c, row, e)
}

// Get reads back an assigned cell (any kind).
func (a *Assignment) Get(c Column, row int) fr.Element {
	switch c.Kind {
	case Fixed:
		return a.Fixed[c.Index][row]
	case Advice:
		return a.Advice[c.Index][row]
	default:
		return a.Instance[c.Index][row]
	}
}

// Copy constrains two cells (of equality-enabled columns) to be equal.
func (a *Assignment) Copy(c1 Column, r1 int, c2 Column, r2 int) {
	if a.err != nil {
		return
	}
	if r1 < 0 || r1 >= a.N-1 || r2 < 0 || r2 >= a.N-1 {
		a.err = fmt.Errorf("%w: copy outside usable rows", ErrConfig)
		return
	}
	a.copies = append(a.copies, [2]cell{{c1, r1}, {c2, r2}})
}

// Err is the first misuse of the assignment.
func (a *Assignment) Err() error { return a.err }

// groupDegree is the degree of the helper identity of a group of inputs.
func groupDegree(l *Lookup, group []int) int {
	sum := 0
	for _, i := range group {
		sum += tupleDegree(l.Inputs[i].Tuple)
	}
	d := 1 + sum
	for _, i := range group {
		d = max(d, l.Inputs[i].weight().Degree()+sum-tupleDegree(l.Inputs[i].Tuple))
	}
	return d
}
