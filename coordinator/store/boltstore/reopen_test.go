package boltstore_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/pouwfarm/pouwfarm/clock"
	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/coordinator/store/boltstore"
	"github.com/pouwfarm/pouwfarm/pouw"
)

func hash(b byte, n int) pouw.Hash {
	var h pouw.Hash
	h[0], h[31] = b, byte(n)
	return h
}

func enqueueReq(clk clock.Clock, n int) store.EnqueueRequest {
	return store.EnqueueRequest{
		Tier: pouw.TierMacro, IntentID: hash(1, n), TraceHash: hash(2, n), TraceRef: "t", TraceBytes: 10,
		Backend: "stark", FeeBudget: 10, RewardBudget: 10, MaxRetries: 3,
		DeadlineMs: pouw.Millis(clk.Now().Add(time.Hour)),
	}
}

func open(t *testing.T, path string, opts store.Options, clk clock.Clock) *boltstore.Store {
	t.Helper()
	s, err := boltstore.Open(path, opts, clk, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestReopenKeepsEverythingAndCreatedSeqNeverGoesBack(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "pouw.db")
	clk := clock.NewFake(epoch)
	s := open(t, path, store.Options{}, clk)
	if _, err := s.Deposit(ctx, 100, "admin"); err != nil {
		t.Fatal(err)
	}
	if err := s.RegisterProver(ctx, store.Prover{ID: "p1", TokenHash: hash(9, 1)}); err != nil {
		t.Fatal(err)
	}
	var last pouw.ProofJob
	for i := range 3 {
		j, _, err := s.Enqueue(ctx, enqueueReq(clk, i))
		if err != nil {
			t.Fatal(err)
		}
		last = j
	}
	lease, err := s.Claim(ctx, store.ClaimRequest{ProverID: "p1", Tiers: []pouw.JobTier{pouw.TierMacro}, Backends: []string{"stark"}})
	if err != nil {
		t.Fatal(err)
	}
	evs, err := s.Events(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Job(ctx, last.JobID); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Job on a closed store: %v, want ErrUnavailable", err)
	}

	s = open(t, path, store.Options{}, clk)
	defer s.Close()
	if p, err := s.Pool(ctx); err != nil || p.Deposited != 100 || p.Reserved != 30 {
		t.Fatalf("pool after reopen %+v %v", p, err)
	}
	if p, err := s.ProverByTokenHash(ctx, hash(9, 1)); err != nil || p.ID != "p1" {
		t.Fatalf("prover after reopen %+v %v", p, err)
	}
	if j, err := s.Job(ctx, lease.Job.JobID); err != nil || j.State != pouw.StateLeased {
		t.Fatalf("leased job after reopen %+v %v", j, err)
	}
	// The lease survives: its token still works.
	if _, err := s.Complete(ctx, store.LeaseRef{JobID: lease.Job.JobID, ProverID: "p1", Token: lease.Token}, "proofs/x"); err != nil {
		t.Fatalf("Complete after reopen: %v", err)
	}
	// The same triple is still deduplicated.
	if j, created, err := s.Enqueue(ctx, enqueueReq(clk, 2)); err != nil || created || j.JobID != last.JobID {
		t.Fatalf("dedup after reopen: %s created=%v %v", j.JobID, created, err)
	}
	j, _, err := s.Enqueue(ctx, enqueueReq(clk, 3))
	if err != nil {
		t.Fatal(err)
	}
	if j.CreatedSeq <= last.CreatedSeq {
		t.Fatalf("created_seq %d after reopen, previous %d", j.CreatedSeq, last.CreatedSeq)
	}
	after, err := s.Events(ctx, evs[len(evs)-1].ID, 100)
	if err != nil || len(after) != 2 || after[0].ID != evs[len(evs)-1].ID+1 {
		t.Fatalf("events after reopen continue the ids: %+v %v", after, err)
	}
}

func TestSecondOpenOfSameFileIsUnavailable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pouw.db")
	s := open(t, path, store.Options{}, clock.Real{})
	defer s.Close()
	if _, err := boltstore.Open(path, store.Options{}, clock.Real{}, nil); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("second Open: %v, want ErrUnavailable", err)
	}
}

