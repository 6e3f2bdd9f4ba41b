package field

import "math/bits"

// A radix-2 number-theoretic transform specialised to Goldilocks, used for
// the low-degree extension, where gnark-crypto's generic butterflies (a
// Montgomery multiplication behind a call per butterfly) dominate the
// prover. Values stay in gnark's Montgomery form: multiplying the
// Montgomery word x·R by a twiddle w kept in canonical form and reducing
// the plain 128-bit product gives (x·w)·R, the Montgomery form of the
// product. The tests check it against gnark-crypto's FFT.

const epsilon = 1<<32 - 1 // 2^64 mod p

// reduce128 returns hi·2^64 + lo mod p, canonical. With hi = hh·2^32 + hl:
// 2^64 ≡ 2^32 − 1 and 2^96 ≡ −1, so the value ≡ lo − hh + hl·(2^32 − 1).
func reduce128(hi, lo uint64) uint64 {
	hh, hl := hi>>32, hi&epsilon
	t0, borrow := bits.Sub64(lo, hh, 0)
	if borrow != 0 {
		t0 -= epsilon // lo < hh < 2^32, so t0 > epsilon: no second borrow
	}
	t1 := hl * epsilon
	r, carry := bits.Add64(t0, t1, 0)
	if carry != 0 {
		r += epsilon // t1 ≤ (2^32−1)², so this cannot carry again
	}
	if r >= Modulus {
		r -= Modulus
	}
	return r
}

func mulRaw(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return reduce128(hi, lo)
}

func addRaw(a, b uint64) uint64 {
	s, c := bits.Add64(a, b, 0)
	if c != 0 || s >= Modulus {
		s -= Modulus // wraps correctly in both cases
	}
	return s
}

func subRaw(a, b uint64) uint64 {
	d, br := bits.Sub64(a, b, 0)
	if br != 0 {
		d += Modulus
	}
	return d
}

// nttPlan holds the twiddles of a size-n transform: tw[h+j] = ω_{2h}^j
// (canonical) for each half-size h = 1, 2, ..., n/2 and j < h.
type nttPlan struct {
	n         int
	tw, twInv []uint64 // twInv: the same with ω^-1, for interpolation
	nInv      Base
}

func newNTTPlan(n int) *nttPlan {
	p := &nttPlan{n: n, tw: make([]uint64, max(n, 2)), twInv: make([]uint64, max(n, 2))}
	for h := 1; h < n; h <<= 1 {
		w := RootOfUnity(uint64(2 * h))
		var wi Base
		wi.Inverse(&w)
		wc, wic := w.Uint64(), wi.Uint64()
		x, y := uint64(1), uint64(1)
		for j := range h {
			p.tw[h+j], p.twInv[h+j] = x, y
			x, y = mulRaw(x, wc), mulRaw(y, wic)
		}
	}
	p.nInv = New(uint64(n))
	p.nInv.Inverse(&p.nInv)
	return p
}

// nttBlock is the size of the sub-transforms done while they fit in the L1
// cache (4096 elements = 32 KiB): the first log2(nttBlock) stages run block
// by block, the rest over the whole array.
const nttBlock = 1 << 12

// dit transforms x in place: input in bit-reversed order, output the
// evaluations at ω_n^i in natural order (as gnark's FFT with DIT).
func (p *nttPlan) dit(x []Base) { p.run(x, p.tw) }

// ditInv is dit with ω^-1: n times the inverse transform.
func (p *nttPlan) ditInv(x []Base) { p.run(x, p.twInv) }

func (p *nttPlan) run(x []Base, tw []uint64) {
	n := p.n
	blk := min(n, nttBlock)
	for s := 0; s < n; s += blk {
		stages(x[s:s+blk], tw, 1, blk)
	}
	stages(x, tw, blk, n)
}

// stages runs the butterfly stages with half-sizes h0, 2·h0, ... < hEnd
// over x (whose length is a multiple of 2·h for each of them).
func stages(x []Base, twiddles []uint64, h0, hEnd int) {
	n := len(x)
	for h := h0; h < hEnd; h <<= 1 {
		if h == 1 { // twiddle 1
			for s := 0; s < n; s += 2 {
				a, b := x[s][0], x[s+1][0]
				x[s][0], x[s+1][0] = addRaw(a, b), subRaw(a, b)
			}
			continue
		}
		tw := twiddles[h : 2*h]
		for s := 0; s < n; s += 2 * h {
			lo := x[s : s+h : s+h]
			hi := x[s+h : s+2*h : s+2*h]
			for j := range lo {
				a := lo[j][0]
				b := mulRaw(hi[j][0], tw[j])
				lo[j][0] = addRaw(a, b)
				hi[j][0] = subRaw(a, b)
			}
		}
	}
}
