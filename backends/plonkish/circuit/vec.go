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
