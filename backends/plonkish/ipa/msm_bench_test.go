package ipa_test

import (
	"fmt"
	"testing"

	"github.com/consensys/gnark-crypto/ecc/bn254/fr"
	"github.com/consensys/gnark-crypto/ecc/bn254/fr/fft"
	"github.com/consensys/gnark-crypto/utils"

	"github.com/pouwfarm/pouwfarm/backends/plonkish/ipa"
)

func BenchmarkCommit(b *testing.B) {
	var gs ipa.Generators
	for _, k := range []int{9, 10, 12} {
		p, err := gs.Params(k)
		if err != nil {
			b.Fatal(err)
		}
		for _, bits := range []int{1, 8, 64, 254} {
			v := make([]fr.Element, p.N)
			for i := range v {
				if bits == 254 {
					v[i].SetRandom()
				} else {
					v[i].SetUint64((uint64(i) * 0x9e3779b97f4a7c15) >> (64 - bits))
				}
			}
			b.Run(fmt.Sprintf("k=%d/bits=%d", k, bits), func(b *testing.B) {
				for b.Loop() {
					if _, err := p.Commit(v); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func TestSmallScalarCommitMatchesGenericMSM(t *testing.T) {
	var gs ipa.Generators
	p, err := gs.Params(11)
	if err != nil {
		t.Fatal(err)
	}
	for _, bits := range []uint{0, 1, 2, 8, 17, 33, 63, 64} {
		for _, n := range []int{1, 5, 300, 2048} {
			v := make([]fr.Element, n)
			for i := range v {
				var x uint64
				if bits > 0 {
					x = uint64(i*2654435761+int(bits)) * 0x9e3779b97f4a7c15
					x >>= 64 - bits
				}
				v[i].SetUint64(x)
			}
			got, err := p.Commit(v)
			if err != nil {
				t.Fatal(err)
			}
			want, err := ipa.MSM(p.G[:n], v)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(&want) {
				t.Fatalf("bits=%d n=%d: small-scalar commit differs from MSM", bits, n)
			}
		}
	}
}

func TestLagrangeCommitmentEqualsCoefficientCommitment(t *testing.T) {
	var gs ipa.Generators
	for _, k := range []int{1, 3, 6} {
		p, err := gs.Params(k)
		if err != nil {
			t.Fatal(err)
		}
		v := make([]fr.Element, p.N)
		for i := range v {
			v[i].SetUint64(uint64(i*i) + 3)
		}
		v[p.N-1].SetRandom()
		got, err := p.CommitLagrange(v)
		if err != nil {
			t.Fatal(err)
		}
		coeffs := append([]fr.Element(nil), v...)
		d := fft.NewDomain(uint64(p.N))
		d.FFTInverse(coeffs, fft.DIF)
		utils.BitReverse(coeffs)
		want, err := p.Commit(coeffs)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Equal(&want) {
			t.Fatalf("k=%d: Lagrange commitment differs", k)
		}
	}
}
