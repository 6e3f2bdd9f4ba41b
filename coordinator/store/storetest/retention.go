package storetest

import (
	"testing"
	"time"

	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/pouw"
)

func init() {
	add("CompletedJobDetailExpiresAfterRetentionDedupOutlivesIt", testCompletedJobDetailExpiresAfterRetention)
	add("DeadJobsOutliveRetention", testDeadJobsOutliveRetention)
}

func testCompletedJobDetailExpiresAfterRetention(t *testing.T, nh Factory) {
	opts := testOptions()
	opts.Retention = time.Hour
	opts.DedupWindow = 24 * time.Hour
	f := newFx(t, nh, opts)
	f.ready()
	r := f.req(deadlineIn(48*time.Hour, f))
	job := f.enqueueReq(r)
	f.complete(f.claim("p1"), "p1")
	f.advance(time.Hour - time.Millisecond)
	f.reap()
	f.job(job.JobID)
	f.advance(time.Millisecond)
	f.reap()
	_, err := f.s.Job(f.ctx, job.JobID)
	wantErr(t, err, store.ErrNotFound, "job detail after retention")
	_, err = f.s.History(f.ctx, job.JobID)
	wantErr(t, err, store.ErrNotFound, "history after retention")
	if st := f.provers()["p1"]; st.JobsCompleted != 1 || st.TotalFeeEarned != 10 {
		t.Fatalf("prover stats lost with the job: %+v", st)
	}
	if p := f.pool(); p.Paid != 10 {
		t.Fatalf("pool ledger lost with the job: %+v", p)
	}

	// Within the dedup window the same triple still maps to the job.
	before := f.snap()
	again, created, err := f.s.Enqueue(f.ctx, r)
	if err != nil || created || again.JobID != job.JobID {
		t.Fatalf("enqueue within the dedup window after retention: %s created=%v err=%v, want %s", again.JobID, created, err, job.JobID)
	}
	f.unchanged(before, "deduplicated enqueue")

	f.advance(23 * time.Hour)
	f.reap()
	fresh, created, err := f.s.Enqueue(f.ctx, r)
	if err != nil || !created || fresh.JobID == job.JobID {
		t.Fatalf("enqueue after the dedup window: %s created=%v err=%v, want a new job", fresh.JobID, created, err)
	}
	wantState(t, fresh, pouw.StatePending)
}

func testDeadJobsOutliveRetention(t *testing.T, nh Factory) {
	opts := testOptions()
	opts.Retention = time.Hour
	f := newFx(t, nh, opts)
	f.ready()
	job := f.enqueue(retries(1), deadlineIn(48*time.Hour, f))
	f.fail(f.claim("p1"), "p1")
	f.advance(2 * time.Hour)
	f.reap()
	wantState(t, f.job(job.JobID), pouw.StateDead)
	sameIDs(t, "dead letter after retention", f.deadIDs(), []string{job.JobID})
	if h := f.history(job.JobID); len(h) != 1 {
		t.Fatalf("history of a dead job after retention: %+v", h)
	}
}
