package gl_test

import (
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/pouwfarm/pouwfarm/trace/gl"
)

var bigP = new(big.Int).SetUint64(gl.P)

// samples returns edge values and random canonical elements.
func samples(n int) []uint64 {
	xs := []uint64{0, 1, 2, epsilonValue(), epsilonValue() + 1, 1 << 32, 1<<63 - 1, 1 << 63, gl.P - 2, gl.P - 1}
	r := rand.New(rand.NewPCG(1, 2))
	for len(xs) < n {
		xs = append(xs, r.Uint64N(gl.P))
	}
	return xs
}

func epsilonValue() uint64 { return 1<<32 - 1 }

func ref(op func(z, x, y *big.Int) *big.Int, a, b uint64) uint64 {
	z := op(new(big.Int), new(big.Int).SetUint64(a), new(big.Int).SetUint64(b))
	z.Mod(z, bigP)
	return z.Uint64()
}

func TestFieldOpsMatchMathBig(t *testing.T) {
	xs := samples(300)
	for _, a := range xs {
		for _, b := range xs {
			if got, want := gl.Add(a, b), ref((*big.Int).Add, a, b); got != want {
				t.Fatalf("Add(%d,%d)=%d want %d", a, b, got, want)
			}
			if got, want := gl.Sub(a, b), ref((*big.Int).Sub, a, b); got != want {
				t.Fatalf("Sub(%d,%d)=%d want %d", a, b, got, want)
			}
			if got, want := gl.Mul(a, b), ref((*big.Int).Mul, a, b); got != want {
				t.Fatalf("Mul(%d,%d)=%d want %d", a, b, got, want)
			}
		}
	}
}

func TestInvIsInverseAndZeroMapsToZero(t *testing.T) {
	if gl.Inv(0) != 0 {
		t.Fatal("Inv(0) must be 0")
	}
	for _, a := range samples(200) {
		if a == 0 {
			continue
		}
		if gl.Mul(a, gl.Inv(a)) != 1 {
			t.Fatalf("a*Inv(a) != 1 for %d", a)
		}
		want := new(big.Int).ModInverse(new(big.Int).SetUint64(a), bigP).Uint64()
		if gl.Inv(a) != want {
			t.Fatalf("Inv(%d) = %d want %d", a, gl.Inv(a), want)
		}
	}
}

func TestBatchInvMatchesInv(t *testing.T) {
	xs := samples(100)
	xs = append(xs, 0, 0, 5)
	got := append([]uint64(nil), xs...)
	gl.BatchInv(got, nil)
	for i, x := range xs {
		if got[i] != gl.Inv(x) {
			t.Fatalf("BatchInv[%d] of %d = %d want %d", i, x, got[i], gl.Inv(x))
		}
	}
}

func TestNegAndReduce(t *testing.T) {
	for _, a := range samples(100) {
		if gl.Add(a, gl.Neg(a)) != 0 {
			t.Fatalf("a + Neg(a) != 0 for %d", a)
		}
	}
	if gl.Reduce(gl.P) != 0 || gl.Reduce(gl.P+5) != 5 || gl.Reduce(7) != 7 {
		t.Fatal("Reduce wrong")
	}
	if gl.Canonical(gl.P) || !gl.Canonical(gl.P-1) {
		t.Fatal("Canonical wrong")
	}
}

func TestSeventhPowerIsAPermutation(t *testing.T) {
	// MiMC-style workloads rely on gcd(7, p-1) = 1.
	pm1 := new(big.Int).Sub(bigP, big.NewInt(1))
	if new(big.Int).GCD(nil, nil, big.NewInt(7), pm1).Int64() != 1 {
		t.Fatal("x^7 is not a permutation of Goldilocks")
	}
}
