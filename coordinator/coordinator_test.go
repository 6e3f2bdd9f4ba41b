package coordinator_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/backends/stark"
	"github.com/pouwfarm/pouwfarm/coordinator"
	"github.com/pouwfarm/pouwfarm/coordinator/api"
	"github.com/pouwfarm/pouwfarm/coordinator/blob"
	"github.com/pouwfarm/pouwfarm/coordinator/client"
	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/internal/redistest"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/trace"
	"github.com/pouwfarm/pouwfarm/trace/workload"
)

// start runs a coordinator with the STARK backend on a free port and
// returns it with an admin client and a stop function (cancel, then Run's
// result; safe to call twice).
func start(t *testing.T, cfg coordinator.Config) (*coordinator.Coordinator, *client.Client, func() error) {
	t.Helper()
	sb, err := stark.New(stark.Config{})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := backends.NewRegistry(sb)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Addr = "127.0.0.1:0"
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	cfg.Backends = reg
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c, err := coordinator.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	stop := sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(15 * time.Second):
			return errors.New("Run did not return within 15s of cancel")
		}
	})
	t.Cleanup(func() { _ = stop() })
	admin, err := client.New(c.URL(), client.Options{Token: c.AdminToken()})
	if err != nil {
		t.Fatal(err)
	}
	return c, admin, stop
}

func encode(t *testing.T, tr *trace.Trace) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := trace.Encode(&buf, tr); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestRealProofCompletesJobAndForeignProofIsRejected: a trace from the
// reference VM is uploaded and ingested, a prover claims it, downloads the
// trace, proves it with the STARK backend and submits: the coordinator
// verifies it and pays. A proof made for another prover is rejected.
func TestRealProofCompletesJobAndForeignProofIsRejected(t *testing.T) {
	t.Run("bolt+files", func(t *testing.T) { testRealProof(t, coordinator.Config{}) })
	t.Run("redis+redis-blobs", func(t *testing.T) {
		srv := redistest.Start(t, redistest.Options{})
		url := "redis://" + srv.Addr() + "/0"
		testRealProof(t, coordinator.Config{Store: url, Blobs: url, RedisPrefix: "e2e"})
	})
}

