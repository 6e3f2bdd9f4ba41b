package prover

import (
	"context"
	"math/bits"

	"github.com/pouwfarm/pouwfarm/backends/stark/air"
	"github.com/pouwfarm/pouwfarm/backends/stark/field"
	"github.com/pouwfarm/pouwfarm/backends/stark/internal/deep"
	"github.com/pouwfarm/pouwfarm/backends/stark/internal/par"
	"github.com/pouwfarm/pouwfarm/backends/stark/transcript"
)

// composer evaluates the constraint composition polynomial
//
//	C(x) = Σ_groups [Σ_j α_j c_j(x)] / div_g(x) + Σ_k β_k (T_k(x) − v_k)/(x − g^(r_k))
//
// over the constraint-evaluation domain: the sub-coset of the LDE coset with
// the smallest power-of-two size ≥ k·n that determines C. Coefficients come
// from the transcript in the order: group constraints in order, main
// assertions, aux assertions.
type composer struct {
	a      air.AIR
	groups []air.Group
	ch     []field.Ext
	n      int
	coef   []field.Ext
	assert []air.Assertion
	auxAs  []air.AuxAssertion
	rows   []int // distinct single-row divisor rows (assertions and OneRow groups)
}

func newComposer(a air.AIR, ch []field.Ext, n int, tr *transcript.Transcript) *composer {
	c := &composer{a: a, groups: a.Groups(), ch: ch, n: n, assert: a.Assertions(), auxAs: a.AuxAssertions(ch)}
	c.coef = tr.DrawExts(air.NumConstraints(a) + len(c.assert) + len(c.auxAs))
	add := func(r int) {
		for _, x := range c.rows {
			if x == r {
				return
			}
		}
		c.rows = append(c.rows, r)
	}
	for _, g := range c.groups {
		if g.Divisor == air.OneRow {
			add(g.Rows[0])
		}
	}
	for _, as := range c.assert {
		add(as.Row)
	}
	for _, as := range c.auxAs {
		add(as.Row)
	}
	return c
}

func (c *composer) rowIndex(r int) int {
	for i, x := range c.rows {
		if x == r {
			return i
		}
	}
	return -1
}

// evaluate returns C over the coset off·⟨ω_m⟩ of size m = ceSize, as two
// base-field coordinate vectors.
func (c *composer) evaluate(ctx context.Context, d *field.Domains, mainSeg, auxSeg *segment, ceSize int) (c0, c1 []field.Base, err error) {
	N, n, blowup := d.LDESize, c.n, d.Blowup
	step := N / ceSize
	c0 = make([]field.Base, ceSize)
	c1 = make([]field.Base, ceSize)
	off := field.Generator()
	w := field.RootOfUnity(uint64(ceSize))
	g := field.RootOfUnity(uint64(n))
	one := field.New(1)
	// x^n − 1 over the coset takes ceSize/n values: off^n·ω_(m/n)^i − 1.
	period := ceSize / n
	invXn := make([]field.Base, period)
	offN := field.ExpBase(off, uint64(n))
	wp := field.RootOfUnity(uint64(period))
	for i := range invXn {
		t := field.ExpBase(wp, uint64(i))
		t.Mul(&t, &offN)
		t.Sub(&t, &one)
		invXn[i].Inverse(&t)
	}
	gRows := make([]field.Base, len(c.rows))
	for i, r := range c.rows {
		gRows[i] = field.ExpBase(g, uint64(r))
	}
	// Excluded rows of AllRowsExcept groups, as points g^r.
	excl := make([][]field.Base, len(c.groups))
	for gi, grp := range c.groups {
		if grp.Divisor == air.AllRowsExcept {
			for _, r := range grp.Rows {
				excl[gi] = append(excl[gi], field.ExpBase(g, uint64(r)))
			}
		}
	}
	wm, wa := c.a.MainWidth(), c.a.AuxWidth()
	maxOut := 0
	for _, grp := range c.groups {
		maxOut = max(maxOut, len(grp.Degrees))
	}
	nAssert := air.NumConstraints(c.a)
	err = par.For(ctx, ceSize, chunk, func(lo, hi int) {
		cur, next := make([]field.Base, wm), make([]field.Base, wm)
		auxCur, auxNext := make([]field.Ext, wa), make([]field.Ext, wa)
		bOut, eOut := make([]field.Base, maxOut), make([]field.Ext, maxOut)
		x0 := field.ExpBase(w, uint64(lo))
		x0.Mul(&x0, &off)
		// 1/(x − g^r) for each single-row divisor, batch-inverted per chunk.
		inv := make([][]field.Base, len(c.rows))
		for ri := range c.rows {
			v := make([]field.Base, hi-lo)
			x := x0
			for i := range v {
				v[i].Sub(&x, &gRows[ri])
				x.Mul(&x, &w)
			}
			inv[ri] = field.BatchInvert(v)
		}
		bsum := make([]field.Ext, len(c.rows))
		x := x0
		for i := lo; i < hi; i++ {
			li := i * step
			lj := (li + blowup) & (N - 1)
			for col := range wm {
				cur[col] = mainSeg.lde[col][li]
				next[col] = mainSeg.lde[col][lj]
			}
			for col := range wa {
				auxCur[col] = field.Ext{A0: auxSeg.lde[2*col][li], A1: auxSeg.lde[2*col+1][li]}
				auxNext[col] = field.Ext{A0: auxSeg.lde[2*col][lj], A1: auxSeg.lde[2*col+1][lj]}
			}
			clear(bsum)
			var acc field.Ext
			k := 0
			for gi, grp := range c.groups {
				m := len(grp.Degrees)
				var gs field.Ext
				if grp.Aux {
					c.a.EvalAux(gi, cur, next, auxCur, auxNext, c.ch, eOut[:m])
					for j := range m {
						var t field.Ext
						t.Mul(&c.coef[k+j], &eOut[j])
						gs.Add(&gs, &t)
					}
				} else {
					c.a.Eval(gi, cur, next, bOut[:m])
					for j := range m {
						field.AddMulBase(&gs, &c.coef[k+j], &bOut[j])
					}
				}
				k += m
				switch grp.Divisor {
				case air.AllRows:
					field.MulBase(&gs, &gs, &invXn[i%period])
					acc.Add(&acc, &gs)
				case air.AllRowsExcept:
					f := invXn[i%period]
					for _, e := range excl[gi] {
						var t field.Base
						t.Sub(&x, &e)
						f.Mul(&f, &t)
					}
					field.MulBase(&gs, &gs, &f)
					acc.Add(&acc, &gs)
				case air.OneRow:
					ri := c.rowIndex(grp.Rows[0])
					bsum[ri].Add(&bsum[ri], &gs)
				}
			}
			for ai, as := range c.assert {
				var diff field.Base
				diff.Sub(&cur[as.Column], &as.Value)
				field.AddMulBase(&bsum[c.rowIndex(as.Row)], &c.coef[nAssert+ai], &diff)
			}
			for ai, as := range c.auxAs {
				var diff, t field.Ext
				diff.Sub(&auxCur[as.Column], &as.Value)
				t.Mul(&c.coef[nAssert+len(c.assert)+ai], &diff)
				ri := c.rowIndex(as.Row)
				bsum[ri].Add(&bsum[ri], &t)
			}
			for ri := range c.rows {
				var t field.Ext
				field.MulBase(&t, &bsum[ri], &inv[ri][i-lo])
				acc.Add(&acc, &t)
			}
			c0[i], c1[i] = acc.A0, acc.A1
			x.Mul(&x, &w)
		}
	})
	return c0, c1, err
}

