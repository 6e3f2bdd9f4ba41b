package storetest

import (
	"testing"
	"time"

	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/pouw"
)

func init() {
	add("EnqueueCreatesPendingJobWithDerivedID", testEnqueueCreatesPendingJobWithDerivedID)
	add("EnqueueCreatedSeqStrictlyIncreases", testEnqueueCreatedSeqStrictlyIncreases)
	add("EnqueueIsIdempotentWithinDedupWindow", testEnqueueIsIdempotentWithinDedupWindow)
	add("EnqueueRejectsBadInputAndWritesNothing", testEnqueueRejectsBadInputAndWritesNothing)
	add("EnqueueRefusedWhenPoolCannotCoverReward", testEnqueueRefusedWhenPoolCannotCoverReward)
}

func testEnqueueCreatesPendingJobWithDerivedID(t *testing.T, nh Factory) {
	f := newFx(t, nh, testOptions())
	f.ready()
	r := f.req(tier(pouw.TierFull), reward(42), traceBytes(777), backend("plonkish"))
	job := f.enqueueReq(r)
	if want := pouw.JobID(r.IntentID, r.TraceHash, r.Tier, job.CreatedSeq); job.JobID != want {
		t.Fatalf("job_id %s, want pouw.JobID(...)=%s for created_seq %d", job.JobID, want, job.CreatedSeq)
	}
	wantState(t, job, pouw.StatePending)
	if job.Tier != r.Tier || job.IntentID != r.IntentID || job.TraceHash != r.TraceHash ||
		job.TraceRef != r.TraceRef || job.TraceBytes != r.TraceBytes || job.Backend != r.Backend ||
		job.FeeBudget != r.FeeBudget || job.RewardBudget != r.RewardBudget ||
		job.DeadlineMs != r.DeadlineMs || job.MaxRetries != r.MaxRetries {
		t.Fatalf("job does not carry the request:\n job %+v\n req %+v", job, r)
	}
	if job.Attempts != 0 || job.LeaseExpiresAtMs != 0 || job.CreatedAtMs != f.nowMs() {
		t.Fatalf("new job: attempts %d, lease_expires_at_ms %d, created_at_ms %d (now %d)",
			job.Attempts, job.LeaseExpiresAtMs, job.CreatedAtMs, f.nowMs())
	}
	if err := job.Validate(); err != nil {
		t.Fatalf("stored job does not validate: %v", err)
	}
	if got := f.job(job.JobID); got.JobID != job.JobID || got.State != pouw.StatePending || got.CreatedSeq != job.CreatedSeq {
		t.Fatalf("Job returned %+v, want %+v", got, job)
	}
	if p := f.pool(); p.Reserved != 42 || p.Available != 1_000_000-42 {
		t.Fatalf("pool after enqueue %+v, want 42 reserved", p)
	}
	evs := f.eventsAfter(0)
	last := evs[len(evs)-1]
	if last.Type != pouw.EventJobCreated || last.JobID != job.JobID || last.State != pouw.StatePending {
		t.Fatalf("last event %+v, want job.created of %s", last, job.JobID)
	}
}

