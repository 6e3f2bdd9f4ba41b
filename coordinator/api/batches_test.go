package api_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/pouwfarm/pouwfarm/coordinator/api"
	"github.com/pouwfarm/pouwfarm/coordinator/client"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/trace"
	"github.com/pouwfarm/pouwfarm/trace/workload"
)

// batchBackend is the aggregation backend the batch tests configure; the
// tier table says stark, so a job of "aggregate" can only come from a batch.
const batchBackend = "aggregate"

// boundProof is the proof boundVerifier accepts: one per job and prover,
// so a proof is worthless for another job or prover (as real ones are).
func boundProof(jobID, prover string) []byte { return []byte("proof of " + jobID + " by " + prover) }

// boundVerifier stands in for the backends in the API tests: it accepts
// exactly boundProof(job, prover).
type boundVerifier struct{}

func (boundVerifier) Verify(_ context.Context, job pouw.ProofJob, prover string, proof []byte) error {
	if !bytes.Equal(proof, boundProof(job.JobID, prover)) {
		return fmt.Errorf("%w: not the proof of job %s by %s", api.ErrProofRejected, job.JobID, prover)
	}
	return nil
}

func batchEnv(t *testing.T, b backend, configure func(*api.Options)) *env {
	t.Helper()
	return newEnv(t, b, envOptions{verifier: boundVerifier{}, configure: func(o *api.Options) {
		o.BatchBackend = batchBackend
		if configure != nil {
			configure(o)
		}
	}})
}

// batchOf uploads k opaque traces and returns a batch request over them.
func (e *env) batchOf(k int, seed string) pouw.BatchRequest {
	e.t.Helper()
	req := pouw.BatchRequest{FeeBudget: 20, RewardBudget: 10}
	for i := range k {
		info, err := e.client(adminToken).UploadBlob(context.Background(), []byte(fmt.Sprintf("trace %d of %s", i, seed)))
		if err != nil {
			e.t.Fatal(err)
		}
		req.Intents = append(req.Intents, pouw.BatchIntent{IntentID: pouwHash([]byte(fmt.Sprintf("intent %d of %s", i, seed))),
			TraceHash: info.Hash, FeeBudget: 4, RewardBudget: 2})
	}
	return req
}

func (e *env) deposit(n uint64) {
	e.t.Helper()
	if _, err := e.client(adminToken).Deposit(context.Background(), n, "batch test"); err != nil {
		e.t.Fatal(err)
	}
}

