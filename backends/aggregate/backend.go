package aggregate

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"time"

	fr377 "github.com/consensys/gnark-crypto/ecc/bls12-377/fr"
	fr761 "github.com/consensys/gnark-crypto/ecc/bw6-761/fr"
	"github.com/consensys/gnark/backend/groth16"
	"github.com/consensys/gnark/frontend"
	"github.com/consensys/gnark/std/algebra/native/sw_bls12377"
	"github.com/consensys/gnark/std/math/emulated"
	stdgroth16 "github.com/consensys/gnark/std/recursion/groth16"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/trace"
)

// Name is the backend's name in tier tables, jobs and claims.
const Name = "aggregate"

// Options configure a Backend.
type Options struct {
	// Keys are the loaded key sets, at most one per size class.
	Keys   []*Keys
	Logger *slog.Logger
}

// Backend proves Macro traces as intent proofs and Full traces (and
// batches of intent proofs, Aggregate) as one aggregate proof.
type Backend struct {
	keys  []*Keys // by LogSteps, ascending
	log   *slog.Logger
	accel *accel // Groth16 prover: gnark's, or ICICLE's in the icicle build
}

var (
	_ backends.Aggregator   = (*Backend)(nil)
	_ backends.BatchChecker = (*Backend)(nil)
)