func testEnqueueCreatedSeqStrictlyIncreases(t *testing.T, nh Factory) {
	f := newFx(t, nh, testOptions())
	f.ready()
	var last uint64
	for i := range 20 {
		j := f.enqueue(tier(pouw.Tiers[i%3]))
		if j.CreatedSeq <= last {
			t.Fatalf("created_seq %d after %d", j.CreatedSeq, last)
		}
		last = j.CreatedSeq
		f.advance(time.Millisecond)
	}
	st, err := f.s.Status(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.LastSeq != last {
		t.Fatalf("status last_seq %d, want %d", st.LastSeq, last)
	}
}

func testEnqueueIsIdempotentWithinDedupWindow(t *testing.T, nh Factory) {
	opts := testOptions()
	opts.DedupWindow = 2 * time.Hour
	opts.Retention = 4 * time.Hour
	f := newFx(t, nh, opts)
	f.deposit(10)
	r := f.req(reward(10), deadlineIn(10*time.Hour, f))
	first := f.enqueueReq(r)
	before := f.snap()

	// The pool is now empty: a duplicate must still answer with the job.
	f.advance(time.Hour)
	again, created, err := f.s.Enqueue(f.ctx, r)
	if err != nil || created || again.JobID != first.JobID || again.CreatedSeq != first.CreatedSeq {
		t.Fatalf("duplicate enqueue: job %s created=%v err=%v, want %s created=false", again.JobID, created, err, first.JobID)
	}
	f.unchanged(before, "duplicate enqueue")

	// Another tier is another job.
	f.deposit(10)
	other := r
	other.Tier = pouw.TierMicro
	o := f.enqueueReq(other)
	if o.JobID == first.JobID {
		t.Fatal("same job id for another tier")
	}

	// After the window, the same triple makes a new job.
	f.deposit(10)
	f.advance(time.Hour)
	later, created, err := f.s.Enqueue(f.ctx, r)
	if err != nil || !created {
		t.Fatalf("enqueue after the dedup window: created=%v err=%v, want a new job", created, err)
	}
	if later.JobID == first.JobID || later.CreatedSeq <= o.CreatedSeq {
		t.Fatalf("job after the window %s seq %d, want a new id with a new seq", later.JobID, later.CreatedSeq)
	}
	if p := f.pool(); p.Reserved != 30 {
		t.Fatalf("reserved %d, want 30 (three jobs)", p.Reserved)
	}
}

func testEnqueueRejectsBadInputAndWritesNothing(t *testing.T, nh Factory) {
	f := newFx(t, nh, testOptions())
	f.ready()
	dead := f.enqueue(retries(1))
	f.fail(f.claim("p1"), "p1")
	wantState(t, f.job(dead.JobID), pouw.StateDead)
	live := f.enqueue()
	unknown := pouw.JobID(hashOf("x"), hashOf("y"), pouw.TierMacro, 999_999)

	cases := []struct {
		name string
		mod  func(*store.EnqueueRequest)
		want error
	}{
		{"bad tier", func(r *store.EnqueueRequest) { r.Tier = 3 }, store.ErrInvalid},
		{"reward above fee", func(r *store.EnqueueRequest) { r.FeeBudget, r.RewardBudget = 5, 6 }, store.ErrInvalid},
		{"fee above 2^53-1", func(r *store.EnqueueRequest) { r.FeeBudget = pouw.MaxAmount + 1 }, store.ErrInvalid},
		{"amounts above 2^53-1", func(r *store.EnqueueRequest) { r.FeeBudget, r.RewardBudget = 1<<60, 1<<60 }, store.ErrInvalid},
		{"zero max_retries", retries(0), store.ErrInvalid},
		{"deadline now", func(r *store.EnqueueRequest) { r.DeadlineMs = f.nowMs() }, store.ErrInvalid},
		{"deadline in the past", func(r *store.EnqueueRequest) { r.DeadlineMs = f.nowMs() - 1000 }, store.ErrInvalid},
		{"empty backend", backend(""), store.ErrInvalid},
		{"malformed depends_on", dependsOn("not-a-job-id"), store.ErrInvalid},
		{"unknown depends_on", dependsOn(live.JobID, unknown), store.ErrNotFound},
		{"dead depends_on", dependsOn(live.JobID, dead.JobID), store.ErrConflict},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f.t = t
			before := f.snap()
			r := f.req(tc.mod)
			_, _, err := f.s.Enqueue(f.ctx, r)
			wantErr(t, err, tc.want, tc.name)
			f.unchanged(before, tc.name)
			// Nothing was half-written: the same triple, made valid, is new.
			fixed := f.req()
			fixed.IntentID, fixed.TraceHash = r.IntentID, r.TraceHash
			if fixed.Tier = r.Tier; !fixed.Tier.Valid() {
				fixed.Tier = pouw.TierMacro
			}
			if _, created, err := f.s.Enqueue(f.ctx, fixed); err != nil || !created {
				t.Fatalf("valid enqueue after the refused one: created=%v err=%v", created, err)
			}
		})
	}
}

func testEnqueueRefusedWhenPoolCannotCoverReward(t *testing.T, nh Factory) {
	f := newFx(t, nh, testOptions())
	f.deposit(25)
	f.enqueue(reward(20))
	before := f.snap()
	r := f.req(reward(6))
	_, _, err := f.s.Enqueue(f.ctx, r)
	wantErr(t, err, store.ErrInsufficientFunds, "enqueue beyond the pool")
	f.unchanged(before, "refused enqueue")
	f.enqueue(reward(5))
	if p := f.pool(); p.Available != 0 || p.Reserved != 25 {
		t.Fatalf("pool %+v, want all 25 reserved", p)
	}
	f.deposit(1)
	if _, created, err := f.s.Enqueue(f.ctx, r); err == nil || created {
		t.Fatalf("enqueue of 6 with 1 available: created=%v err=%v", created, err)
	}
}