// jobsCreated is how many jobs the store has created (its last created_seq).
func (e *env) jobsCreated() uint64 {
	e.t.Helper()
	st, err := e.st.Status(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return st.LastSeq
}

// events returns every event of type typ about job id.
func (e *env) eventsOf(typ pouw.EventType, id string) []pouw.Event {
	e.t.Helper()
	evs, err := e.st.Events(context.Background(), 0, 100000)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []pouw.Event
	for _, ev := range evs {
		if ev.Type == typ && ev.JobID == id {
			out = append(out, ev)
		}
	}
	return out
}

// proveChild claims the next Macro job of the batch backend as prover and
// submits its proof.
func proveChild(t *testing.T, p *client.Client, prover string) pouw.ProofJob {
	t.Helper()
	ctx := context.Background()
	l, err := p.Claim(ctx, pouw.ClaimRequest{Tiers: []pouw.JobTier{pouw.TierMacro}, Backends: []string{batchBackend}})
	if err != nil {
		t.Fatal(err)
	}
	done, err := p.Submit(ctx, l.Job.JobID, l.LeaseToken, boundProof(l.Job.JobID, prover))
	if err != nil || done.State != pouw.StateCompleted {
		t.Fatalf("submit of %s: %+v, %v", l.Job.JobID, done, err)
	}
	return done
}

// TestBatchAggregationWaitsForEveryChild: a batch makes k pending Macro jobs
// of the batch backend and one waiting Full job over its manifest; a retry
// answers the same jobs without reserving again; the aggregation job cannot
// be claimed until the last child completes, and becomes pending then,
// exactly once.
func TestBatchAggregationWaitsForEveryChild(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			e := batchEnv(t, b, nil)
			ctx := context.Background()
			admin := e.client(adminToken)
			e.deposit(100)
			req := e.batchOf(4, "waits")

			res, err := admin.CreateBatch(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			agg := res.Aggregation
			if !res.Created || len(res.Children) != 4 {
				t.Fatalf("batch = %+v", res)
			}
			var ids []string
			var intents []pouw.Hash
			for i, c := range res.Children {
				in := req.Intents[i]
				if c.Tier != pouw.TierMacro || c.Backend != batchBackend || c.State != pouw.StatePending ||
					c.IntentID != in.IntentID || c.TraceHash != in.TraceHash || c.TraceRef != in.TraceHash.String() ||
					c.RewardBudget != in.RewardBudget || len(c.DependsOn) != 0 {
					t.Errorf("child %d = %+v", i, c)
				}
				ids = append(ids, c.JobID)
				intents = append(intents, c.IntentID)
			}
			if agg.Tier != pouw.TierFull || agg.Backend != batchBackend || agg.State != pouw.StateWaiting ||
				!slices.Equal(agg.DependsOn, ids) || agg.IntentID != pouw.BatchIntentID(intents) ||
				agg.TraceRef != agg.TraceHash.String() || agg.RewardBudget != req.RewardBudget || agg.FeeBudget != req.FeeBudget {
				t.Fatalf("aggregation job = %+v", agg)
			}

			// Its trace is the manifest, stored under its BLAKE3.
			var buf bytes.Buffer
			if _, err := admin.DownloadBlob(ctx, agg.TraceHash, &buf); err != nil {
				t.Fatal(err)
			}
			if pouwHash(buf.Bytes()) != agg.TraceHash || int64(buf.Len()) != agg.TraceBytes {
				t.Fatalf("manifest blob: %d bytes, hash %s; job says %d, %s", buf.Len(), pouwHash(buf.Bytes()), agg.TraceBytes, agg.TraceHash)
			}
			m, err := pouw.DecodeManifest(&buf)
			if err != nil {
				t.Fatal(err)
			}
			if m.Backend != batchBackend || !slices.Equal(m.ChildIDs(), ids) || m.IntentID() != agg.IntentID {
				t.Fatalf("manifest = %+v", m)
			}
			for i, c := range m.Children {
				if c.IntentID != req.Intents[i].IntentID || c.TraceHash != req.Intents[i].TraceHash {
					t.Errorf("manifest child %d = %+v", i, c)
				}
			}
			pool, _ := admin.Pool(ctx)
			if pool.Reserved != 4*2+10 || !pool.Balanced() {
				t.Fatalf("pool after the batch = %+v", pool)
			}
			audit := e.eventsOf(pouw.EventAdminAction, agg.JobID)
			if len(audit) != 1 || audit[0].Action != pouw.ActionBatch || !strings.Contains(audit[0].Reason, ids[3]) {
				t.Fatalf("audit events of the batch = %+v", audit)
			}

			// A retry is the same batch.
			again, err := admin.CreateBatch(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if again.Created || again.Aggregation.JobID != agg.JobID || len(again.Children) != 4 {
				t.Fatalf("retried batch = %+v", again)
			}
			for i, c := range again.Children {
				if c.JobID != ids[i] {
					t.Errorf("retried child %d = %s, want %s", i, c.JobID, ids[i])
				}
			}
			if p2, _ := admin.Pool(ctx); p2 != pool {
				t.Fatalf("pool after the retry = %+v, want %+v", p2, pool)
			}

			const prover = "batch-prover"
			p := e.client(e.registerProver(prover))
			claimFull := func() (pouw.ClaimResponse, error) {
				return p.Claim(ctx, pouw.ClaimRequest{Tiers: []pouw.JobTier{pouw.TierFull}, Backends: []string{batchBackend}})
			}
			for i := range 4 {
				if _, err := claimFull(); !errors.Is(err, client.ErrNoJob) {
					t.Fatalf("claim of the aggregation job with %d of 4 children done: %v", i, err)
				}
				if got, _ := p.Job(ctx, agg.JobID); got.State != pouw.StateWaiting {
					t.Fatalf("aggregation job with %d of 4 children done: %s", i, got.State)
				}
				proveChild(t, p, prover)
			}
			if got, _ := p.Job(ctx, agg.JobID); got.State != pouw.StatePending {
				t.Fatalf("aggregation job after every child: %s", got.State)
			}
			if ready := e.eventsOf(pouw.EventJobReady, agg.JobID); len(ready) != 1 {
				t.Fatalf("job.ready events of the aggregation job: %d, want 1", len(ready))
			}
			l, err := claimFull()
			if err != nil || l.Job.JobID != agg.JobID {
				t.Fatalf("claim after every child: %+v, %v", l.Job, err)
			}
			done, err := p.Submit(ctx, agg.JobID, l.LeaseToken, boundProof(agg.JobID, prover))
			if err != nil || done.State != pouw.StateCompleted {
				t.Fatalf("aggregate submit: %+v, %v", done, err)
			}
			// A batch over completed children is still the same batch.
			if again, err := admin.CreateBatch(ctx, req); err != nil || again.Created || again.Aggregation.State != pouw.StateCompleted {
				t.Fatalf("batch after completion = %+v, %v", again, err)
			}
			if ready := e.eventsOf(pouw.EventJobReady, agg.JobID); len(ready) != 1 {
				t.Fatalf("job.ready events of the aggregation job at the end: %d, want 1", len(ready))
			}
		})
	}
}

