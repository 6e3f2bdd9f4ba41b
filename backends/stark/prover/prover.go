// Package prover builds STARK proofs for any air.AIR: low-degree extension of
// the trace on a coset, BLAKE3 Merkle commitments over LDE rows, auxiliary
// columns from challenges committed after the main trace, constraint
// composition with random coefficients, DEEP composition at an
// out-of-domain point, FRI, grinding, and the query openings.
//
// Every phase runs on all cores and checks its context between chunks, so a
// cancelled proof returns within a fraction of a second. Memory for a trace
// of n rows, w main columns, a auxiliary (extension) columns, blowup b and
// composition width k: about 8·n·(w + b·(w + 2a + 2k + 4)) bytes plus
// 2·b·n·32 bytes per Merkle tree (docs/proof-formats.md gives figures).
//
// It imports air, field, fri, merkle, proof and transcript of this module.
package prover

import (
	"context"
	"errors"
	"fmt"
	"math/bits"

	"github.com/pouwfarm/pouwfarm/backends/stark/air"
	"github.com/pouwfarm/pouwfarm/backends/stark/field"
	"github.com/pouwfarm/pouwfarm/backends/stark/fri"
	"github.com/pouwfarm/pouwfarm/backends/stark/internal/par"
	"github.com/pouwfarm/pouwfarm/backends/stark/merkle"
	"github.com/pouwfarm/pouwfarm/backends/stark/proof"
	"github.com/pouwfarm/pouwfarm/backends/stark/transcript"
)

// ErrUnsatisfied is returned when the trace does not satisfy the AIR: the
// composition polynomial is not of the degree an honest trace gives.
var ErrUnsatisfied = errors.New("stark: trace does not satisfy the constraints")

// chunk is the number of LDE points one parallel task handles.
const chunk = 1 << 12

// segment is a set of base-field columns committed together: their
// coefficients (trace columns only), their LDE and the Merkle tree over LDE
// rows.
type segment struct {
	coeffs [][]field.Base
	lde    [][]field.Base
	tree   *merkle.Tree
}

func commit(ctx context.Context, d *field.Domains, cols [][]field.Base, keepCoeffs bool) (*segment, error) {
	w, b := len(cols), d.Blowup
	s := &segment{lde: make([][]field.Base, w)}
	coeffs := cols
	if keepCoeffs {
		s.coeffs = make([][]field.Base, w)
		err := par.Each(ctx, w, func(c int) {
			co := append([]field.Base(nil), cols[c]...)
			d.Interpolate(co)
			s.coeffs[c] = co
		})
		if err != nil {
			return nil, err
		}
		coeffs = s.coeffs
	}
	for c := range s.lde {
		s.lde[c] = make([]field.Base, d.LDESize)
	}
	// One task per (column, coset): fine-grained enough that a cancelled
	// context stops the extension within one size-n transform. Consecutive
	// tasks take different columns, so the workers never write interleaved
	// points of one column (the same cache lines) at once.
	scratch := make(chan []field.Base, par.Workers())
	err := par.Each(ctx, w*b, func(t int) {
		var tmp []field.Base
		select {
		case tmp = <-scratch:
		default:
			tmp = make([]field.Base, d.N)
		}
		d.ExtendCoset(coeffs[t%w], t/w, s.lde[t%w], tmp)
		select {
		case scratch <- tmp:
		default:
		}
	})
	if err != nil {
		return nil, err
	}
	s.tree, err = merkle.Build(ctx, d.LDESize, 8*w, func(i int, dst []byte) {
		for c := range w {
			field.PutBase(dst[8*c:], &s.lde[c][i])
		}
	})
	return s, err
}

func (s *segment) open(pos []int) proof.Segment {
	out := proof.Segment{Nodes: s.tree.Prove(pos)}
	for _, p := range pos {
		row := make([]field.Base, len(s.lde))
		for c := range s.lde {
			row[c] = s.lde[c][p]
		}
		out.Rows = append(out.Rows, row)
	}
	return out
}

