package devnet_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/backends/aggregate"
	"github.com/pouwfarm/pouwfarm/backends/aggregate/aggregatetest"
	"github.com/pouwfarm/pouwfarm/backends/plonkish"
	"github.com/pouwfarm/pouwfarm/backends/stark"
	"github.com/pouwfarm/pouwfarm/coordinator/client"
	"github.com/pouwfarm/pouwfarm/devnet"
	"github.com/pouwfarm/pouwfarm/gpu"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/scheduler"
	"github.com/pouwfarm/pouwfarm/scheduler/agent"
	"github.com/pouwfarm/pouwfarm/trace"
)

// The batch DAG end to end (issue 9's "Done when"): a batch ingested
// through the API ends as one verified aggregate proof. The keys are the
// smallest set (intents of ≤ 2^8 steps, k = 2), cached across runs by
// aggregatetest (minutes to set up the first time, then loaded).

// batchRegistry is what a farm and coordinator with --aggregate-keys run:
// the STARK, plonkish and the aggregate backend over keys.
func batchRegistry(t testing.TB, keys *aggregate.Keys) (*backends.Registry, *aggregate.Backend) {
	t.Helper()
	s, err := stark.New(stark.Config{})
	if err != nil {
		t.Fatal(err)
	}
	agg, err := aggregate.New(aggregate.Options{Keys: []*aggregate.Keys{keys}})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := backends.NewRegistry(s, plonkish.New(plonkish.Options{}), agg)
	if err != nil {
		t.Fatal(err)
	}
	return reg, agg
}

// serveTestWorker makes this test binary a `pouw worker` over the key
// directory dir (the worker processes of TestDevBatchesInWorkerProcesses).
func serveTestWorker(dir string) error {
	keys, err := aggregate.LoadKeys(dir)
	if err != nil {
		return err
	}
	s, err := stark.New(stark.Config{})
	if err != nil {
		return err
	}
	agg, err := aggregate.New(aggregate.Options{Keys: []*aggregate.Keys{keys}})
	if err != nil {
		return err
	}
	reg, err := backends.NewRegistry(s, plonkish.New(plonkish.Options{}), agg)
	if err != nil {
		return err
	}
	return agent.ServeWorker(context.Background(), os.Stdin, os.Stdout, reg, 1<<30)
}

