package api_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pouwfarm/pouwfarm/coordinator/client"
	"github.com/pouwfarm/pouwfarm/pouw"
)

// TestJobLifecycleThroughAPI drives one job through every transition using
// only the HTTP API (the reaper's ReapExpired call stands in for the
// coordinator's background loop): ingest -> pending -> claim -> renew ->
// submit (rejected: no backend registered) -> claim -> fail -> claim ->
// expiry -> dead letter -> requeue -> claim -> release.
func TestJobLifecycleThroughAPI(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			e := newEnv(t, b, envOptions{})
			ctx := context.Background()
			admin := e.client(adminToken)
			p1 := e.client(e.registerProver("prover-1"))
			p2 := e.client(e.registerProver("prover-2"))

			if _, err := admin.Deposit(ctx, 1000, "test"); err != nil {
				t.Fatal(err)
			}
			job := e.ingest(pouw.TierMacro, 100, 3, "lifecycle")
			if job.State != pouw.StatePending || job.Backend != "stark" || job.TraceRef != job.TraceHash.String() {
				t.Fatalf("ingested job = %+v", job)
			}
			// Ingest is idempotent.
			again, err := admin.Ingest(ctx, pouw.IngestRequest{Tier: job.Tier, IntentID: job.IntentID, TraceHash: job.TraceHash,
				FeeBudget: 200, RewardBudget: 100, MaxRetries: 3})
			if err != nil || again.Created || again.Job.JobID != job.JobID {
				t.Fatalf("re-ingest = %+v, %v", again, err)
			}
			pool, _ := admin.Pool(ctx)
			if pool.Reserved != 100 || pool.Available != 900 {
				t.Fatalf("pool after ingest = %+v", pool)
			}

			pending, err := p1.Pending(ctx, client.ListOptions{})
			if err != nil || len(pending.Jobs) != 1 || pending.Jobs[0].JobID != job.JobID {
				t.Fatalf("pending = %+v, %v", pending, err)
			}
			full := pouw.TierFull
			if l, _ := p1.Pending(ctx, client.ListOptions{Tier: &full}); len(l.Jobs) != 0 {
				t.Fatalf("tier filter: %+v", l)
			}

			// Nothing of tier full: 204, which the client reports as ErrNoJob.
			if _, err := p1.Claim(ctx, pouw.ClaimRequest{Tiers: []pouw.JobTier{pouw.TierFull}, Backends: []string{"stark"}}); !errors.Is(err, client.ErrNoJob) {
				t.Fatalf("claim of an empty tier: %v", err)
			}
			claim := func(c *client.Client) pouw.ClaimResponse {
				t.Helper()
				l, err := c.Claim(ctx, pouw.ClaimRequest{Tiers: []pouw.JobTier{pouw.TierFull, pouw.TierMacro}, Backends: []string{"stark"}})
				if err != nil {
					t.Fatal(err)
				}
				if l.Job.JobID != job.JobID || l.Job.State != pouw.StateLeased || l.LeaseToken == "" || l.Job.LeaseExpiresAtMs == 0 {
					t.Fatalf("claim = %+v", l)
				}
				return l
			}

			// 1: claim, renew, submit -> rejected (no backend).
			l1 := claim(p1)
			e.advance(10 * time.Second)
			renewed, err := p1.Renew(ctx, job.JobID, l1.LeaseToken)
			if err != nil || renewed.LeaseExpiresAtMs <= l1.Job.LeaseExpiresAtMs {
				t.Fatalf("renew = %+v, %v", renewed, err)
			}
			if _, err := p2.Renew(ctx, job.JobID, l1.LeaseToken); !errors.Is(err, client.ErrNotLeaseHolder) {
				t.Fatalf("renew by another prover: %v, want 403 not_lease_holder", err)
			}
			if _, err := p1.Renew(ctx, job.JobID, "not-the-token"); !errors.Is(err, client.ErrLeaseLost) {
				t.Fatalf("renew with a wrong token: %v, want 409 lease_lost", err)
			}
			_, err = p1.Submit(ctx, job.JobID, l1.LeaseToken, []byte("a proof no backend can check"))
			var apiErr *client.Error
			if !errors.Is(err, client.ErrProofRejected) || !errors.As(err, &apiErr) || apiErr.Status != 422 ||
				!strings.Contains(apiErr.Message, `no backend registered for backend "stark"`) {
				t.Fatalf("submit without a backend: %v", err)
			}
			got, _ := p1.Job(ctx, job.JobID)
			if got.State != pouw.StatePending || got.Attempts != 1 {
				t.Fatalf("after rejection: state %s attempts %d", got.State, got.Attempts)
			}
			// The old lease is dead: fencing.
			if _, err := p1.Renew(ctx, job.JobID, l1.LeaseToken); !errors.Is(err, client.ErrLeaseLost) {
				t.Fatalf("renew after rejection: %v", err)
			}

			// 2: claim, fail.
			l2 := claim(p1)
			failed, err := p1.Fail(ctx, job.JobID, l2.LeaseToken, "out of GPU memory")
			if err != nil || failed.State != pouw.StatePending || failed.Attempts != 2 {
				t.Fatalf("fail = %+v, %v", failed, err)
			}

			// 3: claim by the other prover, let the lease expire -> dead letter.
			l3 := claim(p2)
			e.advance(121 * time.Second) // macro lease is 120 s
			if _, err := p2.Renew(ctx, job.JobID, l3.LeaseToken); !errors.Is(err, client.ErrLeaseLost) {
				t.Fatalf("renew of an expired lease: %v", err)
			}
			if n, err := e.st.ReapExpired(ctx, 100); err != nil || n != 1 {
				t.Fatalf("ReapExpired = %d, %v", n, err)
			}
			got, _ = p1.Job(ctx, job.JobID)
			if got.State != pouw.StateDead || got.Attempts != 3 || got.DeadReason == "" {
				t.Fatalf("after the third failure: %+v", got)
			}
			dead, err := admin.DeadLetter(ctx, client.ListOptions{})
			if err != nil || len(dead.Jobs) != 1 || dead.Jobs[0].JobID != job.JobID {
				t.Fatalf("dead letter = %+v, %v", dead, err)
			}
			pool, _ = admin.Pool(ctx)
			if pool.Reserved != 0 || pool.Available != 1000 || !pool.Balanced() {
				t.Fatalf("pool after dead letter = %+v", pool)
			}
			hist, err := p1.History(ctx, job.JobID)
			if err != nil || len(hist) != 3 {
				t.Fatalf("history = %+v, %v", hist, err)
			}
			for i, want := range []pouw.Outcome{pouw.OutcomeRejected, pouw.OutcomeFailed, pouw.OutcomeExpired} {
				if hist[i].Outcome != want {
					t.Errorf("attempt %d outcome %s, want %s", i+1, hist[i].Outcome, want)
				}
				if strings.Contains(hist[i].LeaseID, l1.LeaseToken) || hist[i].LeaseID == l1.LeaseToken {
					t.Errorf("history leaks a lease token")
				}
			}

			// Requeue (admin only), then a release does not count.
			if _, err := p1.Requeue(ctx, job.JobID); !errors.Is(err, client.ErrForbidden) {
				t.Fatalf("requeue by a prover: %v", err)
			}
			rq, err := admin.Requeue(ctx, job.JobID)
			if err != nil || rq.State != pouw.StatePending || rq.Attempts != 0 {
				t.Fatalf("requeue = %+v, %v", rq, err)
			}
			if _, err := admin.Requeue(ctx, job.JobID); !errors.Is(err, client.ErrConflict) {
				t.Fatalf("requeue of a pending job: %v", err)
			}
			l4 := claim(p1)
			rel, err := p1.Release(ctx, job.JobID, l4.LeaseToken, "draining")
			if err != nil || rel.State != pouw.StatePending || rel.Attempts != 0 {
				t.Fatalf("release = %+v, %v", rel, err)
			}

			st, err := p1.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var pendingMacro uint64
			for _, ts := range st.Tiers {
				if ts.Tier == pouw.TierMacro {
					pendingMacro = ts.Counts[pouw.StatePending]
				}
			}
			if pendingMacro != 1 || st.Provers != 2 {
				t.Fatalf("status = %+v", st)
			}
			provers, err := p1.Provers(ctx)
			if err != nil || len(provers) != 2 {
				t.Fatalf("provers = %+v, %v", provers, err)
			}
			var failedTotal uint64
			for _, p := range provers {
				failedTotal += p.JobsFailed
			}
			if failedTotal != 3 {
				t.Errorf("provers' jobs_failed sum to %d, want 3: %+v", failedTotal, provers)
			}
		})
	}
}

