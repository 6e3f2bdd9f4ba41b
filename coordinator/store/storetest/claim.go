package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/pouw"
)

func init() {
	add("PendingListsInClaimOrder", testPendingListsInClaimOrder)
	add("PendingPagesWithCursorAndFiltersByTier", testPendingPagesWithCursorAndFiltersByTier)
	add("ClaimFollowsTierPreferenceThenClaimOrder", testClaimFollowsTierPreferenceThenClaimOrder)
	add("ClaimFiltersByBackendTraceSizeAndMinReward", testClaimFiltersByBackendTraceSizeAndMinReward)
	add("ClaimWithNothingPendingIsNoJob", testClaimWithNothingPendingIsNoJob)
	add("ClaimRejectsBadRequests", testClaimRejectsBadRequests)
	add("ClaimSetsLeaseFromTierLength", testClaimSetsLeaseFromTierLength)
	add("ClaimIssuesFreshTokenEachTime", testClaimIssuesFreshTokenEachTime)
	add("ClaimNeverGrantsJobPastDeadline", testClaimNeverGrantsJobPastDeadline)
}

// claimOrder sorts jobs as the store must: earliest deadline, then highest
// reward, then lowest created_seq.
func claimOrder(a, b pouw.ProofJob) int {
	switch {
	case a.DeadlineMs != b.DeadlineMs:
		return cmpInt(a.DeadlineMs, b.DeadlineMs)
	case a.RewardBudget != b.RewardBudget:
		return cmpInt(b.RewardBudget, a.RewardBudget)
	default:
		return cmpInt(a.CreatedSeq, b.CreatedSeq)
	}
}

