// Package verifier checks STARK proofs made by package prover against an
// air.AIR and the statement seed. It never needs the trace: it replays the
// transcript, checks the options and their conjectured security against a
// minimum, the out-of-domain consistency of the composition polynomial, the
// grinding, every Merkle opening, the DEEP values at the queries and FRI.
//
// It imports air, field, fri, merkle, proof and transcript of this module.
package verifier

import (
	"errors"
	"fmt"
	"math/bits"

	"github.com/pouwfarm/pouwfarm/backends/stark/air"
	"github.com/pouwfarm/pouwfarm/backends/stark/field"
	"github.com/pouwfarm/pouwfarm/backends/stark/fri"
	"github.com/pouwfarm/pouwfarm/backends/stark/internal/deep"
	"github.com/pouwfarm/pouwfarm/backends/stark/merkle"
	"github.com/pouwfarm/pouwfarm/backends/stark/proof"
	"github.com/pouwfarm/pouwfarm/backends/stark/transcript"
)

// ErrRejected is returned (wrapped with the reason) for a proof that does
// not verify.
var ErrRejected = errors.New("stark verifier")

// ErrInsecure is returned for a proof whose options give less than the
// required conjectured security; it wraps ErrRejected.
var ErrInsecure = fmt.Errorf("%w: security below the minimum", ErrRejected)

// DefaultMinSecurity is the default minimum conjectured security in bits.
const DefaultMinSecurity = 100

func reject(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrRejected, fmt.Sprintf(format, a...))
}

