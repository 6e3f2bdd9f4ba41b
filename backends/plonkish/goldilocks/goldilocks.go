// Package goldilocks emulates Goldilocks arithmetic (p = 2^64 - 2^32 + 1)
// inside a PLONKish circuit over BN254's scalar field r (~2^254).
//
// The gadget. A Goldilocks value is held in one BN254 cell as the
// integer in [0, p). An identity mod p such as a·b ≡ c (mod p) is checked
// natively as the integer equation a·b = c + q·p, with the quotient q and
// the result c decomposed into eight 8-bit limbs, each looked up in a
// 256-row range table (q, c < 2^64). Since a, b, c, q < 2^64, both sides
// are below 2^129 ≪ r, so the native equation holds iff the integer one
// does: no wrap-around in BN254 can fake it. The result is made canonical
// (c < p, not merely < 2^64) with one more constraint on its halves
// hi = c >> 32 and lo = c mod 2^32: p = (2^32 − 1)·2^32 + 1, so c < p iff
// hi < 2^32 − 1 or lo = 0, enforced as lo·(1 − (2^32 − 1 − hi)·w) = 0
// with a prover-supplied w (the inverse of 2^32 − 1 − hi, or 0).
//
// Addition and subtraction use the same equation with q ∈ {0, 1} (implied:
// a + b < 2p). Constraints that cannot wrap (booleans, one-hot sums,
// selections, equalities with canonical values) need no gadget at all.
//
// This package owns the gadget only; it imports the circuit layer and
// nothing else of this module.
package goldilocks

import (
	"math/bits"

	"github.com/consensys/gnark-crypto/ecc/bn254/fr"

	"github.com/pouwfarm/pouwfarm/backends/plonkish/circuit"
)

// P is the Goldilocks modulus.
const P uint64 = 0xffffffff00000001

// NumLimbs limbs of LimbBits bits hold a 64-bit value.
const (
	NumLimbs = 8
	LimbBits = 8
	// TableRows is the size of the range table the limbs are looked up in.
	TableRows = 1 << LimbBits
)

// PFr is p as a BN254 scalar.
func PFr() fr.Element {
	var e fr.Element
	e.SetUint64(P)
	return e
}

// Word is a 64-bit value decomposed into range-checked limbs, optionally
// constrained to be a canonical Goldilocks element (< p).
type Word struct {
	Limbs [NumLimbs]circuit.Column
	W     circuit.Column // canonicity helper (canonical words only)
	canon bool
}

// ConfigureRangeTable declares the fixed range table column.
func ConfigureRangeTable(cs *circuit.ConstraintSystem) circuit.Column {
	return cs.FixedColumn()
}

// AssignRangeTable fills the table with 0..255; the other usable rows
// keep 0, which is a table value (the lookup needs no padding flag).
func AssignRangeTable(a *circuit.Assignment, table circuit.Column) {
	for i := 0; i < TableRows; i++ {
		a.SetUint64(table, i, uint64(i))
	}
}

// ConfigureWord declares the limbs and, for canonical words, the
// canonicity gate on the rows where sel is 1. RangeCheck must then look
// the limbs up.
func ConfigureWord(cs *circuit.ConstraintSystem, name string, sel *circuit.Expr, canonical bool) *Word {
	w := &Word{canon: canonical}
	for i := range w.Limbs {
		w.Limbs[i] = cs.AdviceColumn()
	}
	if canonical {
		w.W = cs.AdviceColumn()
		hi, lo := w.half(4), w.half(0)
		top := circuit.Const(1<<32 - 1).Sub(hi)
		cs.CreateGate(name+".canonical",
			sel.Mul(lo.Mul(circuit.Const(1).Sub(top.Mul(w.W.Cur())))))
	}
	return w
}

// RangeCheck looks every limb of the words up in the range table, in one
// lookup argument (on every usable row: unused rows hold zero limbs, a
// table value).
func RangeCheck(cs *circuit.ConstraintSystem, name string, table circuit.Column, words ...*Word) {
	var ins []*circuit.Expr
	for _, w := range words {
		for i := range w.Limbs {
			ins = append(ins, w.Limbs[i].Cur())
		}
	}
	cs.AddRangeLookup(name, table, ins...)
}

func (w *Word) half(from int) *circuit.Expr {
	terms := make([]*circuit.Expr, 4)
	for i := 0; i < 4; i++ {
		terms[i] = w.Limbs[from+i].Cur().Mul(circuit.Const(1 << (LimbBits * i)))
	}
	return circuit.Sum(terms...)
}

// Expr is the word's value, sum limb_i 2^(8i).
func (w *Word) Expr() *circuit.Expr {
	terms := make([]*circuit.Expr, NumLimbs)
	for i := range terms {
		terms[i] = w.Limbs[i].Cur().Mul(circuit.Const(1 << (LimbBits * i)))
	}
	return circuit.Sum(terms...)
}

// Assign writes v's limbs (and the canonicity helper) at row.
func (w *Word) Assign(a *circuit.Assignment, row int, v uint64) {
	for i := range w.Limbs {
		a.SetUint64(w.Limbs[i], row, (v>>(LimbBits*i))&(TableRows-1))
	}
	if w.canon {
		hi := v >> 32
		var t fr.Element
		if hi != 1<<32-1 {
			t.SetUint64(1<<32 - 1 - hi)
			t.Inverse(&t)
		}
		a.Set(w.W, row, t)
	}
}

// MulQuo returns q, c with a·b = q·p + c, c < p (a, b < 2^64).
func MulQuo(a, b uint64) (q, c uint64) {
	hi, lo := bits.Mul64(a, b)
	// hi < p whenever a, b < p; in general reduce hi first
	q1, r1 := bits.Div64(0, hi, P)
	q0, c := bits.Div64(r1, lo, P)
	_ = q1 // a, b < p ⇒ hi < p ⇒ q1 = 0 and q fits 64 bits
	return q0, c
}

// AddQuo returns q, c with a + b = q·p + c (a, b < p).
func AddQuo(a, b uint64) (q, c uint64) {
	s, carry := bits.Add64(a, b, 0)
	if carry == 1 || s >= P {
		return 1, s - P // wraps correctly when carry = 1
	}
	return 0, s
}

// SubQuo returns q, c with a + q·p = b + c, i.e. c = a − b mod p (a, b < p).
func SubQuo(a, b uint64) (q, c uint64) {
	if a >= b {
		return 0, a - b
	}
	return 1, a + (P - b)
}
