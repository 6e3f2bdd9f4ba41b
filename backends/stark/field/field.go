// Package field is the arithmetic the STARK runs on: the Goldilocks prime
// field p = 2^64 - 2^32 + 1 (gnark-crypto's field/goldilocks, Montgomery
// form) and its degree-2 extension F_p[u]/(u^2 - 7) (gnark-crypto's
// extensions.E2), which carries all verifier randomness and out-of-domain
// work so that soundness does not rest on a 64-bit field.
//
// It owns the canonical byte encodings of both (little-endian u64, values
// ≥ p rejected) and a few helpers gnark-crypto lacks (uint64 powers, powers
// tables, low-degree extension on a coset). It imports nothing of this
// module.
package field

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/consensys/gnark-crypto/field/goldilocks"
	"github.com/consensys/gnark-crypto/field/goldilocks/extensions"
)

// Base is an element of the Goldilocks field.
type Base = goldilocks.Element

// Ext is an element of the quadratic extension F_p[u]/(u^2-7).
type Ext = extensions.E2

// Modulus is p = 2^64 - 2^32 + 1.
const Modulus uint64 = 0xffffffff00000001

// BaseBytes and ExtBytes are the sizes of the canonical encodings.
const (
	BaseBytes = 8
	ExtBytes  = 16
)

// ErrNonCanonical is returned when an encoded element is not below p.
var ErrNonCanonical = errors.New("field element not canonical (>= p)")

// Generator is the multiplicative generator of F_p^* (7); it is the offset of
// every low-degree-extension coset.
func Generator() Base { return goldilocks.NewElement(7) }

// New returns v mod p as a field element.
func New(v uint64) Base { return goldilocks.NewElement(v) }

// Lift embeds a base element into the extension.
func Lift(b Base) Ext { return Ext{A0: b} }

// NewExt returns a0 + a1·u.
func NewExt(a0, a1 uint64) Ext { return Ext{A0: New(a0), A1: New(a1)} }

// PutBase writes the canonical little-endian encoding of b into dst[:8].
func PutBase(dst []byte, b *Base) { binary.LittleEndian.PutUint64(dst, b.Uint64()) }

// ReadBase decodes a canonical element from src[:8].
func ReadBase(src []byte) (Base, error) {
	v := binary.LittleEndian.Uint64(src)
	if v >= Modulus {
		return Base{}, fmt.Errorf("%w: %#x", ErrNonCanonical, v)
	}
	return New(v), nil
}

// PutExt writes a0 then a1, each canonical little-endian, into dst[:16].
func PutExt(dst []byte, e *Ext) {
	PutBase(dst, &e.A0)
	PutBase(dst[8:], &e.A1)
}

// ReadExt decodes an extension element from src[:16].
func ReadExt(src []byte) (Ext, error) {
	a0, err := ReadBase(src)
	if err != nil {
		return Ext{}, err
	}
	a1, err := ReadBase(src[8:])
	if err != nil {
		return Ext{}, err
	}
	return Ext{A0: a0, A1: a1}, nil
}

// ExpBase returns x^k.
func ExpBase(x Base, k uint64) Base {
	r := goldilocks.One()
	for k > 0 {
		if k&1 == 1 {
			r.Mul(&r, &x)
		}
		x.Square(&x)
		k >>= 1
	}
	return r
}

// ExpExt returns x^k.
func ExpExt(x Ext, k uint64) Ext {
	var r Ext
	r.SetOne()
	for k > 0 {
		if k&1 == 1 {
			r.Mul(&r, &x)
		}
		x.Square(&x)
		k >>= 1
	}
	return r
}

// RootOfUnity returns a primitive n-th root of unity (n a power of two,
// n ≤ 2^32), the generator gnark-crypto's FFT domain of size n uses.
func RootOfUnity(n uint64) Base {
	if n == 0 || n&(n-1) != 0 || n > 1<<32 {
		panic(fmt.Sprintf("field: no root of unity of order %d", n))
	}
	// 1753635133440165772 is a primitive 2^32-th root of unity (the one
	// gnark-crypto derives); square it down to order n.
	w := New(1753635133440165772)
	for m := uint64(1 << 32); m > n; m >>= 1 {
		w.Square(&w)
	}
	return w
}

// MulBase sets z = x·b (extension by base: two base multiplications).
func MulBase(z, x *Ext, b *Base) *Ext {
	z.A0.Mul(&x.A0, b)
	z.A1.Mul(&x.A1, b)
	return z
}

// AddMulBase sets acc += x·b.
func AddMulBase(acc, x *Ext, b *Base) {
	var t Base
	t.Mul(&x.A0, b)
	acc.A0.Add(&acc.A0, &t)
	t.Mul(&x.A1, b)
	acc.A1.Add(&acc.A1, &t)
}

// EvalPolyExtAt evaluates the polynomial with extension coefficients c (c[0]
// constant) at the base point x by Horner's rule.
func EvalPolyExtAt(c []Ext, x Base) Ext {
	var r Ext
	for i := len(c) - 1; i >= 0; i-- {
		MulBase(&r, &r, &x)
		r.Add(&r, &c[i])
	}
	return r
}

// EvalPolyBaseAtExt evaluates the polynomial with base coefficients c at an
// extension point z by Horner's rule.
func EvalPolyBaseAtExt(c []Base, z Ext) Ext {
	var r Ext
	for i := len(c) - 1; i >= 0; i-- {
		r.Mul(&r, &z)
		r.A0.Add(&r.A0, &c[i])
	}
	return r
}

// EvalPolyExtAtExt evaluates the polynomial with extension coefficients c at
// an extension point z.
func EvalPolyExtAtExt(c []Ext, z Ext) Ext {
	var r Ext
	for i := len(c) - 1; i >= 0; i-- {
		r.Mul(&r, &z)
		r.Add(&r, &c[i])
	}
	return r
}

// BatchInvert returns the inverses of v (zeros stay zero).
func BatchInvert(v []Base) []Base { return goldilocks.BatchInvert(v) }

// BatchInvertExt returns the inverses of v (zeros stay zero).
func BatchInvertExt(v []Ext) []Ext { return extensions.BatchInvertE2(v) }
