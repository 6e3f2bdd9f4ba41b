package storetest

import (
	"encoding/hex"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zeebo/blake3"

	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/pouw"
)

func init() {
	add("RenewExtendsLeaseFromNow", testRenewExtendsLeaseFromNow)
	add("ExpiredLeaseIsLostBeforeReap", testExpiredLeaseIsLostBeforeReap)
	add("ExpiredLeaseReturnsJobToPending", testExpiredLeaseReturnsJobToPending)
	add("OldTokenAfterReleaseIsLost", testOldTokenAfterReleaseIsLost)
	add("OtherProverIsNotLeaseHolder", testOtherProverIsNotLeaseHolder)
	add("BeginVerifyProtectsJobFromReaper", testBeginVerifyProtectsJobFromReaper)
	add("CompletePaysRewardAndUpdatesStats", testCompletePaysRewardAndUpdatesStats)
	add("FailIncrementsAttemptsAndRecordsOutcome", testFailIncrementsAttemptsAndRecordsOutcome)
	add("ReleaseDoesNotCountAsFailure", testReleaseDoesNotCountAsFailure)
	add("DeadLetterAfterMaxRetries", testDeadLetterAfterMaxRetries)
	add("FailPastDeadlineDeadLetters", testFailPastDeadlineDeadLetters)
	add("RequeueResetsAttemptsAndReservesAgain", testRequeueResetsAttemptsAndReservesAgain)
	add("HistoryKeepsLeaseIDNotToken", testHistoryKeepsLeaseIDNotToken)
}

// leaseOps are the calls that need the current lease.
var leaseOps = []struct {
	name string
	call func(f *fx, r store.LeaseRef) (pouw.ProofJob, error)
}{
	{"Renew", func(f *fx, r store.LeaseRef) (pouw.ProofJob, error) { return f.s.Renew(f.ctx, r) }},
	{"BeginVerify", func(f *fx, r store.LeaseRef) (pouw.ProofJob, error) { return f.s.BeginVerify(f.ctx, r, time.Minute) }},
	{"Complete", func(f *fx, r store.LeaseRef) (pouw.ProofJob, error) { return f.s.Complete(f.ctx, r, "proofs/x") }},
	{"Fail", func(f *fx, r store.LeaseRef) (pouw.ProofJob, error) {
		return f.s.Fail(f.ctx, r, pouw.OutcomeRejected, "bad proof")
	}},
	{"Release", func(f *fx, r store.LeaseRef) (pouw.ProofJob, error) { return f.s.Release(f.ctx, r, "drain") }},
}

// refused checks that every lease operation with r fails with want and
// changes nothing.
func (f *fx) refused(r store.LeaseRef, want error, what string) {
	f.t.Helper()
	before := f.snap()
	jobBefore := f.job(r.JobID)
	histBefore := f.history(r.JobID)
	for _, op := range leaseOps {
		_, err := op.call(f, r)
		wantErr(f.t, err, want, what+": "+op.name)
	}
	f.unchanged(before, what)
	if got := f.job(r.JobID); got.State != jobBefore.State || got.Attempts != jobBefore.Attempts ||
		got.LeaseExpiresAtMs != jobBefore.LeaseExpiresAtMs || got.ProverID != jobBefore.ProverID {
		f.t.Fatalf("%s changed the job:\n before %+v\n after  %+v", what, jobBefore, got)
	}
	if got := f.history(r.JobID); !slices.Equal(got, histBefore) {
		f.t.Fatalf("%s changed the history:\n before %+v\n after  %+v", what, histBefore, got)
	}
}

func testRenewExtendsLeaseFromNow(t *testing.T, nh Factory) {
	f := newFx(t, nh, testOptions())
	f.ready()
	f.enqueue(tier(pouw.TierMicro))
	l := f.claim("p1")
	length := f.opts.LeaseDuration[pouw.TierMicro]
	for range 3 {
		f.advance(length - time.Second)
		j, err := f.s.Renew(f.ctx, ref(l, "p1"))
		if err != nil {
			t.Fatalf("Renew before expiry: %v", err)
		}
		if want := f.nowMs() + length.Milliseconds(); j.LeaseExpiresAtMs != want {
			t.Fatalf("renewed lease expires %d, want now + lease length %d", j.LeaseExpiresAtMs, want)
		}
		if f.reap() != 0 {
			t.Fatal("reaper took a renewed lease")
		}
	}
	if got := f.job(l.Job.JobID); got.State != pouw.StateLeased || got.Attempts != 0 {
		t.Fatalf("job after renewals: %s attempts %d", got.State, got.Attempts)
	}
}

