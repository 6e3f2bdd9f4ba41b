package agent_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zeebo/blake3"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/backends/aggregate"
	"github.com/pouwfarm/pouwfarm/backends/aggregate/aggregatetest"
	"github.com/pouwfarm/pouwfarm/coordinator/client"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/scheduler"
	"github.com/pouwfarm/pouwfarm/scheduler/agent"
	"github.com/pouwfarm/pouwfarm/trace"
)

// batchCoord is a fake coordinator holding one leased aggregation job, its
// children's details and a blob store. Its DownloadBlob serves whatever is
// stored under a key without checking it, so the agent's own hash checks
// are what the tests exercise.
type batchCoord struct {
	mu        sync.Mutex
	lease     pouw.ClaimResponse
	claimed   bool
	jobs      map[string]pouw.ProofJob
	blobs     map[pouw.Hash][]byte
	jobErr    error               // returned by Job when set
	blobErr   map[pouw.Hash]error // returned by DownloadBlob for these keys
	submitted [][]byte
	failed    []string
	released  []string
}

func (c *batchCoord) Claim(ctx context.Context, _ pouw.ClaimRequest) (pouw.ClaimResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.claimed {
		return pouw.ClaimResponse{}, client.ErrNoJob
	}
	c.claimed = true
	return c.lease, nil
}

func (c *batchCoord) Renew(_ context.Context, id, token string) (pouw.ProofJob, error) {
	return c.lease.Job, nil
}

func (c *batchCoord) Submit(_ context.Context, id, token string, proof []byte) (pouw.ProofJob, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.submitted = append(c.submitted, proof)
	return c.lease.Job, nil
}

func (c *batchCoord) Fail(_ context.Context, id, token, reason string) (pouw.ProofJob, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failed = append(c.failed, reason)
	return c.lease.Job, nil
}

func (c *batchCoord) Release(_ context.Context, id, token, reason string) (pouw.ProofJob, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.released = append(c.released, reason)
	return c.lease.Job, nil
}

func (c *batchCoord) DownloadBlob(_ context.Context, h pouw.Hash, w io.Writer) (int64, error) {
	c.mu.Lock()
	b, ok := c.blobs[h]
	berr := c.blobErr[h]
	c.mu.Unlock()
	if berr != nil {
		return 0, berr
	}
	if !ok {
		return 0, fmt.Errorf("%w: blob %s", client.ErrNotFound, h)
	}
	n, err := w.Write(b)
	return int64(n), err
}

func (c *batchCoord) Job(_ context.Context, id string) (pouw.ProofJob, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.jobErr != nil {
		return pouw.ProofJob{}, c.jobErr
	}
	j, ok := c.jobs[id]
	if !ok {
		return pouw.ProofJob{}, fmt.Errorf("%w: job %s", client.ErrNotFound, id)
	}
	return j, nil
}

func (c *batchCoord) put(b []byte) pouw.Hash {
	h := pouw.Hash(blake3.Sum256(b))
	c.blobs[h] = b
	return h
}

// batchChild is one completed child as the coordinator holds it: its trace
// (encoded), the prover that completed it and its accepted proof.
type batchChild struct {
	trace  []byte
	prover string
	proof  []byte
}