func testRealProof(t *testing.T, cfg coordinator.Config) {
	c, admin, _ := start(t, cfg)
	ctx := context.Background()
	if _, err := admin.Deposit(ctx, 1000, "test"); err != nil {
		t.Fatal(err)
	}
	reg, err := admin.RegisterProver(ctx, "gpu-box-1")
	if err != nil {
		t.Fatal(err)
	}
	prover, err := client.New(c.URL(), client.Options{Token: reg.Token})
	if err != nil {
		t.Fatal(err)
	}
	sb, _ := stark.New(stark.Config{})

	ingest := func(seed uint64) pouw.ProofJob {
		tr, err := workload.Macro("fib", seed, 200)
		if err != nil {
			t.Fatal(err)
		}
		info, err := admin.UploadBlob(ctx, encode(t, tr))
		if err != nil {
			t.Fatal(err)
		}
		res, err := admin.Ingest(ctx, pouw.IngestRequest{Tier: pouw.TierMacro, IntentID: tr.Header.IntentID,
			TraceHash: info.Hash, FeeBudget: 200, RewardBudget: 100})
		if err != nil {
			t.Fatal(err)
		}
		return res.Job
	}
	claimAndProve := func(proverID string) (pouw.ClaimResponse, []byte) {
		l, err := prover.Claim(ctx, pouw.ClaimRequest{Tiers: []pouw.JobTier{pouw.TierMacro}, Backends: []string{"stark"}})
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if _, err := prover.DownloadBlob(ctx, l.Job.TraceHash, &buf); err != nil {
			t.Fatal(err)
		}
		tr, err := trace.Decode(&buf, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		proof, err := sb.Prove(ctx, tr, backends.Statement{Header: &tr.Header, TraceHash: l.Job.TraceHash,
			JobID: l.Job.JobID, ProverID: proverID})
		if err != nil {
			t.Fatal(err)
		}
		return l, proof
	}

	job := ingest(1)
	l, proof := claimAndProve("gpu-box-1")
	done, err := prover.Submit(ctx, job.JobID, l.LeaseToken, proof)
	if err != nil {
		t.Fatalf("submit of a valid proof: %v", err)
	}
	if done.State != pouw.StateCompleted || done.ProofRef == "" {
		t.Fatalf("after submit: %+v", done)
	}
	pool, _ := admin.Pool(ctx)
	if pool.Paid != 100 || !pool.Balanced() {
		t.Fatalf("pool = %+v", pool)
	}
	// The accepted proof is kept as a blob under its proof_ref.
	ref, err := pouw.ParseHash(done.ProofRef)
	if err != nil {
		t.Fatal(err)
	}
	var kept bytes.Buffer
	if _, err := prover.DownloadBlob(ctx, ref, &kept); err != nil || !bytes.Equal(kept.Bytes(), proof) {
		t.Fatalf("proof blob: %v", err)
	}

	// A proof bound to another prover is worthless here.
	job2 := ingest(2)
	l2, stolen := claimAndProve("someone-else")
	_, err = prover.Submit(ctx, job2.JobID, l2.LeaseToken, stolen)
	if !errors.Is(err, client.ErrProofRejected) {
		t.Fatalf("submit of a proof for another prover: %v", err)
	}
	// A tampered proof is rejected too.
	l3, good := claimAndProve("gpu-box-1")
	good[len(good)/2] ^= 1
	if _, err := prover.Submit(ctx, job2.JobID, l3.LeaseToken, good); !errors.Is(err, client.ErrProofRejected) {
		t.Fatalf("submit of a tampered proof: %v", err)
	}
	hist, _ := prover.History(ctx, job2.JobID)
	if len(hist) != 2 || hist[0].Outcome != pouw.OutcomeRejected || hist[1].Outcome != pouw.OutcomeRejected {
		t.Fatalf("history = %+v", hist)
	}
}

func TestAdminTokenIsGeneratedIntoDataDirWithMode0600(t *testing.T) {
	dir := t.TempDir()
	c, admin, _ := start(t, coordinator.Config{DataDir: dir})
	path := filepath.Join(dir, "admin.token")
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("admin.token mode %v, want 0600", st.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	if strings.TrimSpace(string(b)) != c.AdminToken() {
		t.Fatal("the file does not hold the token in force")
	}
	if _, err := admin.Pool(context.Background()); err != nil {
		t.Fatalf("the generated token does not work: %v", err)
	}
}

// TestReaperReturnsExpiredLeaseToPending runs the real background reaper
// with a short lease.
func TestReaperReturnsExpiredLeaseToPending(t *testing.T) {
	opts := store.DefaultOptions()
	opts.LeaseDuration[pouw.TierMacro] = 300 * time.Millisecond
	c, admin, _ := start(t, coordinator.Config{StoreOptions: opts, ReapInterval: 50 * time.Millisecond})
	ctx := context.Background()
	if _, err := admin.Deposit(ctx, 10, ""); err != nil {
		t.Fatal(err)
	}
	tr, err := workload.Macro("fib", 11, 64)
	if err != nil {
		t.Fatal(err)
	}
	info, err := admin.UploadBlob(ctx, encode(t, tr))
	if err != nil {
		t.Fatal(err)
	}
	res, err := admin.Ingest(ctx, pouw.IngestRequest{Tier: pouw.TierMacro, IntentID: tr.Header.IntentID, TraceHash: info.Hash,
		FeeBudget: 1, RewardBudget: 1, MaxRetries: 5})
	if err != nil {
		t.Fatal(err)
	}
	reg, _ := admin.RegisterProver(ctx, "sleepy")
	p, _ := client.New(c.URL(), client.Options{Token: reg.Token})
	if _, err := p.Claim(ctx, pouw.ClaimRequest{Tiers: []pouw.JobTier{pouw.TierMacro}, Backends: []string{"stark"}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		j, err := admin.Job(ctx, res.Job.JobID)
		if err != nil {
			t.Fatal(err)
		}
		if j.State == pouw.StatePending && j.Attempts == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("job still %s with %d attempts", j.State, j.Attempts)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestGracefulShutdownEndsStreams: an open event stream does not keep the
// coordinator from stopping.
func TestGracefulShutdownEndsStreams(t *testing.T) {
	c, _, stop := start(t, coordinator.Config{})
	req, _ := http.NewRequest("GET", c.URL()+"/v1/pouw/events", nil)
	req.Header.Set("Authorization", "Bearer "+c.AdminToken())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if !bufio.NewScanner(resp.Body).Scan() {
		t.Fatal("no stream")
	}
	if err := stop(); err != nil {
		t.Fatalf("stopping with a stream open: %v", err)
	}
}

// gate delays a real verifier until released, so a test can stop the
// coordinator while a submit is in flight.
type gate struct {
	next    api.Verifier
	entered chan struct{}
	release chan struct{}
}

func (g gate) Verify(ctx context.Context, job pouw.ProofJob, prover string, proof []byte) error {
	close(g.entered)
	<-g.release
	return g.next.Verify(ctx, job, prover, proof)
}

// TestGracefulShutdownFinishesRequestsInFlight: SIGTERM (ctx cancel) while a
// proof is being verified; the submit still completes and is answered.
func TestGracefulShutdownFinishesRequestsInFlight(t *testing.T) {
	sb, _ := stark.New(stark.Config{})
	reg, _ := backends.NewRegistry(sb)
	dir := t.TempDir()
	blobs, err := blob.NewFiles(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	g := gate{next: coordinator.BackendVerifier{Registry: reg, Blobs: blobs}, entered: make(chan struct{}), release: make(chan struct{})}
	c, admin, stop := start(t, coordinator.Config{DataDir: dir, Verifier: g})
	ctx := context.Background()
	if _, err := admin.Deposit(ctx, 10, ""); err != nil {
		t.Fatal(err)
	}
	tr, err := workload.Macro("fib", 3, 200)
	if err != nil {
		t.Fatal(err)
	}
	info, err := admin.UploadBlob(ctx, encode(t, tr))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Ingest(ctx, pouw.IngestRequest{Tier: pouw.TierMacro, IntentID: tr.Header.IntentID, TraceHash: info.Hash,
		FeeBudget: 5, RewardBudget: 5}); err != nil {
		t.Fatal(err)
	}
	r, _ := admin.RegisterProver(ctx, "p")
	p, _ := client.New(c.URL(), client.Options{Token: r.Token, MaxRetries: -1})
	l, err := p.Claim(ctx, pouw.ClaimRequest{Tiers: []pouw.JobTier{pouw.TierMacro}, Backends: []string{"stark"}})
	if err != nil {
		t.Fatal(err)
	}
	proof, err := sb.Prove(ctx, tr, backends.Statement{Header: &tr.Header, TraceHash: info.Hash, JobID: l.Job.JobID, ProverID: "p"})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		job pouw.ProofJob
		err error
	}
	submitted := make(chan result, 1)
	go func() {
		j, err := p.Submit(ctx, l.Job.JobID, l.LeaseToken, proof)
		submitted <- result{j, err}
	}()
	<-g.entered
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	time.Sleep(100 * time.Millisecond) // the shutdown has begun; the submit is still verifying
	close(g.release)
	res := <-submitted
	if res.err != nil || res.job.State != pouw.StateCompleted {
		t.Fatalf("submit in flight during shutdown: %+v, %v", res.job, res.err)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}