// splitExt turns extension columns into pairs of base columns (A0, A1).
func splitExt(cols [][]field.Ext) [][]field.Base {
	out := make([][]field.Base, 0, 2*len(cols))
	for _, c := range cols {
		a0 := make([]field.Base, len(c))
		a1 := make([]field.Base, len(c))
		for i := range c {
			a0[i], a1[i] = c[i].A0, c[i].A1
		}
		out = append(out, a0, a1)
	}
	return out
}

// joinExt returns e0 + u·e1 where u² = 7.
func joinExt(e0, e1 field.Ext) field.Ext {
	var t field.Base
	t.SetUint64(7)
	t.Mul(&t, &e1.A1)
	var r field.Ext
	r.A0.Add(&e0.A0, &t)
	r.A1.Add(&e0.A1, &e1.A0)
	return r
}

// FloorCommit does only the first phase of Prove — the main trace's LDE and
// its Merkle commitment — and returns the root; the benchmarks use it as the
// floor that the whole prover is compared against.
func FloorCommit(ctx context.Context, main [][]field.Base, blowup int) (merkle.Digest, error) {
	d, err := field.NewDomains(len(main[0]), blowup)
	if err != nil {
		return merkle.Digest{}, err
	}
	s, err := commit(ctx, d, main, true)
	if err != nil {
		return merkle.Digest{}, err
	}
	return s.tree.Root(), nil
}