func cmpInt[T int64 | uint64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func ids(jobs []pouw.ProofJob) []string {
	out := make([]string, len(jobs))
	for i, j := range jobs {
		out[i] = j.JobID
	}
	return out
}

// mixedJobs enqueues jobs whose deadlines and rewards tie in every way the
// claim order must break.
func (f *fx) mixedJobs(tiers ...pouw.JobTier) []pouw.ProofJob {
	var jobs []pouw.ProofJob
	deadlines := []time.Duration{3 * time.Hour, time.Hour, 2 * time.Hour, time.Hour}
	rewards := []uint64{5, 10, 10, 1}
	for i := range 12 {
		jobs = append(jobs, f.enqueue(
			tier(tiers[i%len(tiers)]),
			deadlineIn(deadlines[i%4], f),
			reward(rewards[(i/4+i)%4]),
		))
	}
	return jobs
}

func testPendingListsInClaimOrder(t *testing.T, nh Factory) {
	f := newFx(t, nh, testOptions())
	f.ready()
	jobs := f.mixedJobs(pouw.TierMacro)
	want := slices.Clone(jobs)
	slices.SortStableFunc(want, claimOrder)
	sameIDs(t, "pending order", f.pendingIDs(store.PageQuery{}), ids(want))
}

func testPendingPagesWithCursorAndFiltersByTier(t *testing.T, nh Factory) {
	f := newFx(t, nh, testOptions())
	f.ready()
	jobs := f.mixedJobs(pouw.TierMicro, pouw.TierMacro, pouw.TierFull)
	all := slices.Clone(jobs)
	slices.SortStableFunc(all, claimOrder)

	// Pages of 5 add up to the whole list; the last one has no cursor.
	var paged []string
	q := store.PageQuery{Limit: 5}
	pages := 0
	for {
		page, err := f.s.Pending(f.ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(page.Jobs) > 5 {
			t.Fatalf("page of %d jobs with limit 5", len(page.Jobs))
		}
		paged = append(paged, ids(page.Jobs)...)
		if page.NextCursor == "" {
			break
		}
		q.Cursor = page.NextCursor
	}
	sameIDs(t, "paged pending", paged, ids(all))
	if pages != 3 {
		t.Fatalf("%d pages for 12 jobs by 5, want 3", pages)
	}

	for _, tr := range pouw.Tiers {
		var want []string
		for _, j := range all {
			if j.Tier == tr {
				want = append(want, j.JobID)
			}
		}
		sameIDs(t, "pending of tier "+tr.String(), f.pendingIDs(store.PageQuery{Tier: &tr, Limit: 3}), want)
	}

	// A claimed job leaves the list.
	l := f.claim("p1")
	if slices.Contains(f.pendingIDs(store.PageQuery{}), l.Job.JobID) {
		t.Fatal("leased job still listed as pending")
	}
	if _, err := f.s.Pending(f.ctx, store.PageQuery{Cursor: "!!not a cursor!!"}); err == nil {
		t.Fatal("garbage cursor accepted")
	}
}

func testClaimFollowsTierPreferenceThenClaimOrder(t *testing.T, nh Factory) {
	f := newFx(t, nh, testOptions())
	f.ready()
	jobs := f.mixedJobs(pouw.TierMicro, pouw.TierFull)
	pref := []pouw.JobTier{pouw.TierFull, pouw.TierMacro, pouw.TierMicro}
	want := slices.Clone(jobs)
	slices.SortStableFunc(want, func(a, b pouw.ProofJob) int {
		if a.Tier != b.Tier {
			return cmpInt(int64(slices.Index(pref, a.Tier)), int64(slices.Index(pref, b.Tier)))
		}
		return claimOrder(a, b)
	})
	var got []string
	for range jobs {
		got = append(got, f.claim("p1", pref...).Job.JobID)
	}
	sameIDs(t, "claim order", got, ids(want))
	_, err := f.s.Claim(f.ctx, claimReq("p1", pref...))
	wantErr(t, err, store.ErrNoJob, "claim with every job leased")
}

func testClaimFiltersByBackendTraceSizeAndMinReward(t *testing.T, nh Factory) {
	f := newFx(t, nh, testOptions())
	f.ready()
	// Claim order: big (deadline first), poor, plonk, fit.
	big := f.enqueue(deadlineIn(time.Hour, f), traceBytes(1<<20), reward(50))
	poor := f.enqueue(deadlineIn(2*time.Hour, f), traceBytes(100), reward(5))
	plonk := f.enqueue(deadlineIn(3*time.Hour, f), traceBytes(100), reward(50), backend("plonkish"))
	fit := f.enqueue(deadlineIn(4*time.Hour, f), traceBytes(100), reward(50))

	req := claimReq("p1")
	req.MaxTraceBytes = 1000
	req.MinReward = 20
	if got := f.claimWith(req).Job.JobID; got != fit.JobID {
		t.Fatalf("claim with max trace 1000, min reward 20 got %s, want %s", got, fit.JobID)
	}
	_, err := f.s.Claim(f.ctx, req)
	wantErr(t, err, store.ErrNoJob, "claim when only misfits are pending")

	req.Backends = []string{"plonkish"}
	if got := f.claimWith(req).Job.JobID; got != plonk.JobID {
		t.Fatalf("plonkish claim got %s, want %s", got, plonk.JobID)
	}
	req.MinReward = 5
	req.Backends = []string{"winterfell", testBackend}
	if got := f.claimWith(req).Job.JobID; got != poor.JobID {
		t.Fatalf("claim with min reward 5 got %s, want %s", got, poor.JobID)
	}
	req.MaxTraceBytes = 0
	req.MinReward = 50
	if got := f.claimWith(req).Job.JobID; got != big.JobID {
		t.Fatalf("claim without a trace limit got %s, want %s", got, big.JobID)
	}
}

func testClaimWithNothingPendingIsNoJob(t *testing.T, nh Factory) {
	f := newFx(t, nh, testOptions())
	f.ready()
	before := f.snap()
	_, err := f.s.Claim(f.ctx, claimReq("p1"))
	wantErr(t, err, store.ErrNoJob, "claim on an empty queue")
	f.unchanged(before, "claim on an empty queue")
	f.enqueue(tier(pouw.TierFull))
	_, err = f.s.Claim(f.ctx, claimReq("p1", pouw.TierMicro, pouw.TierMacro))
	wantErr(t, err, store.ErrNoJob, "claim of other tiers")
}

func testClaimRejectsBadRequests(t *testing.T, nh Factory) {
	f := newFx(t, nh, testOptions())
	f.ready()
	f.enqueue()
	cases := []struct {
		name string
		req  store.ClaimRequest
		want error
	}{
		{"no tiers", store.ClaimRequest{ProverID: "p1", Backends: []string{testBackend}}, store.ErrInvalid},
		{"bad tier", store.ClaimRequest{ProverID: "p1", Tiers: []pouw.JobTier{7}, Backends: []string{testBackend}}, store.ErrInvalid},
		{"no backends", store.ClaimRequest{ProverID: "p1", Tiers: []pouw.JobTier{pouw.TierMacro}}, store.ErrInvalid},
		{"unregistered prover", claimReq("stranger"), store.ErrNotFound},
	}
	for _, tc := range cases {
		before := f.snap()
		_, err := f.s.Claim(f.ctx, tc.req)
		wantErr(t, err, tc.want, tc.name)
		f.unchanged(before, tc.name)
	}
}

func testClaimSetsLeaseFromTierLength(t *testing.T, nh Factory) {
	opts := testOptions()
	opts.LeaseDuration = [3]time.Duration{7 * time.Second, 70 * time.Second, 700 * time.Second}
	f := newFx(t, nh, opts)
	f.ready()
	for _, tr := range pouw.Tiers {
		job := f.enqueue(tier(tr))
		f.advance(1500 * time.Millisecond)
		l := f.claim("p2", tr)
		if l.Job.JobID != job.JobID {
			t.Fatalf("claimed %s, want %s", l.Job.JobID, job.JobID)
		}
		wantState(t, l.Job, pouw.StateLeased)
		want := f.nowMs() + opts.LeaseDuration[tr].Milliseconds()
		if l.Job.LeaseExpiresAtMs != want || l.Job.ProverID != "p2" || l.Job.Attempts != 0 {
			t.Fatalf("%s lease: expires %d prover %q attempts %d, want expires %d prover p2 attempts 0",
				tr, l.Job.LeaseExpiresAtMs, l.Job.ProverID, l.Job.Attempts, want)
		}
		if got := f.job(job.JobID); got.State != pouw.StateLeased || got.LeaseExpiresAtMs != want {
			t.Fatalf("stored job %s expires %d, want leased until %d", got.State, got.LeaseExpiresAtMs, want)
		}
	}
}

func testClaimIssuesFreshTokenEachTime(t *testing.T, nh Factory) {
	f := newFx(t, nh, testOptions())
	f.ready()
	seen := map[string]bool{}
	for range 3 {
		f.enqueue()
	}
	for range 3 {
		l := f.claim("p1")
		if len(l.Token) < 16 || seen[l.Token] {
			t.Fatalf("token %q is short or reused", l.Token)
		}
		seen[l.Token] = true
	}
	job := f.enqueue()
	for range 3 {
		l := f.claim("p1")
		if l.Job.JobID != job.JobID || seen[l.Token] {
			t.Fatalf("re-lease of %s: job %s token %q reused=%v", job.JobID, l.Job.JobID, l.Token, seen[l.Token])
		}
		seen[l.Token] = true
		if _, err := f.s.Release(f.ctx, ref(l, "p1"), "drain"); err != nil {
			t.Fatal(err)
		}
	}
}

func testClaimNeverGrantsJobPastDeadline(t *testing.T, nh Factory) {
	f := newFx(t, nh, testOptions())
	f.ready()
	soon := f.enqueue(deadlineIn(10*time.Second, f), reward(7))
	f.advance(10 * time.Second)
	_, err := f.s.Claim(f.ctx, claimReq("p1"))
	wantErr(t, err, store.ErrNoJob, "claim of a job at its deadline")
	f.reap()
	j := f.job(soon.JobID)
	wantState(t, j, pouw.StateDead)
	if j.DeadReason == "" {
		t.Fatal("dead job without a reason")
	}
	if p := f.pool(); p.Reserved != 0 {
		t.Fatalf("reservation of a job dead by deadline not returned: %+v", p)
	}
	sameIDs(t, "dead letter", f.deadIDs(), []string{soon.JobID})
}