// ceSize is the constraint-evaluation domain size for composition width k.
func ceSize(n, k int) int { return n << bits.Len(uint(k-1)) }

// deepPoly computes the DEEP composition polynomial's coefficients from the
// committed columns' coefficients: Q1 = Σ γ·T (+ δ·H), Q2 = Σ γ'·T, then
// D = (Q1 − Q1(z))/(x − z) + (Q2 − Q2(zg))/(x − zg) by synthetic division,
// and returns its evaluations over the LDE coset. Working on coefficients
// costs O(columns·n) instead of O(columns·blowup·n) per-point sums.
func deepPoly(ctx context.Context, d *field.Domains, tr *transcript.Transcript, z, zg field.Ext,
	segs []*segment, oodZ, oodZG [][]field.Ext) ([]field.Ext, error) {
	var ds []deep.Segment
	var live []*segment
	for i, s := range segs {
		if s == nil {
			continue
		}
		ds = append(ds, deep.Segment{Ext: i > 0, OODZ: oodZ[i], OODZG: oodZG[i]})
		live = append(live, s)
	}
	co := deep.Draw(tr, ds)
	n := d.N
	q1 := make([]field.Ext, n)
	q2 := make([]field.Ext, n)
	err := par.For(ctx, n, chunk, func(lo, hi int) {
		for s, seg := range live {
			for c, col := range seg.coeffs {
				g1, g2 := &co.Z[s][c], &co.ZG[s][c]
				hasG2 := !g2.IsZero()
				for i := lo; i < hi; i++ {
					field.AddMulBase(&q1[i], g1, &col[i])
					if hasG2 {
						field.AddMulBase(&q2[i], g2, &col[i])
					}
				}
			}
		}
	})
	if err != nil {
		return nil, err
	}
	// Synthetic division by (x − z) and (x − zg); the remainders are
	// Q1(z) − ConstZ = 0 and Q2(zg) − ConstZG = 0 by construction.
	dc0 := make([]field.Base, n)
	dc1 := make([]field.Base, n)
	var r1, r2 field.Ext
	for i := n - 1; i >= 1; i-- {
		var t field.Ext
		t.Mul(&r1, &z)
		r1.Add(&q1[i], &t)
		t.Mul(&r2, &zg)
		r2.Add(&q2[i], &t)
		var s field.Ext
		s.Add(&r1, &r2)
		dc0[i-1], dc1[i-1] = s.A0, s.A1
	}
	out0 := make([]field.Base, d.LDESize)
	out1 := make([]field.Base, d.LDESize)
	if err := par.Each(ctx, 2, func(i int) {
		if i == 0 {
			d.Extend(dc0, out0)
		} else {
			d.Extend(dc1, out1)
		}
	}); err != nil {
		return nil, err
	}
	out := make([]field.Ext, d.LDESize)
	for i := range out {
		out[i] = field.Ext{A0: out0[i], A1: out1[i]}
	}
	return out, nil
}