// TestBatchChildInDeadLetterKillsAggregation: a child that reaches the
// dead-letter queue takes the aggregation job with it, the reason naming
// the child, and every reservation of a dead job returns to the pool.
func TestBatchChildInDeadLetterKillsAggregation(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			e := batchEnv(t, b, nil)
			ctx := context.Background()
			admin := e.client(adminToken)
			e.deposit(100)
			req := e.batchOf(2, "dead child")
			req.MaxRetries = 1
			res, err := admin.CreateBatch(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			p := e.client(e.registerProver("unlucky"))
			l, err := p.Claim(ctx, pouw.ClaimRequest{Tiers: []pouw.JobTier{pouw.TierMacro}, Backends: []string{batchBackend}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.Fail(ctx, l.Job.JobID, l.LeaseToken, "out of memory"); err != nil {
				t.Fatal(err)
			}
			child, _ := p.Job(ctx, l.Job.JobID)
			agg, _ := p.Job(ctx, res.Aggregation.JobID)
			if child.State != pouw.StateDead {
				t.Fatalf("child after its only failure: %s", child.State)
			}
			if agg.State != pouw.StateDead || !strings.Contains(agg.DeadReason, child.JobID) {
				t.Fatalf("aggregation job after a child died: %s, reason %q", agg.State, agg.DeadReason)
			}
			if dead := e.eventsOf(pouw.EventJobDead, agg.JobID); len(dead) != 1 {
				t.Fatalf("job.dead events of the aggregation job: %d", len(dead))
			}
			pool, _ := admin.Pool(ctx)
			if pool.Reserved != 2 || !pool.Balanced() { // the other child only
				t.Fatalf("pool = %+v", pool)
			}
			// The batch cannot be made again while the child is dead.
			_, err = admin.CreateBatch(ctx, req)
			var ae *client.Error
			if !errors.As(err, &ae) || ae.Status != http.StatusConflict || !strings.Contains(ae.Message, child.JobID) {
				t.Fatalf("batch with a dead child: %v", err)
			}
		})
	}
}

