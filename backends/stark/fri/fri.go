// Package fri proves and checks that a function given by its evaluations over
// a coset of a power-of-two subgroup is close to a polynomial of low degree
// (the FRI protocol), with folding factor 4 or 8 and the last layer's
// polynomial sent in the clear as its coefficients.
//
// Layer k holds N_k = N/F^k extension-field evaluations over the coset
// off^(F^k)·⟨ω_{N_k}⟩. Its Merkle leaf i (i < N_k/F) is the F values at
// positions i, i+N_k/F, ..., i+(F-1)·N_k/F, i.e. at x·ω_F^j for
// x = off_k·ω_{N_k}^i; folding with challenge α maps them to
// f'(x^F) = Σ_m α^m c_m where f(X) = Σ_m X^m c_m(X^F). It imports nothing of
// this module but field, merkle, transcript and the parallel helper.
package fri

import (
	"context"
	"errors"
	"fmt"

	"github.com/pouwfarm/pouwfarm/backends/stark/field"
	"github.com/pouwfarm/pouwfarm/backends/stark/internal/par"
	"github.com/pouwfarm/pouwfarm/backends/stark/merkle"
	"github.com/pouwfarm/pouwfarm/backends/stark/transcript"
)

// ErrRejected is returned when a FRI proof does not verify.
var ErrRejected = errors.New("fri: proof rejected")

// ErrNotLowDegree is returned by the prover when the evaluations are not of
// the claimed degree (the statement it was given is false).
var ErrNotLowDegree = errors.New("fri: evaluations exceed the degree bound")

// Params fixes the shape of a FRI proof.
type Params struct {
	Folding      int // 4 or 8
	MaxRemainder int // most coefficients of the remainder polynomial
	DomainSize   int // N: size of layer 0 (power of two)
	DegreeBound  int // the polynomial has degree < DegreeBound (power of two)
	Offset       field.Base
}

// Validate checks the parameters are consistent.
func (p Params) Validate() error {
	pow2 := func(x int) bool { return x > 0 && x&(x-1) == 0 }
	switch {
	case p.Folding != 4 && p.Folding != 8:
		return fmt.Errorf("fri: folding factor %d (want 4 or 8)", p.Folding)
	case !pow2(p.MaxRemainder) || p.MaxRemainder < p.Folding:
		return fmt.Errorf("fri: remainder size %d must be a power of two ≥ the folding factor", p.MaxRemainder)
	case !pow2(p.DomainSize) || !pow2(p.DegreeBound) || p.DomainSize < 2*p.DegreeBound:
		return fmt.Errorf("fri: domain %d and degree bound %d", p.DomainSize, p.DegreeBound)
	}
	return nil
}

// NumLayers is how many folding layers are committed before the remainder.
func (p Params) NumLayers() int {
	n := 0
	for d := p.DegreeBound; d > p.MaxRemainder; d /= p.Folding {
		n++
	}
	return n
}

// RemainderLen is the number of remainder coefficients the proof carries.
func (p Params) RemainderLen() int {
	d := p.DegreeBound
	for d > p.MaxRemainder {
		d /= p.Folding
	}
	return d
}

// LeafBytes is the size of one layer leaf.
func (p Params) LeafBytes() int { return p.Folding * field.ExtBytes }

// Opening is one layer's answer to the queries: the leaves at the distinct
// leaf indices the queries fall into (ascending), F values each, and the
// Merkle multiproof for them.
type Opening struct {
	Leaves [][]field.Ext
	Nodes  []merkle.Digest
}

// Prover holds the committed layers until the query positions are known.
type Prover struct {
	p         Params
	layers    [][]field.Ext
	trees     []*merkle.Tree
	remainder []field.Ext
}

func leafBytes(evals []field.Ext, F, i int, dst []byte) {
	m := len(evals) / F
	for j := range F {
		field.PutExt(dst[j*field.ExtBytes:], &evals[i+j*m])
	}
}