func testExpiredLeaseIsLostBeforeReap(t *testing.T, nh Factory) {
	f := newFx(t, nh, testOptions())
	f.ready()
	f.enqueue(tier(pouw.TierMacro))
	l := f.claim("p1")
	f.advance(f.opts.LeaseDuration[pouw.TierMacro])
	f.refused(ref(l, "p1"), store.ErrLeaseLost, "expired, not reaped")
}

func testExpiredLeaseReturnsJobToPending(t *testing.T, nh Factory) {
	f := newFx(t, nh, testOptions())
	f.ready()
	f.enqueue(tier(pouw.TierFull))
	l := f.claim("p1")
	f.advance(f.opts.LeaseDuration[pouw.TierFull] - time.Millisecond)
	if n := f.reap(); n != 0 {
		t.Fatalf("reaped %d leases before expiry", n)
	}
	f.advance(time.Millisecond)
	if n := f.reap(); n != 1 {
		t.Fatalf("reaped %d, want 1", n)
	}
	j := f.job(l.Job.JobID)
	wantState(t, j, pouw.StatePending)
	if j.Attempts != 1 || j.LeaseExpiresAtMs != 0 {
		t.Fatalf("after expiry: attempts %d lease_expires_at_ms %d, want 1 and 0", j.Attempts, j.LeaseExpiresAtMs)
	}
	h := f.history(j.JobID)
	if len(h) != 1 || h[0].Outcome != pouw.OutcomeExpired || h[0].ProverID != "p1" || h[0].EndedAtMs != f.nowMs() {
		t.Fatalf("history %+v, want one expired attempt of p1 ended now", h)
	}
	if n := f.reap(); n != 0 {
		t.Fatalf("second reap processed %d", n)
	}
	f.refused(ref(l, "p1"), store.ErrLeaseLost, "expired and reaped")
	if p := f.provers()["p1"]; p.JobsFailed != 1 {
		t.Fatalf("p1 jobs_failed %d after an expired lease, want 1", p.JobsFailed)
	}
}

func testOldTokenAfterReleaseIsLost(t *testing.T, nh Factory) {
	f := newFx(t, nh, testOptions())
	f.ready()
	f.enqueue()
	old := f.claim("p1")
	if _, err := f.s.Release(f.ctx, ref(old, "p1"), "drain"); err != nil {
		t.Fatal(err)
	}
	f.refused(ref(old, "p1"), store.ErrLeaseLost, "released")
	cur := f.claim("p1")
	f.refused(ref(old, "p1"), store.ErrLeaseLost, "re-leased to the same prover")
	if _, err := f.s.Renew(f.ctx, ref(cur, "p1")); err != nil {
		t.Fatalf("current token refused: %v", err)
	}

	// Expired and re-leased to another prover: still lease lost for p1.
	f.advance(f.opts.LeaseDuration[pouw.TierMacro])
	f.reap()
	other := f.claim("p2")
	f.refused(ref(cur, "p1"), store.ErrLeaseLost, "re-leased to another prover")
	f.complete(other, "p2")
	f.refused(ref(other, "p2"), store.ErrLeaseLost, "completed")
}

func testOtherProverIsNotLeaseHolder(t *testing.T, nh Factory) {
	f := newFx(t, nh, testOptions())
	f.ready()
	f.enqueue()
	l := f.claim("p1")
	f.refused(store.LeaseRef{JobID: l.Job.JobID, ProverID: "p2", Token: "0123456789abcdef0123456789abcdef"},
		store.ErrNotLeaseHolder, "another prover with a made-up token")
	f.refused(ref(l, "p2"), store.ErrNotLeaseHolder, "another prover with the holder's token")
	f.complete(l, "p1")
}

