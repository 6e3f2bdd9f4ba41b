package circuit

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/consensys/gnark-crypto/ecc/bn254"
	"github.com/consensys/gnark-crypto/ecc/bn254/fr"

	"github.com/pouwfarm/pouwfarm/backends/plonkish/ipa"
)

// Proof is a PLONKish proof; Encode gives its canonical bytes.
type Proof struct {
	Advice   []bn254.G1Affine
	M        []bn254.G1Affine // lookup multiplicities, one per lookup
	H        []bn254.G1Affine // lookup helpers, one per input group
	Phi      []bn254.G1Affine // lookup running sums, one per lookup
	Z        []bn254.G1Affine // permutation running products, one per chunk
	Quotient []bn254.G1Affine // D-1 pieces of n coefficients
	Evals    []fr.Element     // in the order of evalPlan
	Opening  ipa.MultiProof
}

type polyKind uint8

const (
	kFixed polyKind = iota
	kAdvice
	kSigma
	kZ
	kM
	kH
	kPhi
	kQuotient
)

// evalItem is one claimed evaluation: polynomial (kind, index) at x*w^rot.
type evalItem struct {
	kind  polyKind
	index int
	rot   int
}

// evalPlan lists, in proof order, every evaluation the verifier needs
// (instance columns excepted: the verifier computes those itself).
func (cs *ConstraintSystem) evalPlan() []evalItem {
	var plan []evalItem
	for _, q := range cs.queries {
		switch q.Col.Kind {
		case Fixed:
			plan = append(plan, evalItem{kFixed, q.Col.Index, q.Rot})
		case Advice:
			plan = append(plan, evalItem{kAdvice, q.Col.Index, q.Rot})
		}
	}
	for i := range cs.Perm {
		plan = append(plan, evalItem{kSigma, i, 0})
	}
	nz := cs.numPermZ()
	for j := 0; j < nz; j++ {
		plan = append(plan, evalItem{kZ, j, 0}, evalItem{kZ, j, 1})
		if j < nz-1 {
			plan = append(plan, evalItem{kZ, j, -1})
		}
	}
	h := 0
	for li, l := range cs.Lookups {
		plan = append(plan, evalItem{kM, li, 0})
		for range l.groups {
			plan = append(plan, evalItem{kH, h, 0})
			h++
		}
		plan = append(plan, evalItem{kPhi, li, 0}, evalItem{kPhi, li, 1})
	}
	for i := 0; i < cs.degree-1; i++ {
		plan = append(plan, evalItem{kQuotient, i, 0})
	}
	return plan
}

func absorbPoints(tr *ipa.Transcript, label string, ps []bn254.G1Affine) {
	for i := range ps {
		tr.AppendPoint(label, &ps[i])
	}
}

// absorbInstance binds the proof to the key and the public columns: each
// column as one message listing its nonzero cells (row as u32 big-endian,
// value as 32 bytes), so sparse columns cost what they hold.
func (vk *VerifyingKey) absorbInstance(tr *ipa.Transcript, instance [][]fr.Element) {
	tr.AppendBytes("vk", vk.Digest[:])
	var buf []byte
	for c, col := range instance {
		buf = buf[:0]
		for i := range col {
			if col[i].IsZero() {
				continue
			}
			buf = binary.BigEndian.AppendUint32(buf, uint32(i))
			b := col[i].Bytes()
			buf = append(buf, b[:]...)
		}
		tr.AppendUint64("instance.column", uint64(c))
		tr.AppendBytes("instance.cells", buf)
	}
}

