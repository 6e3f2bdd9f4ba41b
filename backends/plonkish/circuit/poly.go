package circuit

import (
	"runtime"
	"sync"

	"github.com/consensys/gnark-crypto/ecc/bn254/fr"
	"github.com/consensys/gnark-crypto/ecc/bn254/fr/fft"
	"github.com/consensys/gnark-crypto/utils"
)

// domains holds the base domain H (n points) and the extended coset
// g*H_E (E = (D-1)n points) on which the quotient is computed.
type domains struct {
	n, e   int
	shift  int // rotation by one row on the extended domain = e/n points
	base   *fft.Domain
	ext    *fft.Domain
	omega  fr.Element // generator of H
	coset  fr.Element // g
	zhInv  []fr.Element
	xExt   []fr.Element // coset points g*w_E^i
	cosetN fr.Element   // g^n
}

func newDomains(n, degree int) *domains {
	e := n * (degree - 1)
	d := &domains{n: n, e: e, shift: e / n}
	d.base = fft.NewDomain(uint64(n))
	d.ext = fft.NewDomain(uint64(e))
	d.omega = d.base.Generator
	d.coset = d.ext.FrMultiplicativeGen
	d.cosetN.Exp(d.coset, bigU(uint64(n)))
	// Z_H(X) = X^n - 1 takes e/n distinct values on the coset
	k := e / n
	zh := make([]fr.Element, k)
	var wn, one fr.Element
	one.SetOne()
	wn.Exp(d.ext.Generator, bigU(uint64(n)))
	cur := d.cosetN
	for i := 0; i < k; i++ {
		zh[i].Sub(&cur, &one)
		cur.Mul(&cur, &wn)
	}
	d.zhInv = fr.BatchInvert(zh)
	d.xExt = make([]fr.Element, e)
	d.xExt[0] = d.coset
	for i := 1; i < e; i++ {
		d.xExt[i].Mul(&d.xExt[i-1], &d.ext.Generator)
	}
	return d
}

// toCoeffs interpolates values on H (in place, natural order).
func (d *domains) toCoeffs(v []fr.Element) {
	d.base.FFTInverse(v, fft.DIF)
	utils.BitReverse(v)
}

// toExt evaluates coefficients (len <= e) on the extended coset.
func (d *domains) toExt(coeffs []fr.Element) []fr.Element {
	out := make([]fr.Element, d.e)
	copy(out, coeffs)
	d.ext.FFT(out, fft.DIF, fft.OnCoset())
	utils.BitReverse(out)
	return out
}

// extToCoeffs interpolates values on the extended coset (in place).
func (d *domains) extToCoeffs(v []fr.Element) {
	d.ext.FFTInverse(v, fft.DIF, fft.OnCoset())
	utils.BitReverse(v)
}

func parallel(n int, f func(lo, hi int)) {
	workers := runtime.GOMAXPROCS(0)
	if n < 512 || workers == 1 {
		f(0, n)
		return
	}
	chunk := (n + workers*4 - 1) / (workers * 4)
	var wg sync.WaitGroup
	sem := make(chan struct{}, workers)
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		sem <- struct{}{}
		go func() { defer wg.Done(); f(lo, hi); <-sem }()
	}
	wg.Wait()
}

// parallelEach runs f(i) for i < n, one goroutine per core.
func parallelEach(n int, f func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	var wg sync.WaitGroup
	next := make(chan int, n)
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f(i)
			}
		}()
	}
	wg.Wait()
}