// TestBatchRefusals: requests that are refused before any job is created.
func TestBatchRefusals(t *testing.T) {
	e := batchEnv(t, boltBackend(), nil)
	e.deposit(1000)
	good := e.batchOf(2, "refusals")
	prover := e.registerProver("not-an-admin")
	with := func(f func(*pouw.BatchRequest)) pouw.BatchRequest {
		r := good
		r.Intents = slices.Clone(good.Intents)
		f(&r)
		return r
	}
	four := e.batchOf(4, "refusals-4")
	for _, tc := range []struct {
		name   string
		token  string
		req    pouw.BatchRequest
		status int
		code   string
		says   string
	}{
		{"no intents", adminToken, pouw.BatchRequest{FeeBudget: 1}, 400, pouw.CodeInvalid, "not 0"},
		{"one intent", adminToken, with(func(r *pouw.BatchRequest) { r.Intents = r.Intents[:1] }), 400, pouw.CodeInvalid, "not 1"},
		{"three intents", adminToken, with(func(r *pouw.BatchRequest) { r.Intents = four.Intents[:3] }), 400, pouw.CodeInvalid, "not 3"},
		{"32 intents", adminToken, with(func(r *pouw.BatchRequest) {
			for len(r.Intents) < 32 {
				r.Intents = append(r.Intents, r.Intents...)
			}
		}), 400, pouw.CodeInvalid, "not 32"},
		{"duplicate intent", adminToken, with(func(r *pouw.BatchRequest) { r.Intents[1] = r.Intents[0] }), 400, pouw.CodeInvalid, "intents 0 and 1"},
		{"zero intent id", adminToken, with(func(r *pouw.BatchRequest) { r.Intents[1].IntentID = pouw.Hash{} }), 400, pouw.CodeInvalid, "intent 1"},
		{"child reward over fee", adminToken, with(func(r *pouw.BatchRequest) { r.Intents[1].RewardBudget = 5 }), 400, pouw.CodeInvalid, "intent 1: reward_budget 5 exceeds"},
		{"aggregation reward over fee", adminToken, with(func(r *pouw.BatchRequest) { r.RewardBudget = 21 }), 400, pouw.CodeInvalid, "aggregation"},
		{"fee over 2^53", adminToken, with(func(r *pouw.BatchRequest) { r.FeeBudget = pouw.MaxAmount + 1 }), 400, pouw.CodeInvalid, "2^53"},
		{"trace not uploaded", adminToken, with(func(r *pouw.BatchRequest) { r.Intents[1].TraceHash = pouwHash([]byte("never uploaded")) }), 409, pouw.CodeTraceMissing, "intent 1"},
		{"deadline passed", adminToken, with(func(r *pouw.BatchRequest) { r.DeadlineMs = 1 }), 400, pouw.CodeInvalid, "deadline"},
		{"a prover", prover, good, 403, pouw.CodeForbidden, ""},
		{"no token", "", good, 401, pouw.CodeUnauthorized, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := e.raw("POST", "/v1/pouw/batches", tc.token, "application/json", mustJSON(tc.req))
			if resp.StatusCode != tc.status || errorCode(t, body) != tc.code || !contains(body, tc.says) {
				t.Fatalf("%d %s, want %d %s saying %q", resp.StatusCode, body, tc.status, tc.code, tc.says)
			}
		})
	}
	if n := e.jobsCreated(); n != 0 {
		t.Fatalf("refused batches created %d jobs", n)
	}
	resp, body := e.raw("POST", "/v1/pouw/batches", adminToken, "application/json", []byte(`{"intents":[],"gpu":1}`))
	if resp.StatusCode != 400 || errorCode(t, body) != pouw.CodeBadRequest {
		t.Fatalf("unknown field: %d %s", resp.StatusCode, body)
	}
}