func testBeginVerifyProtectsJobFromReaper(t *testing.T, nh Factory) {
	f := newFx(t, nh, testOptions())
	f.ready()
	f.enqueue(tier(pouw.TierMicro))
	l := f.claim("p1")
	length := f.opts.LeaseDuration[pouw.TierMicro]
	f.advance(length - time.Second)
	j, err := f.s.BeginVerify(f.ctx, ref(l, "p1"), 2*length)
	if err != nil {
		t.Fatalf("BeginVerify: %v", err)
	}
	if want := f.nowMs() + 2*length.Milliseconds(); j.LeaseExpiresAtMs < want {
		t.Fatalf("BeginVerify left the lease at %d, want at least %d", j.LeaseExpiresAtMs, want)
	}
	f.advance(length) // past the original lease, within the budget
	if n := f.reap(); n != 0 {
		t.Fatalf("reaper took a job under verification (%d)", n)
	}
	done := f.complete(l, "p1")
	wantState(t, done, pouw.StateCompleted)

	// Once a lease is gone, BeginVerify cannot revive it.
	f.enqueue(tier(pouw.TierMicro))
	l2 := f.claim("p1")
	f.advance(length)
	_, err = f.s.BeginVerify(f.ctx, ref(l2, "p1"), time.Hour)
	wantErr(t, err, store.ErrLeaseLost, "BeginVerify after expiry")
}

func (f *fx) provers() map[string]pouw.ProverStats {
	f.t.Helper()
	ps, err := f.s.Provers(f.ctx)
	if err != nil {
		f.t.Fatalf("Provers: %v", err)
	}
	out := map[string]pouw.ProverStats{}
	for _, p := range ps {
		out[p.ProverID] = p
	}
	return out
}

func testCompletePaysRewardAndUpdatesStats(t *testing.T, nh Factory) {
	f := newFx(t, nh, testOptions())
	f.deposit(1000)
	f.prover("p1")
	a := f.enqueue(reward(40))
	b := f.enqueue(reward(60), deadlineIn(2*time.Hour, f))
	la := f.claim("p1")
	f.advance(5 * time.Second)
	done := f.complete(la, "p1")
	wantState(t, done, pouw.StateCompleted)
	if done.ProofRef != "proofs/"+a.JobID || done.CompletedAtMs != f.nowMs() || done.ProverID != "p1" {
		t.Fatalf("completed job: proof_ref %q completed_at %d prover %q", done.ProofRef, done.CompletedAtMs, done.ProverID)
	}
	if p := f.pool(); p.Paid != 40 || p.Reserved != 60 || p.Available != 900 {
		t.Fatalf("pool after one completion %+v, want paid 40 reserved 60", p)
	}
	st := f.provers()["p1"]
	if st.JobsCompleted != 1 || st.TotalFeeEarned != 40 || st.AvgCompletionTimeMs != 5000 || st.LastSeenMs != f.nowMs() {
		t.Fatalf("stats after one completion %+v, want 1 job, 40 earned, avg 5000 ms, last seen now", st)
	}
	lb := f.claim("p1")
	f.advance(3 * time.Second)
	f.complete(lb, "p1")
	st = f.provers()["p1"]
	if st.JobsCompleted != 2 || st.TotalFeeEarned != 100 || st.AvgCompletionTimeMs != 4000 || st.LastSeenMs != f.nowMs() {
		t.Fatalf("stats after two completions %+v, want 2 jobs, 100 earned, avg 4000 ms", st)
	}
	if p := f.pool(); p.Paid != 100 || p.Reserved != 0 {
		t.Fatalf("pool %+v, want paid 100", p)
	}
	if h := f.history(b.JobID); len(h) != 1 || h[0].Outcome != pouw.OutcomeCompleted {
		t.Fatalf("history %+v, want one completed attempt", h)
	}
	_, err := f.s.Complete(f.ctx, ref(lb, "p1"), "proofs/again")
	wantErr(t, err, store.ErrLeaseLost, "second Complete")
	if p := f.pool(); p.Paid != 100 {
		t.Fatalf("second Complete paid again: %+v", p)
	}
}