func TestUnknownJobIsNotFoundAndMalformedIDIsBadRequest(t *testing.T) {
	e := newEnv(t, boltBackend(), envOptions{})
	ctx := context.Background()
	c := e.client(adminToken)
	if _, err := c.Job(ctx, strings.Repeat("ab", 16)); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("unknown job: %v", err)
	}
	resp, body := e.raw("GET", "/v1/pouw/jobs/NOT-AN-ID/history", adminToken, "", nil)
	if resp.StatusCode != 400 || errorCode(t, body) != pouw.CodeInvalid {
		t.Fatalf("malformed id: %d %s", resp.StatusCode, body)
	}
}

func TestIngestRefusesTraceNotUploaded(t *testing.T) {
	e := newEnv(t, boltBackend(), envOptions{})
	_, err := e.client(adminToken).Ingest(context.Background(), pouw.IngestRequest{Tier: pouw.TierMicro,
		IntentID: pouw.Hash{1}, TraceHash: pouw.Hash{2}, FeeBudget: 1, RewardBudget: 1})
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.Status != 409 || apiErr.Code != pouw.CodeTraceMissing {
		t.Fatalf("ingest of a missing trace: %v", err)
	}
}

func TestIngestBeyondThePoolIsRefused(t *testing.T) {
	e := newEnv(t, boltBackend(), envOptions{})
	ctx := context.Background()
	admin := e.client(adminToken)
	info, err := admin.UploadBlob(ctx, []byte("t"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = admin.Ingest(ctx, pouw.IngestRequest{Tier: pouw.TierMicro, IntentID: pouw.Hash{1}, TraceHash: info.Hash,
		FeeBudget: 10, RewardBudget: 10})
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.Status != 409 || apiErr.Code != pouw.CodeInsufficientFund {
		t.Fatalf("ingest with an empty pool: %v", err)
	}
}

func TestPendingPagesThroughEveryJobOnce(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			e := newEnv(t, b, envOptions{})
			ctx := context.Background()
			admin := e.client(adminToken)
			if _, err := admin.Deposit(ctx, 100, ""); err != nil {
				t.Fatal(err)
			}
			want := map[string]bool{}
			for i := 0; i < 5; i++ {
				want[e.ingest(pouw.TierMicro, 1, 3, "page-"+string(rune('a'+i))).JobID] = true
			}
			e.ingest(pouw.TierFull, 1, 3, "other tier")
			micro := pouw.TierMicro
			seen := map[string]bool{}
			cursor := ""
			for pages := 0; ; pages++ {
				if pages > 5 {
					t.Fatal("paging does not end")
				}
				l, err := admin.Pending(ctx, client.ListOptions{Tier: &micro, Limit: 2, Cursor: cursor})
				if err != nil {
					t.Fatal(err)
				}
				if len(l.Jobs) > 2 {
					t.Fatalf("page of %d jobs with limit 2", len(l.Jobs))
				}
				for _, j := range l.Jobs {
					if seen[j.JobID] || !want[j.JobID] {
						t.Fatalf("job %s (tier %s) repeated or unexpected", j.JobID, j.Tier)
					}
					seen[j.JobID] = true
				}
				if l.NextCursor == "" {
					break
				}
				cursor = l.NextCursor
			}
			if len(seen) != len(want) {
				t.Fatalf("paged through %d of %d jobs", len(seen), len(want))
			}
		})
	}
}
