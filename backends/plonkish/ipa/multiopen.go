package ipa

import (
	"fmt"

	"github.com/consensys/gnark-crypto/ecc/bn254"
	"github.com/consensys/gnark-crypto/ecc/bn254/fr"
)

// Query is one claim "the polynomial committed as Commitment evaluates to
// Eval at Point". Poly (coefficients) is set on the prover's side only.
type Query struct {
	Commitment bn254.G1Affine
	Point      fr.Element
	Eval       fr.Element
	Poly       []fr.Element
}

// MultiProof opens many queries at once (Halo2's multiopen shape): F
// commits to the combined quotient, QEvals are the per-point combined
// polynomials evaluated at the fresh point x3, and IPA opens the final
// combination at x3.
type MultiProof struct {
	F      bn254.G1Affine
	QEvals []fr.Element
	IPA    Proof
}

// group collects the indices of the queries at each distinct point, in
// order of first appearance (both sides compute the same grouping).
func group(queries []Query) (points []fr.Element, members [][]int) {
	for i := range queries {
		found := false
		for j := range points {
			if points[j].Equal(&queries[i].Point) {
				members[j] = append(members[j], i)
				found = true
				break
			}
		}
		if !found {
			points = append(points, queries[i].Point)
			members = append(members, []int{i})
		}
	}
	return points, members
}

// NumPoints is the number of distinct points among the queries, i.e. the
// length of MultiProof.QEvals.
func NumPoints(queries []Query) int {
	p, _ := group(queries)
	return len(p)
}

// MultiOpen proves every query. The caller has already absorbed the
// commitments and claimed evaluations into the transcript.
//
// With x1: q_j = sum_i x1^i p_i over the queries at point z_j, v_j alike.
// With x2: f = sum_j x2^j (q_j - v_j)/(X - z_j), committed as F.
// With x3: the prover sends q_j(x3). With x4 the final polynomial
// f + sum_j x4^(j+1) q_j is opened at x3 by one IPA.
func (p *Params) MultiOpen(tr *Transcript, queries []Query) (MultiProof, error) {
	x1 := tr.Challenge("multiopen.x1")
	x2 := tr.Challenge("multiopen.x2")
	points, members := group(queries)
	n := p.N
	qs := make([][]fr.Element, len(points))
	f := make([]fr.Element, n)
	var x2j fr.Element
	x2j.SetOne()
	for j := range points {
		q := make([]fr.Element, n)
		var pow, v, t fr.Element
		pow.SetOne()
		for _, i := range members[j] {
			if len(queries[i].Poly) > n {
				return MultiProof{}, fmt.Errorf("%w: query %d has %d coefficients", ErrSize, i, len(queries[i].Poly))
			}
			poly := queries[i].Poly
			for c := range poly {
				t.Mul(&poly[c], &pow)
				q[c].Add(&q[c], &t)
			}
			t.Mul(&queries[i].Eval, &pow)
			v.Add(&v, &t)
			pow.Mul(&pow, &x1)
		}
		qs[j] = q
		// (q - v)/(X - z) by synthetic division; the remainder must be 0
		num := make([]fr.Element, n)
		copy(num, q)
		num[0].Sub(&num[0], &v)
		quo, rem := divideLinear(num, &points[j])
		if !rem.IsZero() {
			return MultiProof{}, fmt.Errorf("ipa: multiopen: claimed evaluation %d is wrong", j)
		}
		for c := range quo {
			t.Mul(&quo[c], &x2j)
			f[c].Add(&f[c], &t)
		}
		x2j.Mul(&x2j, &x2)
	}
	fc, err := p.Commit(f)
	if err != nil {
		return MultiProof{}, err
	}
	tr.AppendPoint("multiopen.F", &fc)
	x3 := tr.Challenge("multiopen.x3")
	proof := MultiProof{F: fc, QEvals: make([]fr.Element, len(points))}
	for j := range qs {
		proof.QEvals[j] = Eval(qs[j], &x3)
		tr.AppendScalar("multiopen.q", &proof.QEvals[j])
	}
	x4 := tr.Challenge("multiopen.x4")
	final := f
	var pow, t fr.Element
	pow.Set(&x4)
	for j := range qs {
		for c := range qs[j] {
			t.Mul(&qs[j][c], &pow)
			final[c].Add(&final[c], &t)
		}
		pow.Mul(&pow, &x4)
	}
	finalC, err := combinedCommitment(queries, members, &proof.F, &x1, &x4)
	if err != nil {
		return MultiProof{}, err
	}
	v := Eval(final, &x3)
	proof.IPA, err = p.Open(tr, finalC, final, x3, v)
	return proof, err
}

