package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pouwfarm/pouwfarm/clock"
	"github.com/pouwfarm/pouwfarm/coordinator/api"
	"github.com/pouwfarm/pouwfarm/coordinator/client"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/trace"
	"github.com/pouwfarm/pouwfarm/trace/workload"
)

var microClaim = pouw.ClaimRequest{Tiers: []pouw.JobTier{pouw.TierMicro}, Backends: []string{"stark"}}

func withOptions(f func(*api.Options)) envOptions { return envOptions{configure: f} }

// TestRevokedTokenIsRefusedByEveryCoordinatorAtOnce: two coordinators on one
// store; a revoke through one is refused by the other on the very next
// request (the check goes through the store; no cache outlives it).
func TestRevokedTokenIsRefusedByEveryCoordinatorAtOnce(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			e1 := newEnv(t, b, envOptions{})
			e2 := newEnvOn(t, e1.st, e1.advance, envOptions{})
			ctx := context.Background()
			tok := e1.registerProver("stolen")
			for _, e := range []*env{e1, e2} {
				if _, err := e.client(tok).Provers(ctx); err != nil {
					t.Fatalf("before the revoke: %v", err)
				}
			}
			n, err := e1.client(adminToken).RevokeTokens(ctx, "stolen")
			if err != nil || n != 1 {
				t.Fatalf("revoke: %d %v", n, err)
			}
			for i, e := range []*env{e1, e2} {
				_, err := e.client(tok).Claim(ctx, microClaim)
				if !errors.Is(err, client.ErrUnauthorized) {
					t.Fatalf("coordinator %d after the revoke: %v, want 401", i+1, err)
				}
			}
		})
	}
}

// TestRotatedTokenKeepsOldOneForGracePeriod: after a rotation both tokens
// work; past the grace period only the new one does.
func TestRotatedTokenKeepsOldOneForGracePeriod(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			e := newEnv(t, b, envOptions{})
			ctx := context.Background()
			old := e.registerProver("farm")
			r, err := e.client(adminToken).RotateToken(ctx, "farm", time.Minute)
			if err != nil || !strings.HasPrefix(r.Token, api.ProverTokenPrefix) || r.Token == old {
				t.Fatalf("rotate: %+v %v", r, err)
			}
			for _, tok := range []string{old, r.Token} {
				if _, err := e.client(tok).Provers(ctx); err != nil {
					t.Fatalf("within the grace period: %v", err)
				}
			}
			e.advance(time.Minute)
			if _, err := e.client(old).Provers(ctx); !errors.Is(err, client.ErrUnauthorized) {
				t.Fatalf("the old token after the grace period: %v, want 401", err)
			}
			if _, err := e.client(r.Token).Provers(ctx); err != nil {
				t.Fatalf("the new token after the grace period: %v", err)
			}
		})
	}
}

// TestExpiredTokenIsRefused: tokens issued with a TTL stop working then.
func TestExpiredTokenIsRefused(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			e := newEnv(t, b, withOptions(func(o *api.Options) { o.TokenTTL = time.Hour }))
			tok := e.registerProver("farm")
			// The store stamps and judges the expiry with its own clock.
			if _, err := e.client(tok).Provers(context.Background()); err != nil {
				t.Fatalf("a fresh token: %v", err)
			}
			e.advance(time.Hour + time.Minute)
			if _, err := e.client(tok).Provers(context.Background()); !errors.Is(err, client.ErrUnauthorized) {
				t.Fatalf("an expired token: %v, want 401", err)
			}
		})
	}
}

