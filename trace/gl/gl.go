// Package gl is arithmetic in the Goldilocks field, p = 2^64 - 2^32 + 1, on
// canonical uint64 values (always < p), the representation the pouw VM, its
// traces and their binary format use.
//
// It is small on purpose: the VM's hot loop needs add, sub and mul on plain
// uint64 without the Montgomery conversions of gnark-crypto's
// field/goldilocks (which provers may use for their own work). It imports
// nothing of this module.
package gl

import "math/bits"

// P is the Goldilocks prime 2^64 - 2^32 + 1.
const P uint64 = 0xffffffff00000001

// epsilon is 2^64 mod p = 2^32 - 1.
const epsilon uint64 = 0xffffffff

// Canonical reports whether x is a canonical field element (x < p).
func Canonical(x uint64) bool { return x < P }

// Reduce maps any uint64 to its canonical residue.
func Reduce(x uint64) uint64 {
	if x >= P {
		return x - P
	}
	return x
}

// Add returns a + b mod p for canonical a, b.
func Add(a, b uint64) uint64 {
	s, c := bits.Add64(a, b, 0)
	if c != 0 {
		// a+b = s + 2^64 ≡ s + epsilon; a+b < 2p so the result is < p and
		// s + epsilon cannot overflow.
		return s + epsilon
	}
	if s >= P {
		return s - P
	}
	return s
}

// Sub returns a - b mod p for canonical a, b.
func Sub(a, b uint64) uint64 {
	d, borrow := bits.Sub64(a, b, 0)
	if borrow != 0 {
		// d = a - b + 2^64; we want a - b + p = d - epsilon.
		return d - epsilon
	}
	return d
}

// Neg returns -a mod p for canonical a.
func Neg(a uint64) uint64 {
	if a == 0 {
		return 0
	}
	return P - a
}

// Mul returns a * b mod p for canonical a, b.
func Mul(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return reduce128(hi, lo)
}

// reduce128 reduces hi·2^64 + lo using 2^64 ≡ 2^32 - 1 and 2^96 ≡ -1.
func reduce128(hi, lo uint64) uint64 {
	hiHi := hi >> 32
	hiLo := hi & epsilon
	t0, borrow := bits.Sub64(lo, hiHi, 0)
	if borrow != 0 {
		t0 -= epsilon // cannot underflow: hi·2^64+lo < p^2
	}
	t1 := hiLo * epsilon // < 2^64
	t2, carry := bits.Add64(t0, t1, 0)
	if carry != 0 {
		t2 += epsilon
	}
	if t2 >= P {
		t2 -= P
	}
	return t2
}

// Exp returns a^e mod p.
func Exp(a, e uint64) uint64 {
	r := uint64(1)
	for e > 0 {
		if e&1 == 1 {
			r = Mul(r, a)
		}
		a = Mul(a, a)
		e >>= 1
	}
	return r
}

// Inv returns a^-1 mod p, and 0 for a = 0 (the convention of the VM's inv
// column, where a zero value has no inverse and the column holds 0).
func Inv(a uint64) uint64 {
	if a == 0 {
		return 0
	}
	return Exp(a, P-2)
}

// BatchInv replaces every non-zero element of xs by its inverse (zeros stay
// zero) with one field inversion and three multiplications per element
// (Montgomery's trick). scratch must have len(xs) capacity or be nil.
func BatchInv(xs, scratch []uint64) {
	if cap(scratch) < len(xs) {
		scratch = make([]uint64, len(xs))
	}
	prefix := scratch[:len(xs)]
	acc := uint64(1)
	for i, x := range xs {
		prefix[i] = acc
		if x != 0 {
			acc = Mul(acc, x)
		}
	}
	inv := Inv(acc)
	for i := len(xs) - 1; i >= 0; i-- {
		x := xs[i]
		if x == 0 {
			continue
		}
		xs[i] = Mul(inv, prefix[i])
		inv = Mul(inv, x)
	}
}