// Commit runs the commit phase over evals (layer 0, which it keeps and may
// fold in place), absorbing every layer root and the remainder into tr and
// drawing the folding challenges from it.
func Commit(ctx context.Context, tr *transcript.Transcript, evals []field.Ext, p Params) (*Prover, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if len(evals) != p.DomainSize {
		return nil, fmt.Errorf("fri: %d evaluations for a domain of %d", len(evals), p.DomainSize)
	}
	pr := &Prover{p: p}
	off := p.Offset
	F := p.Folding
	for range p.NumLayers() {
		cur := evals
		t, err := merkle.Build(ctx, len(cur)/F, p.LeafBytes(), func(i int, dst []byte) { leafBytes(cur, F, i, dst) })
		if err != nil {
			return nil, err
		}
		root := t.Root()
		tr.Absorb("fri-layer", root[:])
		alpha := tr.DrawExt()
		pr.layers = append(pr.layers, cur)
		pr.trees = append(pr.trees, t)
		next, err := foldLayer(ctx, cur, off, alpha, F)
		if err != nil {
			return nil, err
		}
		evals = next
		off = field.ExpBase(off, uint64(F))
	}
	// The remainder: interpolate the last layer and keep its low
	// coefficients; anything above must vanish.
	n := len(evals)
	a0 := make([]field.Base, n)
	a1 := make([]field.Base, n)
	for i := range evals {
		a0[i], a1[i] = evals[i].A0, evals[i].A1
	}
	field.InterpolateCosetSmall(a0, off)
	field.InterpolateCosetSmall(a1, off)
	d := p.RemainderLen()
	for i := d; i < n; i++ {
		if !a0[i].IsZero() || !a1[i].IsZero() {
			return nil, ErrNotLowDegree
		}
	}
	pr.remainder = make([]field.Ext, d)
	for i := range pr.remainder {
		pr.remainder[i] = field.Ext{A0: a0[i], A1: a1[i]}
	}
	tr.Absorb("fri-remainder", EncodeExts(pr.remainder))
	return pr, nil
}

// EncodeExts is the canonical encoding of a vector of extension elements.
func EncodeExts(v []field.Ext) []byte {
	b := make([]byte, len(v)*field.ExtBytes)
	for i := range v {
		field.PutExt(b[i*field.ExtBytes:], &v[i])
	}
	return b
}

// Roots returns the layer commitments.
func (pr *Prover) Roots() []merkle.Digest {
	out := make([]merkle.Digest, len(pr.trees))
	for i, t := range pr.trees {
		out[i] = t.Root()
	}
	return out
}

// Remainder returns the remainder polynomial's coefficients.
func (pr *Prover) Remainder() []field.Ext { return pr.remainder }

// Open answers the queries at the given layer-0 positions (sorted, unique).
func (pr *Prover) Open(positions []int) []Opening {
	out := make([]Opening, len(pr.layers))
	pos := append([]int(nil), positions...)
	F := pr.p.Folding
	for k, evals := range pr.layers {
		m := len(evals) / F
		idx := leafIndices(pos, m)
		op := Opening{Nodes: pr.trees[k].Prove(idx)}
		for _, i := range idx {
			leaf := make([]field.Ext, F)
			for j := range F {
				leaf[j] = evals[i+j*m]
			}
			op.Leaves = append(op.Leaves, leaf)
		}
		out[k] = op
		pos = idx
	}
	return out
}

// leafIndices maps positions of a layer to its sorted distinct leaf indices.
func leafIndices(pos []int, m int) []int {
	seen := map[int]bool{}
	var idx []int
	for _, p := range pos {
		if i := p % m; !seen[i] {
			seen[i] = true
			idx = append(idx, i)
		}
	}
	sortInts(idx)
	return idx
}

func sortInts(a []int) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}

// foldLayer folds evaluations over off·⟨ω_N⟩ into N/F evaluations over
// off^F·⟨ω_{N/F}⟩.
func foldLayer(ctx context.Context, evals []field.Ext, off field.Base, alpha field.Ext, F int) ([]field.Ext, error) {
	n := len(evals)
	m := n / F
	out := make([]field.Ext, m)
	tw := inverseTwiddles(F)
	wInv := field.RootOfUnity(uint64(n))
	wInv.Inverse(&wInv)
	var offInv field.Base
	offInv.Inverse(&off)
	err := par.For(ctx, m, 1<<12, func(lo, hi int) {
		xInv := field.ExpBase(wInv, uint64(lo))
		xInv.Mul(&xInv, &offInv)
		v := make([]field.Ext, F)
		for i := lo; i < hi; i++ {
			for j := range F {
				v[j] = evals[i+j*m]
			}
			out[i] = foldValues(v, xInv, alpha, tw)
			xInv.Mul(&xInv, &wInv)
		}
	})
	return out, err
}

// inverseTwiddles returns tw[j*F+m] = ω_F^(-j·m) / F.
func inverseTwiddles(F int) []field.Base {
	w := field.RootOfUnity(uint64(F))
	w.Inverse(&w)
	fInv := field.New(uint64(F))
	fInv.Inverse(&fInv)
	tw := make([]field.Base, F*F)
	for j := range F {
		for m := range F {
			t := field.ExpBase(w, uint64(j*m%F))
			tw[j*F+m].Mul(&t, &fInv)
		}
	}
	return tw
}