// TestEveryAdminActionIsAuditedWithItsActor: each admin route appends an
// admin.action event naming the admin key (never the token).
func TestEveryAdminActionIsAuditedWithItsActor(t *testing.T) {
	e := newEnv(t, boltBackend(), envOptions{})
	ctx := context.Background()
	admin := e.client(adminToken)
	if _, err := admin.Deposit(ctx, 100, "seed money"); err != nil {
		t.Fatal(err)
	}
	e.registerProver("farm")
	job := e.ingest(pouw.TierMicro, 1, 1, "audit") // blob.upload + ingest
	if _, err := admin.RotateToken(ctx, "farm", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Suspend(ctx, "farm", "investigating"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Unsuspend(ctx, "farm"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RevokeTokens(ctx, "farm"); err != nil {
		t.Fatal(err)
	}
	evs, err := e.st.Events(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range evs {
		if ev.Type != pouw.EventAdminAction {
			continue
		}
		if !strings.HasPrefix(ev.Actor, "admin:") || strings.Contains(ev.Actor, adminToken) {
			t.Errorf("audit event %+v: actor must name the admin key, not carry the token", ev)
		}
		got = append(got, ev.Action)
		if ev.Action == pouw.ActionIngest && ev.JobID != job.JobID {
			t.Errorf("ingest audit names job %q, want %s", ev.JobID, job.JobID)
		}
	}
	want := []string{pouw.ActionDeposit, pouw.ActionRegister, pouw.ActionUploadBlob, pouw.ActionIngest,
		pouw.ActionRotateToken, pouw.ActionSuspend, pouw.ActionUnsuspend, pouw.ActionRevokeTokens}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("audit actions %v, want %v", got, want)
	}
}

// rateLimited checks a 429 with a Retry-After of at least one second.
func wantRateLimited(t *testing.T, resp *http.Response, body []byte, what string) {
	t.Helper()
	if resp.StatusCode != http.StatusTooManyRequests || errorCode(t, body) != api.CodeRateLimited {
		t.Fatalf("%s: %d %s, want 429 rate_limited", what, resp.StatusCode, body)
	}
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 {
		t.Fatalf("%s: Retry-After %q, want whole seconds ≥ 1", what, resp.Header.Get("Retry-After"))
	}
}

func jsonBody(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestClaimFloodIsAnswered429WithRetryAfter: past its burst a prover's
// claims are refused with 429 and Retry-After, while another prover is
// unaffected; the refusals are counted in a metric.
func TestClaimFloodIsAnswered429WithRetryAfter(t *testing.T) {
	e := newEnv(t, boltBackend(), withOptions(func(o *api.Options) {
		o.Abuse = api.Abuse{ClaimRate: 0.01, ClaimBurst: 3}
	}))
	flood, calm := e.registerProver("flood"), e.registerProver("calm")
	body := jsonBody(t, microClaim)
	for i := 0; i < 3; i++ {
		if resp, b := e.raw("POST", "/v1/pouw/jobs/claim", flood, "application/json", body); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("claim %d within the burst: %d %s", i, resp.StatusCode, b)
		}
	}
	resp, b := e.raw("POST", "/v1/pouw/jobs/claim", flood, "application/json", body)
	wantRateLimited(t, resp, b, "the claim past the burst")
	if resp, b := e.raw("POST", "/v1/pouw/jobs/claim", calm, "application/json", body); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("another prover's claim: %d %s", resp.StatusCode, b)
	}
	m, err := e.client(adminToken).Metrics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`pouw_prover_limited_total{limit="claim_rate"} 1`, `pouw_prover_limit{limit="claim_burst"} 3`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestLeaseHoardingIsCappedPerProver: a prover may hold MaxLeases leases;
// the next claim is 429 until one ends.
func TestLeaseHoardingIsCappedPerProver(t *testing.T) {
	// The API's clock reads lease expiries the store stamped: give it the
	// bolt store's (fake) time.
	e := newEnv(t, boltBackend(), withOptions(func(o *api.Options) {
		o.Abuse = api.Abuse{MaxLeases: 2}
		o.Clock = clock.NewFake(epoch)
	}))
	ctx := context.Background()
	if _, err := e.client(adminToken).Deposit(ctx, 100, ""); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		e.ingest(pouw.TierMicro, 1, 3, fmt.Sprint("hoard", i))
	}
	hoarder := e.registerProver("hoarder")
	p := e.client(hoarder)
	var leases []pouw.ClaimResponse
	for i := 0; i < 2; i++ {
		l, err := p.Claim(ctx, microClaim)
		if err != nil {
			t.Fatal(err)
		}
		leases = append(leases, l)
	}
	resp, b := e.raw("POST", "/v1/pouw/jobs/claim", hoarder, "application/json", jsonBody(t, microClaim))
	wantRateLimited(t, resp, b, "a third concurrent lease")
	if _, err := p.Release(ctx, leases[0].Job.JobID, leases[0].LeaseToken, "drain"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Claim(ctx, microClaim); err != nil {
		t.Fatalf("a claim after a lease ended: %v", err)
	}
	// Another prover is not held back by the hoarder.
	if _, err := e.client(e.registerProver("other")).Claim(ctx, microClaim); err != nil {
		t.Fatalf("another prover's claim: %v", err)
	}
}

// TestSubmitFloodIsAnswered429: past its burst a prover's submits are
// refused before any verification work.
func TestSubmitFloodIsAnswered429(t *testing.T) {
	e := newEnv(t, boltBackend(), withOptions(func(o *api.Options) { o.Abuse = api.Abuse{SubmitRate: 0.01, SubmitBurst: 1} }))
	ctx := context.Background()
	if _, err := e.client(adminToken).Deposit(ctx, 100, ""); err != nil {
		t.Fatal(err)
	}
	job := e.ingest(pouw.TierMicro, 1, 5, "submit flood")
	tok := e.registerProver("flood")
	l, err := e.client(tok).Claim(ctx, microClaim)
	if err != nil {
		t.Fatal(err)
	}
	body := jsonBody(t, pouw.SubmitRequest{LeaseToken: l.LeaseToken, Proof: []byte("junk")})
	if resp, b := e.raw("POST", "/v1/pouw/jobs/"+job.JobID+"/submit", tok, "application/json", body); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("the first submit: %d %s, want 422 (no backend verifies it)", resp.StatusCode, b)
	}
	resp, b := e.raw("POST", "/v1/pouw/jobs/"+job.JobID+"/submit", tok, "application/json", body)
	wantRateLimited(t, resp, b, "the second submit")
}

// TestMostlyRejectedProverIsSuspendedUntilAdminLifts: a prover whose recent
// proofs are mostly rejected is suspended (403 prover_suspended on claim,
// a prover.suspended event); an admin lifts it and it may claim again,
// with its earlier rejections forgotten.
func TestMostlyRejectedProverIsSuspendedUntilAdminLifts(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			e := newEnv(t, b, withOptions(func(o *api.Options) {
				o.Abuse = api.Abuse{SuspendWindow: 4, SuspendMinProofs: 3, SuspendRejectRatio: 0.75}
			}))
			ctx := context.Background()
			if _, err := e.client(adminToken).Deposit(ctx, 100, ""); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 5; i++ {
				e.ingest(pouw.TierMicro, 1, 10, fmt.Sprint("forger", i))
			}
			tok := e.registerProver("forger")
			p := e.client(tok)
			for i := 0; i < 3; i++ { // NoBackends rejects every proof
				l, err := p.Claim(ctx, microClaim)
				if err != nil {
					t.Fatalf("claim %d: %v", i, err)
				}
				if _, err := p.Submit(ctx, l.Job.JobID, l.LeaseToken, []byte("forged")); !errors.Is(err, client.ErrProofRejected) {
					t.Fatalf("submit %d: %v", i, err)
				}
			}
			_, err := p.Claim(ctx, microClaim)
			if !errors.Is(err, client.ErrSuspended) {
				t.Fatalf("a claim after 3 of 3 proofs were rejected: %v, want prover_suspended", err)
			}
			evs, _ := e.st.Events(ctx, 0, 1000)
			if last := evs[len(evs)-1]; last.Type != pouw.EventProverSuspended || last.ProverID != "forger" || last.Actor != "coordinator" {
				t.Fatalf("last event %+v, want prover.suspended", last)
			}
			if _, err := e.client(adminToken).Unsuspend(ctx, "forger"); err != nil {
				t.Fatal(err)
			}
			l, err := p.Claim(ctx, microClaim)
			if err != nil {
				t.Fatalf("a claim after the lift: %v", err)
			}
			// One more rejection is not "mostly rejected" any more: the
			// rejections before the lift do not count.
			if _, err := p.Submit(ctx, l.Job.JobID, l.LeaseToken, []byte("forged")); !errors.Is(err, client.ErrProofRejected) {
				t.Fatal(err)
			}
			if _, err := p.Claim(ctx, microClaim); err != nil {
				t.Fatalf("a claim after one rejection past the lift: %v", err)
			}
		})
	}
}

