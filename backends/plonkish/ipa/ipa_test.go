package ipa_test

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/consensys/gnark-crypto/ecc/bn254"
	"github.com/consensys/gnark-crypto/ecc/bn254/fr"

	"github.com/pouwfarm/pouwfarm/backends/plonkish/ipa"
)

func randPoly(rng *rand.Rand, n int) []fr.Element {
	p := make([]fr.Element, n)
	for i := range p {
		p[i].SetUint64(rng.Uint64())
		p[i].Mul(&p[i], &p[i]) // spread over the field
	}
	return p
}

func params(t testing.TB, k int) *ipa.Params {
	t.Helper()
	var gs ipa.Generators
	p, err := gs.Params(k)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestGeneratorsArePrefixStableAndDerivedFromSeed(t *testing.T) {
	var gs ipa.Generators
	small, err := gs.Params(3)
	if err != nil {
		t.Fatal(err)
	}
	big, err := gs.Params(5)
	if err != nil {
		t.Fatal(err)
	}
	for i := range small.G {
		if !small.G[i].Equal(&big.G[i]) {
			t.Fatalf("G_%d differs between k=3 and k=5", i)
		}
	}
	g7, err := ipa.GeneratorG(7)
	if err != nil {
		t.Fatal(err)
	}
	if !g7.Equal(&big.G[7]) {
		t.Fatal("G_7 is not HashToG1(seed||G||7)")
	}
	want, _ := bn254.HashToG1([]byte(ipa.Seed+"U"), []byte(ipa.DST))
	if !want.Equal(&big.U) {
		t.Fatal("U is not HashToG1(seed||U)")
	}
	seen := map[[32]byte]bool{}
	for _, g := range append(big.G, big.U) {
		b := g.Bytes()
		if seen[b] || g.IsInfinity() || !g.IsOnCurve() {
			t.Fatal("generators must be distinct points on the curve")
		}
		seen[b] = true
	}
}

func TestOpeningVerifiesAndTamperingIsRejected(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	p := params(t, 6)
	poly := randPoly(rng, p.N-3) // shorter than N: zero padded
	c, err := p.Commit(poly)
	if err != nil {
		t.Fatal(err)
	}
	var x fr.Element
	x.SetUint64(123456789)
	v := ipa.Eval(poly, &x)
	proof, err := p.Open(ipa.NewTranscript("test"), c, poly, x, v)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Verify(ipa.NewTranscript("test"), c, x, v, &proof); err != nil {
		t.Fatalf("honest opening rejected: %v", err)
	}
	var one fr.Element
	one.SetOne()
	var g1 bn254.G1Affine
	g1.Add(&p.G[0], &p.G[1])
	cases := map[string]func() (bn254.G1Affine, fr.Element, fr.Element, ipa.Proof, string){
		"wrong value": func() (bn254.G1Affine, fr.Element, fr.Element, ipa.Proof, string) {
			var v2 fr.Element
			v2.Add(&v, &one)
			return c, x, v2, proof, "test"
		},
		"wrong point": func() (bn254.G1Affine, fr.Element, fr.Element, ipa.Proof, string) {
			var x2 fr.Element
			x2.Add(&x, &one)
			return c, x2, v, proof, "test"
		},
		"tampered commitment": func() (bn254.G1Affine, fr.Element, fr.Element, ipa.Proof, string) {
			var c2 bn254.G1Affine
			c2.Add(&c, &p.G[0])
			return c2, x, v, proof, "test"
		},
		"tampered L": func() (bn254.G1Affine, fr.Element, fr.Element, ipa.Proof, string) {
			pr := proof
			pr.L = append([]bn254.G1Affine(nil), proof.L...)
			pr.L[2] = g1
			return c, x, v, pr, "test"
		},
		"tampered R": func() (bn254.G1Affine, fr.Element, fr.Element, ipa.Proof, string) {
			pr := proof
			pr.R = append([]bn254.G1Affine(nil), proof.R...)
			pr.R[0] = g1
			return c, x, v, pr, "test"
		},
		"tampered final scalar": func() (bn254.G1Affine, fr.Element, fr.Element, ipa.Proof, string) {
			pr := proof
			pr.A.Add(&pr.A, &one)
			return c, x, v, pr, "test"
		},
		"other transcript": func() (bn254.G1Affine, fr.Element, fr.Element, ipa.Proof, string) {
			return c, x, v, proof, "other"
		},
		"too few rounds": func() (bn254.G1Affine, fr.Element, fr.Element, ipa.Proof, string) {
			pr := proof
			pr.L, pr.R = pr.L[1:], pr.R[1:]
			return c, x, v, pr, "test"
		},
	}
	for name, mk := range cases {
		t.Run(name, func(t *testing.T) {
			c, x, v, pr, label := mk()
			err := p.Verify(ipa.NewTranscript(label), c, x, v, &pr)
			if !errors.Is(err, ipa.ErrVerify) {
				t.Fatalf("got %v, want ErrVerify", err)
			}
		})
	}
}

func multiQueries(t *testing.T, rng *rand.Rand, p *ipa.Params) []ipa.Query {
	t.Helper()
	var x, wx fr.Element
	x.SetUint64(rng.Uint64())
	wx.SetUint64(rng.Uint64())
	var qs []ipa.Query
	for i := 0; i < 5; i++ {
		poly := randPoly(rng, p.N)
		c, err := p.Commit(poly)
		if err != nil {
			t.Fatal(err)
		}
		pts := []fr.Element{x}
		if i%2 == 0 {
			pts = append(pts, wx) // some polynomials are opened at two points
		}
		for _, z := range pts {
			qs = append(qs, ipa.Query{Commitment: c, Point: z, Eval: ipa.Eval(poly, &z), Poly: poly})
		}
	}
	return qs
}

func TestMultiOpenVerifiesAndRejectsWrongClaims(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	p := params(t, 5)
	qs := multiQueries(t, rng, p)
	proof, err := p.MultiOpen(ipa.NewTranscript("m"), qs)
	if err != nil {
		t.Fatal(err)
	}
	if len(proof.QEvals) != 2 {
		t.Fatalf("%d point groups, want 2", len(proof.QEvals))
	}
	if err := p.MultiVerify(ipa.NewTranscript("m"), qs, &proof); err != nil {
		t.Fatalf("honest multiopen rejected: %v", err)
	}
	var one fr.Element
	one.SetOne()
	for i := range qs {
		bad := append([]ipa.Query(nil), qs...)
		bad[i].Eval.Add(&bad[i].Eval, &one)
		if err := p.MultiVerify(ipa.NewTranscript("m"), bad, &proof); !errors.Is(err, ipa.ErrVerify) {
			t.Fatalf("query %d with a wrong evaluation: got %v", i, err)
		}
		bad = append([]ipa.Query(nil), qs...)
		bad[i].Commitment.Add(&bad[i].Commitment, &p.G[1])
		if err := p.MultiVerify(ipa.NewTranscript("m"), bad, &proof); !errors.Is(err, ipa.ErrVerify) {
			t.Fatalf("query %d with a tampered commitment: got %v", i, err)
		}
	}
	bad := proof
	bad.QEvals = append([]fr.Element(nil), proof.QEvals...)
	bad.QEvals[1].Add(&bad.QEvals[1], &one)
	if err := p.MultiVerify(ipa.NewTranscript("m"), qs, &bad); !errors.Is(err, ipa.ErrVerify) {
		t.Fatalf("tampered q evaluation: got %v", err)
	}
	bad = proof
	bad.F.Add(&bad.F, &p.G[0])
	if err := p.MultiVerify(ipa.NewTranscript("m"), qs, &bad); !errors.Is(err, ipa.ErrVerify) {
		t.Fatalf("tampered F: got %v", err)
	}
	// a prover with a false claim cannot even produce a proof
	lie := append([]ipa.Query(nil), qs...)
	lie[3].Eval.Add(&lie[3].Eval, &one)
	if _, err := p.MultiOpen(ipa.NewTranscript("m"), lie); err == nil {
		t.Fatal("MultiOpen accepted a false evaluation")
	}
}

func TestMultiProofEncodingRoundTripsAndRejectsGarbage(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	p := params(t, 4)
	qs := multiQueries(t, rng, p)
	proof, err := p.MultiOpen(ipa.NewTranscript("m"), qs)
	if err != nil {
		t.Fatal(err)
	}
	var w ipa.Writer
	ipa.EncodeMultiProof(&w, &proof)
	if len(w.Buf) != ipa.MultiProofSize(p.K, 2) {
		t.Fatalf("size %d, want %d", len(w.Buf), ipa.MultiProofSize(p.K, 2))
	}
	r := ipa.Reader{Buf: w.Buf}
	got := ipa.DecodeMultiProof(&r, p.K, 2)
	if r.Err != nil || len(r.Buf) != 0 {
		t.Fatalf("decode: %v, %d bytes left", r.Err, len(r.Buf))
	}
	if err := p.MultiVerify(ipa.NewTranscript("m"), qs, &got); err != nil {
		t.Fatal(err)
	}
	r = ipa.Reader{Buf: w.Buf[:len(w.Buf)-1]}
	ipa.DecodeMultiProof(&r, p.K, 2)
	if !errors.Is(r.Err, ipa.ErrEncoding) {
		t.Fatalf("truncated: got %v", r.Err)
	}
	buf := append([]byte(nil), w.Buf...)
	for i := ipa.PointSize; i < ipa.PointSize+ipa.ScalarSize; i++ {
		buf[i] = 0xff // a scalar >= r
	}
	r = ipa.Reader{Buf: buf}
	ipa.DecodeMultiProof(&r, p.K, 2)
	if !errors.Is(r.Err, ipa.ErrEncoding) {
		t.Fatalf("non-canonical scalar: got %v", r.Err)
	}
}
