package circuit

import (
	"fmt"
	"strings"

	"github.com/consensys/gnark-crypto/ecc/bn254/fr"
)

// ColumnKind says who fills a column: fixed columns are part of the
// circuit (committed once at keygen), advice columns are the prover's
// witness (committed per proof), instance columns are public inputs the
// verifier knows.
type ColumnKind uint8

const (
	Fixed ColumnKind = iota
	Advice
	Instance
)

func (k ColumnKind) String() string {
	switch k {
	case Fixed:
		return "fixed"
	case Advice:
		return "advice"
	default:
		return "instance"
	}
}

// Column names one column of the circuit's table.
type Column struct {
	Kind  ColumnKind
	Index int
}

func (c Column) String() string { return fmt.Sprintf("%s[%d]", c.Kind, c.Index) }

// Query is a column read at a rotation: rotation r reads row i+r (cyclic)
// when the constraint is checked at row i.
type Query struct {
	Col Column
	Rot int
}

type exprOp uint8

const (
	opConst exprOp = iota
	opQuery
	opAdd
	opMul
	opNeg
)

// Expr is a polynomial expression over queried cells; a gate constrains
// it to be zero on every row.
type Expr struct {
	op   exprOp
	c    fr.Element
	q    Query
	a, b *Expr
}

// Rot reads the column at a rotation; Cur and Next are rotations 0 and 1.
func (c Column) Rot(r int) *Expr { return &Expr{op: opQuery, q: Query{c, r}} }
func (c Column) Cur() *Expr      { return c.Rot(0) }
func (c Column) Next() *Expr     { return c.Rot(1) }

// Const is a constant expression.
func Const(v uint64) *Expr {
	e := &Expr{op: opConst}
	e.c.SetUint64(v)
	return e
}

// ConstFr is a constant expression from a field element.
func ConstFr(v fr.Element) *Expr { return &Expr{op: opConst, c: v} }

func (e *Expr) Add(o *Expr) *Expr { return &Expr{op: opAdd, a: e, b: o} }
func (e *Expr) Mul(o *Expr) *Expr { return &Expr{op: opMul, a: e, b: o} }
func (e *Expr) Neg() *Expr        { return &Expr{op: opNeg, a: e} }
func (e *Expr) Sub(o *Expr) *Expr { return e.Add(o.Neg()) }

// Sum adds expressions (zero when empty).
func Sum(es ...*Expr) *Expr {
	if len(es) == 0 {
		return Const(0)
	}
	acc := es[0]
	for _, e := range es[1:] {
		acc = acc.Add(e)
	}
	return acc
}

// Degree is the expression's degree in the queried cells.
func (e *Expr) Degree() int {
	switch e.op {
	case opConst:
		return 0
	case opQuery:
		return 1
	case opAdd:
		return max(e.a.Degree(), e.b.Degree())
	case opMul:
		return e.a.Degree() + e.b.Degree()
	default:
		return e.a.Degree()
	}
}

// Eval evaluates the expression with get supplying each queried cell.
func (e *Expr) Eval(get func(Query) fr.Element) fr.Element {
	var r fr.Element
	switch e.op {
	case opConst:
		r = e.c
	case opQuery:
		r = get(e.q)
	case opAdd:
		a, b := e.a.Eval(get), e.b.Eval(get)
		r.Add(&a, &b)
	case opMul:
		a := e.a.Eval(get)
		if a.IsZero() { // selectors are mostly zero: skip the other side
			return r
		}
		b := e.b.Eval(get)
		r.Mul(&a, &b)
	default:
		a := e.a.Eval(get)
		r.Neg(&a)
	}
	return r
}

func (e *Expr) queries(out map[Query]bool) {
	switch e.op {
	case opQuery:
		out[e.q] = true
	case opAdd, opMul:
		e.a.queries(out)
		e.b.queries(out)
	case opNeg:
		e.a.queries(out)
	}
}

// String renders the expression canonically; the verifying key's digest
// covers it, so two circuits with different constraints never share keys.
func (e *Expr) String() string {
	var sb strings.Builder
	e.write(&sb)
	return sb.String()
}

func (e *Expr) write(sb *strings.Builder) {
	switch e.op {
	case opConst:
		sb.WriteString(e.c.String())
	case opQuery:
		fmt.Fprintf(sb, "%s@%d", e.q.Col, e.q.Rot)
	case opAdd:
		sb.WriteString("(")
		e.a.write(sb)
		sb.WriteString("+")
		e.b.write(sb)
		sb.WriteString(")")
	case opMul:
		sb.WriteString("(")
		e.a.write(sb)
		sb.WriteString("*")
		e.b.write(sb)
		sb.WriteString(")")
	default:
		sb.WriteString("-")
		e.a.write(sb)
	}
}