// slowVerifier never finishes before its context: a proof that takes
// longer to verify than the verification budget.
type slowVerifier struct{}

func (slowVerifier) Verify(ctx context.Context, _ pouw.ProofJob, _ string, _ []byte) error {
	<-ctx.Done()
	return fmt.Errorf("%w: %v", api.ErrVerifierUnavailable, ctx.Err())
}

// TestVerificationTimeoutsCannotHoldALeaseForever: a verification that runs
// out of budget answers 503 and keeps the lease, but only MaxVerifyAttempts
// times per lease; then the lease fails and the job goes back to the queue.
func TestVerificationTimeoutsCannotHoldALeaseForever(t *testing.T) {
	e := newEnv(t, boltBackend(), envOptions{verifier: slowVerifier{}, configure: func(o *api.Options) {
		o.VerifyBudget = 20 * time.Millisecond
		o.MaxVerifyAttempts = 3
	}})
	ctx := context.Background()
	if _, err := e.client(adminToken).Deposit(ctx, 100, ""); err != nil {
		t.Fatal(err)
	}
	job := e.ingest(pouw.TierMicro, 1, 5, "slow proof")
	p := e.client(e.registerProver("slow"))
	l, err := p.Claim(ctx, microClaim)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		if _, err := p.Submit(ctx, job.JobID, l.LeaseToken, []byte("slow")); !errors.Is(err, client.ErrUnavailable) {
			t.Fatalf("submit %d: %v, want 503", i, err)
		}
	}
	if _, err := p.Submit(ctx, job.JobID, l.LeaseToken, []byte("slow")); !errors.Is(err, client.ErrLeaseLost) {
		t.Fatalf("submit 3: %v, want the lease ended", err)
	}
	j, err := e.st.Job(ctx, job.JobID)
	if err != nil || j.State != pouw.StatePending || j.Attempts != 1 {
		t.Fatalf("job after the third timeout: %+v %v, want pending with 1 attempt", j, err)
	}
	// The lease is gone: a fourth submit cannot extend it again.
	if _, err := p.Submit(ctx, job.JobID, l.LeaseToken, []byte("slow")); !errors.Is(err, client.ErrLeaseLost) {
		t.Fatalf("submit 4: %v, want lease_lost", err)
	}
}

