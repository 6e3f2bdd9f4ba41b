package circuit

import "github.com/consensys/gnark-crypto/ecc/bn254/fr"

// challenges are the verifier's random values, in transcript order:
// theta (tuple compression) after the advice commitments; lambda (lookup),
// beta and gamma (permutation) after the multiplicities; y (constraint
// combination) after the running sums; x (evaluation point) after the
// quotient.
type challenges struct {
	theta, lambda, beta, gamma, y fr.Element
}

// env supplies, at one point X (a row of the extended domain for the
// prover, the evaluation point x for the verifier), every value the
// identities read.
type env struct {
	cell  func(Query) fr.Element
	sigma func(i int) fr.Element
	id    func(i int) fr.Element // delta^i * X
	z     func(j, rot int) fr.Element
	m     func(l int) fr.Element
	h     func(l, g int) fr.Element
	phi   func(l, rot int) fr.Element
	l0    fr.Element
	lLast fr.Element
}

func compress(tuple []*Expr, get func(Query) fr.Element, theta *fr.Element) fr.Element {
	var acc fr.Element
	for _, e := range tuple {
		v := e.Eval(get)
		acc.Mul(&acc, theta).Add(&acc, &v)
	}
	return acc
}

// numerator folds every identity the argument checks, in a fixed order,
// with powers of y (Horner). It vanishes on H iff the witness satisfies
// the circuit; the quotient is numerator / (X^n - 1).
func (cs *ConstraintSystem) numerator(e *env, ch *challenges) fr.Element {
	var acc fr.Element
	for _, g := range cs.Gates {
		for _, p := range g.Polys {
			v := p.Eval(e.cell)
			acc.Mul(&acc, &ch.y).Add(&acc, &v)
		}
	}
	args := cs.argumentsNumerator(e, ch)
	yA := cs.yPowArgs(ch)
	acc.Mul(&acc, &yA).Add(&acc, &args)
	return acc
}

// numArgIdentities counts the lookup and permutation identities.
func (cs *ConstraintSystem) numArgIdentities() int {
	n := 0
	for _, l := range cs.Lookups {
		n += len(l.groups) + 3
	}
	if len(cs.Perm) > 0 {
		n += 2*cs.numPermZ() + 1
	}
	return n
}

// yPowArgs is y^(number of argument identities): the gates' Horner sum
// is shifted by it before the arguments' identities are folded in.
func (cs *ConstraintSystem) yPowArgs(ch *challenges) fr.Element {
	var r fr.Element
	r.SetOne()
	for i := 0; i < cs.numArgIdentities(); i++ {
		r.Mul(&r, &ch.y)
	}
	return r
}

// argumentsNumerator folds the lookup and permutation identities.
func (cs *ConstraintSystem) argumentsNumerator(e *env, ch *challenges) fr.Element {
	var acc fr.Element
	cs.lookupIdentities(e, ch, &acc)
	cs.permIdentities(e, ch, &acc)
	return acc
}

// lookupIdentities folds the lookups' identities into acc (Horner in y).
func (cs *ConstraintSystem) lookupIdentities(e *env, ch *challenges, acc *fr.Element) {
	push := func(v *fr.Element) {
		acc.Mul(acc, &ch.y).Add(acc, v)
	}
	var one, notLast, t, u fr.Element
	one.SetOne()
	notLast.Sub(&one, &e.lLast)
	for li, l := range cs.Lookups {
		var hsum fr.Element
		for gi, grp := range l.groups {
			// h * prod(lambda + f_i) - sum_i w_i prod_{j!=i}(lambda + f_j)
			// groups hold at most D-1 inputs: stack arrays, no allocation per row
			var densA, wsA [16]fr.Element
			dens, ws := densA[:len(grp)], wsA[:len(grp)]
			for k, i := range grp {
				in := &l.Inputs[i]
				f := compress(in.Tuple, e.cell, &ch.theta)
				dens[k].Add(&ch.lambda, &f)
				ws[k] = in.weight().Eval(e.cell)
			}
			h := e.h(li, gi)
			lhs := h
			for k := range dens {
				lhs.Mul(&lhs, &dens[k])
			}
			var rhs fr.Element
			for k := range grp {
				t = ws[k]
				for j := range dens {
					if j != k {
						t.Mul(&t, &dens[j])
					}
				}
				rhs.Add(&rhs, &t)
			}
			lhs.Sub(&lhs, &rhs)
			push(&lhs)
			hsum.Add(&hsum, &h)
		}
		phi, phiNext := e.phi(li, 0), e.phi(li, 1)
		t.Mul(&e.l0, &phi)
		push(&t)
		t.Mul(&e.lLast, &phi)
		push(&t)
		// (1 - l_last) * ((lambda + t)(phi(wX) - phi(X) - sum h) + m)
		tv := compress(l.Table, e.cell, &ch.theta)
		tv.Add(&tv, &ch.lambda)
		u.Sub(&phiNext, &phi).Sub(&u, &hsum).Mul(&u, &tv)
		m := e.m(li)
		u.Add(&u, &m).Mul(&u, &notLast)
		push(&u)
	}
}

// permIdentities folds the permutation argument's identities into acc.
func (cs *ConstraintSystem) permIdentities(e *env, ch *challenges, acc *fr.Element) {
	push := func(v *fr.Element) {
		acc.Mul(acc, &ch.y).Add(acc, v)
	}
	var one, notLast, t fr.Element
	one.SetOne()
	notLast.Sub(&one, &e.lLast)
	if len(cs.Perm) > 0 {
		nz := cs.numPermZ()
		z0 := e.z(0, 0)
		t.Sub(&one, &z0).Mul(&t, &e.l0)
		push(&t)
		for j := 1; j < nz; j++ {
			zj, zPrev := e.z(j, 0), e.z(j-1, -1)
			t.Sub(&zj, &zPrev).Mul(&t, &e.l0)
			push(&t)
		}
		zl := e.z(nz-1, 0)
		t.Sub(&zl, &one).Mul(&t, &e.lLast)
		push(&t)
		chunk := cs.permChunk()
		for j := 0; j < nz; j++ {
			left, right := e.z(j, 1), e.z(j, 0)
			for c := j * chunk; c < min((j+1)*chunk, len(cs.Perm)); c++ {
				v := e.cell(Query{cs.Perm[c], 0})
				s := e.sigma(c)
				t.Mul(&ch.beta, &s).Add(&t, &v).Add(&t, &ch.gamma)
				left.Mul(&left, &t)
				id := e.id(c)
				t.Mul(&ch.beta, &id).Add(&t, &v).Add(&t, &ch.gamma)
				right.Mul(&right, &t)
			}
			left.Sub(&left, &right).Mul(&left, &notLast)
			push(&left)
		}
	}
}
