package storetest

import (
	"context"
	"encoding/binary"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/zeebo/blake3"

	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/pouw"
)

// add registers a test of the suite; the files of this package call it from
// init, one file per area of the contract.
func add(name string, fn func(t *testing.T, newHarness Factory)) {
	suite = append(suite, testCase{name: name, fn: fn})
}

// testBackend is the backend the fixtures' jobs use unless a test says
// otherwise.
const testBackend = "stark"

// fx is one test's fixture: a fresh store and helpers that fail the test on
// unexpected errors.
type fx struct {
	t    *testing.T
	h    Harness
	s    store.Store
	opts store.Options
	ctx  context.Context
	n    uint64
}

// testOptions are the options most tests run with: ARCHITECTURE.md's
// defaults.
func testOptions() store.Options { return store.DefaultOptions() }

func newFx(t *testing.T, newHarness Factory, opts store.Options) *fx {
	t.Helper()
	opts = opts.WithDefaults()
	h := newHarness(t, opts)
	return &fx{t: t, h: h, s: h.Store, opts: opts, ctx: context.Background()}
}

func (f *fx) nowMs() int64 { return pouw.Millis(f.h.Now()) }

func (f *fx) advance(d time.Duration) { f.h.Advance(d) }

// hashOf returns a distinct hash for each label.
func hashOf(label string) pouw.Hash { return pouw.Hash(blake3.Sum256([]byte(label))) }

func seqHash(prefix byte, n uint64) pouw.Hash {
	var h pouw.Hash
	h[0] = prefix
	binary.BigEndian.PutUint64(h[24:], n)
	return h
}

// req returns a valid enqueue request for a new (intent, trace) pair: macro,
// backend stark, fee 100, reward 10, deadline in an hour, 3 retries.
func (f *fx) req(mods ...func(*store.EnqueueRequest)) store.EnqueueRequest {
	f.n++
	r := store.EnqueueRequest{
		Tier:         pouw.TierMacro,
		IntentID:     seqHash(1, f.n),
		TraceHash:    seqHash(2, f.n),
		TraceRef:     "traces/" + seqHash(2, f.n).String(),
		TraceBytes:   1000,
		Backend:      testBackend,
		FeeBudget:    100,
		RewardBudget: 10,
		DeadlineMs:   f.nowMs() + time.Hour.Milliseconds(),
		MaxRetries:   3,
	}
	for _, m := range mods {
		m(&r)
	}
	return r
}

func (f *fx) enqueueReq(r store.EnqueueRequest) pouw.ProofJob {
	f.t.Helper()
	job, created, err := f.s.Enqueue(f.ctx, r)
	if err != nil {
		f.t.Fatalf("Enqueue: %v", err)
	}
	if !created {
		f.t.Fatalf("Enqueue: created=false for a new job")
	}
	return job
}

func (f *fx) enqueue(mods ...func(*store.EnqueueRequest)) pouw.ProofJob {
	f.t.Helper()
	return f.enqueueReq(f.req(mods...))
}

func tier(t pouw.JobTier) func(*store.EnqueueRequest) {
	return func(r *store.EnqueueRequest) { r.Tier = t }
}

func reward(n uint64) func(*store.EnqueueRequest) {
	return func(r *store.EnqueueRequest) { r.RewardBudget = n; r.FeeBudget = max(r.FeeBudget, n) }
}

func deadlineIn(d time.Duration, f *fx) func(*store.EnqueueRequest) {
	return func(r *store.EnqueueRequest) { r.DeadlineMs = f.nowMs() + d.Milliseconds() }
}

func retries(n uint32) func(*store.EnqueueRequest) {
	return func(r *store.EnqueueRequest) { r.MaxRetries = n }
}

func backend(b string) func(*store.EnqueueRequest) {
	return func(r *store.EnqueueRequest) { r.Backend = b }
}

func traceBytes(n int64) func(*store.EnqueueRequest) {
	return func(r *store.EnqueueRequest) { r.TraceBytes = n }
}

func dependsOn(ids ...string) func(*store.EnqueueRequest) {
	return func(r *store.EnqueueRequest) { r.DependsOn = ids }
}

func (f *fx) deposit(n uint64) {
	f.t.Helper()
	if _, err := f.s.Deposit(f.ctx, n, "test"); err != nil {
		f.t.Fatalf("Deposit(%d): %v", n, err)
	}
}

func tokenHash(proverID string) pouw.Hash { return hashOf("token of " + proverID) }

func (f *fx) prover(id string) {
	f.t.Helper()
	if err := f.s.RegisterProver(f.ctx, store.Prover{ID: id, TokenHash: tokenHash(id)}); err != nil {
		f.t.Fatalf("RegisterProver(%s): %v", id, err)
	}
}

// ready deposits enough for many jobs and registers provers p1 and p2.
func (f *fx) ready() {
	f.t.Helper()
	f.deposit(1_000_000)
	f.prover("p1")
	f.prover("p2")
}

func claimReq(prover string, tiers ...pouw.JobTier) store.ClaimRequest {
	if len(tiers) == 0 {
		tiers = pouw.Tiers[:]
	}
	return store.ClaimRequest{ProverID: prover, Tiers: tiers, Backends: []string{testBackend}}
}

func (f *fx) claimWith(req store.ClaimRequest) store.Lease {
	f.t.Helper()
	l, err := f.s.Claim(f.ctx, req)
	if err != nil {
		f.t.Fatalf("Claim(%+v): %v", req, err)
	}
	return l
}

func (f *fx) claim(prover string, tiers ...pouw.JobTier) store.Lease {
	f.t.Helper()
	return f.claimWith(claimReq(prover, tiers...))
}

