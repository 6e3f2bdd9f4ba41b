package circuit

import "github.com/consensys/gnark-crypto/ecc/bn254/fr"

// Chunked evaluation of gate expressions for the quotient: each
// expression node is evaluated over a block of extended-domain rows at a
// time, so the tree is walked once per block instead of once per row.

const vecBlock = 128

type vecPool struct {
	free [][]fr.Element
}

func (p *vecPool) get(n int) []fr.Element {
	if k := len(p.free); k > 0 {
		b := p.free[k-1]
		p.free = p.free[:k-1]
		return b[:n]
	}
	return make([]fr.Element, n, vecBlock)
}

func (p *vecPool) put(b []fr.Element) { p.free = append(p.free, b) }

// evalVec writes the expression's values on a block into out; src fills a
// query's values.
func (e *Expr) evalVec(out []fr.Element, src func(Query, []fr.Element), pool *vecPool) {
	switch e.op {
	case opConst:
		for i := range out {
			out[i] = e.c
		}
	case opQuery:
		src(e.q, out)
	case opAdd:
		e.a.evalVec(out, src, pool)
		if e.b.op == opConst {
			for i := range out {
				out[i].Add(&out[i], &e.b.c)
			}
			return
		}
		t := pool.get(len(out))
		e.b.evalVec(t, src, pool)
		for i := range out {
			out[i].Add(&out[i], &t[i])
		}
		pool.put(t)
	case opMul:
		if e.b.op == opConst {
			e.a.evalVec(out, src, pool)
			for i := range out {
				out[i].Mul(&out[i], &e.b.c)
			}
			return
		}
		e.a.evalVec(out, src, pool)
		t := pool.get(len(out))
		e.b.evalVec(t, src, pool)
		for i := range out {
			out[i].Mul(&out[i], &t[i])
		}
		pool.put(t)
	default:
		e.a.evalVec(out, src, pool)
		for i := range out {
			out[i].Neg(&out[i])
		}
	}
}

// lookupVec evaluates the lookups' identities (lookupIdentities, same
// order) on a block of extended-domain rows.
type lookupVec struct {
	cs        *ConstraintSystem
	ch        *challenges
	e, shift  int
	l0, lLast []fr.Element
	m, phi, h [][]fr.Element
	hIndex    []int
	acc, hsum []fr.Element
	t, u, lhs []fr.Element
	rhs       []fr.Element
	dens, ws  [][]fr.Element
}

func (lv *lookupVec) buf(p *[]fr.Element, n int) []fr.Element {
	if cap(*p) < n {
		*p = make([]fr.Element, n)
	}
	return (*p)[:n]
}

func (lv *lookupVec) compress(out []fr.Element, tuple []*Expr, src func(Query, []fr.Element), pool *vecPool) {
	for r := range out {
		out[r].SetZero()
	}
	t := pool.get(len(out))
	for _, e := range tuple {
		e.evalVec(t, src, pool)
		for r := range out {
			out[r].Mul(&out[r], &lv.ch.theta).Add(&out[r], &t[r])
		}
	}
	pool.put(t)
}

// identities returns, per row of the block starting at lo, the Horner
// fold of every lookup identity (the caller continues it with the
// permutation's).
func (lv *lookupVec) identities(lo int, src func(Query, []fr.Element), pool *vecPool) []fr.Element {
	n := min(vecBlock, lv.e-lo)
	acc := lv.buf(&lv.acc, n)
	for r := range acc {
		acc[r].SetZero()
	}
	y := &lv.ch.y
	push := func(v []fr.Element) {
		for r := range acc {
			acc[r].Mul(&acc[r], y).Add(&acc[r], &v[r])
		}
	}
	at := func(col []fr.Element, r, rot int) *fr.Element {
		return &col[((lo+r+rot*lv.shift)%lv.e+lv.e)%lv.e]
	}
	hsum, t, u := lv.buf(&lv.hsum, n), lv.buf(&lv.t, n), lv.buf(&lv.u, n)
	lhs, rhs := lv.buf(&lv.lhs, n), lv.buf(&lv.rhs, n)
	for li, l := range lv.cs.Lookups {
		for r := range hsum {
			hsum[r].SetZero()
		}
		for gi, grp := range l.groups {
			for len(lv.dens) < len(grp) {
				lv.dens = append(lv.dens, make([]fr.Element, vecBlock))
				lv.ws = append(lv.ws, make([]fr.Element, vecBlock))
			}
			for k, i := range grp {
				in := &l.Inputs[i]
				d := lv.dens[k][:n]
				lv.compress(d, in.Tuple, src, pool)
				for r := range d {
					d[r].Add(&d[r], &lv.ch.lambda)
				}
				in.weight().evalVec(lv.ws[k][:n], src, pool)
			}
			h := lv.h[lv.hIndex[li]+gi]
			for r := 0; r < n; r++ {
				hv := h[lo+r]
				l := hv
				for k := range grp {
					l.Mul(&l, &lv.dens[k][r])
				}
				var sum, p fr.Element
				for k := range grp {
					p = lv.ws[k][r]
					for j := range grp {
						if j != k {
							p.Mul(&p, &lv.dens[j][r])
						}
					}
					sum.Add(&sum, &p)
				}
				lhs[r].Sub(&l, &sum)
				hsum[r].Add(&hsum[r], &hv)
			}
			push(lhs)
		}
		phi := lv.phi[li]
		for r := 0; r < n; r++ {
			t[r].Mul(&lv.l0[lo+r], &phi[lo+r])
		}
		push(t)
		for r := 0; r < n; r++ {
			t[r].Mul(&lv.lLast[lo+r], &phi[lo+r])
		}
		push(t)
		lv.compress(rhs, l.Table, src, pool)
		var one fr.Element
		one.SetOne()
		for r := 0; r < n; r++ {
			var notLast fr.Element
			notLast.Sub(&one, &lv.lLast[lo+r])
			rhs[r].Add(&rhs[r], &lv.ch.lambda)
			u[r].Sub(at(phi, r, 1), &phi[lo+r]).Sub(&u[r], &hsum[r]).Mul(&u[r], &rhs[r])
			u[r].Add(&u[r], &lv.m[li][lo+r]).Mul(&u[r], &notLast)
		}
		push(u)
	}
	return acc
}
