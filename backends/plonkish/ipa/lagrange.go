package ipa

import (
	"fmt"
	"math/big"
	"runtime"
	"sync"

	"github.com/consensys/gnark-crypto/ecc/bn254"
	"github.com/consensys/gnark-crypto/ecc/bn254/fr"
	"github.com/consensys/gnark-crypto/ecc/bn254/fr/fft"
	"github.com/consensys/gnark-crypto/utils"
)

// Lagrange-basis commitments (as Halo2's g_lagrange). The commitment to
// the polynomial with values v on the domain H = <w> of size N is
// sum_j a_j G_j with a = IFFT(v), which equals sum_i v_i GL_i where
// GL_i = (1/N) sum_j w^(-ij) G_j, the inverse FFT of the generators. We
// keep nGL_i = N·GL_i (skipping N scalar multiplications) and multiply the
// MSM's result by 1/N once. Committing the values directly lets the MSM
// see the witness's small integers (flags, limbs, pcs), not the full-size
// coefficients of its interpolation — the same point, several times faster.

func (gs *Generators) lagrange(p *Params) []bn254.G1Affine {
	gs.lmu.Lock()
	defer gs.lmu.Unlock()
	if gs.lag == nil {
		gs.lag = map[int][]bn254.G1Affine{}
	}
	if l, ok := gs.lag[p.K]; ok {
		return l
	}
	l := groupIFFT(p.G, fft.NewDomain(uint64(p.N)).GeneratorInv)
	gs.lag[p.K] = l
	return l
}

// groupIFFT returns sum_j w^(-ij) G_j for each i (no 1/N), by a radix-2
// decimation-in-time FFT over G1 (parallel within each stage).
func groupIFFT(g []bn254.G1Affine, omegaInv fr.Element) []bn254.G1Affine {
	n := len(g)
	a := make([]bn254.G1Jac, n)
	for i := range g {
		a[i].FromAffine(&g[i])
	}
	utils.BitReverse(a)
	workers := runtime.GOMAXPROCS(0)
	for size := 2; size <= n; size *= 2 {
		half := size / 2
		var wStep fr.Element
		wStep.Exp(omegaInv, big.NewInt(int64(n/size)))
		tw := make([]big.Int, half)
		var w fr.Element
		w.SetOne()
		for j := 0; j < half; j++ {
			w.BigInt(&tw[j])
			w.Mul(&w, &wStep)
		}
		// butterflies (start, j) are independent within a stage
		total := n / 2
		var wg sync.WaitGroup
		chunk := (total + workers - 1) / workers
		for lo := 0; lo < total; lo += chunk {
			hi := min(lo+chunk, total)
			wg.Add(1)
			go func() {
				defer wg.Done()
				var t bn254.G1Jac
				for b := lo; b < hi; b++ {
					start, j := (b/half)*size, b%half
					u, v := &a[start+j], &a[start+j+half]
					t.Set(v)
					if j != 0 {
						t.ScalarMultiplication(&t, &tw[j])
					}
					v.Set(u)
					v.SubAssign(&t)
					u.AddAssign(&t)
				}
			}()
		}
		wg.Wait()
	}
	return bn254.BatchJacobianToAffineG1(a)
}

// CommitLagrange commits to the polynomial taking values v on the domain
// of size N (natural order): the same point as Commit of its coefficients.
func (p *Params) CommitLagrange(v []fr.Element) (bn254.G1Affine, error) {
	if len(v) != p.N {
		return bn254.G1Affine{}, fmt.Errorf("%w: %d values for a domain of %d", ErrSize, len(v), p.N)
	}
	if p.gens == nil {
		return bn254.G1Affine{}, fmt.Errorf("ipa: params without a generator cache")
	}
	c, err := commitMSM(p.gens.lagrange(p), v)
	if err != nil {
		return c, err
	}
	var nInv fr.Element
	nInv.SetUint64(uint64(p.N))
	nInv.Inverse(&nInv)
	c.ScalarMultiplication(&c, nInv.BigInt(new(big.Int)))
	return c, nil
}

// WarmLagrange derives the Lagrange-basis generators now (a group FFT of
// N points, once per size), so the first CommitLagrange does not pay.
func (p *Params) WarmLagrange() {
	if p.gens != nil {
		p.gens.lagrange(p)
	}
}