// Prove proves that main (column-major, len(main) = a.MainWidth(), each
// a.TraceLength() long) satisfies a. seed is the statement, hashed first
// into the transcript.
func Prove(ctx context.Context, a air.AIR, main [][]field.Base, seed []byte, opts air.Options) (*proof.Proof, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	n, w, wa := a.TraceLength(), a.MainWidth(), a.AuxWidth()
	if len(main) != w {
		return nil, fmt.Errorf("stark: trace has %d columns, AIR wants %d", len(main), w)
	}
	for _, c := range main {
		if len(c) != n {
			return nil, fmt.Errorf("stark: column of %d rows, AIR wants %d", len(c), n)
		}
	}
	if n < 1 || n&(n-1) != 0 {
		return nil, fmt.Errorf("stark: trace length %d is not a power of two", n)
	}
	k := air.CompositionWidth(a)
	if k >= opts.Blowup {
		return nil, fmt.Errorf("%w: constraint degree %d needs a blowup above %d", air.ErrOptions, air.MaxDegree(a), k)
	}
	d, err := field.NewDomains(n, opts.Blowup)
	if err != nil {
		return nil, err
	}
	N := d.LDESize
	logN := bits.TrailingZeros(uint(n))
	pf := &proof.Proof{Options: opts, LogTrace: logN, MainWidth: w, AuxWidth: 2 * wa, CompWidth: 2 * k}

	tr := transcript.New(seed)
	tr.Absorb("context", proof.Context(opts, logN, w, 2*wa, 2*k))

	// 1. Main trace.
	mainSeg, err := commit(ctx, d, main, true)
	if err != nil {
		return nil, err
	}
	pf.MainRoot = mainSeg.tree.Root()
	tr.Absorb("main", pf.MainRoot[:])

	// 2. Auxiliary columns from challenges.
	ch := tr.DrawExts(a.NumChallenges())
	var auxSeg *segment
	if wa > 0 {
		aux, err := a.BuildAux(main, ch)
		if err != nil {
			return nil, err
		}
		if len(aux) != wa {
			return nil, fmt.Errorf("stark: BuildAux gave %d columns, want %d", len(aux), wa)
		}
		if auxSeg, err = commit(ctx, d, splitExt(aux), true); err != nil {
			return nil, err
		}
		pf.AuxRoot = auxSeg.tree.Root()
		tr.Absorb("aux", pf.AuxRoot[:])
	}

	// 3. Constraint composition, evaluated on the smallest sub-coset that
	// determines it; when that coset is larger than k·n the top
	// coefficients must vanish, which catches a bad trace here.
	cc := newComposer(a, ch, n, tr)
	m := ceSize(n, k)
	c0, c1, err := cc.evaluate(ctx, d, mainSeg, auxSeg, m)
	if err != nil {
		return nil, err
	}
	if err := par.Each(ctx, 2, func(i int) { field.InterpolateCosetSmall([][]field.Base{c0, c1}[i], field.Generator()) }); err != nil {
		return nil, err
	}
	for i := k * n; i < m; i++ {
		if !c0[i].IsZero() || !c1[i].IsZero() {
			return nil, ErrUnsatisfied
		}
	}
	compCoeffs := make([][]field.Base, 2*k)
	for h := range k {
		compCoeffs[2*h] = c0[h*n : (h+1)*n]
		compCoeffs[2*h+1] = c1[h*n : (h+1)*n]
	}
	compSeg, err := commit(ctx, d, compCoeffs, false)
	if err != nil {
		return nil, err
	}
	compSeg.coeffs = compCoeffs
	pf.CompRoot = compSeg.tree.Root()
	tr.Absorb("composition", pf.CompRoot[:])

	// 4. Out-of-domain frame.
	z := tr.DrawExt()
	g := field.RootOfUnity(uint64(n))
	var zg field.Ext
	field.MulBase(&zg, &z, &g)
	zPow, zgPow := powers(z, n), powers(zg, n)
	evalAt := func(cols [][]field.Base, x field.Ext) []field.Ext {
		pw := zPow
		if x.Equal(&zg) {
			pw = zgPow
		}
		out := make([]field.Ext, len(cols))
		_ = par.Each(ctx, len(cols), func(c int) {
			var acc field.Ext
			for i, v := range cols[c] {
				field.AddMulBase(&acc, &pw[i], &v)
			}
			out[c] = acc
		})
		return out
	}
	pf.OODMainCur = evalAt(mainSeg.coeffs, z)
	pf.OODMainNext = evalAt(mainSeg.coeffs, zg)
	if auxSeg != nil {
		pf.OODAuxCur = joined(evalAt(auxSeg.coeffs, z))
		pf.OODAuxNext = joined(evalAt(auxSeg.coeffs, zg))
	}
	pf.OODComp = joined(evalAt(compSeg.coeffs, z))
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	tr.Absorb("ood", pf.OODBytes())

	// 5. DEEP composition over the LDE domain.
	deep, err := deepPoly(ctx, d, tr, z, zg,
		[]*segment{mainSeg, auxSeg, compSeg},
		[][]field.Ext{pf.OODMainCur, pf.OODAuxCur, pf.OODComp},
		[][]field.Ext{pf.OODMainNext, pf.OODAuxNext, nil})
	if err != nil {
		return nil, err
	}

	// 6. FRI.
	fp := fri.Params{Folding: opts.Folding, MaxRemainder: opts.MaxRemainder, DomainSize: N, DegreeBound: n, Offset: field.Generator()}
	fprover, err := fri.Commit(ctx, tr, deep, fp)
	if err != nil {
		if errors.Is(err, fri.ErrNotLowDegree) {
			return nil, fmt.Errorf("%w: %w", ErrUnsatisfied, err)
		}
		return nil, err
	}
	pf.FRIRoots = fprover.Roots()
	pf.Remainder = fprover.Remainder()

	// 7. Grinding, then the queries.
	pf.Nonce, err = tr.Grind(ctx, opts.GrindingBits, par.Workers())
	if err != nil {
		return nil, err
	}
	pos := tr.DrawPositions(pf.Nonce, opts.Queries, N)
	pf.Main = mainSeg.open(pos)
	if auxSeg != nil {
		pf.Aux = auxSeg.open(pos)
	}
	pf.Comp = compSeg.open(pos)
	pf.FRI = fprover.Open(pos)
	return pf, ctx.Err()
}

func powers(x field.Ext, n int) []field.Ext {
	out := make([]field.Ext, n)
	out[0].SetOne()
	for i := 1; i < n; i++ {
		out[i].Mul(&out[i-1], &x)
	}
	return out
}

// joined turns the values of split extension columns (a0 and a1 parts, as
// extension values at an extension point) back into the columns' values.
func joined(v []field.Ext) []field.Ext {
	out := make([]field.Ext, len(v)/2)
	for i := range out {
		out[i] = joinExt(v[2*i], v[2*i+1])
	}
	return out
}