func TestBatchThroughTheAPIEndsAsOneVerifiedAggregateProof(t *testing.T) {
	keys := aggregatetest.Keys(t, aggregatetest.Params)
	reg, agg := batchRegistry(t, keys)
	c, err := devnet.StartCoordinator(devnet.CoordinatorOptions{
		DataDir: t.TempDir(), Addr: "127.0.0.1:0", AdminToken: "devnet-test-admin-token-0123456789", Backends: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	admin := adminOf(t, c)
	ctx := t.Context()

	// Two Macro intents, uploaded, and the batch over them.
	const reward = 10
	trs, err := devnet.BatchTraces("fib", 1, 128, aggregatetest.Params.K)
	if err != nil {
		t.Fatal(err)
	}
	req := pouw.BatchRequest{FeeBudget: reward, RewardBudget: reward, MaxRetries: 3}
	for _, tr := range trs {
		var buf bytes.Buffer
		if err := trace.Encode(&buf, tr); err != nil {
			t.Fatal(err)
		}
		info, err := admin.UploadBlob(ctx, buf.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		req.Intents = append(req.Intents, pouw.BatchIntent{IntentID: tr.Header.IntentID, TraceHash: info.Hash, FeeBudget: reward, RewardBudget: reward})
	}
	if _, err := admin.Deposit(ctx, 3*reward, "batch test"); err != nil {
		t.Fatal(err)
	}
	resp, err := admin.CreateBatch(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	a := resp.Aggregation
	if !resp.Created || len(resp.Children) != 2 || a.Tier != pouw.TierFull || a.Backend != aggregate.Name ||
		a.State != pouw.StateWaiting || !slices.Equal(a.DependsOn, []string{resp.Children[0].JobID, resp.Children[1].JobID}) {
		t.Fatalf("batch = %+v", resp)
	}
	for i, ch := range resp.Children {
		if ch.Tier != pouw.TierMacro || ch.Backend != aggregate.Name || ch.State != pouw.StatePending || ch.TraceHash != req.Intents[i].TraceHash {
			t.Fatalf("child %d = %+v", i, ch)
		}
	}

	// A farm with the aggregate backend proves the children, then the
	// aggregation job over their proofs; the coordinator verifies each.
	prover, err := admin.RegisterProver(ctx, "batch-farm")
	if err != nil {
		t.Fatal(err)
	}
	farmCtx, stopFarm := context.WithCancel(context.Background())
	farmDone := make(chan error, 1)
	go func() {
		farmDone <- devnet.RunFarm(farmCtx, devnet.FarmOptions{
			Coordinator: c.URL, Token: prover.Token, ProverID: "batch-farm",
			Host: scheduler.HostOptions{CPUCores: 2, CoresPerSlot: 2, HostMemoryBytes: 8 << 30}, GPUs: gpu.Null{Reason: "test"},
			Backends: reg, IdleMin: 10 * time.Millisecond, IdleMax: 100 * time.Millisecond,
		})
	}()
	defer func() {
		stopFarm()
		if err := <-farmDone; err != nil {
			t.Errorf("farm: %v", err)
		}
	}()
	done := waitJob(t, admin, a.JobID, 3*time.Minute, func(j pouw.ProofJob) bool {
		return j.State == pouw.StateCompleted || j.State == pouw.StateDead
	})
	if done.State != pouw.StateCompleted || done.ProofRef == "" || done.ProverID != "batch-farm" {
		t.Fatalf("aggregation job = %+v", done)
	}

	// The stored proof is one aggregate proof over the children's
	// statements in batch order, each bound to its job and prover.
	var children []backends.Statement
	for i, tr := range trs {
		ch, err := admin.Job(ctx, resp.Children[i].JobID)
		if err != nil {
			t.Fatal(err)
		}
		if ch.State != pouw.StateCompleted || ch.ProofRef == "" {
			t.Fatalf("child %d = %+v", i, ch)
		}
		children = append(children, backends.Statement{Header: &tr.Header, TraceHash: ch.TraceHash, JobID: ch.JobID, ProverID: ch.ProverID})
	}
	proof := download(t, admin, done.ProofRef)
	batch := backends.Statement{TraceHash: done.TraceHash, JobID: done.JobID, ProverID: done.ProverID}
	if err := agg.VerifyAggregate(ctx, batch, children, proof); err != nil {
		t.Fatalf("the stored aggregate proof does not verify: %v", err)
	}
	thief := batch
	thief.ProverID = "another-farm"
	if err := agg.VerifyAggregate(ctx, thief, children, proof); err == nil {
		t.Fatal("the aggregate proof verifies for another prover")
	}
	slices.Reverse(children)
	if err := agg.VerifyAggregate(ctx, batch, children, proof); err == nil {
		t.Fatal("the aggregate proof verifies for the children in the other order")
	}

	pool, err := admin.Pool(ctx)
	if err != nil || !pool.Balanced() || pool.Paid != 3*reward || pool.Reserved != 0 {
		t.Fatalf("pool = %+v, %v; want balanced, %d paid, nothing reserved", pool, err, 3*reward)
	}
}

func download(t *testing.T, admin *client.Client, ref string) []byte {
	t.Helper()
	h, err := pouw.ParseHash(ref)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := admin.DownloadBlob(t.Context(), h, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestDevBatchesInWorkerProcesses is pouw dev --full-backend aggregate: the
// Full turns are batches through the batch route, the aggregate backend
// proves in worker processes (this test binary, as `pouw worker`), and the
// summary counts every batch as aggregated and verified.
func TestDevBatchesInWorkerProcesses(t *testing.T) {
	keys := aggregatetest.Keys(t, aggregatetest.Params)
	reg, _ := batchRegistry(t, keys)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	workers := &agent.WorkerPool{Command: func(scheduler.Slot) *exec.Cmd {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), "POUW_TEST_WORKER_KEYS="+aggregate.CacheDir(aggregatetest.Root(), aggregatetest.Params))
		return cmd
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	sum, err := devnet.Dev(ctx, devnet.DevOptions{
		Jobs: 2, ExitWhenDone: true, Tiers: []pouw.JobTier{pouw.TierMacro, pouw.TierFull}, Steps: 256, BatchSize: 2,
		Host: scheduler.HostOptions{CPUCores: 2, HostMemoryBytes: 8 << 30}, GPUs: gpu.Null{Reason: "test"},
		Progress: time.Second, Backends: reg, BatchBackend: aggregate.Name,
		Workers: workers, Isolate: []string{aggregate.Name},
	})
	if err != nil {
		t.Fatal(err)
	}
	// One Macro job (STARK) and one batch: two children and the
	// aggregation job.
	b := sum.Batches
	if !sum.OK() || sum.Jobs != 4 || sum.Completed != 4 || b == nil || b.Batches != 1 || b.Aggregated != 1 ||
		b.Children != 2 || b.ChildrenCompleted != 2 || b.K != 2 || b.Backend != aggregate.Name || sum.Pool.Paid != 4000 {
		t.Fatalf("summary = %+v, batches %+v", sum, b)
	}
}

func TestDevRefusesABatchBackendThatCannotProveBatches(t *testing.T) {
	reg, err := devnet.Backends()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		backend string
		k       int
		want    string
	}{
		{"aggregate", 2, `backend "aggregate", which this binary does not run`},
		{"stark", 2, `backend "stark" does not aggregate proofs`},
	} {
		_, err := devnet.Dev(t.Context(), devnet.DevOptions{Jobs: 1, ExitWhenDone: true, Backends: reg, BatchBackend: tc.backend, BatchSize: tc.k})
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
			t.Errorf("BatchBackend %s: err = %v, want %q", tc.backend, err, tc.want)
		}
	}
}
