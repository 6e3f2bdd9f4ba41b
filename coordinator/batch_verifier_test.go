package coordinator_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/backends/aggregate"
	"github.com/pouwfarm/pouwfarm/backends/aggregate/aggregatetest"
	"github.com/pouwfarm/pouwfarm/coordinator"
	"github.com/pouwfarm/pouwfarm/coordinator/api"
	"github.com/pouwfarm/pouwfarm/coordinator/blob"
	"github.com/pouwfarm/pouwfarm/coordinator/client"
	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/trace"
	"github.com/pouwfarm/pouwfarm/trace/workload"
)

// batchWorld is a coordinator with the aggregate backend (so batches are
// on) where a batch of two intents was proved end to end: both children
// completed through the API by two provers, and the aggregation job
// completed with aggProof.
type batchWorld struct {
	c        *coordinator.Coordinator
	reg      *backends.Registry
	admin    *client.Client
	traces   []*trace.Trace
	intents  []pouw.BatchIntent
	batch    pouw.BatchResponse
	agg      pouw.ProofJob // the aggregation job, completed
	aggProof []byte
	// childProofs are the children's intent proofs, in batch order.
	childProofs [][]byte
}

func (w *batchWorld) verifier() coordinator.BackendVerifier {
	return coordinator.BackendVerifier{Registry: w.reg, Blobs: w.c.Blobs, Jobs: w.c.Store}
}