// Prove synthesizes the circuit's witness and proves it. The transcript
// must already hold the statement; instance holds the public columns
// (each at most n-1 values, the rest zero). A witness that does not
// satisfy the circuit is refused (run the MockProver to see where).
func Prove(ctx context.Context, pk *ProvingKey, c Circuit, instance [][]fr.Element, tr *ipa.Transcript) (*Proof, error) {
	vk, cs, dom := pk.VK, pk.VK.CS, pk.dom
	n := dom.n
	// Configure sets the circuit's column handles; it must give the keyed system
	own := &ConstraintSystem{}
	c.Configure(own)
	if err := own.finalize(); err != nil {
		return nil, err
	}
	if own.digest() != cs.digest() {
		return nil, fmt.Errorf("%w: circuit does not match the proving key", ErrConfig)
	}
	a, err := newAssignment(cs, n, instance)
	if err != nil {
		return nil, err
	}
	if err := c.Synthesize(a); err != nil {
		return nil, fmt.Errorf("circuit: synthesize: %w", err)
	}
	if a.err != nil {
		return nil, a.err
	}
	a.Fixed = pk.fixedValues // keygen's fixed columns are the circuit's
	vk.absorbInstance(tr, instance)
	proof := &Proof{}
	phase := newPhaseTimer()
	defer phase.report()
	params := vk.params

	// round 1: advice
	adviceCoeffs := make([][]fr.Element, cs.NumAdvice)
	proof.Advice = make([]bn254.G1Affine, cs.NumAdvice)
	errs := make([]error, cs.NumAdvice)
	parallelEach(cs.NumAdvice, func(i int) {
		cf := append([]fr.Element(nil), a.Advice[i]...)
		dom.toCoeffs(cf)
		adviceCoeffs[i] = cf
		proof.Advice[i], errs[i] = params.CommitLagrange(a.Advice[i])
	})
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	phase.mark("advice")
	absorbPoints(tr, "advice", proof.Advice)
	var ch challenges
	ch.theta = tr.Challenge("theta")
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// round 2: lookup multiplicities
	getter := func(row int) func(Query) fr.Element {
		return func(q Query) fr.Element {
			r := ((row+q.Rot)%n + n) % n
			return a.Get(q.Col, r)
		}
	}
	usable := n - 1
	mVals := make([][]fr.Element, len(cs.Lookups))
	tVals := make([][]fr.Element, len(cs.Lookups))
	for li, l := range cs.Lookups {
		tv := make([]fr.Element, n)
		index := make(map[fr.Element]int, usable)
		for row := 0; row < usable; row++ {
			tv[row] = compress(l.Table, getter(row), &ch.theta)
			if _, ok := index[tv[row]]; !ok {
				index[tv[row]] = row
			}
		}
		m := make([]fr.Element, n)
		for row := 0; row < usable; row++ {
			get := getter(row)
			for ii := range l.Inputs {
				in := &l.Inputs[ii]
				w := in.weight().Eval(get)
				if w.IsZero() {
					continue
				}
				f := compress(in.Tuple, get, &ch.theta)
				t, ok := index[f]
				if !ok {
					return nil, fmt.Errorf("%w: lookup %q input %d at row %d is not in the table", ErrUnsatisfied, l.Name, ii, row)
				}
				m[t].Add(&m[t], &w)
			}
		}
		mVals[li], tVals[li] = m, tv
	}
	mCoeffs, mExt, mCommits, err := commitColumns(params, dom, mVals, true)
	if err != nil {
		return nil, err
	}
	proof.M = mCommits
	phase.mark("multiplicities")
	absorbPoints(tr, "lookup.m", proof.M)
	ch.lambda = tr.Challenge("lambda")
	ch.beta = tr.Challenge("beta")
	ch.gamma = tr.Challenge("gamma")
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// round 3: lookup helpers and running sums, permutation products
	var hVals, phiVals [][]fr.Element
	for li, l := range cs.Lookups {
		phi := make([]fr.Element, n)
		rowSum := make([]fr.Element, n)
		for _, grp := range l.groups {
			h := make([]fr.Element, n)
			// h = sum_i w_i/(lambda + f_i), on every row (the identity holds everywhere)
			dens := make([]fr.Element, n*len(grp))
			ws := make([]fr.Element, n*len(grp))
			blocks := (n + vecBlock - 1) / vecBlock
			parallel(blocks, func(bLo, bHi int) {
				pool := &vecPool{}
				f := make([]fr.Element, vecBlock)
				w := make([]fr.Element, vecBlock)
				t := make([]fr.Element, vecBlock)
				for b := bLo; b < bHi; b++ {
					lo, hi := b*vecBlock, min((b+1)*vecBlock, n)
					src := baseSource(a, lo, n)
					f, w, t := f[:hi-lo], w[:hi-lo], t[:hi-lo]
					for k, i := range grp {
						in := &l.Inputs[i]
						for r := range f {
							f[r].SetZero()
						}
						for _, e := range in.Tuple {
							e.evalVec(t, src, pool)
							for r := range f {
								f[r].Mul(&f[r], &ch.theta).Add(&f[r], &t[r])
							}
						}
						in.weight().evalVec(w, src, pool)
						for r := range f {
							dens[(lo+r)*len(grp)+k].Add(&ch.lambda, &f[r])
							ws[(lo+r)*len(grp)+k] = w[r]
						}
					}
				}
			})
			inv := fr.BatchInvert(dens)
			for row := 0; row < n; row++ {
				for k := range grp {
					var t fr.Element
					t.Mul(&ws[row*len(grp)+k], &inv[row*len(grp)+k])
					h[row].Add(&h[row], &t)
				}
				if row < usable {
					rowSum[row].Add(&rowSum[row], &h[row])
				}
			}
			hVals = append(hVals, h)
		}
		tden := make([]fr.Element, usable)
		for row := 0; row < usable; row++ {
			tden[row].Add(&ch.lambda, &tVals[li][row])
		}
		tinv := fr.BatchInvert(tden)
		for row := 0; row < usable; row++ {
			var t fr.Element
			t.Mul(&mVals[li][row], &tinv[row])
			phi[row+1].Add(&phi[row], &rowSum[row]).Sub(&phi[row+1], &t)
		}
		if !phi[n-1].IsZero() {
			return nil, fmt.Errorf("%w: lookup %q does not balance", ErrUnsatisfied, l.Name)
		}
		phiVals = append(phiVals, phi)
	}
	zVals, err := permutationProducts(pk, a, &ch)
	if err != nil {
		return nil, err
	}
	hCoeffs, hExt, hCommits, err := commitColumns(params, dom, hVals, true)
	if err != nil {
		return nil, err
	}
	phiCoeffs, phiExt, phiCommits, err := commitColumns(params, dom, phiVals, true)
	if err != nil {
		return nil, err
	}
	zCoeffs, zExt, zCommits, err := commitColumns(params, dom, zVals, true)
	if err != nil {
		return nil, err
	}
	proof.H, proof.Phi, proof.Z = hCommits, phiCommits, zCommits
	phase.mark("helpers")
	absorbPoints(tr, "lookup.h", proof.H)
	absorbPoints(tr, "lookup.phi", proof.Phi)
	absorbPoints(tr, "perm.z", proof.Z)
	ch.y = tr.Challenge("y")
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// round 4: quotient on the extended coset
	adviceExt := make([][]fr.Element, cs.NumAdvice)
	parallelEach(cs.NumAdvice, func(i int) { adviceExt[i] = dom.toExt(adviceCoeffs[i]) })
	instCoeffs := make([][]fr.Element, cs.NumInstance)
	instExt := make([][]fr.Element, cs.NumInstance)
	parallelEach(len(a.Instance), func(i int) {
		instExt[i] = pk.sparseExt(a.Instance[i])
		if instExt[i] == nil {
			cf := append([]fr.Element(nil), a.Instance[i]...)
			dom.toCoeffs(cf)
			instCoeffs[i] = cf
			instExt[i] = dom.toExt(cf)
		}
	})
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	e, shift := dom.e, dom.shift
	deltas := make([]fr.Element, len(cs.Perm))
	for i := range deltas {
		if i == 0 {
			deltas[i].SetOne()
		} else {
			deltas[i].Mul(&deltas[i-1], &vk.delta)
		}
	}
	phase.mark("extend")
	quot := make([]fr.Element, e)
	yA := cs.yPowArgs(&ch)
	hIndex := lookupHelperIndex(cs)
	column := func(c Column) []fr.Element {
		switch c.Kind {
		case Fixed:
			return pk.fixedExt[c.Index]
		case Advice:
			return adviceExt[c.Index]
		default:
			return instExt[c.Index]
		}
	}
	blocks := (e + vecBlock - 1) / vecBlock
	parallel(blocks, func(bLo, bHi int) {
		pool := &vecPool{}
		row := 0
		at := func(v []fr.Element, rot int) fr.Element {
			return v[((row+rot*shift)%e+e)%e]
		}
		en := &env{
			cell:  func(q Query) fr.Element { return at(column(q.Col), q.Rot) },
			sigma: func(i int) fr.Element { return pk.sigmaExt[i][row] },
			id: func(i int) fr.Element {
				var t fr.Element
				return *t.Mul(&deltas[i], &dom.xExt[row])
			},
			z:   func(j, rot int) fr.Element { return at(zExt[j], rot) },
			m:   func(l int) fr.Element { return mExt[l][row] },
			phi: func(l, rot int) fr.Element { return at(phiExt[l], rot) },
			h:   func(l, g int) fr.Element { return hExt[hIndex[l]+g][row] },
		}
		acc := make([]fr.Element, vecBlock)
		val := make([]fr.Element, vecBlock)
		lv := &lookupVec{cs: cs, ch: &ch, e: e, shift: shift, l0: pk.l0Ext, lLast: pk.lLastExt,
			m: mExt, phi: phiExt, h: hExt, hIndex: hIndex}
		for b := bLo; b < bHi; b++ {
			lo, hi := b*vecBlock, min((b+1)*vecBlock, e)
			acc, val := acc[:hi-lo], val[:hi-lo]
			src := func(q Query, out []fr.Element) {
				col := column(q.Col)
				start := ((lo+q.Rot*shift)%e + e) % e
				if start+len(out) <= e {
					copy(out, col[start:start+len(out)])
					return
				}
				for i := range out {
					out[i] = col[(start+i)%e]
				}
			}
			for i := range acc {
				acc[i].SetZero()
			}
			for _, g := range cs.Gates {
				for _, p := range g.Polys {
					p.evalVec(val, src, pool)
					for i := range acc {
						acc[i].Mul(&acc[i], &ch.y).Add(&acc[i], &val[i])
					}
				}
			}
			args := lv.identities(lo, src, pool)
			for i := range acc {
				row = lo + i
				v := args[i]
				if len(cs.Perm) > 0 {
					en.l0, en.lLast = pk.l0Ext[row], pk.lLastExt[row]
					cs.permIdentities(en, &ch, &v)
				}
				acc[i].Mul(&acc[i], &yA).Add(&acc[i], &v)
				quot[row].Mul(&acc[i], &dom.zhInv[row%shift])
			}
		}
	})
	phase.mark("numerator")
	dom.extToCoeffs(quot)
	pieces := make([][]fr.Element, cs.degree-1)
	proof.Quotient = make([]bn254.G1Affine, len(pieces))
	for i := range pieces {
		pieces[i] = quot[i*n : (i+1)*n]
		if proof.Quotient[i], err = params.Commit(pieces[i]); err != nil {
			return nil, err
		}
	}
	phase.mark("quotient")
	absorbPoints(tr, "quotient", proof.Quotient)
	x := tr.Challenge("x")
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// round 5: evaluations and the batched opening
	plan := cs.evalPlan()
	proof.Evals = make([]fr.Element, len(plan))
	queries := make([]ipa.Query, len(plan))
	polyOf := func(it evalItem) ([]fr.Element, bn254.G1Affine) {
		switch it.kind {
		case kFixed:
			return pk.fixedCoeffs[it.index], vk.FixedCommits[it.index]
		case kAdvice:
			return adviceCoeffs[it.index], proof.Advice[it.index]
		case kSigma:
			return pk.sigmaCoeffs[it.index], vk.SigmaCommits[it.index]
		case kZ:
			return zCoeffs[it.index], proof.Z[it.index]
		case kM:
			return mCoeffs[it.index], proof.M[it.index]
		case kH:
			return hCoeffs[it.index], proof.H[it.index]
		case kPhi:
			return phiCoeffs[it.index], proof.Phi[it.index]
		default:
			return pieces[it.index], proof.Quotient[it.index]
		}
	}
	parallelEach(len(plan), func(i int) {
		poly, cm := polyOf(plan[i])
		pt := rotate(&x, &vk.omega, plan[i].rot)
		proof.Evals[i] = ipa.Eval(poly, &pt)
		queries[i] = ipa.Query{Commitment: cm, Point: pt, Eval: proof.Evals[i], Poly: poly}
	})
	phase.mark("evals")
	for i := range proof.Evals {
		tr.AppendScalar("eval", &proof.Evals[i])
	}
	proof.Opening, err = params.MultiOpen(tr, queries)
	phase.mark("multiopen")
	if err != nil {
		return nil, err
	}
	return proof, nil
}

