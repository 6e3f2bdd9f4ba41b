package circuit

import (
	"github.com/consensys/gnark-crypto/ecc/bn254/fr"
)

// Floor does the bulk MSM and FFT work a proof for this key cannot avoid,
// on dummy data of the right sizes: per committed polynomial an inverse FFT
// on H and a size-n MSM; per polynomial the quotient reads, a coset FFT on
// the extended domain; the quotient's inverse FFT and piece commitments;
// the multiopen's two commitments and the IPA's L/R MSMs (2n points in
// all). prove/floor in the benchmarks says how much the prover spends
// beyond it (expression evaluation, IPA generator folding, bookkeeping).
func (pk *ProvingKey) Floor() error {
	cs, dom, params := pk.VK.CS, pk.dom, pk.VK.params
	n := dom.n
	committed := cs.NumAdvice + 2*len(cs.Lookups) + cs.numLookupHelpers() + cs.numPermZ()
	extended := committed + cs.NumInstance
	v := make([]fr.Element, n)
	for i := range v {
		v[i].SetUint64(uint64(i*i + 7))
	}
	for i := 0; i < committed; i++ {
		w := append([]fr.Element(nil), v...)
		dom.toCoeffs(w)
		if _, err := params.Commit(w); err != nil {
			return err
		}
	}
	var ext []fr.Element
	for i := 0; i < extended; i++ {
		ext = dom.toExt(v)
	}
	dom.extToCoeffs(ext)
	for i := 0; i < cs.degree-1+2; i++ {
		if _, err := params.Commit(v); err != nil {
			return err
		}
	}
	for size := n / 2; size >= 1; size /= 2 {
		for j := 0; j < 2; j++ {
			if _, err := params.Commit(v[:size]); err != nil {
				return err
			}
		}
	}
	return nil
}