// newBatchWorld proves one batch through the API. It takes the aggregate
// proving time of k=2 (seconds), so the tests of this file share one world.
func newBatchWorld(t *testing.T) *batchWorld {
	t.Helper()
	ab := aggregatetest.Backend(t) // steps 2^8, k=2, from the shared key cache
	reg, err := backends.NewRegistry(ab)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c, err := coordinator.New(ctx, coordinator.Config{Addr: "127.0.0.1:0", DataDir: t.TempDir(), Backends: reg,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("Run did not return within 15s of cancel")
		}
	})
	admin, err := client.New(c.URL(), client.Options{Token: c.AdminToken()})
	if err != nil {
		t.Fatal(err)
	}
	w := &batchWorld{c: c, reg: reg, admin: admin}
	if _, err := admin.Deposit(ctx, 1000, ""); err != nil {
		t.Fatal(err)
	}
	for seed := range uint64(3) {
		tr, err := workload.Macro("fib", seed+1, 100)
		if err != nil {
			t.Fatal(err)
		}
		info, err := admin.UploadBlob(ctx, encode(t, tr))
		if err != nil {
			t.Fatal(err)
		}
		w.traces = append(w.traces, tr)
		w.intents = append(w.intents, pouw.BatchIntent{IntentID: tr.Header.IntentID, TraceHash: info.Hash, FeeBudget: 2, RewardBudget: 1})
	}
	if w.batch, err = admin.CreateBatch(ctx, pouw.BatchRequest{Intents: w.intents[:2], FeeBudget: 10, RewardBudget: 5}); err != nil {
		t.Fatal(err)
	}

	// Each child is proved (an intent proof) by its own prover and
	// verified by the coordinator's BackendVerifier on submit.
	provers := map[string]*client.Client{}
	for _, id := range []string{"prover-a", "prover-b"} {
		r, err := admin.RegisterProver(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if provers[id], err = client.New(c.URL(), client.Options{Token: r.Token, MaxRetries: -1}); err != nil {
			t.Fatal(err)
		}
	}
	byTrace := map[pouw.Hash]*trace.Trace{}
	for i, in := range w.intents {
		byTrace[in.TraceHash] = w.traces[i]
	}
	for _, id := range []string{"prover-a", "prover-b"} {
		p := provers[id]
		l, err := p.Claim(ctx, pouw.ClaimRequest{Tiers: []pouw.JobTier{pouw.TierMacro}, Backends: []string{aggregate.Name}})
		if err != nil {
			t.Fatal(err)
		}
		tr := byTrace[l.Job.TraceHash]
		proof, err := ab.Prove(ctx, tr, backends.Statement{Header: &tr.Header, TraceHash: l.Job.TraceHash, JobID: l.Job.JobID, ProverID: id})
		if err != nil {
			t.Fatal(err)
		}
		if j, err := p.Submit(ctx, l.Job.JobID, l.LeaseToken, proof); err != nil || j.State != pouw.StateCompleted {
			t.Fatalf("intent proof of %s: %+v, %v", l.Job.JobID, j, err)
		}
	}

	// The aggregation job is pending now; prove it over the children's
	// proofs and statements, in batch order.
	p := provers["prover-a"]
	l, err := p.Claim(ctx, pouw.ClaimRequest{Tiers: []pouw.JobTier{pouw.TierFull}, Backends: []string{aggregate.Name}})
	if err != nil {
		t.Fatal(err)
	}
	if l.Job.JobID != w.batch.Aggregation.JobID {
		t.Fatalf("claimed %s, want the aggregation job %s", l.Job.JobID, w.batch.Aggregation.JobID)
	}
	var sts []backends.Statement
	var proofs [][]byte
	for i, ch := range w.batch.Children {
		ch, err := admin.Job(ctx, ch.JobID)
		if err != nil {
			t.Fatal(err)
		}
		proofRef, err := pouw.ParseHash(ch.ProofRef)
		if err != nil {
			t.Fatal(err)
		}
		var buf strings.Builder
		if _, err := admin.DownloadBlob(ctx, proofRef, &buf); err != nil {
			t.Fatal(err)
		}
		proofs = append(proofs, []byte(buf.String()))
		sts = append(sts, backends.Statement{Header: &w.traces[i].Header, TraceHash: ch.TraceHash, JobID: ch.JobID, ProverID: ch.ProverID})
	}
	w.childProofs = proofs
	t0 := time.Now()
	batch := backends.Statement{TraceHash: l.Job.TraceHash, JobID: l.Job.JobID, ProverID: l.Job.ProverID}
	if w.aggProof, err = ab.Aggregate(ctx, batch, sts, proofs); err != nil {
		t.Fatal(err)
	}
	t.Logf("aggregate proof of k=2: %v", time.Since(t0).Round(time.Millisecond))

	// A tampered aggregate proof is rejected on submit (422, an attempt
	// counted); the real one completes the job.
	tampered := slices.Clone(w.aggProof)
	tampered[len(tampered)-40] ^= 1
	_, err = p.Submit(ctx, l.Job.JobID, l.LeaseToken, tampered)
	if !errors.Is(err, client.ErrProofRejected) {
		t.Fatalf("tampered aggregate proof: %v, want 422", err)
	}
	if l, err = p.Claim(ctx, pouw.ClaimRequest{Tiers: []pouw.JobTier{pouw.TierFull}, Backends: []string{aggregate.Name}}); err != nil {
		t.Fatal(err)
	}
	if w.agg, err = p.Submit(ctx, l.Job.JobID, l.LeaseToken, w.aggProof); err != nil || w.agg.State != pouw.StateCompleted || w.agg.Attempts != 1 {
		t.Fatalf("aggregate proof: %+v, %v", w.agg, err)
	}
	return w
}

// rebind is a JobReader that reports one job differently, to check what the
// verifier reads from the children.
type rebind struct {
	coordinator.JobReader
	id     string
	change func(*pouw.ProofJob)
	err    error
}

func (r rebind) Job(ctx context.Context, id string) (pouw.ProofJob, error) {
	if id == r.id && r.err != nil {
		return pouw.ProofJob{}, r.err
	}
	j, err := r.JobReader.Job(ctx, id)
	if err == nil && id == r.id && r.change != nil {
		r.change(&j)
	}
	return j, err
}

// failingBlobs fails to open one blob.
type failingBlobs struct {
	blob.Store
	h pouw.Hash
}

func (f failingBlobs) Open(ctx context.Context, h pouw.Hash) (blob.Reader, blob.Info, error) {
	if h == f.h {
		return nil, blob.Info{}, errors.New("disk on fire")
	}
	return f.Store.Open(ctx, h)
}

// plainBackend verifies nothing and aggregates nothing: a backend that is
// not a backends.Aggregator.
type plainBackend struct{}

