package circuit

import (
	"github.com/consensys/gnark-crypto/ecc/bn254/fr"
)

// Floor does the bulk MSM and FFT work a proof of this witness cannot
// avoid, with the same algorithms the prover uses: per committed column
// an inverse FFT on H, its commitment (advice columns from their real
// values, so small-scalar MSMs where the prover gets them; helper columns
// with full-size scalars) and a coset FFT onto the extended domain; the
// instance columns' extension; the quotient's inverse FFT and piece
// commitments; the multiopen's commitment and the IPA's L/R MSMs (2n
// points in all). What the prover spends beyond it — expression
// evaluation, the IPA's generator folding, bookkeeping — is the prove/floor
// ratio the benchmarks print.
func (pk *ProvingKey) Floor(c Circuit, instance [][]fr.Element) error {
	cs, dom, params := pk.VK.CS, pk.dom, pk.VK.params
	n := dom.n
	own := &ConstraintSystem{}
	c.Configure(own)
	a, err := newAssignment(cs, n, instance)
	if err != nil {
		return err
	}
	if err := c.Synthesize(a); err != nil {
		return err
	}
	full := make([]fr.Element, n)
	for i := range full {
		full[i].SetRandom()
	}
	small := make([]fr.Element, n)
	for i := range small {
		small[i].SetUint64(uint64(i % 7))
	}
	columns := append([][]fr.Element(nil), a.Advice...)
	for range cs.Lookups {
		columns = append(columns, small, full) // multiplicities, running sum
	}
	for i := 0; i < cs.numLookupHelpers()+cs.numPermZ(); i++ {
		columns = append(columns, full)
	}
	errs := make([]error, len(columns))
	parallelEach(len(columns), func(i int) {
		cf := append([]fr.Element(nil), columns[i]...)
		dom.toCoeffs(cf)
		_ = dom.toExt(cf)
		_, errs[i] = params.CommitLagrange(columns[i])
	})
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	parallelEach(len(a.Instance), func(i int) {
		if pk.sparseExt(a.Instance[i]) == nil {
			cf := append([]fr.Element(nil), a.Instance[i]...)
			dom.toCoeffs(cf)
			_ = dom.toExt(cf)
		}
	})
	q := make([]fr.Element, dom.e)
	copy(q, full)
	dom.extToCoeffs(q)
	for i := 0; i < cs.degree-1+1; i++ { // quotient pieces, multiopen's F
		if _, err := params.Commit(full); err != nil {
			return err
		}
	}
	for size := n / 2; size >= 1; size /= 2 {
		for j := 0; j < 2; j++ {
			if _, err := params.Commit(full[:size]); err != nil {
				return err
			}
		}
	}
	return nil
}
