package circuit

import (
	"errors"
	"fmt"

	"github.com/consensys/gnark-crypto/ecc/bn254"
	"github.com/consensys/gnark-crypto/ecc/bn254/fr"

	"github.com/pouwfarm/pouwfarm/backends/plonkish/ipa"
)

// Verify checks a proof against the verifying key and the public
// instance columns. The transcript must hold the same statement the
// prover's did. Every failure wraps ErrVerify.
func Verify(vk *VerifyingKey, instance [][]fr.Element, proof *Proof, tr *ipa.Transcript) error {
	cs := vk.CS
	n := 1 << vk.K
	if err := vk.checkShape(proof); err != nil {
		return err
	}
	if len(instance) != cs.NumInstance {
		return fmt.Errorf("%w: %d instance columns, want %d", ErrVerify, len(instance), cs.NumInstance)
	}
	for _, col := range instance {
		if len(col) > n-1 {
			return fmt.Errorf("%w: instance column longer than the usable rows", ErrVerify)
		}
	}
	vk.absorbInstance(tr, instance)
	absorbPoints(tr, "advice", proof.Advice)
	var ch challenges
	ch.theta = tr.Challenge("theta")
	absorbPoints(tr, "lookup.m", proof.M)
	ch.lambda = tr.Challenge("lambda")
	ch.beta = tr.Challenge("beta")
	ch.gamma = tr.Challenge("gamma")
	absorbPoints(tr, "lookup.h", proof.H)
	absorbPoints(tr, "lookup.phi", proof.Phi)
	absorbPoints(tr, "perm.z", proof.Z)
	ch.y = tr.Challenge("y")
	absorbPoints(tr, "quotient", proof.Quotient)
	x := tr.Challenge("x")
	for i := range proof.Evals {
		tr.AppendScalar("eval", &proof.Evals[i])
	}

	plan := cs.evalPlan()
	type key struct {
		kind       polyKind
		index, rot int
	}
	evals := make(map[key]fr.Element, len(plan))
	queries := make([]ipa.Query, len(plan))
	for i, it := range plan {
		evals[key(it)] = proof.Evals[i]
		var cm bn254.G1Affine
		switch it.kind {
		case kFixed:
			cm = vk.FixedCommits[it.index]
		case kAdvice:
			cm = proof.Advice[it.index]
		case kSigma:
			cm = vk.SigmaCommits[it.index]
		case kZ:
			cm = proof.Z[it.index]
		case kM:
			cm = proof.M[it.index]
		case kH:
			cm = proof.H[it.index]
		case kPhi:
			cm = proof.Phi[it.index]
		default:
			cm = proof.Quotient[it.index]
		}
		queries[i] = ipa.Query{Commitment: cm, Point: rotate(&x, &vk.omega, it.rot), Eval: proof.Evals[i]}
	}

	// x^n - 1, Lagrange basis values and instance evaluations at x*w^rot
	var one, xn, zh fr.Element
	one.SetOne()
	xn.Exp(x, bigU(uint64(n)))
	zh.Sub(&xn, &one)
	if zh.IsZero() {
		return fmt.Errorf("%w: evaluation point in the domain", ErrVerify)
	}
	var nInv fr.Element
	nInv.SetUint64(uint64(n))
	nInv.Inverse(&nInv)
	lagrange := func(row int, z *fr.Element) fr.Element {
		// L_row(z) = w^row (z^n - 1) / (n (z - w^row))
		wr := rotate(&one, &vk.omega, row)
		var zn, num, den fr.Element
		zn.Exp(*z, bigU(uint64(n)))
		num.Sub(&zn, &one).Mul(&num, &wr).Mul(&num, &nInv)
		den.Sub(z, &wr)
		den.Inverse(&den)
		return *num.Mul(&num, &den)
	}
	// instance columns: sum_i v_i L_i(z), with every L_i(z) of the usable
	// rows from one batch inversion per rotation
	basis := map[int][]fr.Element{}
	lagrangeAll := func(z *fr.Element) []fr.Element {
		var zn, c fr.Element
		zn.Exp(*z, bigU(uint64(n)))
		c.Sub(&zn, &one).Mul(&c, &nInv)
		den := make([]fr.Element, n-1)
		ws := make([]fr.Element, n-1)
		ws[0].SetOne()
		for i := range den {
			if i > 0 {
				ws[i].Mul(&ws[i-1], &vk.omega)
			}
			den[i].Sub(z, &ws[i])
		}
		den = fr.BatchInvert(den)
		for i := range den {
			den[i].Mul(&den[i], &ws[i]).Mul(&den[i], &c)
		}
		return den
	}
	instEval := func(col, rot int) fr.Element {
		ls, ok := basis[rot]
		if !ok {
			z := rotate(&x, &vk.omega, rot)
			ls = lagrangeAll(&z)
			basis[rot] = ls
		}
		var acc, t fr.Element
		for row := range instance[col] {
			if instance[col][row].IsZero() {
				continue
			}
			t.Mul(&ls[row], &instance[col][row])
			acc.Add(&acc, &t)
		}
		return acc
	}
	instCache := map[Query]fr.Element{}
	hIndex := lookupHelperIndex(cs)
	var missing bool
	get := func(k key) fr.Element {
		v, ok := evals[k]
		if !ok {
			missing = true
		}
		return v
	}
	en := &env{
		cell: func(q Query) fr.Element {
			switch q.Col.Kind {
			case Fixed:
				return get(key{kFixed, q.Col.Index, q.Rot})
			case Advice:
				return get(key{kAdvice, q.Col.Index, q.Rot})
			default:
				if v, ok := instCache[q]; ok {
					return v
				}
				v := instEval(q.Col.Index, q.Rot)
				instCache[q] = v
				return v
			}
		},
		sigma: func(i int) fr.Element { return get(key{kSigma, i, 0}) },
		id: func(i int) fr.Element {
			var d fr.Element
			d.Exp(vk.delta, bigU(uint64(i)))
			return *d.Mul(&d, &x)
		},
		z:   func(j, rot int) fr.Element { return get(key{kZ, j, rot}) },
		m:   func(l int) fr.Element { return get(key{kM, l, 0}) },
		h:   func(l, g int) fr.Element { return get(key{kH, hIndex[l] + g, 0}) },
		phi: func(l, rot int) fr.Element { return get(key{kPhi, l, rot}) },
	}
	en.l0 = lagrange(0, &x)
	en.lLast = lagrange(n-1, &x)
	num := cs.numerator(en, &ch)
	if missing {
		return fmt.Errorf("%w: internal: evaluation missing from the plan", ErrVerify)
	}
	// h(x) = sum_i h_i(x) x^(n i)
	var hx, pow fr.Element
	pow.SetOne()
	for i := 0; i < cs.degree-1; i++ {
		v := get(key{kQuotient, i, 0})
		v.Mul(&v, &pow)
		hx.Add(&hx, &v)
		pow.Mul(&pow, &xn)
	}
	hx.Mul(&hx, &zh)
	if !hx.Equal(&num) {
		return fmt.Errorf("%w: constraints do not hold at x", ErrVerify)
	}
	if err := vk.params.MultiVerify(tr, queries, &proof.Opening); err != nil {
		if errors.Is(err, ipa.ErrVerify) {
			return fmt.Errorf("%w: opening: %w", ErrVerify, err)
		}
		return fmt.Errorf("%w: %w", ErrVerify, err)
	}
	return nil
}

