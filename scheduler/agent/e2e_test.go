package agent_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/clock"
	"github.com/pouwfarm/pouwfarm/coordinator/api"
	"github.com/pouwfarm/pouwfarm/coordinator/blob"
	"github.com/pouwfarm/pouwfarm/coordinator/client"
	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/coordinator/store/boltstore"
	"github.com/pouwfarm/pouwfarm/coordinator/store/redisstore"
	"github.com/pouwfarm/pouwfarm/internal/redistest"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/scheduler"
	"github.com/pouwfarm/pouwfarm/scheduler/agent"
	"github.com/pouwfarm/pouwfarm/trace"
	"github.com/pouwfarm/pouwfarm/trace/workload"
)

const adminToken = "farm-test-admin-token-0123456789"

// coord is a real coordinator (API over the bolt store and file blobs) on
// a loopback listener, with a reaper, as pouw dev runs it.
type coord struct {
	url     string
	st      store.Store
	blobDir string
	admin   *client.Client
}

type coordOptions struct {
	verifier api.Verifier
	lease    time.Duration
	tiers    api.TierBackends
	registry *backends.Registry
	// store is "bolt" (default) or "redis".
	store string
	// clock is the bolt store's clock (default the wall clock).
	clock clock.Clock
}

// stores lists the stores every end-to-end test of the farm runs on.
var stores = []string{"bolt", "redis"}