func testFailIncrementsAttemptsAndRecordsOutcome(t *testing.T, nh Factory) {
	f := newFx(t, nh, testOptions())
	f.ready()
	job := f.enqueue(retries(5))
	l := f.claim("p1")
	_, err := f.s.Fail(f.ctx, ref(l, "p1"), pouw.OutcomeCompleted, "")
	wantErr(t, err, store.ErrInvalid, "Fail with outcome completed")
	_, err = f.s.Fail(f.ctx, ref(l, "p1"), pouw.OutcomeReleased, "")
	wantErr(t, err, store.ErrInvalid, "Fail with outcome released")

	j, err := f.s.Fail(f.ctx, ref(l, "p1"), pouw.OutcomeRejected, "proof did not verify")
	if err != nil {
		t.Fatal(err)
	}
	if j.State != pouw.StatePending || j.Attempts != 1 {
		t.Fatalf("after rejection: %s attempts %d, want pending 1", j.State, j.Attempts)
	}
	l = f.claim("p2")
	if j, err = f.s.Fail(f.ctx, ref(l, "p2"), pouw.OutcomeFailed, "out of memory"); err != nil || j.Attempts != 2 {
		t.Fatalf("after failure: attempts %d err %v, want 2", j.Attempts, err)
	}
	h := f.history(job.JobID)
	if len(h) != 2 ||
		h[0].Outcome != pouw.OutcomeRejected || h[0].Reason != "proof did not verify" || h[0].ProverID != "p1" || h[0].Number != 1 ||
		h[1].Outcome != pouw.OutcomeFailed || h[1].Reason != "out of memory" || h[1].ProverID != "p2" || h[1].Number != 2 {
		t.Fatalf("history %+v", h)
	}
	ps := f.provers()
	if ps["p1"].JobsFailed != 1 || ps["p2"].JobsFailed != 1 || ps["p1"].JobsCompleted != 0 {
		t.Fatalf("prover stats %+v", ps)
	}
	if p := f.pool(); p.Reserved != 10 || p.Paid != 0 {
		t.Fatalf("pool %+v, want the reservation kept", p)
	}
}

func testReleaseDoesNotCountAsFailure(t *testing.T, nh Factory) {
	f := newFx(t, nh, testOptions())
	f.ready()
	job := f.enqueue(retries(1))
	for range 3 {
		l := f.claim("p1")
		j, err := f.s.Release(f.ctx, ref(l, "p1"), "farm draining")
		if err != nil {
			t.Fatal(err)
		}
		if j.State != pouw.StatePending || j.Attempts != 0 {
			t.Fatalf("after release: %s attempts %d, want pending 0", j.State, j.Attempts)
		}
	}
	h := f.history(job.JobID)
	if len(h) != 3 || h[2].Outcome != pouw.OutcomeReleased || h[2].Reason != "farm draining" {
		t.Fatalf("history %+v, want three released attempts", h)
	}
	if p := f.provers()["p1"]; p.JobsFailed != 0 {
		t.Fatalf("release counted as failure: %+v", p)
	}
}

func testDeadLetterAfterMaxRetries(t *testing.T, nh Factory) {
	f := newFx(t, nh, testOptions())
	f.deposit(100)
	f.prover("p1")
	job := f.enqueue(retries(2), reward(30))
	f.fail(f.claim("p1"), "p1")
	wantState(t, f.job(job.JobID), pouw.StatePending)
	// The second failure is an expired lease: it counts the same.
	f.claim("p1")
	f.advance(f.opts.LeaseDuration[pouw.TierMacro])
	f.reap()
	j := f.job(job.JobID)
	wantState(t, j, pouw.StateDead)
	if j.Attempts != 2 || !strings.Contains(j.DeadReason, "retries") {
		t.Fatalf("dead job: attempts %d reason %q, want 2 and a reason naming retries", j.Attempts, j.DeadReason)
	}
	if p := f.pool(); p.Reserved != 0 || p.Available != 100 {
		t.Fatalf("pool %+v, want the reservation returned", p)
	}
	sameIDs(t, "dead letter", f.deadIDs(), []string{job.JobID})
	sameIDs(t, "pending", f.pendingIDs(store.PageQuery{}), nil)
	_, err := f.s.Claim(f.ctx, claimReq("p1"))
	wantErr(t, err, store.ErrNoJob, "claim with only a dead job")
}

func testFailPastDeadlineDeadLetters(t *testing.T, nh Factory) {
	f := newFx(t, nh, testOptions())
	f.ready()
	job := f.enqueue(tier(pouw.TierMicro), retries(10), deadlineIn(40*time.Second, f))
	l := f.claim("p1")
	f.advance(25 * time.Second)
	if _, err := f.s.Renew(f.ctx, ref(l, "p1")); err != nil {
		t.Fatal(err)
	}
	f.advance(20 * time.Second)
	j, err := f.s.Fail(f.ctx, ref(l, "p1"), pouw.OutcomeFailed, "gpu fell off the bus")
	if err != nil {
		t.Fatal(err)
	}
	if j.State != pouw.StateDead || j.Attempts != 1 || !strings.Contains(j.DeadReason, "deadline") {
		t.Fatalf("failure past the deadline: %s attempts %d reason %q, want dead by deadline", j.State, j.Attempts, j.DeadReason)
	}
	wantState(t, f.job(job.JobID), pouw.StateDead)
	if p := f.pool(); p.Reserved != 0 {
		t.Fatalf("reservation kept: %+v", p)
	}
}