// foldValues computes Σ_m α^m c_m where c_m = x^-m/F · Σ_j v_j ω_F^(-jm):
// the coefficients of the degree-<F polynomial through (x·ω_F^j, v_j),
// evaluated at α.
func foldValues(v []field.Ext, xInv field.Base, alpha field.Ext, tw []field.Base) field.Ext {
	F := len(v)
	var beta field.Ext
	field.MulBase(&beta, &alpha, &xInv) // α/x
	var acc field.Ext
	for m := F - 1; m >= 0; m-- {
		var u field.Ext
		for j := range F {
			field.AddMulBase(&u, &v[j], &tw[j*F+m])
		}
		acc.Mul(&acc, &beta)
		acc.Add(&acc, &u)
	}
	return acc
}

// Commitments is what the verifier reads before the queries.
type Commitments struct {
	Roots     []merkle.Digest
	Remainder []field.Ext
}

// ReadCommitments replays the commit phase on the verifier's transcript and
// returns the folding challenges.
func ReadCommitments(tr *transcript.Transcript, p Params, c Commitments) ([]field.Ext, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if len(c.Roots) != p.NumLayers() || len(c.Remainder) != p.RemainderLen() {
		return nil, fmt.Errorf("%w: %d layers and %d remainder coefficients, want %d and %d",
			ErrRejected, len(c.Roots), len(c.Remainder), p.NumLayers(), p.RemainderLen())
	}
	alphas := make([]field.Ext, len(c.Roots))
	for k, r := range c.Roots {
		tr.Absorb("fri-layer", r[:])
		alphas[k] = tr.DrawExt()
	}
	tr.Absorb("fri-remainder", EncodeExts(c.Remainder))
	return alphas, nil
}

// Verify checks the openings against the layer-0 values at the positions
// (sorted, unique), which the caller has computed itself (the DEEP values).
func Verify(p Params, alphas []field.Ext, c Commitments, openings []Opening, positions []int, values []field.Ext) error {
	if len(openings) != len(c.Roots) || len(positions) != len(values) || len(alphas) != len(c.Roots) {
		return fmt.Errorf("%w: malformed openings", ErrRejected)
	}
	F := p.Folding
	n := p.DomainSize
	off := p.Offset
	pos := append([]int(nil), positions...)
	expect := append([]field.Ext(nil), values...)
	tw := inverseTwiddles(F)
	for k, op := range openings {
		m := n / F
		idx := leafIndices(pos, m)
		if len(op.Leaves) != len(idx) {
			return fmt.Errorf("%w: layer %d opens %d leaves, want %d", ErrRejected, k, len(op.Leaves), len(idx))
		}
		hashes := make([]merkle.Digest, len(idx))
		buf := make([]byte, p.LeafBytes())
		where := make(map[int]int, len(idx))
		for li, leaf := range op.Leaves {
			if len(leaf) != F {
				return fmt.Errorf("%w: layer %d leaf of %d values", ErrRejected, k, len(leaf))
			}
			for j := range leaf {
				field.PutExt(buf[j*field.ExtBytes:], &leaf[j])
			}
			hashes[li] = merkle.HashLeaf(buf)
			where[idx[li]] = li
		}
		if err := merkle.Verify(c.Roots[k], m, idx, hashes, op.Nodes); err != nil {
			return fmt.Errorf("%w: layer %d: %v", ErrRejected, k, err)
		}
		w := field.RootOfUnity(uint64(n))
		for q := range pos {
			i := pos[q] % m
			leaf := op.Leaves[where[i]]
			if got := leaf[pos[q]/m]; !got.Equal(&expect[q]) {
				return fmt.Errorf("%w: layer %d value at position %d does not match", ErrRejected, k, pos[q])
			}
			x := field.ExpBase(w, uint64(i))
			x.Mul(&x, &off)
			x.Inverse(&x)
			expect[q] = foldValues(leaf, x, alphas[k], tw)
			pos[q] = i
		}
		n = m
		off = field.ExpBase(off, uint64(F))
	}
	w := field.RootOfUnity(uint64(n))
	for q := range pos {
		x := field.ExpBase(w, uint64(pos[q]))
		x.Mul(&x, &off)
		if got := field.EvalPolyExtAt(c.Remainder, x); !got.Equal(&expect[q]) {
			return fmt.Errorf("%w: remainder disagrees at position %d", ErrRejected, positions[q])
		}
	}
	return nil
}
