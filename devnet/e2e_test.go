package devnet_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/pouwfarm/pouwfarm/coordinator/client"
	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/devnet"
	"github.com/pouwfarm/pouwfarm/gpu"
	"github.com/pouwfarm/pouwfarm/internal/redistest"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/scheduler"
	"github.com/pouwfarm/pouwfarm/trace"
	"github.com/pouwfarm/pouwfarm/trace/workload"
)

// A test binary started with POUW_TEST_FARM_URL set is a farm process (the
// subprocess of TestAgentKilledMidProofLosesItsLeaseAndAnotherAgentCompletes):
// it proves until it is killed.
//
// One started with POUW_TEST_WORKER_KEYS set is a `pouw worker` with the
// aggregate backend over that key directory (TestDevBatchesInWorkerProcesses).
func TestMain(m *testing.M) {
	if dir := os.Getenv("POUW_TEST_WORKER_KEYS"); dir != "" {
		if err := serveTestWorker(dir); err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if url := os.Getenv("POUW_TEST_FARM_URL"); url != "" {
		reg, err := devnet.Backends()
		if err == nil {
			err = devnet.RunFarm(context.Background(), devnet.FarmOptions{
				Coordinator: url, Token: os.Getenv("POUW_TEST_FARM_TOKEN"), ProverID: os.Getenv("POUW_TEST_FARM_PROVER"),
				Host: scheduler.HostOptions{CPUCores: 1, HostMemoryBytes: 4 << 30}, GPUs: gpu.Null{Reason: "test"},
				Backends: reg, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)),
				IdleMin: 10 * time.Millisecond, IdleMax: 50 * time.Millisecond,
			})
		}
		fmt.Fprintln(os.Stderr, "farm subprocess ended:", err)
		os.Exit(3)
	}
	os.Exit(m.Run())
}

// stores are the stores every end-to-end test runs on.
var stores = []string{"bolt", "redis"}

// deployment is where a coordinator keeps its state: a data dir, and for
// Redis a private server that outlives coordinator restarts.
type deployment struct {
	kind  string
	dir   string
	redis *redistest.Server
}

func newDeployment(t *testing.T, kind string) *deployment {
	d := &deployment{kind: kind, dir: t.TempDir()}
	if kind == "redis" {
		d.redis = redistest.Start(t, redistest.Options{Dir: t.TempDir()})
	}
	return d
}