func testRequeueResetsAttemptsAndReservesAgain(t *testing.T, nh Factory) {
	f := newFx(t, nh, testOptions())
	f.deposit(50)
	f.prover("p1")
	job := f.enqueue(retries(1), reward(50))
	_, err := f.s.Requeue(f.ctx, job.JobID)
	wantErr(t, err, store.ErrConflict, "requeue of a pending job")
	_, err = f.s.Requeue(f.ctx, pouw.JobID(hashOf("a"), hashOf("b"), pouw.TierMicro, 77))
	wantErr(t, err, store.ErrNotFound, "requeue of an unknown job")

	f.fail(f.claim("p1"), "p1")
	wantState(t, f.job(job.JobID), pouw.StateDead)
	// Spend the returned reservation on another job: the pool is short.
	other := f.enqueue(reward(45))
	before := f.snap()
	_, err = f.s.Requeue(f.ctx, job.JobID)
	wantErr(t, err, store.ErrInsufficientFunds, "requeue with a short pool")
	f.unchanged(before, "refused requeue")
	wantState(t, f.job(job.JobID), pouw.StateDead)

	f.deposit(45)
	j, err := f.s.Requeue(f.ctx, job.JobID)
	if err != nil {
		t.Fatal(err)
	}
	if j.State != pouw.StatePending || j.Attempts != 0 || j.DeadReason != "" {
		t.Fatalf("requeued job: %s attempts %d reason %q", j.State, j.Attempts, j.DeadReason)
	}
	if p := f.pool(); p.Reserved != 95 || p.Available != 0 {
		t.Fatalf("pool %+v, want 95 reserved", p)
	}
	if h := f.history(job.JobID); len(h) != 1 || h[0].Outcome != pouw.OutcomeFailed {
		t.Fatalf("requeue lost the history: %+v", h)
	}
	sameIDs(t, "dead letter after requeue", f.deadIDs(), nil)
	// Requeued, it has its full retries again.
	l := f.claim("p1")
	if l.Job.JobID != job.JobID && l.Job.JobID != other.JobID {
		t.Fatalf("claimed unknown job %s", l.Job.JobID)
	}
}

func testHistoryKeepsLeaseIDNotToken(t *testing.T, nh Factory) {
	f := newFx(t, nh, testOptions())
	f.ready()
	job := f.enqueue()
	var tokens []string
	var claimed []int64
	for i := range 3 {
		l := f.claim([]string{"p1", "p2"}[i%2])
		tokens = append(tokens, l.Token)
		claimed = append(claimed, f.nowMs())
		f.advance(time.Second)
		if i < 2 {
			if _, err := f.s.Release(f.ctx, ref(l, l.Job.ProverID), ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	h := f.history(job.JobID)
	if len(h) != 3 {
		t.Fatalf("history has %d attempts, want 3", len(h))
	}
	for i, a := range h {
		sum := blake3.Sum256([]byte(tokens[i]))
		if want := hex.EncodeToString(sum[:8]); a.LeaseID != want {
			t.Fatalf("attempt %d lease_id %q, want hex(BLAKE3(token)[:8]) = %q", i+1, a.LeaseID, want)
		}
		if strings.Contains(a.LeaseID, tokens[i]) || strings.Contains(a.Reason, tokens[i]) {
			t.Fatal("history reveals the lease token")
		}
		if a.Number != uint32(i+1) || a.ProverID != []string{"p1", "p2"}[i%2] || a.ClaimedAtMs != claimed[i] {
			t.Fatalf("attempt %d: %+v", i+1, a)
		}
	}
	if h[2].Outcome != pouw.OutcomeActive || h[2].EndedAtMs != 0 {
		t.Fatalf("current attempt %+v, want active and not ended", h[2])
	}
	if h[0].Outcome != pouw.OutcomeReleased || h[0].EndedAtMs != claimed[0]+1000 {
		t.Fatalf("first attempt %+v, want released one second after its claim", h[0])
	}
	_, err := f.s.History(f.ctx, pouw.JobID(hashOf("a"), hashOf("b"), pouw.TierMicro, 77))
	wantErr(t, err, store.ErrNotFound, "history of an unknown job")
}