func openStore(t *testing.T, kind string, opts store.Options, clk clock.Clock) store.Store {
	t.Helper()
	if kind == "redis" {
		srv := redistest.Start(t, redistest.Options{Dir: t.TempDir()})
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
		t.Cleanup(func() { _ = rdb.Close() })
		st, err := redisstore.New(t.Context(), rdb, redisstore.Options{Options: opts, Prefix: "farmtest", Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	if clk == nil {
		clk = clock.Real{}
	}
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "pouw.db"), opts, clk, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func newCoord(t *testing.T, co coordOptions) *coord {
	t.Helper()
	lease := co.lease
	if lease == 0 {
		lease = 30 * time.Second
	}
	opts := store.Options{LeaseDuration: [3]time.Duration{lease, lease, lease}}.WithDefaults()
	st := openStore(t, co.store, opts, co.clock)
	dir := t.TempDir()
	blobs, err := blob.NewFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	if co.verifier == nil {
		co.verifier = co.newVerifier(blobs)
	}
	srv, err := api.New(api.Options{Store: st, Blobs: blobs, Verifier: co.verifier, AdminToken: adminToken, Tiers: co.tiers,
		EventPoll: 20 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); srv.Run(ctx) }()
	go func() { // the reaper
		defer wg.Done()
		for ctx.Err() == nil {
			_, _ = st.ReapExpired(ctx, 100)
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		hs.Close()
		_ = st.Close()
	})
	admin, err := client.New(hs.URL, client.Options{Token: adminToken, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Deposit(t.Context(), 1_000_000, "test"); err != nil {
		t.Fatal(err)
	}
	return &coord{url: hs.URL, st: st, blobDir: dir, admin: admin}
}

// prover registers a prover and returns a client with its token.
func (c *coord) prover(t *testing.T, id string) *client.Client {
	t.Helper()
	reg, err := c.admin.RegisterProver(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(c.url, client.Options{Token: reg.Token, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// ingest uploads tr and creates its job.
func (c *coord) ingest(t *testing.T, tr *trace.Trace, maxRetries uint32) pouw.ProofJob {
	t.Helper()
	var buf bytes.Buffer
	if err := trace.Encode(&buf, tr); err != nil {
		t.Fatal(err)
	}
	info, err := c.admin.UploadBlob(t.Context(), buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.admin.Ingest(t.Context(), pouw.IngestRequest{
		Tier: tr.Header.Tier, IntentID: tr.Header.IntentID, TraceHash: info.Hash,
		FeeBudget: 100, RewardBudget: 100, MaxRetries: maxRetries,
	})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Job
}

// corrupt flips one byte of a stored blob in place (same size), as a disk
// or a tampering volume would.
func (c *coord) corrupt(t *testing.T, h pouw.Hash) {
	t.Helper()
	p := filepath.Join(c.blobDir, h.String()[:2], h.String())
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x01
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitJob polls the job until cond holds.
func (c *coord) waitJob(t *testing.T, id string, within time.Duration, cond func(pouw.ProofJob) bool) pouw.ProofJob {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		j, err := c.admin.Job(t.Context(), id)
		if err == nil && cond(j) {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: condition not met within %v (last %+v, %v)", id, within, j, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// farm is an agent over a pool, running until stopped.
type farm struct {
	once   sync.Once
	cancel context.CancelFunc
	done   chan error
	reg    *prometheus.Registry
}

func startFarm(t *testing.T, cl *client.Client, proverID string, reg *backends.Registry, host scheduler.HostOptions, mutate func(*agent.Options)) *farm {
	t.Helper()
	slots, _, err := scheduler.DeviceModel(host, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	alloc, err := scheduler.NewAllocator(slots, agent.SchedulerBackends(reg))
	if err != nil {
		t.Fatal(err)
	}
	pr := prometheus.NewPedanticRegistry()
	o := agent.Options{
		Coordinator: cl, ProverID: proverID, Pool: scheduler.NewPool(alloc), Backends: reg,
		Registerer: pr, IdleMin: 10 * time.Millisecond, IdleMax: 100 * time.Millisecond,
		MinRenew: 50 * time.Millisecond, Logger: slog.New(slog.DiscardHandler),
		FailBackoffMin: 5 * time.Millisecond, FailBackoffMax: 20 * time.Millisecond,
	}
	if mutate != nil {
		mutate(&o)
	}
	a, err := agent.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &farm{cancel: cancel, done: make(chan error, 1), reg: pr}
	go func() { f.done <- a.Run(ctx) }()
	t.Cleanup(func() { f.stop(t) })
	return f
}

func (f *farm) stop(t *testing.T) {
	t.Helper()
	f.once.Do(func() {
		f.cancel()
		select {
		case err := <-f.done:
			if err != nil {
				t.Errorf("agent: %v", err)
			}
		case <-time.After(time.Minute):
			t.Error("agent did not stop")
		}
	})
}

// mustNotProve is a backend the hash-mismatch test registers under the
// job's backend name so the farm claims the job; proving with it is the
// failure the test looks for.
type mustNotProve struct {
	t      *testing.T
	proved chan struct{}
}

func (m mustNotProve) Name() string          { return "stark" }
func (m mustNotProve) Tiers() []pouw.JobTier { return pouw.Tiers[:] }
func (m mustNotProve) Prove(context.Context, *trace.Trace, backends.Statement) ([]byte, error) {
	close(m.proved)
	return nil, errors.New("the farm tried to prove a trace that failed its hash check")
}
func (m mustNotProve) Verify(context.Context, backends.Statement, []byte) error {
	return errors.New("nothing verifies")
}
func (m mustNotProve) Estimate(*trace.Header) backends.Resources { return backends.Resources{Cores: 1} }

func TestCorruptedTraceFailsWithHashMismatchAndEndsInDeadLetter(t *testing.T) {
	for _, kind := range stores {
		t.Run(kind, func(t *testing.T) { testCorruptedTrace(t, kind) })
	}
}

func testCorruptedTrace(t *testing.T, kind string) {
	c := newCoord(t, coordOptions{verifier: api.NoBackends{}, store: kind})
	tr, err := workload.Macro("fib", 1, 64)
	if err != nil {
		t.Fatal(err)
	}
	job := c.ingest(t, tr, 2)
	c.corrupt(t, job.TraceHash)

	never := mustNotProve{t: t, proved: make(chan struct{})}
	reg, err := backends.NewRegistry(never)
	if err != nil {
		t.Fatal(err)
	}
	f := startFarm(t, c.prover(t, "farm-1"), "farm-1", reg, scheduler.HostOptions{CPUCores: 2, HostMemoryBytes: 1 << 30}, nil)

	dead := c.waitJob(t, job.JobID, 30*time.Second, func(j pouw.ProofJob) bool { return j.State == pouw.StateDead })
	select {
	case <-never.proved:
		t.Fatal("a corrupted trace was proved")
	default:
	}
	if dead.Attempts != 2 {
		t.Errorf("attempts = %d, want max_retries = 2", dead.Attempts)
	}
	hist, err := c.admin.History(t.Context(), job.JobID)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 {
		t.Fatalf("history = %+v, want two failed attempts", hist)
	}
	for _, a := range hist {
		if a.Outcome != pouw.OutcomeFailed || !strings.Contains(a.Reason, "hash") || a.ProverID != "farm-1" {
			t.Errorf("attempt %+v, want failed by farm-1 with a hash mismatch reason", a)
		}
	}
	dl, err := c.admin.DeadLetter(t.Context(), client.ListOptions{})
	if err != nil || len(dl.Jobs) != 1 || dl.Jobs[0].JobID != job.JobID {
		t.Errorf("dead letter = %+v, %v", dl, err)
	}
	f.stop(t)
	if got := counterValue(t, f.reg, "pouw_farm_jobs_total", map[string]string{"outcome": agent.OutcomeHashMismatch}); got != 2 {
		t.Errorf("pouw_farm_jobs_total{outcome=hash_mismatch} = %v, want 2", got)
	}
}

// counterValue sums the series of a counter whose labels include want.
func counterValue(t *testing.T, g prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue metric
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

func TestRefusedTokenStopsTheFarmWithAClearError(t *testing.T) {
	c := newCoord(t, coordOptions{verifier: api.NoBackends{}})
	cl, err := client.New(c.url, client.Options{Token: "pouwp_not-a-token", MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := backends.NewRegistry(mustNotProve{t: t, proved: make(chan struct{})})
	if err != nil {
		t.Fatal(err)
	}
	slots, _, err := scheduler.DeviceModel(scheduler.HostOptions{CPUCores: 1, HostMemoryBytes: 1 << 30}, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	alloc, err := scheduler.NewAllocator(slots, agent.SchedulerBackends(reg))
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(agent.Options{Coordinator: cl, ProverID: "ghost", Pool: scheduler.NewPool(alloc), Backends: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := a.Run(ctx); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("Run with a refused token = %v, want ErrUnauthorized", err)
	}
}
