package ipa

import (
	"errors"
	"fmt"
	"math/big"
	"runtime"
	"sync"

	"github.com/consensys/gnark-crypto/ecc"
	"github.com/consensys/gnark-crypto/ecc/bn254"
	"github.com/consensys/gnark-crypto/ecc/bn254/fr"
)

// ErrVerify is returned (wrapped) by every failed verification.
var ErrVerify = errors.New("ipa: verification failed")

// Proof is an opening proof: one (L, R) pair per halving round and the
// final folded coefficient.
type Proof struct {
	L, R []bn254.G1Affine
	A    fr.Element
}

func msmConfig() ecc.MultiExpConfig { return ecc.MultiExpConfig{NbTasks: runtime.GOMAXPROCS(0)} }

// MSM computes sum scalars[i]*points[i].
func MSM(points []bn254.G1Affine, scalars []fr.Element) (bn254.G1Affine, error) {
	var r bn254.G1Affine
	if len(points) == 0 {
		return r, nil
	}
	if _, err := r.MultiExp(points, scalars, msmConfig()); err != nil {
		return r, fmt.Errorf("ipa: msm: %w", err)
	}
	return r, nil
}

// Commit commits to a coefficient vector of length at most N.
func (p *Params) Commit(coeffs []fr.Element) (bn254.G1Affine, error) {
	if len(coeffs) > p.N {
		return bn254.G1Affine{}, fmt.Errorf("%w: %d coefficients for a key of %d", ErrSize, len(coeffs), p.N)
	}
	return commitMSM(p.G[:len(coeffs)], coeffs)
}

// Eval evaluates a polynomial in coefficient form at x (Horner).
func Eval(coeffs []fr.Element, x *fr.Element) fr.Element {
	var r fr.Element
	for i := len(coeffs) - 1; i >= 0; i-- {
		r.Mul(&r, x).Add(&r, &coeffs[i])
	}
	return r
}

func parallelFor(n int, f func(lo, hi int)) {
	workers := runtime.GOMAXPROCS(0)
	if n < 256 || workers == 1 {
		f(0, n)
		return
	}
	chunk := (n + workers - 1) / workers
	var wg sync.WaitGroup
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func() { defer wg.Done(); f(lo, hi) }()
	}
	wg.Wait()
}

func innerProduct(a, b []fr.Element) fr.Element {
	var r, t fr.Element
	for i := range a {
		t.Mul(&a[i], &b[i])
		r.Add(&r, &t)
	}
	return r
}

// Open proves that the polynomial with the given coefficients, committed
// as c, evaluates to v at x. It absorbs c, x and v into the transcript
// before anything else, so the proof is bound to the claim.
func (p *Params) Open(tr *Transcript, c bn254.G1Affine, coeffs []fr.Element, x, v fr.Element) (Proof, error) {
	if len(coeffs) > p.N {
		return Proof{}, fmt.Errorf("%w: %d coefficients for a key of %d", ErrSize, len(coeffs), p.N)
	}
	tr.AppendPoint("ipa.commitment", &c)
	tr.AppendScalar("ipa.point", &x)
	tr.AppendScalar("ipa.value", &v)
	xi := tr.Challenge("ipa.xi")
	var uPrime bn254.G1Affine
	uPrime.ScalarMultiplication(&p.U, xi.BigInt(new(big.Int)))

	n := p.N
	a := make([]fr.Element, n)
	copy(a, coeffs)
	b := make([]fr.Element, n)
	b[0].SetOne()
	for i := 1; i < n; i++ {
		b[i].Mul(&b[i-1], &x)
	}
	g := make([]bn254.G1Affine, n)
	copy(g, p.G)

	proof := Proof{L: make([]bn254.G1Affine, p.K), R: make([]bn254.G1Affine, p.K)}
	jac := make([]bn254.G1Jac, n/2)
	for round := 0; round < p.K; round++ {
		half := len(a) / 2
		aLo, aHi := a[:half], a[half:]
		bLo, bHi := b[:half], b[half:]
		gLo, gHi := g[:half], g[half:]

		l, err := foldSide(gHi, aLo, innerProduct(aLo, bHi), &uPrime)
		if err != nil {
			return Proof{}, err
		}
		r, err := foldSide(gLo, aHi, innerProduct(aHi, bLo), &uPrime)
		if err != nil {
			return Proof{}, err
		}
		proof.L[round], proof.R[round] = l, r
		tr.AppendPoint("ipa.L", &l)
		tr.AppendPoint("ipa.R", &r)
		u := tr.ChallengeShort("ipa.u")
		var uInv fr.Element
		uInv.Inverse(&u)
		uBig := u.BigInt(new(big.Int))

		// a' = a_lo + u^-1 a_hi, b' = b_lo + u b_hi, G' = G_lo + u G_hi
		parallelFor(half, func(lo, hi int) {
			var t fr.Element
			for i := lo; i < hi; i++ {
				t.Mul(&aHi[i], &uInv)
				aLo[i].Add(&aLo[i], &t)
				t.Mul(&bHi[i], &u)
				bLo[i].Add(&bLo[i], &t)
				jac[i].FromAffine(&gHi[i])
				jac[i].ScalarMultiplication(&jac[i], uBig)
				jac[i].AddMixed(&gLo[i])
			}
		})
		g = bn254.BatchJacobianToAffineG1(jac[:half])
		a, b = aLo, bLo
	}
	proof.A = a[0]
	return proof, nil
}

