package client_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/backends/stark"
	"github.com/pouwfarm/pouwfarm/clock"
	"github.com/pouwfarm/pouwfarm/coordinator"
	"github.com/pouwfarm/pouwfarm/coordinator/api"
	"github.com/pouwfarm/pouwfarm/coordinator/blob"
	"github.com/pouwfarm/pouwfarm/coordinator/client"
	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/coordinator/store/boltstore"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/trace"
	"github.com/pouwfarm/pouwfarm/trace/workload"
)

const adminToken = "client-test-admin-token-0123456789"

// fault decides, per request, what the faulty server does.
type fault int

const (
	pass       fault = iota
	refuse503        // answer 503 without running the handler
	dropAnswer       // run the handler, then cut the connection before answering
)

// faulty wraps the API so tests can inject 503s and lost answers on chosen
// routes; it counts how often each route's handler really ran.
type faulty struct {
	next http.Handler
	mu   sync.Mutex
	plan map[string][]fault // "METHOD /path-suffix" -> faults for the next requests
	ran  map[string]int
}

// key names a request by method and path, with a job id replaced by "*"
// ("POST /v1/pouw/jobs/*/submit").
func (f *faulty) key(r *http.Request) string {
	parts := strings.Split(r.URL.Path, "/")
	if len(parts) > 4 && parts[3] == "jobs" && len(parts[4]) == pouw.JobIDLen {
		parts[4] = "*"
	}
	return r.Method + " " + strings.Join(parts, "/")
}

func (f *faulty) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	k := f.key(r)
	f.mu.Lock()
	next := pass
	if q := f.plan[k]; len(q) > 0 {
		next, f.plan[k] = q[0], q[1:]
	}
	if next != refuse503 {
		f.ran[k]++
	}
	f.mu.Unlock()
	switch next {
	case refuse503:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error":{"code":"unavailable","message":"injected"}}`))
	case dropAnswer:
		f.next.ServeHTTP(httptest.NewRecorder(), r)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	default:
		f.next.ServeHTTP(w, r)
	}
}

func (f *faulty) inject(key string, faults ...fault) {
	f.mu.Lock()
	f.plan[key] = append(f.plan[key], faults...)
	f.mu.Unlock()
}

func (f *faulty) count(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ran[key]
}

type env struct {
	url    string
	faults *faulty
	stark  *stark.Backend
}

// newEnv serves the API over a fresh bolt store; configure adjusts its
// options.
func newEnv(t *testing.T, configure ...func(*api.Options)) *env {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "db"), store.DefaultOptions(), clock.Real{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	blobs, err := blob.NewFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sb, err := stark.New(stark.Config{})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := backends.NewRegistry(sb)
	if err != nil {
		t.Fatal(err)
	}
	opts := api.Options{Store: st, Blobs: blobs, AdminToken: adminToken,
		Verifier: coordinator.BackendVerifier{Registry: reg, Blobs: blobs, Jobs: st}}
	for _, f := range configure {
		f(&opts)
	}
	srv, err := api.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	f := &faulty{next: srv.Handler(), plan: map[string][]fault{}, ran: map[string]int{}}
	hs := httptest.NewServer(f)
	t.Cleanup(hs.Close)
	return &env{url: hs.URL, faults: f, stark: sb}
}