// TestBatchRefusedWithoutAggregationBackend: a coordinator without an
// aggregation backend says so (409 conflict) and creates nothing.
func TestBatchRefusedWithoutAggregationBackend(t *testing.T) {
	e := newEnv(t, boltBackend(), envOptions{})
	e.deposit(100)
	_, err := e.client(adminToken).CreateBatch(context.Background(), e.batchOf(2, "no backend"))
	var ae *client.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict || ae.Code != pouw.CodeConflict ||
		!strings.Contains(ae.Message, "no aggregation backend") {
		t.Fatalf("batch without an aggregation backend: %v", err)
	}
	if n := e.jobsCreated(); n != 0 {
		t.Fatalf("the refused batch created %d jobs", n)
	}
}

// TestBatchChildOfAnotherBackendIsConflict: an intent ingested before as a
// plain Macro job (the tier table's backend) cannot join a batch: 409 names
// that job, and no aggregation job is made. The children made before the
// refusal stay as ordinary jobs.
func TestBatchChildOfAnotherBackendIsConflict(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			e := batchEnv(t, b, nil)
			ctx := context.Background()
			admin := e.client(adminToken)
			e.deposit(100)
			req := e.batchOf(2, "other backend")
			in := req.Intents[1]
			plain, err := admin.Ingest(ctx, pouw.IngestRequest{Tier: pouw.TierMacro, IntentID: in.IntentID, TraceHash: in.TraceHash,
				FeeBudget: 4, RewardBudget: 2})
			if err != nil || plain.Job.Backend != "stark" {
				t.Fatalf("plain ingest = %+v, %v", plain, err)
			}
			_, err = admin.CreateBatch(ctx, req)
			var ae *client.Error
			if !errors.As(err, &ae) || ae.Status != http.StatusConflict || ae.Code != pouw.CodeConflict ||
				!strings.Contains(ae.Message, plain.Job.JobID) || !strings.Contains(ae.Message, "stark") {
				t.Fatalf("batch over a stark job: %v", err)
			}
			st, err := admin.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, ts := range st.Tiers {
				var n uint64
				for _, c := range ts.Counts {
					n += c
				}
				want := uint64(0)
				if ts.Tier == pouw.TierMacro {
					want = 2 // the plain job and the first child
				}
				if n != want {
					t.Errorf("tier %s holds %d jobs, want %d", ts.Tier, n, want)
				}
			}
		})
	}
}

// TestBatchChecksTraceHeaders: with CheckTraceHeader every trace of a batch
// must be the Macro trace of its intent.
func TestBatchChecksTraceHeaders(t *testing.T) {
	e := batchEnv(t, boltBackend(), func(o *api.Options) { o.CheckTraceHeader = true })
	ctx := context.Background()
	admin := e.client(adminToken)
	e.deposit(100)
	var intents []pouw.BatchIntent
	for seed := range uint64(2) {
		tr, err := workload.Macro("fib", seed, 64)
		if err != nil {
			t.Fatal(err)
		}
		info, err := admin.UploadBlob(ctx, encodeTrace(t, tr))
		if err != nil {
			t.Fatal(err)
		}
		intents = append(intents, pouw.BatchIntent{IntentID: tr.Header.IntentID, TraceHash: info.Hash, FeeBudget: 2, RewardBudget: 1})
	}
	full, err := workload.Full("fib", 7, 64, 2)
	if err != nil {
		t.Fatal(err)
	}
	fullInfo, err := admin.UploadBlob(ctx, encodeTrace(t, full))
	if err != nil {
		t.Fatal(err)
	}
	junk, err := admin.UploadBlob(ctx, []byte("not a trace"))
	if err != nil {
		t.Fatal(err)
	}
	for name, in := range map[string]pouw.BatchIntent{
		"wrong intent": {IntentID: pouwHash([]byte("another intent")), TraceHash: intents[1].TraceHash, FeeBudget: 2, RewardBudget: 1},
		"full trace":   {IntentID: full.Header.IntentID, TraceHash: fullInfo.Hash, FeeBudget: 2, RewardBudget: 1},
		"not a trace":  {IntentID: pouwHash([]byte("junk")), TraceHash: junk.Hash, FeeBudget: 2, RewardBudget: 1},
	} {
		_, err := admin.CreateBatch(ctx, pouw.BatchRequest{Intents: []pouw.BatchIntent{intents[0], in}})
		var ae *client.Error
		if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || !strings.Contains(ae.Message, "intent 1") {
			t.Errorf("%s: %v, want 400 about intent 1", name, err)
		}
	}
	if n := e.jobsCreated(); n != 0 {
		t.Fatalf("refused batches created %d jobs", n)
	}
	res, err := admin.CreateBatch(ctx, pouw.BatchRequest{Intents: intents})
	if err != nil || !res.Created {
		t.Fatalf("the batch of two Macro traces: %+v, %v", res, err)
	}
}