// newBatchCoord builds the coordinator's view of a batch: the children as
// completed Macro jobs of backend, their traces and proofs stored
// content-addressed, and the leased aggregation job whose blob is the
// manifest.
func newBatchCoord(t *testing.T, backend string, children []batchChild) *batchCoord {
	t.Helper()
	c := &batchCoord{jobs: map[string]pouw.ProofJob{}, blobs: map[pouw.Hash][]byte{}}
	m := &pouw.BatchManifest{Backend: backend}
	for i, ch := range children {
		h, _, err := trace.DecodeHeader(bytes.NewReader(ch.trace), int64(len(ch.trace)))
		if err != nil {
			t.Fatal(err)
		}
		th := c.put(ch.trace)
		pr := c.put(ch.proof)
		id := pouw.JobID(h.IntentID, th, pouw.TierMacro, uint64(i+1))
		c.jobs[id] = pouw.ProofJob{
			JobID: id, Tier: pouw.TierMacro, IntentID: h.IntentID, TraceHash: th, TraceRef: th.String(),
			TraceBytes: int64(len(ch.trace)), Backend: backend, State: pouw.StateCompleted, MaxRetries: 3,
			ProverID: ch.prover, ProofRef: pr.String(), CompletedAtMs: 1,
		}
		m.Children = append(m.Children, pouw.BatchChild{JobID: id, IntentID: h.IntentID, TraceHash: th})
	}
	enc, err := pouw.EncodeManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	mh := c.put(enc)
	c.lease = pouw.ClaimResponse{
		Job: pouw.ProofJob{
			JobID: pouw.JobID(m.IntentID(), mh, pouw.TierFull, 99), Tier: pouw.TierFull, IntentID: m.IntentID(),
			TraceHash: mh, TraceRef: mh.String(), TraceBytes: int64(len(enc)), Backend: backend, State: pouw.StateLeased,
			MaxRetries: 3, DependsOn: m.ChildIDs(), ProverID: "farm-agg",
			LeaseExpiresAtMs: time.Now().Add(10 * time.Minute).UnixMilli(),
		},
		LeaseToken: "lease-token",
	}
	return c
}

// batch is the aggregation job's statement as the coordinator verifies it:
// the manifest's hash, the job and the prover it was leased to.
func (c *batchCoord) batch() backends.Statement {
	j := c.lease.Job
	return backends.Statement{TraceHash: j.TraceHash, JobID: j.JobID, ProverID: j.ProverID}
}

// statements are the children's statements as a verifier derives them:
// the header of the trace blob, trace_hash, the child's id and the prover
// that completed it.
func (c *batchCoord) statements(t *testing.T) []backends.Statement {
	t.Helper()
	var out []backends.Statement
	for _, id := range c.lease.Job.DependsOn {
		j := c.jobs[id]
		b := c.blobs[j.TraceHash]
		h, _, err := trace.DecodeHeader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, backends.Statement{Header: h, TraceHash: j.TraceHash, JobID: j.JobID, ProverID: j.ProverID})
	}
	return out
}

// runBatch runs an agent against c until it finishes the aggregation job,
// and returns what it reported.
func runBatch(t *testing.T, c *batchCoord, reg *backends.Registry, mutate func(*agent.Options)) agent.JobResult {
	t.Helper()
	slots, _, err := scheduler.DeviceModel(scheduler.HostOptions{CPUCores: 2, HostMemoryBytes: 4 << 30}, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	alloc, err := scheduler.NewAllocator(slots, agent.SchedulerBackends(reg))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan agent.JobResult, 1)
	o := agent.Options{
		Coordinator: c, ProverID: "farm-agg", Pool: scheduler.NewPool(alloc), Backends: reg,
		IdleMin: 10 * time.Millisecond, IdleMax: 50 * time.Millisecond, Logger: slog.New(slog.DiscardHandler),
		FailBackoffMin: time.Millisecond, FailBackoffMax: 2 * time.Millisecond,
		OnDone: func(r agent.JobResult) { done <- r },
	}
	if mutate != nil {
		mutate(&o)
	}
	a, err := agent.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	runErr := make(chan error, 1)
	go func() { runErr <- a.Run(ctx) }()
	var r agent.JobResult
	select {
	case r = <-done:
	case <-time.After(10 * time.Minute):
		t.Fatal("the agent did not finish the aggregation job")
	}
	cancel()
	if err := <-runErr; err != nil {
		t.Fatalf("agent: %v", err)
	}
	return r
}

// recordingAggregator stands in for the aggregate backend where a test
// must fail before anything is proved: it records every call and proves
// nothing.
type recordingAggregator struct {
	mu    sync.Mutex
	calls int
}