func ref(l store.Lease, prover string) store.LeaseRef {
	return store.LeaseRef{JobID: l.Job.JobID, ProverID: prover, Token: l.Token}
}

func (f *fx) job(id string) pouw.ProofJob {
	f.t.Helper()
	j, err := f.s.Job(f.ctx, id)
	if err != nil {
		f.t.Fatalf("Job(%s): %v", id, err)
	}
	return j
}

func (f *fx) pool() pouw.PoolStatus {
	f.t.Helper()
	p, err := f.s.Pool(f.ctx)
	if err != nil {
		f.t.Fatalf("Pool: %v", err)
	}
	if !p.Balanced() {
		f.t.Fatalf("pool ledger unbalanced: %+v", p)
	}
	return p
}

func (f *fx) history(id string) []pouw.Attempt {
	f.t.Helper()
	h, err := f.s.History(f.ctx, id)
	if err != nil {
		f.t.Fatalf("History(%s): %v", id, err)
	}
	return h
}

func (f *fx) reap() int {
	f.t.Helper()
	n, err := f.s.ReapExpired(f.ctx, 1000)
	if err != nil {
		f.t.Fatalf("ReapExpired: %v", err)
	}
	return n
}

func (f *fx) complete(l store.Lease, prover string) pouw.ProofJob {
	f.t.Helper()
	j, err := f.s.Complete(f.ctx, ref(l, prover), "proofs/"+l.Job.JobID)
	if err != nil {
		f.t.Fatalf("Complete(%s): %v", l.Job.JobID, err)
	}
	return j
}

func (f *fx) fail(l store.Lease, prover string) pouw.ProofJob {
	f.t.Helper()
	j, err := f.s.Fail(f.ctx, ref(l, prover), pouw.OutcomeFailed, "test failure")
	if err != nil {
		f.t.Fatalf("Fail(%s): %v", l.Job.JobID, err)
	}
	return j
}

func (f *fx) pendingIDs(q store.PageQuery) []string {
	f.t.Helper()
	var ids []string
	for {
		page, err := f.s.Pending(f.ctx, q)
		if err != nil {
			f.t.Fatalf("Pending(%+v): %v", q, err)
		}
		for _, j := range page.Jobs {
			ids = append(ids, j.JobID)
		}
		if page.NextCursor == "" {
			return ids
		}
		q.Cursor = page.NextCursor
	}
}

func (f *fx) deadIDs() []string {
	f.t.Helper()
	var ids []string
	q := store.PageQuery{Limit: 50}
	for {
		page, err := f.s.DeadLetter(f.ctx, q)
		if err != nil {
			f.t.Fatalf("DeadLetter: %v", err)
		}
		for _, j := range page.Jobs {
			ids = append(ids, j.JobID)
		}
		if page.NextCursor == "" {
			return ids
		}
		q.Cursor = page.NextCursor
	}
}

// allEvents reads every event after id.
func (f *fx) eventsAfter(after uint64) []pouw.Event {
	f.t.Helper()
	var out []pouw.Event
	for {
		evs, err := f.s.Events(f.ctx, after, 100)
		if err != nil {
			f.t.Fatalf("Events(%d): %v", after, err)
		}
		if len(evs) == 0 {
			return out
		}
		for _, e := range evs {
			if e.ID <= after {
				f.t.Fatalf("event id %d not after %d", e.ID, after)
			}
			after = e.ID
		}
		out = append(out, evs...)
	}
}

func (f *fx) lastEventID() uint64 {
	f.t.Helper()
	evs := f.eventsAfter(0)
	if len(evs) == 0 {
		return 0
	}
	return evs[len(evs)-1].ID
}

func eventTypes(evs []pouw.Event) []pouw.EventType {
	out := make([]pouw.EventType, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

// snapshot is what a failed call must leave unchanged.
type snapshot struct {
	pool   pouw.PoolStatus
	status pouw.SystemStatus
	lastEv uint64
}

func (f *fx) snap() snapshot {
	f.t.Helper()
	st, err := f.s.Status(f.ctx)
	if err != nil {
		f.t.Fatalf("Status: %v", err)
	}
	st.NowMs = 0
	return snapshot{pool: f.pool(), status: st, lastEv: f.lastEventID()}
}

func (f *fx) unchanged(before snapshot, what string) {
	f.t.Helper()
	after := f.snap()
	if after.pool != before.pool {
		f.t.Errorf("%s changed the pool: %+v -> %+v", what, before.pool, after.pool)
	}
	if after.lastEv != before.lastEv {
		f.t.Errorf("%s appended events: last id %d -> %d", what, before.lastEv, after.lastEv)
	}
	if after.status.LastSeq != before.status.LastSeq {
		f.t.Errorf("%s used a created_seq: %d -> %d", what, before.status.LastSeq, after.status.LastSeq)
	}
	for i := range after.status.Tiers {
		for _, st := range pouw.States {
			a, b := after.status.Tiers[i].Counts[st], before.status.Tiers[i].Counts[st]
			if a != b {
				f.t.Errorf("%s changed the %s count of tier %s: %d -> %d", what, st, after.status.Tiers[i].Tier, b, a)
			}
		}
	}
}

func wantErr(t *testing.T, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
	if err != nil && target != store.ErrNoJob && err.Error() == target.Error() {
		// A bare sentinel says nothing about what was wrong.
		t.Errorf("%s: error %q does not say what was wrong", what, err)
	}
}

func wantState(t *testing.T, j pouw.ProofJob, st pouw.State) {
	t.Helper()
	if j.State != st {
		t.Fatalf("job %s is %s, want %s", j.JobID, j.State, st)
	}
}

func sameIDs(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s:\n got  %v\n want %v", what, got, want)
	}
}