// proofShape is the number of each item a proof for this key carries.
type proofShape struct {
	advice, m, h, phi, z, quotient, evals, points int
}

func (vk *VerifyingKey) shape() proofShape {
	cs := vk.CS
	plan := cs.evalPlan()
	rots := map[int]bool{}
	for _, it := range plan {
		rots[it.rot] = true
	}
	return proofShape{
		advice: cs.NumAdvice, m: len(cs.Lookups), h: cs.numLookupHelpers(), phi: len(cs.Lookups),
		z: cs.numPermZ(), quotient: cs.degree - 1, evals: len(plan), points: len(rots),
	}
}

func (vk *VerifyingKey) checkShape(p *Proof) error {
	s := vk.shape()
	if len(p.Advice) != s.advice || len(p.M) != s.m || len(p.H) != s.h || len(p.Phi) != s.phi ||
		len(p.Z) != s.z || len(p.Quotient) != s.quotient || len(p.Evals) != s.evals ||
		len(p.Opening.QEvals) != s.points || len(p.Opening.IPA.L) != vk.K || len(p.Opening.IPA.R) != vk.K {
		return fmt.Errorf("%w: proof shape does not match the key", ErrVerify)
	}
	return nil
}

// proofMagic starts every encoded proof: format name and version.
var proofMagic = []byte("PLK\x01")

// Encode writes the proof's canonical bytes: magic, k, then the
// commitments (compressed points), evaluations (32-byte big-endian) and
// the multiopen proof, all in a fixed order with no lengths (the key
// fixes them).
func (p *Proof) Encode(k int) []byte {
	w := ipa.Writer{Buf: append(append([]byte(nil), proofMagic...), byte(k))}
	for _, group := range [][]bn254.G1Affine{p.Advice, p.M, p.H, p.Phi, p.Z, p.Quotient} {
		for i := range group {
			w.Point(&group[i])
		}
	}
	for i := range p.Evals {
		w.Scalar(&p.Evals[i])
	}
	ipa.EncodeMultiProof(&w, &p.Opening)
	return w.Buf
}

// ProofSize is the exact encoded size of a proof for this key.
func (vk *VerifyingKey) ProofSize() int {
	s := vk.shape()
	return len(proofMagic) + 1 + (s.advice+s.m+s.h+s.phi+s.z+s.quotient)*ipa.PointSize +
		s.evals*ipa.ScalarSize + ipa.MultiProofSize(vk.K, s.points)
}

// DecodeProof parses a proof for this key; anything but exactly
// ProofSize() well-formed bytes is rejected (wrapping ErrVerify).
func (vk *VerifyingKey) DecodeProof(b []byte) (*Proof, error) {
	if len(b) != vk.ProofSize() {
		return nil, fmt.Errorf("%w: proof is %d bytes, want %d", ErrVerify, len(b), vk.ProofSize())
	}
	if string(b[:len(proofMagic)]) != string(proofMagic) || int(b[len(proofMagic)]) != vk.K {
		return nil, fmt.Errorf("%w: bad proof header", ErrVerify)
	}
	s := vk.shape()
	r := ipa.Reader{Buf: b[len(proofMagic)+1:]}
	points := func(n int) []bn254.G1Affine {
		ps := make([]bn254.G1Affine, n)
		for i := range ps {
			ps[i] = r.Point()
		}
		return ps
	}
	p := &Proof{}
	p.Advice, p.M, p.H, p.Phi, p.Z, p.Quotient = points(s.advice), points(s.m), points(s.h), points(s.phi), points(s.z), points(s.quotient)
	p.Evals = make([]fr.Element, s.evals)
	for i := range p.Evals {
		p.Evals[i] = r.Scalar()
	}
	p.Opening = ipa.DecodeMultiProof(&r, vk.K, s.points)
	if r.Err != nil {
		return nil, fmt.Errorf("%w: %w", ErrVerify, r.Err)
	}
	return p, nil
}