// divideLinear divides a by (X - z), returning the quotient and remainder.
func divideLinear(a []fr.Element, z *fr.Element) ([]fr.Element, fr.Element) {
	n := len(a)
	q := make([]fr.Element, n)
	var carry fr.Element
	for i := n - 1; i >= 1; i-- {
		carry.Mul(&carry, z).Add(&carry, &a[i])
		q[i-1] = carry
	}
	var rem fr.Element
	rem.Mul(&carry, z).Add(&rem, &a[0])
	return q, rem
}

// MultiVerify checks a MultiProof against the queries (Poly unused).
func (p *Params) MultiVerify(tr *Transcript, queries []Query, proof *MultiProof) error {
	x1 := tr.Challenge("multiopen.x1")
	x2 := tr.Challenge("multiopen.x2")
	points, members := group(queries)
	if len(proof.QEvals) != len(points) {
		return fmt.Errorf("%w: %d point evaluations, want %d", ErrVerify, len(proof.QEvals), len(points))
	}
	tr.AppendPoint("multiopen.F", &proof.F)
	x3 := tr.Challenge("multiopen.x3")
	for j := range proof.QEvals {
		tr.AppendScalar("multiopen.q", &proof.QEvals[j])
	}
	x4 := tr.Challenge("multiopen.x4")

	// final value f(x3) + sum_j x4^(j+1) q_j(x3), f(x3) recomputed from
	// the claims; final commitment F + sum_j x4^(j+1) sum_i x1^i C_i
	var fx3, x2j, x4j, t, den fr.Element
	x2j.SetOne()
	x4j.Set(&x4)
	dens := make([]fr.Element, len(points))
	for j := range points {
		dens[j].Sub(&x3, &points[j])
	}
	dens = fr.BatchInvert(dens) // x3 equal to a query point has chance ~2^-254; its inverse 0 then fails the check
	for j := range points {
		var pow, v fr.Element
		pow.SetOne()
		for _, i := range members[j] {
			t.Mul(&queries[i].Eval, &pow)
			v.Add(&v, &t)
			pow.Mul(&pow, &x1)
		}
		den.Set(&dens[j])
		t.Sub(&proof.QEvals[j], &v).Mul(&t, &den).Mul(&t, &x2j)
		fx3.Add(&fx3, &t)
		x2j.Mul(&x2j, &x2)
		x4j.Mul(&x4j, &x4)
	}
	final := fx3
	x4j.Set(&x4)
	for j := range proof.QEvals {
		t.Mul(&proof.QEvals[j], &x4j)
		final.Add(&final, &t)
		x4j.Mul(&x4j, &x4)
	}
	finalC, err := combinedCommitment(queries, members, &proof.F, &x1, &x4)
	if err != nil {
		return err
	}
	return p.Verify(tr, finalC, x3, final, &proof.IPA)
}

// combinedCommitment is F + sum_j x4^(j+1) sum_i x1^i C_i (i over the
// queries at point j): the commitment to the final polynomial, computed
// from the query commitments (both sides) rather than by a size-N MSM.
func combinedCommitment(queries []Query, members [][]int, f *bn254.G1Affine, x1, x4 *fr.Element) (bn254.G1Affine, error) {
	points := []bn254.G1Affine{*f}
	scalars := []fr.Element{{}}
	scalars[0].SetOne()
	var x4j fr.Element
	x4j.Set(x4)
	for j := range members {
		var pow fr.Element
		pow.SetOne()
		for _, i := range members[j] {
			var s fr.Element
			s.Mul(&pow, &x4j)
			points = append(points, queries[i].Commitment)
			scalars = append(scalars, s)
			pow.Mul(&pow, x1)
		}
		x4j.Mul(&x4j, x4)
	}
	return MSM(points, scalars)
}