func (b *recordingAggregator) Name() string { return "aggregate" }
func (b *recordingAggregator) Tiers() []pouw.JobTier {
	return []pouw.JobTier{pouw.TierMacro, pouw.TierFull}
}
func (b *recordingAggregator) Prove(context.Context, *trace.Trace, backends.Statement) ([]byte, error) {
	return nil, errors.New("recordingAggregator proves nothing")
}
func (b *recordingAggregator) Verify(context.Context, backends.Statement, []byte) error {
	return errors.New("recordingAggregator verifies nothing")
}
func (b *recordingAggregator) Estimate(*trace.Header) backends.Resources {
	return backends.Resources{Cores: 1}
}
func (b *recordingAggregator) Aggregate(context.Context, backends.Statement, []backends.Statement, [][]byte) ([]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls++
	return nil, errors.New("recordingAggregator aggregates nothing")
}
func (b *recordingAggregator) VerifyAggregate(context.Context, backends.Statement, []backends.Statement, []byte) error {
	return errors.New("recordingAggregator verifies nothing")
}

// plainChildren are two children with real traces and placeholder proofs,
// for the tests that must stop before the proofs matter.
func plainChildren(t *testing.T) []batchChild {
	t.Helper()
	var out []batchChild
	for i, tr := range agent.ChildTraces(t) {
		var buf bytes.Buffer
		if err := trace.Encode(&buf, tr); err != nil {
			t.Fatal(err)
		}
		out = append(out, batchChild{trace: buf.Bytes(), prover: fmt.Sprintf("prover-%d", i), proof: []byte(fmt.Sprintf("proof of child %d", i))})
	}
	return out
}