func (d *deployment) start(t *testing.T, addr string, lease time.Duration) *devnet.Coordinator {
	t.Helper()
	reg, err := devnet.Backends()
	if err != nil {
		t.Fatal(err)
	}
	so := store.Options{LeaseDuration: [3]time.Duration{lease, lease, lease}}.WithDefaults()
	o := devnet.CoordinatorOptions{
		DataDir: d.dir, Addr: addr, AdminToken: "devnet-test-admin-token-0123456789", Backends: reg,
		Store: so, ReapEvery: 100 * time.Millisecond,
	}
	if d.kind == "redis" {
		o.StoreURL, o.RedisPrefix = d.redis.URL(), "devnet"
	}
	c, err := devnet.StartCoordinator(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func adminOf(t *testing.T, c *devnet.Coordinator) *client.Client { return adminOfB(t, c) }

func adminOfB(t testing.TB, c *devnet.Coordinator) *client.Client {
	t.Helper()
	cl, err := client.New(c.URL, client.Options{Token: c.AdminToken})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func ingest(t *testing.T, admin *client.Client, tr *trace.Trace) pouw.ProofJob {
	t.Helper()
	var buf bytes.Buffer
	if err := trace.Encode(&buf, tr); err != nil {
		t.Fatal(err)
	}
	info, err := admin.UploadBlob(t.Context(), buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Deposit(t.Context(), 10, "test"); err != nil {
		t.Fatal(err)
	}
	resp, err := admin.Ingest(t.Context(), pouw.IngestRequest{Tier: tr.Header.Tier, IntentID: tr.Header.IntentID,
		TraceHash: info.Hash, FeeBudget: 10, RewardBudget: 10, MaxRetries: 3})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Job
}

func waitJob(t *testing.T, admin *client.Client, id string, within time.Duration, cond func(pouw.ProofJob) bool) pouw.ProofJob {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		j, err := admin.Job(context.Background(), id)
		if err == nil && cond(j) {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: condition not met within %v (last %+v, %v)", id, within, j, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runFarm runs an in-process farm until the test ends.
func runFarm(t *testing.T, url, token, prover string) {
	t.Helper()
	reg, err := devnet.Backends()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- devnet.RunFarm(ctx, devnet.FarmOptions{
			Coordinator: url, Token: token, ProverID: prover,
			Host: scheduler.HostOptions{CPUCores: 2, HostMemoryBytes: 4 << 30}, GPUs: gpu.Null{Reason: "test"},
			Backends: reg, IdleMin: 10 * time.Millisecond, IdleMax: 100 * time.Millisecond,
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("farm: %v", err)
		}
	})
}

func TestAgentKilledMidProofLosesItsLeaseAndAnotherAgentCompletes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a farm subprocess and real proofs")
	}
	for _, kind := range stores {
		t.Run(kind, func(t *testing.T) { testAgentKilled(t, kind) })
	}
}

func testAgentKilled(t *testing.T, kind string) {
	c := newDeployment(t, kind).start(t, "127.0.0.1:0", 2*time.Second)
	defer c.Close()
	admin := adminOf(t, c)
	// A Macro job large enough that the first farm is still proving it
	// when it is killed.
	tr, err := workload.Macro("mimc", 7, 1<<14)
	if err != nil {
		t.Fatal(err)
	}
	job := ingest(t, admin, tr)

	doomed, err := admin.RegisterProver(t.Context(), "farm-doomed")
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "POUW_TEST_FARM_URL="+c.URL, "POUW_TEST_FARM_TOKEN="+doomed.Token, "POUW_TEST_FARM_PROVER=farm-doomed")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	waitJob(t, admin, job.JobID, time.Minute, func(j pouw.ProofJob) bool {
		return j.State == pouw.StateLeased && j.ProverID == "farm-doomed"
	})
	time.Sleep(300 * time.Millisecond) // into the proof
	if j, _ := admin.Job(t.Context(), job.JobID); j.State != pouw.StateLeased {
		t.Fatalf("the doomed farm finished before it could be killed (%s); make the job larger", j.State)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	killed = true

	// Nobody renews: the lease expires, the reaper returns the job, and a
	// second farm proves it.
	back := waitJob(t, admin, job.JobID, 30*time.Second, func(j pouw.ProofJob) bool { return j.State == pouw.StatePending })
	if back.Attempts != 1 {
		t.Errorf("after expiry attempts = %d, want 1", back.Attempts)
	}
	rescuer, err := admin.RegisterProver(t.Context(), "farm-rescuer")
	if err != nil {
		t.Fatal(err)
	}
	runFarm(t, c.URL, rescuer.Token, "farm-rescuer")
	done := waitJob(t, admin, job.JobID, 2*time.Minute, func(j pouw.ProofJob) bool { return j.State == pouw.StateCompleted || j.State == pouw.StateDead })
	if done.State != pouw.StateCompleted || done.Attempts != 1 || done.ProverID != "farm-rescuer" {
		t.Fatalf("job = %+v, want completed by farm-rescuer with attempts 1\nsubprocess log:\n%s", done, stderr.String())
	}
	hist, err := admin.History(t.Context(), job.JobID)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 || hist[0].Outcome != pouw.OutcomeExpired || hist[0].ProverID != "farm-doomed" ||
		hist[1].Outcome != pouw.OutcomeCompleted || hist[1].ProverID != "farm-rescuer" {
		t.Errorf("history = %+v, want one expired attempt (farm-doomed) then one completed (farm-rescuer)", hist)
	}
}

func TestFarmReconnectsToARestartedCoordinator(t *testing.T) {
	if testing.Short() {
		t.Skip("proves real jobs")
	}
	for _, kind := range stores {
		t.Run(kind, func(t *testing.T) { testRestart(t, kind) })
	}
}

// testRestart restarts the coordinator on the same store (the same bolt
// file, or the same Redis) and address while a farm runs.
func testRestart(t *testing.T, kind string) {
	d := newDeployment(t, kind)
	c := d.start(t, "127.0.0.1:0", 30*time.Second)
	admin := adminOf(t, c)
	var ids []string
	for i := uint64(1); i <= 6; i++ {
		tr, err := workload.Macro("fib", i, 512)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ingest(t, admin, tr).JobID)
	}
	prover, err := admin.RegisterProver(t.Context(), "farm-1")
	if err != nil {
		t.Fatal(err)
	}
	url := c.URL
	runFarm(t, url, prover.Token, "farm-1")
	waitJob(t, admin, ids[0], time.Minute, func(j pouw.ProofJob) bool { return j.State == pouw.StateCompleted })

	// Restart on the same store and the same address while the farm runs.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c2 := d.start(t, url[len("http://"):], 30*time.Second)
	defer c2.Close()
	for _, id := range ids {
		j := waitJob(t, admin, id, 2*time.Minute, func(j pouw.ProofJob) bool { return j.State == pouw.StateCompleted || j.State == pouw.StateDead })
		if j.State != pouw.StateCompleted {
			t.Errorf("job %s: %+v", id, j)
		}
	}
	pool, err := admin.Pool(t.Context())
	if err != nil || !pool.Balanced() || pool.Paid != 60 {
		t.Errorf("pool = %+v, %v", pool, err)
	}
}

func TestDevGeneratesJobsOfEveryTierAndAllComplete(t *testing.T) {
	if testing.Short() {
		t.Skip("proves real jobs")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sum, err := devnet.Dev(ctx, devnet.DevOptions{
		Jobs: 6, ExitWhenDone: true, Steps: 64, Host: scheduler.HostOptions{CPUCores: 2, HostMemoryBytes: 4 << 30},
		GPUs: gpu.Null{Reason: "test"}, Progress: 500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !sum.OK() || sum.Completed != 6 || len(sum.Tiers) != 3 || sum.Pool.Paid != 6000 {
		t.Fatalf("summary = %+v", sum)
	}
	for _, ts := range sum.Tiers {
		if ts.Jobs != 2 || ts.Completed != 2 || ts.P50 <= 0 || ts.P95 < ts.P50 {
			t.Errorf("tier %s: %+v", ts.Tier, ts)
		}
	}
}
