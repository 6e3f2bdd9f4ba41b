// Package fibair is a small AIR for testing the STARK pipeline apart from the
// VM: columns a, b (Fibonacci: a' = b, b' = a + b) and c (c' = a³, a degree-3
// constraint so the composition has two columns), s = a·b on every row (a
// row constraint), a·b = 2 on row 1 (a single-row constraint), and one
// auxiliary column p with p' = p·(γ + a), p[0] = 1 (a grand product over a
// challenge). It imports only air and field.
package fibair

import (
	"github.com/pouwfarm/pouwfarm/backends/stark/air"
	"github.com/pouwfarm/pouwfarm/backends/stark/field"
)

// AIR is the Fibonacci test AIR for n rows whose last b is Result.
type AIR struct {
	N      int
	Result field.Base
}

// Trace returns the honest trace of n rows and its AIR. Columns: a, b, c,
// s = a·b.
func Trace(n int) ([][]field.Base, *AIR) {
	a := make([]field.Base, n)
	b := make([]field.Base, n)
	c := make([]field.Base, n)
	s := make([]field.Base, n)
	a[0], b[0] = field.New(1), field.New(1)
	for i := 1; i < n; i++ {
		a[i] = b[i-1]
		b[i].Add(&a[i-1], &b[i-1])
		c[i].Square(&a[i-1])
		c[i].Mul(&c[i], &a[i-1])
	}
	for i := range s {
		s[i].Mul(&a[i], &b[i])
	}
	return [][]field.Base{a, b, c, s}, &AIR{N: n, Result: b[n-1]}
}

func (f *AIR) TraceLength() int   { return f.N }
func (f *AIR) MainWidth() int     { return 4 }
func (f *AIR) AuxWidth() int      { return 1 }
func (f *AIR) NumChallenges() int { return 1 }

func (f *AIR) Groups() []air.Group {
	return []air.Group{
		{Divisor: air.AllRowsExcept, Rows: []int{f.N - 1}, Degrees: []int{1, 1, 3}},
		{Divisor: air.AllRows, Degrees: []int{2}},
		{Divisor: air.OneRow, Rows: []int{1}, Degrees: []int{2}}, // a[1]·b[1] = 2
		{Divisor: air.AllRowsExcept, Rows: []int{f.N - 1}, Degrees: []int{2}, Aux: true},
	}
}

func (f *AIR) Eval(g int, cur, next []field.Base, out []field.Base) {
	switch g {
	case 0:
		out[0].Sub(&next[0], &cur[1])
		var s field.Base
		s.Add(&cur[0], &cur[1])
		out[1].Sub(&next[1], &s)
		var cube field.Base
		cube.Square(&cur[0])
		cube.Mul(&cube, &cur[0])
		out[2].Sub(&next[2], &cube)
	case 1:
		var p field.Base
		p.Mul(&cur[0], &cur[1])
		out[0].Sub(&cur[3], &p)
	case 2:
		var p field.Base
		p.Mul(&cur[0], &cur[1])
		two := field.New(2)
		out[0].Sub(&p, &two)
	}
}

func (f *AIR) EvalAux(g int, mc, mn []field.Base, ac, an, ch []field.Ext, out []field.Ext) {
	var t field.Ext
	t.A0.Add(&ch[0].A0, &mc[0])
	t.A1 = ch[0].A1
	t.Mul(&t, &ac[0])
	out[0].Sub(&an[0], &t)
}

func (f *AIR) EvalExt(g int, cur, next, ac, an, ch []field.Ext, out []field.Ext) {
	switch g {
	case 0:
		out[0].Sub(&next[0], &cur[1])
		var s field.Ext
		s.Add(&cur[0], &cur[1])
		out[1].Sub(&next[1], &s)
		var cube field.Ext
		cube.Square(&cur[0])
		cube.Mul(&cube, &cur[0])
		out[2].Sub(&next[2], &cube)
	case 1:
		var p field.Ext
		p.Mul(&cur[0], &cur[1])
		out[0].Sub(&cur[3], &p)
	case 2:
		var p field.Ext
		p.Mul(&cur[0], &cur[1])
		two := field.Lift(field.New(2))
		out[0].Sub(&p, &two)
	case 3:
		var t field.Ext
		t.Add(&ch[0], &cur[0])
		t.Mul(&t, &ac[0])
		out[0].Sub(&an[0], &t)
	}
}

func (f *AIR) Assertions() []air.Assertion {
	return []air.Assertion{
		{Column: 0, Row: 0, Value: field.New(1)},
		{Column: 1, Row: 0, Value: field.New(1)},
		{Column: 2, Row: 0, Value: field.New(0)},
		{Column: 1, Row: f.N - 1, Value: f.Result},
	}
}

func (f *AIR) AuxAssertions(ch []field.Ext) []air.AuxAssertion {
	return []air.AuxAssertion{{Column: 0, Row: 0, Value: field.Lift(field.New(1))}}
}

func (f *AIR) BuildAux(main [][]field.Base, ch []field.Ext) ([][]field.Ext, error) {
	p := make([]field.Ext, f.N)
	p[0].SetOne()
	for i := 1; i < f.N; i++ {
		var t field.Ext
		t.A0.Add(&ch[0].A0, &main[0][i-1])
		t.A1 = ch[0].A1
		p[i].Mul(&p[i-1], &t)
	}
	return [][]field.Ext{p}, nil
}