// Verify checks p against a and seed, requiring at least minSecurity bits of
// conjectured security. It returns the proof's security level.
func Verify(a air.AIR, seed []byte, p *proof.Proof, minSecurity int) (int, error) {
	opts := p.Options
	if err := opts.Validate(); err != nil {
		return 0, reject("%v", err)
	}
	n, w, wa := a.TraceLength(), a.MainWidth(), a.AuxWidth()
	k := air.CompositionWidth(a)
	logN := bits.TrailingZeros(uint(n))
	if p.LogTrace != logN || p.MainWidth != w || p.AuxWidth != 2*wa || p.CompWidth != 2*k {
		return 0, reject("proof shape (2^%d rows, widths %d/%d/%d) does not match the statement (2^%d, %d/%d/%d)",
			p.LogTrace, p.MainWidth, p.AuxWidth, p.CompWidth, logN, w, 2*wa, 2*k)
	}
	if k >= opts.Blowup {
		return 0, reject("blowup %d too small for constraint degree %d", opts.Blowup, air.MaxDegree(a))
	}
	sec := opts.ConjecturedSecurity(n)
	if sec < minSecurity {
		return sec, fmt.Errorf("%w: %d bits conjectured, %d required", ErrInsecure, sec, minSecurity)
	}
	N := n * opts.Blowup

	tr := transcript.New(seed)
	tr.Absorb("context", proof.Context(opts, logN, w, 2*wa, 2*k))
	tr.Absorb("main", p.MainRoot[:])
	ch := tr.DrawExts(a.NumChallenges())
	if cc, ok := a.(interface{ CheckChallenges([]field.Ext) error }); ok {
		if err := cc.CheckChallenges(ch); err != nil {
			return sec, reject("%v", err)
		}
	}
	if wa > 0 {
		tr.Absorb("aux", p.AuxRoot[:])
	}
	assert, auxAs := a.Assertions(), a.AuxAssertions(ch)
	groups := a.Groups()
	nc := air.NumConstraints(a)
	coef := tr.DrawExts(nc + len(assert) + len(auxAs))
	tr.Absorb("composition", p.CompRoot[:])
	z := tr.DrawExt()
	tr.Absorb("ood", p.OODBytes())

	// Out-of-domain consistency: C(z) from the trace frame equals the
	// composition columns recombined, Σ_h z^(h·n) H_h(z).
	g := field.RootOfUnity(uint64(n))
	zn := field.ExpExt(z, uint64(n))
	one := field.Lift(field.New(1))
	var znm1 field.Ext
	znm1.Sub(&zn, &one)
	if znm1.IsZero() {
		return sec, reject("out-of-domain point in the trace domain")
	}
	var invZn field.Ext
	invZn.Inverse(&znm1)
	// zMinus returns z − g^r, rejecting the (negligible) case that it is 0.
	zMinus := func(r int) (field.Ext, error) {
		var den field.Ext
		gr := field.Lift(field.ExpBase(g, uint64(r)))
		den.Sub(&z, &gr)
		if den.IsZero() {
			return den, reject("out-of-domain point on a constrained row")
		}
		return den, nil
	}
	var cz field.Ext
	k0 := 0
	for gi, grp := range groups {
		m := len(grp.Degrees)
		out := make([]field.Ext, m)
		a.EvalExt(gi, p.OODMainCur, p.OODMainNext, p.OODAuxCur, p.OODAuxNext, ch, out)
		var gs field.Ext
		for j := range m {
			var t field.Ext
			t.Mul(&coef[k0+j], &out[j])
			gs.Add(&gs, &t)
		}
		k0 += m
		switch grp.Divisor {
		case air.AllRows:
			gs.Mul(&gs, &invZn)
		case air.AllRowsExcept:
			gs.Mul(&gs, &invZn)
			for _, r := range grp.Rows {
				if r < 0 || r >= n {
					return sec, reject("excluded row out of the trace")
				}
				den, err := zMinus(r)
				if err != nil {
					return sec, err
				}
				gs.Mul(&gs, &den)
			}
		case air.OneRow:
			if len(grp.Rows) != 1 || grp.Rows[0] < 0 || grp.Rows[0] >= n {
				return sec, reject("single-row group without one row in the trace")
			}
			den, err := zMinus(grp.Rows[0])
			if err != nil {
				return sec, err
			}
			den.Inverse(&den)
			gs.Mul(&gs, &den)
		}
		cz.Add(&cz, &gs)
	}
	boundary := func(value field.Ext, row int, c *field.Ext, cell *field.Ext) error {
		den, err := zMinus(row)
		if err != nil {
			return err
		}
		den.Inverse(&den)
		var num field.Ext
		num.Sub(cell, &value)
		num.Mul(&num, c)
		num.Mul(&num, &den)
		cz.Add(&cz, &num)
		return nil
	}
	for i, as := range assert {
		if as.Column < 0 || as.Column >= w || as.Row < 0 || as.Row >= n {
			return sec, reject("assertion out of the trace")
		}
		if err := boundary(field.Lift(as.Value), as.Row, &coef[nc+i], &p.OODMainCur[as.Column]); err != nil {
			return sec, err
		}
	}
	for i, as := range auxAs {
		if as.Column < 0 || as.Column >= wa || as.Row < 0 || as.Row >= n {
			return sec, reject("aux assertion out of the trace")
		}
		if err := boundary(as.Value, as.Row, &coef[nc+len(assert)+i], &p.OODAuxCur[as.Column]); err != nil {
			return sec, err
		}
	}
	var hz, zpow field.Ext
	zpow.SetOne()
	for h := range k {
		var t field.Ext
		t.Mul(&zpow, &p.OODComp[h])
		hz.Add(&hz, &t)
		zpow.Mul(&zpow, &zn)
	}
	if !hz.Equal(&cz) {
		return sec, reject("composition polynomial disagrees with the constraints at the out-of-domain point")
	}

	// DEEP coefficients, FRI commitments, grinding, queries.
	var zg field.Ext
	field.MulBase(&zg, &z, &g)
	segs := []deep.Segment{{OODZ: p.OODMainCur, OODZG: p.OODMainNext}}
	if wa > 0 {
		segs = append(segs, deep.Segment{Ext: true, OODZ: p.OODAuxCur, OODZG: p.OODAuxNext})
	}
	segs = append(segs, deep.Segment{Ext: true, OODZ: p.OODComp})
	dc := deep.Draw(tr, segs)

	fp := fri.Params{Folding: opts.Folding, MaxRemainder: opts.MaxRemainder, DomainSize: N, DegreeBound: n, Offset: field.Generator()}
	fc := fri.Commitments{Roots: p.FRIRoots, Remainder: p.Remainder}
	alphas, err := fri.ReadCommitments(tr, fp, fc)
	if err != nil {
		return sec, fmt.Errorf("%w: %w", ErrRejected, err)
	}
	if !tr.CheckPoW(p.Nonce, opts.GrindingBits) {
		return sec, reject("proof-of-work nonce does not meet %d bits", opts.GrindingBits)
	}
	pos := tr.DrawPositions(p.Nonce, opts.Queries, N)

	opened := []proof.Segment{p.Main}
	widths := []int{w}
	if wa > 0 {
		opened = append(opened, p.Aux)
		widths = append(widths, 2*wa)
	}
	opened = append(opened, p.Comp)
	widths = append(widths, 2*k)
	roots := []merkle.Digest{p.MainRoot}
	if wa > 0 {
		roots = append(roots, p.AuxRoot)
	}
	roots = append(roots, p.CompRoot)
	for s, seg := range opened {
		if len(seg.Rows) != len(pos) {
			return sec, reject("segment %d opens %d rows, want %d", s, len(seg.Rows), len(pos))
		}
		hashes := make([]merkle.Digest, len(pos))
		buf := make([]byte, 8*widths[s])
		for i, row := range seg.Rows {
			if len(row) != widths[s] {
				return sec, reject("segment %d row of %d values", s, len(row))
			}
			for c := range row {
				field.PutBase(buf[8*c:], &row[c])
			}
			hashes[i] = merkle.HashLeaf(buf)
		}
		if err := merkle.Verify(roots[s], N, pos, hashes, seg.Nodes); err != nil {
			return sec, reject("segment %d: %v", s, err)
		}
	}
	off := field.Generator()
	wN := field.RootOfUnity(uint64(N))
	vals := make([]field.Ext, len(pos))
	rows := make([][]field.Base, len(opened))
	for q, x := range pos {
		for s := range opened {
			rows[s] = opened[s].Rows[q]
		}
		num1, num2 := dc.Numerators(rows)
		xb := field.ExpBase(wN, uint64(x))
		xb.Mul(&xb, &off)
		lx := field.Lift(xb)
		var d1, d2 field.Ext
		d1.Sub(&lx, &z)
		d2.Sub(&lx, &zg)
		d1.Inverse(&d1)
		d2.Inverse(&d2)
		num1.Mul(&num1, &d1)
		num2.Mul(&num2, &d2)
		vals[q].Add(&num1, &num2)
	}
	if err := fri.Verify(fp, alphas, fc, p.FRI, pos, vals); err != nil {
		return sec, fmt.Errorf("%w: %w", ErrRejected, err)
	}
	return sec, nil
}