func lookupHelperIndex(cs *ConstraintSystem) []int {
	idx := make([]int, len(cs.Lookups))
	h := 0
	for i, l := range cs.Lookups {
		idx[i] = h
		h += len(l.groups)
	}
	return idx
}

// rotate returns x * omega^rot.
func rotate(x, omega *fr.Element, rot int) fr.Element {
	var w fr.Element
	if rot >= 0 {
		w.Exp(*omega, bigU(uint64(rot)))
	} else {
		w.Exp(*omega, bigU(uint64(-rot)))
		w.Inverse(&w)
	}
	w.Mul(&w, x)
	return w
}

// permutationProducts computes the running products Z_j over usable rows:
// Z_j(w^(i+1)) = Z_j(w^i) * prod (v + beta*id + gamma)/(v + beta*sigma + gamma),
// chunk j starting where chunk j-1 ended; the last ends at 1 iff the
// copies hold.
func permutationProducts(pk *ProvingKey, a *Assignment, ch *challenges) ([][]fr.Element, error) {
	cs, dom := pk.VK.CS, pk.dom
	n := dom.n
	if len(cs.Perm) == 0 {
		return nil, nil
	}
	sigmaVals := pk.sigmaValues
	omegas := make([]fr.Element, n)
	omegas[0].SetOne()
	for i := 1; i < n; i++ {
		omegas[i].Mul(&omegas[i-1], &dom.omega)
	}
	nz := cs.numPermZ()
	chunk := cs.permChunk()
	zs := make([][]fr.Element, nz)
	var start fr.Element
	start.SetOne()
	var delta fr.Element
	delta.SetOne()
	for j := 0; j < nz; j++ {
		num := make([]fr.Element, n-1)
		den := make([]fr.Element, n-1)
		for row := range num {
			num[row].SetOne()
			den[row].SetOne()
		}
		for c := j * chunk; c < min((j+1)*chunk, len(cs.Perm)); c++ {
			col := cs.Perm[c]
			for row := 0; row < n-1; row++ {
				v := a.Get(col, row)
				var t fr.Element
				t.Mul(&delta, &omegas[row]).Mul(&t, &ch.beta).Add(&t, &v).Add(&t, &ch.gamma)
				num[row].Mul(&num[row], &t)
				t.Mul(&sigmaVals[c][row], &ch.beta).Add(&t, &v).Add(&t, &ch.gamma)
				den[row].Mul(&den[row], &t)
			}
			delta.Mul(&delta, &pk.VK.delta)
		}
		den = fr.BatchInvert(den)
		z := make([]fr.Element, n)
		z[0] = start
		for row := 0; row < n-1; row++ {
			z[row+1].Mul(&z[row], &num[row]).Mul(&z[row+1], &den[row])
		}
		zs[j] = z
		start = z[n-1]
	}
	if !start.IsOne() {
		return nil, fmt.Errorf("%w: copy constraints do not hold", ErrUnsatisfied)
	}
	return zs, nil
}

