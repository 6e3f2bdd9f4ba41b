package ipa_test

import (
	"fmt"
	"testing"

	"github.com/consensys/gnark-crypto/ecc/bn254/fr"

	"github.com/pouwfarm/pouwfarm/backends/plonkish/ipa"
)

func BenchmarkCommit(b *testing.B) {
	var gs ipa.Generators
	for _, k := range []int{9, 10, 12} {
		p, err := gs.Params(k)
		if err != nil {
			b.Fatal(err)
		}
		v := make([]fr.Element, p.N)
		for i := range v {
			v[i].SetRandom()
		}
		b.Run(fmt.Sprintf("k=%d", k), func(b *testing.B) {
			for b.Loop() {
				if _, err := p.Commit(v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