func (e *env) client(t *testing.T, token string) *client.Client {
	t.Helper()
	c, err := client.New(e.url, client.Options{Token: token, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// leased ingests a real trace, registers a prover, claims the job and
// proves it: the lease and a valid proof, ready to submit.
func (e *env) leased(t *testing.T) (*client.Client, pouw.ClaimResponse, []byte) {
	t.Helper()
	ctx := context.Background()
	admin := e.client(t, adminToken)
	if _, err := admin.Deposit(ctx, 100, ""); err != nil {
		t.Fatal(err)
	}
	tr, err := workload.Macro("fib", 5, 200)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := trace.Encode(&buf, tr); err != nil {
		t.Fatal(err)
	}
	info, err := admin.UploadBlob(ctx, buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Ingest(ctx, pouw.IngestRequest{Tier: pouw.TierMacro, IntentID: tr.Header.IntentID,
		TraceHash: info.Hash, FeeBudget: 10, RewardBudget: 10}); err != nil {
		t.Fatal(err)
	}
	reg, err := admin.RegisterProver(ctx, "prover")
	if err != nil {
		t.Fatal(err)
	}
	p := e.client(t, reg.Token)
	l, err := p.Claim(ctx, pouw.ClaimRequest{Tiers: []pouw.JobTier{pouw.TierMacro}, Backends: []string{"stark"}})
	if err != nil {
		t.Fatal(err)
	}
	proof, err := e.stark.Prove(ctx, tr, backends.Statement{Header: &tr.Header, TraceHash: info.Hash,
		JobID: l.Job.JobID, ProverID: "prover"})
	if err != nil {
		t.Fatal(err)
	}
	return p, l, proof
}

func TestReadsAreRetriedOn503(t *testing.T) {
	e := newEnv(t)
	e.faults.inject("GET /v1/pouw/pool", refuse503, refuse503)
	if _, err := e.client(t, adminToken).Pool(context.Background()); err != nil {
		t.Fatalf("Pool after two 503s: %v", err)
	}
	if n := e.faults.count("GET /v1/pouw/pool"); n != 1 {
		t.Fatalf("handler ran %d times, want 1", n)
	}
}

func TestRetriesGiveUpAfterMaxRetries(t *testing.T) {
	e := newEnv(t)
	e.faults.inject("GET /v1/pouw/pool", refuse503, refuse503, refuse503)
	c, _ := client.New(e.url, client.Options{Token: adminToken, MaxRetries: 2, MinBackoff: time.Millisecond})
	_, err := c.Pool(context.Background())
	if !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
}

func TestDepositIsNotRepeatedAfterLostAnswer(t *testing.T) {
	e := newEnv(t)
	admin := e.client(t, adminToken)
	e.faults.inject("POST /v1/pouw/pool/deposits", dropAnswer)
	if _, err := admin.Deposit(context.Background(), 7, ""); err == nil {
		t.Fatal("a deposit whose answer was lost reported success")
	}
	p, err := admin.Pool(context.Background())
	if err != nil || p.Deposited != 7 {
		t.Fatalf("pool = %+v, %v: the deposit must land exactly once", p, err)
	}
}

func TestRequestsAreRetriedWhenTheCoordinatorIsNotUpYet(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: dials are refused
	e := newEnv(t)
	go func() {
		time.Sleep(100 * time.Millisecond)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return
		}
		_ = http.Serve(ln, e.faults)
	}()
	c, _ := client.New("http://"+addr, client.Options{Token: adminToken, MaxRetries: 10,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	// Deposits are never repeated after an ambiguous failure, but a refused
	// dial never reached the server: that is safe to retry.
	if _, err := c.Deposit(context.Background(), 3, ""); err != nil {
		t.Fatalf("deposit once the coordinator came up: %v", err)
	}
}

// TestSubmitWithLostAnswerChecksTheJobInsteadOfResending: the coordinator
// accepted the proof but the answer was lost; the client reads the job,
// sees it completed with this proof, and reports success without sending
// the proof again.
func TestSubmitWithLostAnswerChecksTheJobInsteadOfResending(t *testing.T) {
	e := newEnv(t)
	p, l, proof := e.leased(t)
	e.faults.inject("POST /v1/pouw/jobs/*/submit", dropAnswer)
	job, err := p.Submit(context.Background(), l.Job.JobID, l.LeaseToken, proof)
	if err != nil || job.State != pouw.StateCompleted {
		t.Fatalf("submit = %+v, %v", job, err)
	}
	if n := e.faults.count("POST /v1/pouw/jobs/*/submit"); n != 1 {
		t.Fatalf("submit handler ran %d times, want 1", n)
	}
}

// TestSubmitAfter503IsResentWhileTheLeaseIsHeld: a 503 may or may not
// have been acted on; the job is still leased, so the proof is sent again.
func TestSubmitAfter503IsResentWhileTheLeaseIsHeld(t *testing.T) {
	e := newEnv(t)
	p, l, proof := e.leased(t)
	e.faults.inject("POST /v1/pouw/jobs/*/submit", refuse503)
	job, err := p.Submit(context.Background(), l.Job.JobID, l.LeaseToken, proof)
	if err != nil || job.State != pouw.StateCompleted {
		t.Fatalf("submit = %+v, %v", job, err)
	}
	if n := e.faults.count("POST /v1/pouw/jobs/*/submit"); n != 1 {
		t.Fatalf("submit handler ran %d times, want 1", n)
	}
}

// TestRejectedSubmitWithLostAnswerIsNotResent: the proof was rejected (the
// job is pending again) and the answer lost: resending could only burn
// another attempt, so the client reports the outcome as unknown.
func TestRejectedSubmitWithLostAnswerIsNotResent(t *testing.T) {
	e := newEnv(t)
	p, l, proof := e.leased(t)
	proof[len(proof)/3] ^= 0xff
	e.faults.inject("POST /v1/pouw/jobs/*/submit", dropAnswer)
	job, err := p.Submit(context.Background(), l.Job.JobID, l.LeaseToken, proof)
	if !errors.Is(err, client.ErrOutcomeUnknown) || job.State != pouw.StatePending || job.Attempts != 1 {
		t.Fatalf("submit = %+v, %v", job, err)
	}
	if n := e.faults.count("POST /v1/pouw/jobs/*/submit"); n != 1 {
		t.Fatalf("submit handler ran %d times, want 1", n)
	}
}

func TestFailWithLostAnswerIsRetriedAndLeaseLostMeansDone(t *testing.T) {
	e := newEnv(t)
	p, l, _ := e.leased(t)
	e.faults.inject("POST /v1/pouw/jobs/*/fail", dropAnswer)
	job, err := p.Fail(context.Background(), l.Job.JobID, l.LeaseToken, "oom")
	if err != nil || job.State != pouw.StatePending || job.Attempts != 1 {
		t.Fatalf("fail = %+v, %v", job, err)
	}
}

func TestDownloadChecksTheHash(t *testing.T) {
	e := newEnv(t)
	admin := e.client(t, adminToken)
	data := bytes.Repeat([]byte("pouw"), 5000)
	info, err := admin.UploadBlob(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if _, err := admin.DownloadBlob(context.Background(), info.Hash, &got); err != nil || !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("download: %v", err)
	}
	// Asking for one hash and getting other bytes is caught: serve the
	// blob of info under another key through a proxy that rewrites paths.
	other := info.Hash
	other[0] ^= 1
	var calls atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		r.URL.Path = strings.Replace(r.URL.Path, other.String(), info.Hash.String(), 1)
		e.faults.ServeHTTP(w, r)
	}))
	defer proxy.Close()
	c, _ := client.New(proxy.URL, client.Options{Token: adminToken})
	if _, err := c.DownloadBlob(context.Background(), other, &bytes.Buffer{}); !errors.Is(err, client.ErrHashMismatch) {
		t.Fatalf("download of wrong bytes: %v", err)
	}
}
