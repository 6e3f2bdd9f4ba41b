package prover

import (
	"context"

	"github.com/pouwfarm/pouwfarm/backends/stark/air"
	"github.com/pouwfarm/pouwfarm/backends/stark/field"
	"github.com/pouwfarm/pouwfarm/backends/stark/internal/deep"
	"github.com/pouwfarm/pouwfarm/backends/stark/internal/par"
	"github.com/pouwfarm/pouwfarm/backends/stark/transcript"
)

// composer evaluates the constraint composition polynomial
//
//	C(x) = [Σ_j α_j c_j(x)]·(x − g^(n−1))/(x^n − 1) + Σ_k β_k (T_k(x) − v_k)/(x − g^(r_k))
//
// over the LDE domain; the coefficients come from the transcript in the
// order main transitions, aux transitions, main assertions, aux assertions.
type composer struct {
	a      air.AIR
	ch     []field.Ext
	n      int
	coef   []field.Ext
	assert []air.Assertion
	auxAs  []air.AuxAssertion
	rows   []int // distinct assertion rows
}

func newComposer(a air.AIR, ch []field.Ext, n int, tr *transcript.Transcript) *composer {
	c := &composer{a: a, ch: ch, n: n, assert: a.Assertions(), auxAs: a.AuxAssertions(ch)}
	c.coef = tr.DrawExts(len(a.MainDegrees()) + len(a.AuxDegrees()) + len(c.assert) + len(c.auxAs))
	seen := map[int]bool{}
	for _, as := range c.assert {
		if !seen[as.Row] {
			seen[as.Row] = true
			c.rows = append(c.rows, as.Row)
		}
	}
	for _, as := range c.auxAs {
		if !seen[as.Row] {
			seen[as.Row] = true
			c.rows = append(c.rows, as.Row)
		}
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

func (c *composer) evaluate(ctx context.Context, d *field.Domains, mainSeg, auxSeg *segment) (c0, c1 []field.Base, err error) {
	N, n, blowup := d.LDESize, c.n, d.Blowup
	c0 = make([]field.Base, N)
	c1 = make([]field.Base, N)
	off := field.Generator()
	w := field.RootOfUnity(uint64(N))
	g := field.RootOfUnity(uint64(n))
	gLast := field.ExpBase(g, uint64(n-1))
	// x^n − 1 over the coset takes only `blowup` values: off^n·ω_b^i − 1.
	invXn := make([]field.Base, blowup)
	offN := field.ExpBase(off, uint64(n))
	wb := field.RootOfUnity(uint64(blowup))
	one := field.New(1)
	for i := range invXn {
		t := field.ExpBase(wb, uint64(i))
		t.Mul(&t, &offN)
		t.Sub(&t, &one)
		invXn[i].Inverse(&t)
	}
	gRows := make([]field.Base, len(c.rows))
	for i, r := range c.rows {
		gRows[i] = field.ExpBase(g, uint64(r))
	}
	nm, na := len(c.a.MainDegrees()), len(c.a.AuxDegrees())
	wm := c.a.MainWidth()
	wa := c.a.AuxWidth()
	err = par.For(ctx, N, chunk, func(lo, hi int) {
		cur, next := make([]field.Base, wm), make([]field.Base, wm)
		auxCur, auxNext := make([]field.Ext, wa), make([]field.Ext, wa)
		mOut, aOut := make([]field.Base, nm), make([]field.Ext, na)
		// 1/(x − g^r) for each assertion row, batch-inverted per chunk.
		inv := make([][]field.Base, len(c.rows))
		x0 := field.ExpBase(w, uint64(lo))
		x0.Mul(&x0, &off)
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
			j := (i + blowup) & (N - 1)
			for col := range wm {
				cur[col] = mainSeg.lde[col][i]
				next[col] = mainSeg.lde[col][j]
			}
			for col := range wa {
				auxCur[col] = field.Ext{A0: auxSeg.lde[2*col][i], A1: auxSeg.lde[2*col+1][i]}
				auxNext[col] = field.Ext{A0: auxSeg.lde[2*col][j], A1: auxSeg.lde[2*col+1][j]}
			}
			c.a.EvalMain(cur, next, mOut)
			var acc field.Ext
			for k := range mOut {
				field.AddMulBase(&acc, &c.coef[k], &mOut[k])
			}
			if na > 0 {
				c.a.EvalAux(cur, next, auxCur, auxNext, c.ch, aOut)
				for k := range aOut {
					var t field.Ext
					t.Mul(&c.coef[nm+k], &aOut[k])
					acc.Add(&acc, &t)
				}
			}
			var zt field.Base
			zt.Sub(&x, &gLast)
			zt.Mul(&zt, &invXn[i&(blowup-1)])
			field.MulBase(&acc, &acc, &zt)

			clear(bsum)
			for k, as := range c.assert {
				var diff field.Base
				diff.Sub(&cur[as.Column], &as.Value)
				field.AddMulBase(&bsum[c.rowIndex(as.Row)], &c.coef[nm+na+k], &diff)
			}
			for k, as := range c.auxAs {
				var diff, t field.Ext
				diff.Sub(&auxCur[as.Column], &as.Value)
				t.Mul(&c.coef[nm+na+len(c.assert)+k], &diff)
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

// deepEvaluations evaluates the DEEP composition polynomial over the LDE
// domain; segs may contain a nil (no auxiliary segment).
func deepEvaluations(ctx context.Context, d *field.Domains, tr *transcript.Transcript, z, zg field.Ext,
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
	coeffs := deep.Draw(tr, ds)
	N := d.LDESize
	out := make([]field.Ext, N)
	off := field.Generator()
	w := field.RootOfUnity(uint64(N))
	err := par.For(ctx, N, chunk, func(lo, hi int) {
		x := field.ExpBase(w, uint64(lo))
		x.Mul(&x, &off)
		den := make([]field.Ext, 2*(hi-lo))
		for i := range hi - lo {
			lx := field.Lift(x)
			den[2*i].Sub(&lx, &z)
			den[2*i+1].Sub(&lx, &zg)
			x.Mul(&x, &w)
		}
		inv := field.BatchInvertExt(den)
		rows := make([][]field.Base, len(live))
		for s := range live {
			rows[s] = make([]field.Base, len(live[s].lde))
		}
		for i := lo; i < hi; i++ {
			for s, seg := range live {
				for c := range seg.lde {
					rows[s][c] = seg.lde[c][i]
				}
			}
			a, b := coeffs.Numerators(rows)
			a.Mul(&a, &inv[2*(i-lo)])
			b.Mul(&b, &inv[2*(i-lo)+1])
			out[i].Add(&a, &b)
		}
	})
	return out, err
}