func (plainBackend) Name() string          { return aggregate.Name }
func (plainBackend) Tiers() []pouw.JobTier { return pouw.Tiers[:] }
func (plainBackend) Prove(context.Context, *trace.Trace, backends.Statement) ([]byte, error) {
	return nil, errors.New("plain backend: no proving here")
}
func (plainBackend) Verify(context.Context, backends.Statement, []byte) error {
	return fmt.Errorf("%w: plain backend", backends.ErrProofRejected)
}
func (plainBackend) Estimate(*trace.Header) backends.Resources { return backends.Resources{} }

// TestBatchAggregateProof proves one batch end to end through the
// coordinator (the aggregate proving time of k=2 is seconds, so the checks
// share it): the proof the coordinator accepted verifies against the
// children as they are in the store, and the verifier rejects it for any
// other batch, order, prover binding or job record, and says a check it
// could not make is unavailable, never accepting.
func TestBatchAggregateProof(t *testing.T) {
	w := newBatchWorld(t)
	t.Run("verifies", w.testVerifies)
	t.Run("bound to the batch", w.testBoundToTheBatch)
}

func (w *batchWorld) testVerifies(t *testing.T) {
	ctx := context.Background()
	if err := w.verifier().Verify(ctx, w.agg, "prover-a", w.aggProof); err != nil {
		t.Fatalf("the accepted aggregate proof: %v", err)
	}
	for i, ch := range w.batch.Children {
		got, err := w.admin.Job(ctx, ch.JobID)
		if err != nil || got.State != pouw.StateCompleted || got.ProverID == "" {
			t.Fatalf("child %d: %+v, %v", i, got, err)
		}
	}
	hist, err := w.admin.History(ctx, w.agg.JobID)
	if err != nil || len(hist) != 2 || hist[0].Outcome != pouw.OutcomeRejected || hist[1].Outcome != pouw.OutcomeCompleted {
		t.Fatalf("aggregation job history = %+v, %v", hist, err)
	}
}