// A claim whose filters skip jobs looks at most MaxClaimScan entries of an
// index, so its cost is bounded whatever the queue depth.
func TestClaimScanIsBoundedByMaxClaimScan(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewFake(epoch)
	s := open(t, filepath.Join(t.TempDir(), "pouw.db"), store.Options{MaxClaimScan: 4}, clk)
	defer s.Close()
	if _, err := s.Deposit(ctx, 1000, "admin"); err != nil {
		t.Fatal(err)
	}
	if err := s.RegisterProver(ctx, store.Prover{ID: "p1", TokenHash: hash(9, 1)}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		r := enqueueReq(clk, i)
		r.TraceBytes = 1 << 20
		if _, _, err := s.Enqueue(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	small := enqueueReq(clk, 99)
	small.DeadlineMs += 1000
	if _, _, err := s.Enqueue(ctx, small); err != nil {
		t.Fatal(err)
	}
	req := store.ClaimRequest{ProverID: "p1", Tiers: []pouw.JobTier{pouw.TierMacro}, Backends: []string{"stark"}, MaxTraceBytes: 1000}
	if _, err := s.Claim(ctx, req); !errors.Is(err, store.ErrNoJob) {
		t.Fatalf("claim behind 5 misfits with a scan bound of 4: %v, want ErrNoJob", err)
	}
	// With two misfits out of the way the fitting job is within the bound.
	req.MaxTraceBytes = 0
	for range 2 {
		if l, err := s.Claim(ctx, req); err != nil || l.Job.TraceBytes != 1<<20 {
			t.Fatalf("claim without a size limit: %+v %v", l.Job, err)
		}
	}
	req.MaxTraceBytes = 1000
	if l, err := s.Claim(ctx, req); err != nil || l.Job.TraceBytes != 10 {
		t.Fatalf("claim within the bound: %+v %v", l.Job, err)
	}
}

func openStore(path string, clk clock.Clock) (*boltstore.Store, error) {
	return boltstore.Open(path, store.Options{}, clk, nil)
}

func TestCancelledContextWritesNothing(t *testing.T) {
	clk := clock.NewFake(epoch)
	s := open(t, filepath.Join(t.TempDir(), "pouw.db"), store.Options{}, clk)
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Deposit(ctx, 10, "admin"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Deposit with a cancelled context: %v", err)
	}
	if _, err := s.Pool(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Pool with a cancelled context: %v", err)
	}
	p, err := s.Pool(context.Background())
	if err != nil || p.Deposited != 0 {
		t.Fatalf("pool after a cancelled deposit: %+v %v", p, err)
	}
}

// Pending jobs past their deadline sit at the front of the claim order; a
// claim that meets them moves them to the dead letter in its own transaction
// rather than stepping over them on every claim until the reaper runs.
func TestClaimDeadLettersPendingJobsPastDeadlineItMeets(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewFake(epoch)
	s := open(t, filepath.Join(t.TempDir(), "pouw.db"), store.Options{}, clk)
	defer s.Close()
	if _, err := s.Deposit(ctx, 100, "admin"); err != nil {
		t.Fatal(err)
	}
	if err := s.RegisterProver(ctx, store.Prover{ID: "p1", TokenHash: hash(9, 1)}); err != nil {
		t.Fatal(err)
	}
	soon := enqueueReq(clk, 1)
	soon.DeadlineMs = pouw.Millis(clk.Now()) + 1000
	late := enqueueReq(clk, 2)
	js, _, err := s.Enqueue(ctx, soon)
	if err != nil {
		t.Fatal(err)
	}
	jl, _, err := s.Enqueue(ctx, late)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	l, err := s.Claim(ctx, store.ClaimRequest{ProverID: "p1", Tiers: []pouw.JobTier{pouw.TierMacro}, Backends: []string{"stark"}})
	if err != nil || l.Job.JobID != jl.JobID {
		t.Fatalf("claim got %s (%v), want the job still in time %s", l.Job.JobID, err, jl.JobID)
	}
	j, err := s.Job(ctx, js.JobID)
	if err != nil || j.State != pouw.StateDead || j.DeadReason == "" {
		t.Fatalf("job past its deadline after a claim: %+v %v, want dead with a reason", j, err)
	}
	if p, _ := s.Pool(ctx); p.Reserved != 10 || !p.Balanced() {
		t.Fatalf("pool %+v, want only the leased job reserved", p)
	}
}