func TestAggregationJobWithABrokenBatchFailsAndSubmitsNothing(t *testing.T) {
	for name, tc := range map[string]struct {
		mutate  func(c *batchCoord)
		outcome string
		reason  string
	}{
		"child not completed": {func(c *batchCoord) {
			j := c.jobs[c.lease.Job.DependsOn[1]]
			j.State, j.ProofRef = pouw.StateLeased, ""
			c.jobs[j.JobID] = j
		}, agent.OutcomeFailed, "child 1 (" + "%s" + "): child is leased, not completed"},
		"depends_on differs from the manifest": {func(c *batchCoord) {
			c.lease.Job.DependsOn = []string{c.lease.Job.DependsOn[1], c.lease.Job.DependsOn[0]}
		}, agent.OutcomeFailed, "differ from the job's depends_on"},
		"child proof does not match proof_ref": {func(c *batchCoord) {
			j := c.jobs[c.lease.Job.DependsOn[0]]
			ref, _ := pouw.ParseHash(j.ProofRef)
			c.blobs[ref] = []byte("another proof")
		}, agent.OutcomeHashMismatch, "child proof hashes to"},
		"child trace does not match trace_hash": {func(c *batchCoord) {
			j := c.jobs[c.lease.Job.DependsOn[0]]
			b := slices.Clone(c.blobs[j.TraceHash])
			b[len(b)-1] ^= 1
			c.blobs[j.TraceHash] = b
		}, agent.OutcomeHashMismatch, "child trace hashes to"},
		"child completed by no one": {func(c *batchCoord) {
			j := c.jobs[c.lease.Job.DependsOn[0]]
			j.ProverID = ""
			c.jobs[j.JobID] = j
		}, agent.OutcomeFailed, "no prover_id or proof_ref"},
		"child unknown to the coordinator": {func(c *batchCoord) {
			delete(c.jobs, c.lease.Job.DependsOn[1])
		}, agent.OutcomeFailed, "reading the job: not found"},
		"child of another backend": {func(c *batchCoord) {
			j := c.jobs[c.lease.Job.DependsOn[0]]
			j.Backend = "stark"
			c.jobs[j.JobID] = j
		}, agent.OutcomeFailed, `proved with backend "stark"`},
		"manifest on a macro job": {func(c *batchCoord) {
			c.lease.Job.Tier = pouw.TierMacro
		}, agent.OutcomeFailed, "batch manifest on a macro job"},
	} {
		t.Run(name, func(t *testing.T) {
			c := newBatchCoord(t, "aggregate", plainChildren(t))
			tc.mutate(c)
			ra := &recordingAggregator{}
			reg, err := backends.NewRegistry(ra)
			if err != nil {
				t.Fatal(err)
			}
			r := runBatch(t, c, reg, nil)
			want := tc.reason
			if strings.Contains(want, "%s") {
				want = fmt.Sprintf(want, c.lease.Job.DependsOn[1])
			}
			if r.Outcome != tc.outcome || !strings.Contains(r.Reason, want) {
				t.Errorf("outcome %s (%s), want %s with a reason containing %q", r.Outcome, r.Reason, tc.outcome, want)
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			if len(c.failed) != 1 || c.failed[0] != r.Reason || len(c.submitted) != 0 || len(c.released) != 0 {
				t.Errorf("failed %q, submitted %d, released %q; want one failure and nothing submitted", c.failed, len(c.submitted), c.released)
			}
			if ra.calls != 0 {
				t.Errorf("Aggregate called %d times for a broken batch", ra.calls)
			}
		})
	}
}

func TestAggregationJobIsReleasedWhenTheCoordinatorCannotServeItsChildren(t *testing.T) {
	for name, mutate := range map[string]func(c *batchCoord){
		"job detail unavailable": func(c *batchCoord) {
			c.jobErr = fmt.Errorf("%w: 503 store unavailable", client.ErrUnavailable)
		},
		"token refused meanwhile": func(c *batchCoord) {
			c.jobErr = fmt.Errorf("%w: token revoked", client.ErrUnauthorized)
		},
		"proof download broken off": func(c *batchCoord) {
			ref, _ := pouw.ParseHash(c.jobs[c.lease.Job.DependsOn[1]].ProofRef)
			c.blobErr = map[pouw.Hash]error{ref: errors.New("connection reset by peer")}
		},
	} {
		t.Run(name, func(t *testing.T) {
			c := newBatchCoord(t, "aggregate", plainChildren(t))
			mutate(c)
			ra := &recordingAggregator{}
			reg, err := backends.NewRegistry(ra)
			if err != nil {
				t.Fatal(err)
			}
			r := runBatch(t, c, reg, nil)
			if r.Outcome != agent.OutcomeReleased || !strings.Contains(r.Reason, "could not serve") {
				t.Errorf("outcome %s (%s), want released", r.Outcome, r.Reason)
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			if len(c.released) != 1 || len(c.failed) != 0 || len(c.submitted) != 0 || ra.calls != 0 {
				t.Errorf("released %q, failed %q, submitted %d, aggregated %d times; want one release (no attempt counted)", c.released, c.failed, len(c.submitted), ra.calls)
			}
		})
	}
}

func TestAggregationJobNeedsABackendThatAggregates(t *testing.T) {
	c := newBatchCoord(t, "stark", plainChildren(t))
	fb := &failingBackend{}
	reg, err := backends.NewRegistry(fb)
	if err != nil {
		t.Fatal(err)
	}
	r := runBatch(t, c, reg, nil)
	if r.Outcome != agent.OutcomeFailed || !strings.Contains(r.Reason, `backend "stark" does not aggregate proofs`) {
		t.Errorf("outcome %s (%s), want failed: the backend does not aggregate", r.Outcome, r.Reason)
	}
	if at, _ := fb.calls(); len(at) != 0 {
		t.Errorf("the manifest was proved as a trace %d times", len(at))
	}
}

// provedChildren are the two children with real intent proofs, each bound
// to the prover that completed it.
func provedChildren(t *testing.T) []batchChild {
	t.Helper()
	pc := agent.ProvedAggregateChildren(t)
	var out []batchChild
	for i := range pc.Proofs {
		out = append(out, batchChild{trace: pc.Traces[i], prover: pc.Statements[i].ProverID, proof: pc.Proofs[i]})
	}
	return out
}

func TestAggregationJobIsProvedOverItsChildrensAcceptedProofs(t *testing.T) {
	b := agent.AggregateTestBackend(t)
	reg, err := backends.NewRegistry(b)
	if err != nil {
		t.Fatal(err)
	}
	children := provedChildren(t)
	// The statements the children were proved for must be the ones the
	// coordinator's view yields, or the test proves nothing.
	c := newBatchCoord(t, "aggregate", children)
	pc := agent.ProvedAggregateChildren(t)
	for i, st := range c.statements(t) {
		if st.JobID != pc.Statements[i].JobID || st.TraceHash != pc.Statements[i].TraceHash || st.ProverID != pc.Statements[i].ProverID {
			t.Fatalf("child %d: coordinator's statement %+v, proved for %+v", i, st, pc.Statements[i])
		}
	}

	t.Run("a child proof that does not verify fails the job", func(t *testing.T) {
		// A proof of child 1 stored and named by child 0: proof_ref matches,
		// the proof does not prove child 0's statement.
		bad := slices.Clone(children)
		bad[0].proof = children[1].proof
		c := newBatchCoord(t, "aggregate", bad)
		r := runBatch(t, c, reg, nil)
		if r.Outcome != agent.OutcomeFailed || !strings.Contains(r.Reason, "aggregate: child 0") {
			t.Errorf("outcome %s (%s), want failed at child 0", r.Outcome, r.Reason)
		}
		if len(c.submitted) != 0 {
			t.Error("a proof was submitted")
		}
	})

	if agent.RaceEnabled {
		t.Skip("race detector: the aggregate proof is TestAggregationJobIsProvedInAWorkerProcess's")
	}
	t0 := time.Now()
	r := runBatch(t, c, reg, nil)
	if r.Outcome != agent.OutcomeCompleted {
		t.Fatalf("outcome %s (%s), want completed", r.Outcome, r.Reason)
	}
	t.Logf("aggregation job done in %v (proving %v)", time.Since(t0).Round(time.Millisecond), r.Proving.Round(time.Millisecond))
	c.mu.Lock()
	submitted := slices.Clone(c.submitted)
	c.mu.Unlock()
	if len(submitted) != 1 {
		t.Fatalf("%d proofs submitted, want 1", len(submitted))
	}
	sts := c.statements(t)
	if err := b.VerifyAggregate(context.Background(), c.batch(), sts, submitted[0]); err != nil {
		t.Fatalf("the submitted aggregate proof does not verify for the children's statements: %v", err)
	}
	other := slices.Clone(sts)
	other[1].ProverID = "someone-else"
	if err := b.VerifyAggregate(context.Background(), c.batch(), other, submitted[0]); !errors.Is(err, backends.ErrProofRejected) {
		t.Errorf("aggregate proof verified with child 1 bound to another prover: %v", err)
	}
	thief := c.batch()
	thief.ProverID = "someone-else"
	if err := b.VerifyAggregate(context.Background(), thief, sts, submitted[0]); !errors.Is(err, backends.ErrProofRejected) {
		t.Errorf("aggregate proof verified for another aggregating prover: %v", err)
	}
}

func TestAggregationJobIsProvedInAWorkerProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("proves in a worker process")
	}
	b := agent.AggregateTestBackend(t)
	reg, err := backends.NewRegistry(b)
	if err != nil {
		t.Fatal(err)
	}
	c := newBatchCoord(t, "aggregate", provedChildren(t))
	sp := &workerSpawner{env: []string{workerAggregateKeys + "=" + aggregate.CacheDir(aggregatetest.Root(), aggregatetest.Params)}}
	pool := sp.pool()
	defer pool.Close()
	r := runBatch(t, c, reg, func(o *agent.Options) { o.Workers, o.Isolate = pool, []string{"aggregate"} })
	if r.Outcome != agent.OutcomeCompleted {
		t.Fatalf("outcome %s (%s), want completed", r.Outcome, r.Reason)
	}
	if n := len(sp.started()); n != 1 {
		t.Errorf("%d worker processes started, want the aggregation proved in one", n)
	}
	c.mu.Lock()
	submitted := slices.Clone(c.submitted)
	c.mu.Unlock()
	if len(submitted) != 1 {
		t.Fatalf("%d proofs submitted, want 1", len(submitted))
	}
	if err := b.VerifyAggregate(context.Background(), c.batch(), c.statements(t), submitted[0]); err != nil {
		t.Fatalf("the worker's aggregate proof does not verify for the children's statements: %v", err)
	}
}