// TestBatchTheBackendCannotProveIsConflict: with BatchCheck set (the
// coordinator sets it from the aggregate backend's loaded key sets), a
// batch whose children no key set takes is refused before any job is made,
// and the check sees every child's header in order.
func TestBatchTheBackendCannotProveIsConflict(t *testing.T) {
	var seen [][]*trace.Header
	e := batchEnv(t, boltBackend(), func(o *api.Options) {
		o.CheckTraceHeader = true
		o.BatchCheck = func(hs []*trace.Header) error {
			seen = append(seen, hs)
			for _, h := range hs {
				if h.Rows > 64 {
					return fmt.Errorf("no key set for %d steps", h.Rows)
				}
			}
			return nil
		}
	})
	ctx := context.Background()
	admin := e.client(adminToken)
	e.deposit(100)
	intent := func(seed, steps uint64) pouw.BatchIntent {
		tr, err := workload.Macro("fib", seed, steps)
		if err != nil {
			t.Fatal(err)
		}
		info, err := admin.UploadBlob(ctx, encodeTrace(t, tr))
		if err != nil {
			t.Fatal(err)
		}
		return pouw.BatchIntent{IntentID: tr.Header.IntentID, TraceHash: info.Hash, FeeBudget: 2, RewardBudget: 1}
	}
	small, large := intent(1, 32), intent(2, 200)
	_, err := admin.CreateBatch(ctx, pouw.BatchRequest{Intents: []pouw.BatchIntent{small, large}})
	var ae *client.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict || !strings.Contains(ae.Message, "cannot prove this batch") ||
		!strings.Contains(ae.Message, "no key set") {
		t.Fatalf("a batch no key set takes: %v, want 409 saying why", err)
	}
	if n := e.jobsCreated(); n != 0 {
		t.Fatalf("the refused batch created %d jobs", n)
	}
	if len(seen) != 1 || len(seen[0]) != 2 || seen[0][0].IntentID != small.IntentID || seen[0][1].IntentID != large.IntentID {
		t.Fatalf("the check saw %v", seen)
	}
	if res, err := admin.CreateBatch(ctx, pouw.BatchRequest{Intents: []pouw.BatchIntent{small, intent(3, 40)}}); err != nil || !res.Created {
		t.Fatalf("a batch the backend takes: %+v, %v", res, err)
	}
}

// TestBatchOfMaxBatchIntents: the largest batch is one request, on every
// store.
func TestBatchOfMaxBatchIntents(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			e := batchEnv(t, b, nil)
			e.deposit(1000)
			res, err := e.client(adminToken).CreateBatch(context.Background(), e.batchOf(pouw.MaxBatch, "max"))
			if err != nil {
				t.Fatal(err)
			}
			if !res.Created || len(res.Children) != pouw.MaxBatch || len(res.Aggregation.DependsOn) != pouw.MaxBatch ||
				res.Aggregation.State != pouw.StateWaiting {
				t.Fatalf("batch of %d = %+v", pouw.MaxBatch, res.Aggregation)
			}
		})
	}
}
