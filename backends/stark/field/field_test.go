package field_test

import (
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/consensys/gnark-crypto/field/goldilocks/fft"
	"github.com/consensys/gnark-crypto/utils"

	"github.com/pouwfarm/pouwfarm/backends/stark/field"
)

var p = new(big.Int).SetUint64(field.Modulus)

func TestBaseArithmeticMatchesMathBig(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		a, b := r.Uint64()%field.Modulus, r.Uint64()%field.Modulus
		x, y := field.New(a), field.New(b)
		var s, m field.Base
		s.Add(&x, &y)
		m.Mul(&x, &y)
		ba, bb := new(big.Int).SetUint64(a), new(big.Int).SetUint64(b)
		wantS := new(big.Int).Mod(new(big.Int).Add(ba, bb), p).Uint64()
		wantM := new(big.Int).Mod(new(big.Int).Mul(ba, bb), p).Uint64()
		if s.Uint64() != wantS || m.Uint64() != wantM {
			t.Fatalf("a=%d b=%d: sum %d want %d, product %d want %d", a, b, s.Uint64(), wantS, m.Uint64(), wantM)
		}
		k := r.Uint64()
		want := new(big.Int).Exp(ba, new(big.Int).SetUint64(k), p).Uint64()
		if got := field.ExpBase(x, k); got.Uint64() != want {
			t.Fatalf("%d^%d = %d want %d", a, k, got.Uint64(), want)
		}
	}
}

func TestExtensionIsQuadraticOverSeven(t *testing.T) {
	// (a0 + a1 u)(b0 + b1 u) = a0b0 + 7 a1b1 + (a0b1 + a1b0) u
	r := rand.New(rand.NewPCG(3, 4))
	for range 500 {
		v := [4]uint64{}
		for i := range v {
			v[i] = r.Uint64() % field.Modulus
		}
		x, y := field.NewExt(v[0], v[1]), field.NewExt(v[2], v[3])
		var z field.Ext
		z.Mul(&x, &y)
		B := func(u uint64) *big.Int { return new(big.Int).SetUint64(u) }
		c0 := new(big.Int).Add(new(big.Int).Mul(B(v[0]), B(v[2])), new(big.Int).Mul(big.NewInt(7), new(big.Int).Mul(B(v[1]), B(v[3]))))
		c1 := new(big.Int).Add(new(big.Int).Mul(B(v[0]), B(v[3])), new(big.Int).Mul(B(v[1]), B(v[2])))
		if z.A0.Uint64() != c0.Mod(c0, p).Uint64() || z.A1.Uint64() != c1.Mod(c1, p).Uint64() {
			t.Fatalf("product mismatch")
		}
		var inv, one field.Ext
		inv.Inverse(&x)
		one.Mul(&inv, &x)
		if !one.IsOne() && !x.IsZero() {
			t.Fatalf("inverse wrong")
		}
	}
}

func TestCanonicalEncodingRejectsValuesAtOrAboveP(t *testing.T) {
	buf := make([]byte, 8)
	for _, v := range []uint64{field.Modulus, field.Modulus + 1, ^uint64(0)} {
		for i := range 8 {
			buf[i] = byte(v >> (8 * i))
		}
		if _, err := field.ReadBase(buf); err == nil {
			t.Fatalf("%#x accepted", v)
		}
	}
	x := field.New(field.Modulus - 1)
	field.PutBase(buf, &x)
	if y, err := field.ReadBase(buf); err != nil || !y.Equal(&x) {
		t.Fatalf("round trip: %v", err)
	}
}

func TestRootOfUnityMatchesFFTDomain(t *testing.T) {
	for _, n := range []uint64{2, 16, 1 << 10, 1 << 20} {
		d := fft.NewDomain(n, fft.WithoutPrecompute())
		if w := field.RootOfUnity(n); !w.Equal(&d.Generator) {
			t.Fatalf("n=%d: root %v, domain %v", n, w.String(), d.Generator.String())
		}
	}
}

func TestExtendEvaluatesOnTheCoset(t *testing.T) {
	const n, blowup = 16, 4
	d, err := field.NewDomains(n, blowup)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(5, 6))
	vals := make([]field.Base, n)
	for i := range vals {
		vals[i] = field.New(r.Uint64())
	}
	coeffs := append([]field.Base(nil), vals...)
	d.Interpolate(coeffs)
	g := field.RootOfUnity(n)
	for i := range n { // the coefficients reproduce the column
		x := field.ExpBase(g, uint64(i))
		if got := field.EvalPolyBaseAtExt(coeffs, field.Lift(x)); !got.A0.Equal(&vals[i]) {
			t.Fatalf("row %d: interpolation wrong", i)
		}
	}
	out := make([]field.Base, n*blowup)
	d.Extend(coeffs, out)
	w := field.RootOfUnity(n * blowup)
	off := field.Generator()
	for i := range out {
		x := field.ExpBase(w, uint64(i))
		x.Mul(&x, &off)
		if got := field.EvalPolyBaseAtExt(coeffs, field.Lift(x)); !got.A0.Equal(&out[i]) {
			t.Fatalf("LDE point %d wrong", i)
		}
	}
	small := append([]field.Base(nil), out...)
	field.InterpolateCosetSmall(small, off)
	for i := range small {
		want := field.Base{}
		if i < n {
			want = coeffs[i]
		}
		if !small[i].Equal(&want) {
			t.Fatalf("small coset interpolation coefficient %d wrong", i)
		}
	}
}

func TestExtendMatchesOneBigFFT(t *testing.T) {
	for _, tc := range []struct{ n, b int }{{2, 4}, {8, 8}, {256, 16}, {1024, 8}, {1 << 14, 4}} {
		d, err := field.NewDomains(tc.n, tc.b)
		if err != nil {
			t.Fatal(err)
		}
		c := make([]field.Base, tc.n)
		for i := range c {
			c[i] = field.New(uint64(i*i + 3))
		}
		// Interpolate inverts the trace-domain transform.
		vals := append([]field.Base(nil), c...)
		fft.NewDomain(uint64(tc.n)).FFT(vals, fft.DIF)
		utils.BitReverse(vals)
		d.Interpolate(vals)
		for i := range vals {
			if !vals[i].Equal(&c[i]) {
				t.Fatalf("n=%d: Interpolate coefficient %d differs", tc.n, i)
			}
		}
		a, b := make([]field.Base, tc.n*tc.b), make([]field.Base, tc.n*tc.b)
		d.Extend(c, a)
		field.ExtendBig(d, c, b)
		for i := range a {
			if !a[i].Equal(&b[i]) {
				t.Fatalf("n=%d blowup=%d: point %d differs", tc.n, tc.b, i)
			}
		}
	}
}

func TestGoldilocksReductionMatchesMathBig(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	vals := []uint64{0, 1, field.Modulus - 1, 1 << 32, 1<<32 - 1, 1 << 63, field.Modulus - (1 << 32)}
	for range 3000 {
		vals = append(vals, r.Uint64()%field.Modulus)
	}
	for i, a := range vals {
		b := vals[(i*7+3)%len(vals)]
		want := new(big.Int).Mod(new(big.Int).Mul(new(big.Int).SetUint64(a), new(big.Int).SetUint64(b)), p).Uint64()
		if got := field.MulRaw(a, b); got != want {
			t.Fatalf("%d·%d = %d, want %d", a, b, got, want)
		}
	}
}
