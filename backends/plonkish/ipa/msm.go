package ipa

import (
	"math/bits"
	"runtime"
	"sync"

	"github.com/consensys/gnark-crypto/ecc/bn254"
	"github.com/consensys/gnark-crypto/ecc/bn254/fr"
)

// commitMSM is Commit's multi-scalar multiplication. Most witness columns
// of the VM circuit hold small integers (flags, selectors, 8-bit limbs,
// pcs, 64-bit Goldilocks values), for which a generic 254-bit MSM wastes
// most of its windows: when every scalar is below 2^64 a bucket method
// over just the scalars' bit length does the same sum several times
// faster; otherwise gnark-crypto's MSM runs.
func commitMSM(points []bn254.G1Affine, scalars []fr.Element) (bn254.G1Affine, error) {
	small := make([]uint64, len(scalars))
	var or uint64
	for i := range scalars {
		if !scalars[i].IsUint64() {
			return MSM(points, scalars)
		}
		small[i] = scalars[i].Uint64()
		or |= small[i]
	}
	acc := msmSmall(points, small, bits.Len64(or))
	var out bn254.G1Affine
	out.FromJacobian(&acc)
	return out, nil
}

// msmSmall computes sum scalars[i]*points[i] for scalars below 2^b.
func msmSmall(points []bn254.G1Affine, scalars []uint64, b int) bn254.G1Jac {
	var res bn254.G1Jac
	if b == 0 || len(points) == 0 {
		return res // zero Z: the point at infinity
	}
	c := max(1, min(b, bits.Len(uint(len(points)))-3))
	windows := (b + c - 1) / c
	totals := make([]bn254.G1Jac, windows)
	workers := runtime.GOMAXPROCS(0)
	// parallel over windows, and over chunks of points when windows are few
	chunks := max(1, workers/windows)
	if len(points) < 1024 {
		chunks = 1
	}
	partial := make([]bn254.G1Jac, windows*chunks)
	var wg sync.WaitGroup
	sem := make(chan struct{}, workers)
	per := (len(points) + chunks - 1) / chunks
	for w := 0; w < windows; w++ {
		for ch := 0; ch < chunks; ch++ {
			wg.Add(1)
			sem <- struct{}{}
			go func(w, ch int) {
				defer wg.Done()
				defer func() { <-sem }()
				lo, hi := ch*per, min((ch+1)*per, len(points))
				partial[w*chunks+ch] = bucketWindow(points[lo:hi], scalars[lo:hi], uint(w*c), c)
			}(w, ch)
		}
	}
	wg.Wait()
	for w := range totals {
		for ch := 0; ch < chunks; ch++ {
			totals[w].AddAssign(&partial[w*chunks+ch])
		}
	}
	for w := windows - 1; w >= 0; w-- {
		if w != windows-1 {
			for i := 0; i < c; i++ {
				res.DoubleAssign()
			}
		}
		res.AddAssign(&totals[w])
	}
	return res
}

// bucketWindow sums digit*point over one c-bit window (Pippenger buckets).
func bucketWindow(points []bn254.G1Affine, scalars []uint64, shift uint, c int) bn254.G1Jac {
	mask := uint64(1)<<c - 1
	buckets := make([]bn254.G1Jac, mask)
	for i := range points {
		d := (scalars[i] >> shift) & mask
		if d != 0 {
			buckets[d-1].AddMixed(&points[i])
		}
	}
	var sum, total bn254.G1Jac
	for j := len(buckets) - 1; j >= 0; j-- {
		sum.AddAssign(&buckets[j])
		total.AddAssign(&sum)
	}
	return total
}