func foldSide(points []bn254.G1Affine, scalars []fr.Element, ip fr.Element, uPrime *bn254.G1Affine) (bn254.G1Affine, error) {
	var acc bn254.G1Jac
	if _, err := acc.MultiExp(points, scalars, msmConfig()); err != nil {
		return bn254.G1Affine{}, fmt.Errorf("ipa: msm: %w", err)
	}
	var t bn254.G1Jac
	t.FromAffine(uPrime)
	t.ScalarMultiplication(&t, ip.BigInt(new(big.Int)))
	acc.AddAssign(&t)
	var out bn254.G1Affine
	out.FromJacobian(&acc)
	return out, nil
}

// Verify checks an opening proof of the claim "the polynomial committed as
// c evaluates to v at x". The verifier's work is one MSM of size N.
func (p *Params) Verify(tr *Transcript, c bn254.G1Affine, x, v fr.Element, proof *Proof) error {
	if len(proof.L) != p.K || len(proof.R) != p.K {
		return fmt.Errorf("%w: %d rounds, want %d", ErrVerify, len(proof.L), p.K)
	}
	tr.AppendPoint("ipa.commitment", &c)
	tr.AppendScalar("ipa.point", &x)
	tr.AppendScalar("ipa.value", &v)
	xi := tr.Challenge("ipa.xi")
	us := make([]fr.Element, p.K)
	for j := range us {
		tr.AppendPoint("ipa.L", &proof.L[j])
		tr.AppendPoint("ipa.R", &proof.R[j])
		us[j] = tr.ChallengeShort("ipa.u")
	}
	uInvs := fr.BatchInvert(us)

	// s_i = prod of u_j over the rounds j in which index i was on the high side;
	// round 0 splits on the top bit.
	s := make([]fr.Element, 1, p.N)
	s[0].SetOne()
	for j := p.K - 1; j >= 0; j-- {
		m := len(s)
		s = s[:2*m]
		for i := 0; i < m; i++ {
			s[m+i].Mul(&s[i], &us[j])
		}
	}
	// b_final = prod_j (1 + u_j x^(2^(K-1-j)))
	var bFinal, xp, t, one fr.Element
	one.SetOne()
	bFinal.SetOne()
	xp.Set(&x)
	for j := p.K - 1; j >= 0; j-- {
		t.Mul(&us[j], &xp).Add(&t, &one)
		bFinal.Mul(&bFinal, &t)
		xp.Square(&xp)
	}

	// C + (v - a*b)*xi*U + sum(u_j L_j + u_j^-1 R_j) - a * sum(s_i G_i) == 0
	points := make([]bn254.G1Affine, 0, p.N+2*p.K+2)
	scalars := make([]fr.Element, 0, p.N+2*p.K+2)
	points = append(points, c, p.U)
	var uCoeff fr.Element
	uCoeff.Mul(&proof.A, &bFinal)
	uCoeff.Sub(&v, &uCoeff).Mul(&uCoeff, &xi)
	scalars = append(scalars, one, uCoeff)
	points = append(points, proof.L...)
	scalars = append(scalars, us...)
	points = append(points, proof.R...)
	scalars = append(scalars, uInvs...)
	points = append(points, p.G...)
	var negA fr.Element
	negA.Neg(&proof.A)
	for i := range s {
		s[i].Mul(&s[i], &negA)
	}
	scalars = append(scalars, s...)
	var acc bn254.G1Jac
	if _, err := acc.MultiExp(points, scalars, msmConfig()); err != nil {
		return fmt.Errorf("ipa: msm: %w", err)
	}
	if !acc.Z.IsZero() {
		return fmt.Errorf("%w: inner-product check", ErrVerify)
	}
	return nil
}