func encodeTrace(t *testing.T, tr *trace.Trace) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := trace.Encode(&buf, tr); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestIngestRefusesTraceWhoseHeaderDiffers: with CheckTraceHeader, ingest
// reads the uploaded trace's header: a tier or intent other than the
// header's, or a blob that is no trace, is 400, and no job is created.
func TestIngestRefusesTraceWhoseHeaderDiffers(t *testing.T) {
	e := newEnv(t, boltBackend(), withOptions(func(o *api.Options) { o.CheckTraceHeader = true }))
	ctx := context.Background()
	admin := e.client(adminToken)
	if _, err := admin.Deposit(ctx, 100, ""); err != nil {
		t.Fatal(err)
	}
	tr, err := workload.Macro("fib", 1, 64)
	if err != nil {
		t.Fatal(err)
	}
	info, err := admin.UploadBlob(ctx, encodeTrace(t, tr))
	if err != nil {
		t.Fatal(err)
	}
	junk, err := admin.UploadBlob(ctx, []byte("not a trace at all"))
	if err != nil {
		t.Fatal(err)
	}
	intent := tr.Header.IntentID
	req := func(tier pouw.JobTier, in, h pouw.Hash) pouw.IngestRequest {
		return pouw.IngestRequest{Tier: tier, IntentID: in, TraceHash: h, FeeBudget: 2, RewardBudget: 1}
	}
	for name, bad := range map[string]pouw.IngestRequest{
		"wrong tier":   req(pouw.TierMicro, intent, info.Hash),
		"wrong intent": req(pouw.TierMacro, pouwHash([]byte("another intent")), info.Hash),
		"not a trace":  req(pouw.TierMacro, intent, junk.Hash),
	} {
		_, err := admin.Ingest(ctx, bad)
		var ae *client.Error
		if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest {
			t.Errorf("%s: %v, want 400", name, err)
		}
	}
	if st, _ := e.st.Status(ctx); st.LastSeq != 0 {
		t.Fatalf("refused ingests created jobs: last seq %d", st.LastSeq)
	}
	if _, err := admin.Ingest(ctx, req(pouw.TierMacro, intent, info.Hash)); err != nil {
		t.Fatalf("the matching ingest: %v", err)
	}
}