func (w *batchWorld) testBoundToTheBatch(t *testing.T) {
	ctx := context.Background()
	ids := w.agg.DependsOn
	swapped, err := w.admin.CreateBatch(ctx, pouw.BatchRequest{Intents: []pouw.BatchIntent{w.intents[1], w.intents[0]}, FeeBudget: 10, RewardBudget: 5})
	if err != nil || !swapped.Created || swapped.Aggregation.State != pouw.StatePending {
		t.Fatalf("the swapped batch (children complete): %+v, %v", swapped.Aggregation, err)
	}
	if swapped.Children[0].JobID != ids[1] || swapped.Children[1].JobID != ids[0] {
		t.Fatalf("the swapped batch's children %s, %s are not the batch's %v", swapped.Children[0].JobID, swapped.Children[1].JobID, ids)
	}
	unproved, err := w.admin.CreateBatch(ctx, pouw.BatchRequest{Intents: []pouw.BatchIntent{w.intents[0], w.intents[2]}, FeeBudget: 10, RewardBudget: 5})
	if err != nil || unproved.Aggregation.State != pouw.StateWaiting {
		t.Fatalf("a batch with a pending child: %+v, %v", unproved.Aggregation, err)
	}
	plainReg, err := backends.NewRegistry(plainBackend{})
	if err != nil {
		t.Fatal(err)
	}
	job := func(f func(*pouw.ProofJob)) pouw.ProofJob {
		j := w.agg
		j.DependsOn = slices.Clone(j.DependsOn)
		f(&j)
		return j
	}
	v := w.verifier()
	for _, tc := range []struct {
		name        string
		v           coordinator.BackendVerifier
		job         pouw.ProofJob
		proof       []byte
		prover      string // submitting prover; "" is prover-a, who proved it
		unavailable bool   // ErrVerifierUnavailable, else a rejection
		says        string // in the error
	}{
		{name: "swapped child order", v: v, job: swapped.Aggregation},
		{name: "submitted by another prover", v: v, job: w.agg, prover: "prover-b"},
		{name: "another aggregation job of the same batch", v: v, job: job(func(j *pouw.ProofJob) { j.JobID = pouw.JobID(j.IntentID, j.TraceHash, j.Tier, j.CreatedSeq+1) })},
		{name: "a child bound to another prover", v: coordinator.BackendVerifier{Registry: w.reg, Blobs: w.c.Blobs,
			Jobs: rebind{JobReader: w.c.Store, id: ids[1], change: func(j *pouw.ProofJob) { j.ProverID = "mallory" }}}, job: w.agg},
		{name: "a child not completed (store record)", v: coordinator.BackendVerifier{Registry: w.reg, Blobs: w.c.Blobs,
			Jobs: rebind{JobReader: w.c.Store, id: ids[0], change: func(j *pouw.ProofJob) { j.State = pouw.StateLeased }}}, job: w.agg,
			says: "leased, not completed"},
		{name: "a child not completed (real batch)", v: v, job: unproved.Aggregation, says: "not completed"},
		{name: "a child gone", v: coordinator.BackendVerifier{Registry: w.reg, Blobs: w.c.Blobs,
			Jobs: rebind{JobReader: w.c.Store, id: ids[1], err: fmt.Errorf("bolt: %w", store.ErrNotFound)}}, job: w.agg, says: "gone"},
		{name: "a child of another backend", v: coordinator.BackendVerifier{Registry: w.reg, Blobs: w.c.Blobs,
			Jobs: rebind{JobReader: w.c.Store, id: ids[0], change: func(j *pouw.ProofJob) { j.Backend = "stark" }}}, job: w.agg, says: "stark"},
		{name: "depends_on reordered", v: v, job: job(func(j *pouw.ProofJob) { slices.Reverse(j.DependsOn) }), says: "depends_on"},
		{name: "depends_on short", v: v, job: job(func(j *pouw.ProofJob) { j.DependsOn = j.DependsOn[:1] }), says: "depends_on"},
		{name: "intent id not the batch's", v: v, job: job(func(j *pouw.ProofJob) { j.IntentID[0] ^= 1 }), says: "intent"},
		{name: "manifest on a macro job", v: v, job: job(func(j *pouw.ProofJob) { j.Tier = pouw.TierMacro }), says: "tier macro"},
		{name: "a backend that does not aggregate", v: coordinator.BackendVerifier{Registry: plainReg, Blobs: w.c.Blobs, Jobs: w.c.Store},
			job: w.agg, says: "does not aggregate"},
		{name: "no job reader", v: coordinator.BackendVerifier{Registry: w.reg, Blobs: w.c.Blobs}, job: w.agg, says: "cannot read jobs"},
		{name: "garbage", v: v, job: w.agg, proof: []byte("x"), says: "invalid proof encoding"},
		{name: "a child's intent proof", v: v, job: w.agg, proof: w.childProofs[0], says: "not an aggregate proof"},
		{name: "store unavailable", v: coordinator.BackendVerifier{Registry: w.reg, Blobs: w.c.Blobs,
			Jobs: rebind{JobReader: w.c.Store, id: ids[0], err: fmt.Errorf("redis: %w", store.ErrUnavailable)}}, job: w.agg, unavailable: true},
		{name: "child trace unreadable", v: coordinator.BackendVerifier{Registry: w.reg, Jobs: w.c.Store,
			Blobs: failingBlobs{Store: w.c.Blobs, h: w.intents[1].TraceHash}}, job: w.agg, unavailable: true},
		{name: "manifest unreadable", v: coordinator.BackendVerifier{Registry: w.reg, Jobs: w.c.Store,
			Blobs: failingBlobs{Store: w.c.Blobs, h: w.agg.TraceHash}}, job: w.agg, unavailable: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proof := tc.proof
			if proof == nil {
				proof = w.aggProof
			}
			prover := tc.prover
			if prover == "" {
				prover = "prover-a"
			}
			err := tc.v.Verify(ctx, tc.job, prover, proof)
			switch {
			case err == nil:
				t.Fatal("accepted")
			case tc.unavailable != errors.Is(err, api.ErrVerifierUnavailable):
				t.Fatalf("unavailable = %t, want %t: %v", !tc.unavailable, tc.unavailable, err)
			case !strings.Contains(err.Error(), tc.says):
				t.Fatalf("error %q does not say %q", err, tc.says)
			}
			t.Logf("%v", err)
		})
	}
	// And the untouched verifier still accepts it: the rejections above
	// come from what each case changed.
	if err := v.Verify(ctx, w.agg, "prover-a", w.aggProof); err != nil {
		t.Fatalf("the accepted aggregate proof: %v", err)
	}
}