// New builds the backend over the given key sets.
func New(o Options) (*Backend, error) {
	if len(o.Keys) == 0 {
		return nil, fmt.Errorf("%w: the aggregate backend needs at least one key set (pouw keys setup)", ErrNoKeys)
	}
	ks := slices.Clone(o.Keys)
	slices.SortFunc(ks, func(a, b *Keys) int { return a.Params.LogSteps - b.Params.LogSteps })
	for i := 1; i < len(ks); i++ {
		if ks[i].Params.LogSteps == ks[i-1].Params.LogSteps {
			return nil, fmt.Errorf("%w: two key sets for steps 2^%d", ErrParams, ks[i].Params.LogSteps)
		}
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Backend{keys: ks, log: log, accel: newAccel(log)}, nil
}

func (b *Backend) Name() string { return Name }

func (b *Backend) Tiers() []pouw.JobTier { return []pouw.JobTier{pouw.TierMacro, pouw.TierFull} }

// keysFor returns the smallest key set whose intent circuit takes every
// statement in ss, and whose K is k (k = 0: any).
func (b *Backend) keysFor(ss []intentStatement, k int) (*Keys, error) {
	var steps uint64
	var progLen int
	for i := range ss {
		steps = max(steps, ss[i].steps)
		progLen = max(progLen, len(ss[i].prog.Instrs))
	}
	for _, ks := range b.keys {
		if uint64(ks.Params.Steps()) >= steps && ks.Params.ProgLen >= progLen && (k == 0 || ks.Params.K == k) {
			return ks, nil
		}
	}
	return nil, fmt.Errorf("%w: %d intents of up to %d steps and %d instructions", ErrNoKeys, max(k, 1), steps, progLen)
}

func (b *Backend) keysByID(kind byte, id pouw.Hash) (*Keys, error) {
	for _, ks := range b.keys {
		if (kind == kindIntent && ks.IntentKeyID == id) || (kind == kindAggr && ks.AggKeyID == id) {
			return ks, nil
		}
	}
	return nil, fmt.Errorf("%w: %w: proof made with key %s, which is not loaded", backends.ErrProofRejected, ErrKeyMismatch, id)
}

// run runs f, returning early with ctx.Err() when ctx ends: gnark's Prove
// takes no context, so f keeps its CPU until it finishes; a farm that must
// reclaim the cores runs proving in a worker process it can kill.
func run[T any](ctx context.Context, f func() (T, error)) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	type res struct {
		v   T
		err error
	}
	ch := make(chan res, 1)
	go func() {
		v, err := f()
		ch <- res{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// proveIntent proves segment seg of t.
func (b *Backend) proveIntent(ctx context.Context, ks *Keys, t *trace.Trace, seg int, s *intentStatement) (groth16.Proof, fr377.Element, error) {
	d, err := s.digest(ks.Params)
	if err != nil {
		return nil, d, err
	}
	a, err := intentAssignment(ks.Params, t, seg, s, d)
	if err != nil {
		return nil, d, err
	}
	pk, err := ks.proving()
	if err != nil {
		return nil, d, err
	}
	w, err := frontend.NewWitness(a, innerCurve.ScalarField())
	if err != nil {
		return nil, d, err
	}
	proof, err := run(ctx, func() (groth16.Proof, error) {
		// Inner proofs hash their commitment as the in-circuit verifier
		// does; with gnark's default hash they verify natively but not in
		// the aggregation circuit.
		return b.accel.prove(pk.intentCS, pk.intentPK, w,
			stdgroth16.GetNativeProverOptions(outerCurve.ScalarField(), innerCurve.ScalarField()))
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, d, err
		}
		return nil, d, fmt.Errorf("%w: segment %d: %w", ErrWitness, seg, err)
	}
	return proof, d, nil
}

func verifyIntent(ks *Keys, proof groth16.Proof, d fr377.Element) error {
	c := newIntentCircuit(ks.Params)
	c.Digest = d
	w, err := frontend.NewWitness(c, innerCurve.ScalarField(), frontend.PublicOnly())
	if err != nil {
		return err
	}
	if err := groth16.Verify(proof, ks.intentVK, w,
		stdgroth16.GetNativeVerifierOptions(outerCurve.ScalarField(), innerCurve.ScalarField())); err != nil {
		return fmt.Errorf("%w: intent proof: %w", backends.ErrProofRejected, err)
	}
	return nil
}

func aggAssignment(ks *Keys, bind fr761.Element, proofs []groth16.Proof, digests []fr377.Element) (*aggCircuit, error) {
	p := ks.Params
	c := &aggCircuit{
		Commitment: batchCommitment(p, bind, digests),
		Bind:       bind,
		Proofs:     make([]innerProof, p.K),
		Digests:    make([]emulated.Element[innerFr], p.K),
		params:     p,
	}
	for i := range proofs {
		var err error
		if c.Proofs[i], err = stdgroth16.ValueOfProof[sw_bls12377.G1Affine, sw_bls12377.G2Affine](proofs[i]); err != nil {
			return nil, err
		}
		c.Digests[i] = sw_bls12377.NewScalar(digests[i])
	}
	return c, nil
}

// aggregate proves the aggregation circuit over k intent proofs for the
// batch whose statement binds it.
func (b *Backend) aggregate(ctx context.Context, ks *Keys, batch backends.Statement, proofs []groth16.Proof, digests []fr377.Element) (groth16.Proof, error) {
	pk, err := ks.proving()
	if err != nil {
		return nil, err
	}
	a, err := aggAssignment(ks, batchBind(batch), proofs, digests)
	if err != nil {
		return nil, err
	}
	w, err := frontend.NewWitness(a, outerCurve.ScalarField())
	if err != nil {
		return nil, err
	}
	return run(ctx, func() (groth16.Proof, error) { return b.accel.prove(pk.aggCS, pk.aggPK, w) })
}

func verifyAggregate(ks *Keys, batch backends.Statement, proof groth16.Proof, digests []fr377.Element) error {
	p := ks.Params
	if len(digests) != p.K {
		return fmt.Errorf("%w: %d statements for keys of k=%d", backends.ErrProofRejected, len(digests), p.K)
	}
	c := &aggCircuit{
		Commitment: batchCommitment(p, batchBind(batch), digests),
		Proofs:     make([]innerProof, p.K),
		Digests:    make([]emulated.Element[innerFr], p.K),
	}
	w, err := frontend.NewWitness(c, outerCurve.ScalarField(), frontend.PublicOnly())
	if err != nil {
		return err
	}
	if err := groth16.Verify(proof, ks.aggVK, w); err != nil {
		return fmt.Errorf("%w: aggregate proof: %w", backends.ErrProofRejected, err)
	}
	return nil
}

func digests(p Params, ss []intentStatement) ([]fr377.Element, error) {
	ds := make([]fr377.Element, len(ss))
	for i := range ss {
		var err error
		if ds[i], err = ss[i].digest(p); err != nil {
			return nil, fmt.Errorf("%w: %w", backends.ErrProofRejected, err)
		}
	}
	for i := range ds {
		for j := range i {
			if ds[i] == ds[j] {
				return nil, fmt.Errorf("%w: intents %d and %d have the same statement", backends.ErrProofRejected, j, i)
			}
		}
	}
	return ds, nil
}

// Prove proves a Macro trace with one intent proof, or a Full trace of K
// intents with K intent proofs aggregated into one. A cancelled ctx returns
// at once; the proving step under way finishes in the background (see run).
func (b *Backend) Prove(ctx context.Context, t *trace.Trace, st backends.Statement) ([]byte, error) {
	if st.Header == nil {
		st.Header = &t.Header
	} else if st.Header != &t.Header && trace.StatementDigest(st.Header) != trace.StatementDigest(&t.Header) {
		return nil, fmt.Errorf("%w: the statement's header is not the trace's", ErrWitness)
	}
	if err := trace.Check(t); err != nil {
		return nil, fmt.Errorf("%w: %w", backends.ErrInvalidTrace, err)
	}
	ss, err := intentStatements(st)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	switch st.Header.Tier {
	case pouw.TierMacro:
		ks, err := b.keysFor(ss, 0)
		if err != nil {
			return nil, err
		}
		proof, _, err := b.proveIntent(ctx, ks, t, 0, &ss[0])
		if err != nil {
			return nil, err
		}
		b.log.Debug("intent proof", "steps", ss[0].steps, "class", ks.Params.Steps(), "took", time.Since(t0))
		return encodeProof(kindIntent, ks.IntentKeyID, proof)
	default: // Full, intentStatements refused other tiers
		ks, err := b.keysFor(ss, len(ss))
		if err != nil {
			return nil, err
		}
		if _, err := digests(ks.Params, ss); err != nil {
			return nil, err
		}
		proofs := make([]groth16.Proof, len(ss))
		ds := make([]fr377.Element, len(ss))
		for i := range ss {
			if proofs[i], ds[i], err = b.proveIntent(ctx, ks, t, i, &ss[i]); err != nil {
				return nil, err
			}
		}
		proof, err := b.aggregate(ctx, ks, st, proofs, ds)
		if err != nil {
			return nil, err
		}
		b.log.Debug("aggregate proof", "k", len(ss), "class", ks.Params.Steps(), "took", time.Since(t0))
		return encodeProof(kindAggr, ks.AggKeyID, proof)
	}
}

// Verify checks an intent proof against a Macro statement, or an aggregate
// proof against a Full statement.
func (b *Backend) Verify(ctx context.Context, st backends.Statement, proof []byte) error {
	e, err := decodeProof(proof)
	if err != nil {
		return err
	}
	ss, err := intentStatements(st)
	if err != nil {
		return err
	}
	want := byte(kindIntent)
	if st.Header.Tier == pouw.TierFull {
		want = kindAggr
	}
	if e.kind != want {
		return fmt.Errorf("%w: a %s statement needs a proof of kind %d, got %d", backends.ErrProofRejected, st.Header.Tier, want, e.kind)
	}
	ks, err := b.keysByID(e.kind, e.keyID)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	ds, err := digests(ks.Params, ss)
	if err != nil {
		return err
	}
	if e.kind == kindIntent {
		return verifyIntent(ks, e.proof, ds[0])
	}
	return verifyAggregate(ks, st, e.proof, ds)
}

// Aggregate proves one aggregate proof over the intent proofs of k Macro
// jobs, in the given order (the batch DAG's aggregation job), bound to the
// batch's statement (the manifest's hash, the aggregation job and its
// prover). Every child proof is verified first and must have been made with
// the intent key of the key set that aggregates it.
func (b *Backend) Aggregate(ctx context.Context, batch backends.Statement, children []backends.Statement, proofs [][]byte) ([]byte, error) {
	if len(children) != len(proofs) {
		return nil, fmt.Errorf("aggregate: %d statements and %d proofs", len(children), len(proofs))
	}
	ss, err := b.childStatements(children)
	if err != nil {
		return nil, err
	}
	ks, err := b.keysFor(ss, len(ss))
	if err != nil {
		return nil, err
	}
	ds, err := digests(ks.Params, ss)
	if err != nil {
		return nil, err
	}
	gp := make([]groth16.Proof, len(proofs))
	for i, pb := range proofs {
		e, err := decodeProof(pb)
		if err != nil {
			return nil, fmt.Errorf("child %d: %w", i, err)
		}
		if e.kind != kindIntent || e.keyID != ks.IntentKeyID {
			return nil, fmt.Errorf("child %d: %w: %w: made with key %s, aggregation needs intent key %s",
				i, backends.ErrProofRejected, ErrKeyMismatch, e.keyID, ks.IntentKeyID)
		}
		if err := verifyIntent(ks, e.proof, ds[i]); err != nil {
			return nil, fmt.Errorf("child %d: %w", i, err)
		}
		gp[i] = e.proof
	}
	proof, err := b.aggregate(ctx, ks, batch, gp, ds)
	if err != nil {
		return nil, err
	}
	return encodeProof(kindAggr, ks.AggKeyID, proof)
}

// VerifyAggregate checks an aggregate proof against the batch's statement
// and the statements of its k Macro children, in order.
func (b *Backend) VerifyAggregate(ctx context.Context, batch backends.Statement, children []backends.Statement, proof []byte) error {
	e, err := decodeProof(proof)
	if err != nil {
		return err
	}
	if e.kind != kindAggr {
		return fmt.Errorf("%w: not an aggregate proof", backends.ErrProofRejected)
	}
	ks, err := b.keysByID(e.kind, e.keyID)
	if err != nil {
		return err
	}
	ss, err := b.childStatements(children)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	ds, err := digests(ks.Params, ss)
	if err != nil {
		return err
	}
	return verifyAggregate(ks, batch, e.proof, ds)
}

// CheckBatch says whether a batch of Macro intents with these headers can be
// proved and aggregated with the loaded keys: each a valid Macro header, and
// a key set whose size class and program table take all of them and whose k
// is their number. ErrNoKeys when none does.
func (b *Backend) CheckBatch(children []*trace.Header) error {
	sts := make([]backends.Statement, len(children))
	for i, h := range children {
		sts[i] = backends.Statement{Header: h}
	}
	ss, err := b.childStatements(sts)
	if err != nil {
		return err
	}
	_, err = b.keysFor(ss, len(ss))
	return err
}

func (b *Backend) childStatements(children []backends.Statement) ([]intentStatement, error) {
	ss := make([]intentStatement, len(children))
	for i, c := range children {
		if c.Header == nil || c.Header.Tier != pouw.TierMacro {
			return nil, fmt.Errorf("child %d: %w: children are Macro statements", i, backends.ErrProofRejected)
		}
		s, err := intentStatements(c)
		if err != nil {
			return nil, fmt.Errorf("child %d: %w", i, err)
		}
		ss[i] = s[0]
	}
	return ss, nil
}

// Per-constraint costs measured on the 2-core development machine
// (bench/aggregate.md), used by Estimate.
const (
	innerProveNsPerConstraint = 15_000
	outerProveNsPerConstraint = 80_000
	innerBytesPerConstraint   = 3 << 10
	outerBytesPerConstraint   = 8 << 10
)

// Estimate says what proving a trace with header h takes with the loaded
// keys (the smallest key set that fits; zero Duration when none does). A
// header with no programs, the scheduler's question before it downloads the
// trace, is charged the largest key set. GPUMemoryBytes is non-zero only
// when the backend proves on a GPU (HasGPUPath).
func (b *Backend) Estimate(h *trace.Header) backends.Resources {
	r := backends.Resources{Cores: runtime.NumCPU()}
	var ks *Keys
	n := 1 // intent proofs
	switch ss, err := intentStatements(backends.Statement{Header: h}); {
	case err == nil:
		k := 0
		if h.Tier == pouw.TierFull {
			k, n = len(ss), len(ss)
		}
		if ks, err = b.keysFor(ss, k); err != nil {
			return r
		}
	case len(h.Programs) == 0 && (h.Tier == pouw.TierMacro || h.Tier == pouw.TierFull):
		// The scheduler's question before the download: a tier and a row
		// count, no programs. Any loaded key set may serve it: charge the
		// largest.
		ks = b.keys[len(b.keys)-1]
		if h.Tier == pouw.TierFull {
			n = ks.Params.K
		}
	default:
		return r
	}
	inner := time.Duration(ks.IntentConstraints) * innerProveNsPerConstraint
	r.MemoryBytes = int64(ks.IntentConstraints) * innerBytesPerConstraint
	r.Duration = inner
	if h.Tier == pouw.TierFull {
		r.Duration = time.Duration(n)*inner + time.Duration(ks.AggConstraints)*outerProveNsPerConstraint
		r.MemoryBytes = max(r.MemoryBytes, int64(ks.AggConstraints)*outerBytesPerConstraint)
	}
	if b.HasGPUPath() {
		// Intent proofs run one after the other; the aggregate proof last.
		r.GPUMemoryBytes = int64(ks.IntentConstraints) * innerGPUBytesPerConstraint
		if h.Tier == pouw.TierFull {
			r.GPUMemoryBytes = max(r.GPUMemoryBytes, int64(ks.AggConstraints)*outerGPUBytesPerConstraint)
		}
	}
	// Durations above assume 2 cores; scale to what this host has.
	r.Duration = r.Duration * 2 / time.Duration(max(2, r.Cores))
	return r
}