// TestIngestRefusesTraceWhoseSizeDiffersFromHeader: a blob holding a valid
// header but fewer (or more) row bytes than header + rows × width × 8 is
// refused with 400 naming the sizes; no job is created, the pool keeps its
// funds, and the whole blob is still accepted.
func TestIngestRefusesTraceWhoseSizeDiffersFromHeader(t *testing.T) {
	e := newEnv(t, boltBackend(), withOptions(func(o *api.Options) { o.CheckTraceHeader = true }))
	ctx := context.Background()
	admin := e.client(adminToken)
	if _, err := admin.Deposit(ctx, 100, ""); err != nil {
		t.Fatal(err)
	}
	tr, err := workload.Macro("fib", 1, 64)
	if err != nil {
		t.Fatal(err)
	}
	whole := encodeTrace(t, tr)
	if len(whole) <= 20000 {
		t.Fatalf("the trace is %d bytes; the test needs more than 20000", len(whole))
	}
	before, err := admin.Pool(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for name, blob := range map[string][]byte{
		"first 20000 bytes": whole[:20000],
		"one row short":     whole[:len(whole)-int(tr.Header.Width)*8],
		"one byte short":    whole[:len(whole)-1],
		"padded":            append(bytes.Clone(whole), make([]byte, 8)...),
	} {
		info, err := admin.UploadBlob(ctx, blob)
		if err != nil {
			t.Fatalf("%s: upload: %v", name, err)
		}
		_, err = admin.Ingest(ctx, pouw.IngestRequest{Tier: pouw.TierMacro, IntentID: tr.Header.IntentID,
			TraceHash: info.Hash, FeeBudget: 2, RewardBudget: 1})
		var ae *client.Error
		if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest {
			t.Fatalf("%s: %v, want 400", name, err)
		}
		if want := fmt.Sprintf("is %d bytes", len(blob)); !strings.Contains(ae.Error(), want) {
			t.Errorf("%s: message %q does not say %q", name, ae.Error(), want)
		}
	}
	if st, _ := e.st.Status(ctx); st.LastSeq != 0 {
		t.Fatalf("refused ingests created jobs: last seq %d", st.LastSeq)
	}
	if after, err := admin.Pool(ctx); err != nil || after != before {
		t.Fatalf("pool after refused ingests = %+v, %v; before %+v", after, err, before)
	}
	info, err := admin.UploadBlob(ctx, whole)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Ingest(ctx, pouw.IngestRequest{Tier: pouw.TierMacro, IntentID: tr.Header.IntentID,
		TraceHash: info.Hash, FeeBudget: 2, RewardBudget: 1}); err != nil {
		t.Fatalf("the whole trace: %v", err)
	}
}

// TestRetryAfterIsTruthful: a prover refused by the claim rate limit may
// claim again once the Retry-After it was given has passed, and not before.
func TestRetryAfterIsTruthful(t *testing.T) {
	clk := clock.NewFake(epoch)
	e := newEnv(t, boltBackend(), withOptions(func(o *api.Options) {
		o.Abuse = api.Abuse{ClaimRate: 0.25, ClaimBurst: 1} // one claim per 4 s
		o.Clock = clk
	}))
	tok := e.registerProver("patient")
	body := jsonBody(t, microClaim)
	claim := func() (*http.Response, []byte) {
		return e.raw("POST", "/v1/pouw/jobs/claim", tok, "application/json", body)
	}
	if resp, b := claim(); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("first claim: %d %s", resp.StatusCode, b)
	}
	resp, b := claim()
	wantRateLimited(t, resp, b, "second claim at once")
	ra, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
	if ra != 4 {
		t.Fatalf("Retry-After %d, want 4 (one claim per 4 s)", ra)
	}
	clk.Advance(time.Duration(ra)*time.Second - time.Millisecond)
	resp, b = claim()
	wantRateLimited(t, resp, b, "a claim just before Retry-After")
	clk.Advance(time.Millisecond)
	if resp, b := claim(); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("a claim at Retry-After: %d %s", resp.StatusCode, b)
	}
}