// sparseExt returns the extended-domain values of a column with few
// nonzero cells (most instance columns: one boundary row each) as a sum of
// shifted Lagrange polynomials, L_b(X) = L_0(w^-b X), which on the coset is
// L_0's values rotated by b rows; nil when the column is too dense for
// that to beat an FFT.
func (pk *ProvingKey) sparseExt(v []fr.Element) []fr.Element {
	const maxSparse = 8
	var rows []int
	for i := range v {
		if !v[i].IsZero() {
			if len(rows) == maxSparse {
				return nil
			}
			rows = append(rows, i)
		}
	}
	e, shift := pk.dom.e, pk.dom.shift
	out := make([]fr.Element, e)
	var t fr.Element
	for _, b := range rows {
		off := b * shift
		for i := range out {
			t.Mul(&pk.l0Ext[(i-off+e)%e], &v[b])
			out[i].Add(&out[i], &t)
		}
	}
	return out
}

// baseSource reads cells of rows lo.. on the base domain (rotations wrap).
func baseSource(a *Assignment, lo, n int) func(Query, []fr.Element) {
	return func(q Query, out []fr.Element) {
		start := ((lo+q.Rot)%n + n) % n
		var col []fr.Element
		switch q.Col.Kind {
		case Fixed:
			col = a.Fixed[q.Col.Index]
		case Advice:
			col = a.Advice[q.Col.Index]
		default:
			col = a.Instance[q.Col.Index]
		}
		if start+len(out) <= n {
			copy(out, col[start:start+len(out)])
			return
		}
		for i := range out {
			out[i] = col[(start+i)%n]
		}
	}
}
