package agent_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/backends/aggregate"
	"github.com/pouwfarm/pouwfarm/backends/plonkish"
	"github.com/pouwfarm/pouwfarm/backends/stark"
	"github.com/pouwfarm/pouwfarm/clock"
	"github.com/pouwfarm/pouwfarm/coordinator/api"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/scheduler"
	"github.com/pouwfarm/pouwfarm/scheduler/agent"
	"github.com/pouwfarm/pouwfarm/trace/workload"
)

// A test binary started with POUW_TEST_WORKER=1 is a worker process.
func TestMain(m *testing.M) {
	if os.Getenv("POUW_TEST_WORKER") == "1" {
		reg, err := registry()
		if err == nil {
			err = agent.ServeWorker(context.Background(), os.Stdin, os.Stdout, reg, 1<<30)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// workerAggregateKeys names, in a worker's environment, the key directory
// of an aggregate backend the worker adds to its registry.
const workerAggregateKeys = "POUW_TEST_WORKER_AGGREGATE_KEYS"

func registry() (*backends.Registry, error) {
	s, err := stark.New(stark.Config{})
	if err != nil {
		return nil, err
	}
	bs := []backends.Backend{s, plonkish.New(plonkish.Options{MaxK: 12})}
	if dir := os.Getenv(workerAggregateKeys); dir != "" {
		k, err := aggregate.LoadKeys(dir)
		if err != nil {
			return nil, err
		}
		a, err := aggregate.New(aggregate.Options{Keys: []*aggregate.Keys{k}})
		if err != nil {
			return nil, err
		}
		bs = append(bs, a)
	}
	return backends.NewRegistry(bs...)
}

// workerSpawner starts this test binary as a worker and remembers every
// process started.
type workerSpawner struct {
	mu    sync.Mutex
	procs []*os.Process
	env   []string // added to each worker's environment
}

func (w *workerSpawner) pool() *agent.WorkerPool {
	return &agent.WorkerPool{
		Command: func(slot scheduler.Slot) *exec.Cmd {
			exe, _ := os.Executable()
			cmd := exec.Command(exe, "-test.run=^$")
			cmd.Env = append(os.Environ(), "POUW_TEST_WORKER=1", fmt.Sprintf("GOMAXPROCS=%d", max(slot.Capacity.Cores, 1)))
			cmd.Env = append(cmd.Env, w.env...)
			return cmd
		},
		OnStart: func(_ scheduler.Slot, p *os.Process) {
			w.mu.Lock()
			w.procs = append(w.procs, p)
			w.mu.Unlock()
		},
	}
}

func (w *workerSpawner) started() []*os.Process {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]*os.Process(nil), w.procs...)
}

// alive reports whether a process has not been reaped yet.
func alive(p *os.Process) bool { return p.Signal(syscall.Signal(0)) == nil }

func withWorkers(pool *agent.WorkerPool) func(*agent.Options) {
	return func(o *agent.Options) { o.Workers = pool }
}

func TestWorkerProcessProvesJobsAndIsKeptBetweenThem(t *testing.T) {
	if testing.Short() {
		t.Skip("proves real jobs in worker processes")
	}
	reg := realBackends(t)
	c := newCoord(t, coordOptions{registry: reg})
	var ids []string
	for seed := uint64(1); seed <= 3; seed++ {
		tr, err := workload.Macro("poly", seed, 256)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.ingest(t, tr, 3).JobID)
	}
	sp := &workerSpawner{}
	pool := sp.pool()
	defer pool.Close()
	f := startFarm(t, c.prover(t, "farm-1"), "farm-1", reg, scheduler.HostOptions{CPUCores: 1, HostMemoryBytes: 4 << 30}, withWorkers(pool))
	for _, id := range ids {
		if j := c.waitJob(t, id, 2*time.Minute, func(j pouw.ProofJob) bool { return j.State == pouw.StateCompleted || j.State == pouw.StateDead }); j.State != pouw.StateCompleted {
			t.Fatalf("job %s: %+v", id, j)
		}
	}
	f.stop(t)
	if n := len(sp.started()); n != 1 {
		t.Errorf("%d worker processes started for 3 jobs on one slot, want 1 kept between jobs", n)
	}
}

func TestLostLeaseKillsTheWorkerProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("proves real jobs in worker processes")
	}
	reg := realBackends(t)
	clk := clock.NewFake(time.Now())
	c := newCoord(t, coordOptions{registry: reg, clock: clk, verifier: api.NoBackends{}, lease: 600 * time.Millisecond})
	job := longJob(t, c)
	sp := &workerSpawner{}
	pool := sp.pool()
	defer pool.Close()
	f := startFarm(t, c.prover(t, "farm-1"), "farm-1", reg, scheduler.HostOptions{CPUCores: 1, HostMemoryBytes: 4 << 30}, withWorkers(pool))
	c.waitJob(t, job.JobID, time.Minute, func(j pouw.ProofJob) bool { return j.State == pouw.StateLeased })
	for len(sp.started()) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	first := sp.started()[0]
	clk.Advance(time.Hour)
	if _, err := c.st.ReapExpired(context.Background(), 10); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for counterValue(t, f.reg, "pouw_farm_jobs_total", map[string]string{"outcome": agent.OutcomeLeaseLost}) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("lease loss not noticed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if alive(first) {
		t.Error("the worker proving the lost job is still running")
	}
	if n := histogramCount(t, f.reg, "pouw_farm_proof_duration_seconds"); n != 0 {
		t.Errorf("%d proofs finished after the lease was lost", n)
	}
	f.stop(t)
}

func TestWorkerCrashFailsTheJobWithAReasonAndTheNextAttemptCompletes(t *testing.T) {
	if testing.Short() {
		t.Skip("proves real jobs in worker processes")
	}
	reg := realBackends(t)
	c := newCoord(t, coordOptions{registry: reg})
	job := longJob(t, c)
	sp := &workerSpawner{}
	pool := sp.pool()
	defer pool.Close()
	startFarm(t, c.prover(t, "farm-1"), "farm-1", reg, scheduler.HostOptions{CPUCores: 1, HostMemoryBytes: 4 << 30}, withWorkers(pool))
	c.waitJob(t, job.JobID, time.Minute, func(j pouw.ProofJob) bool { return j.State == pouw.StateLeased })
	for len(sp.started()) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // into the proof
	// What an out-of-memory kill looks like from the farm.
	if err := sp.started()[0].Kill(); err != nil {
		t.Fatal(err)
	}
	done := c.waitJob(t, job.JobID, 3*time.Minute, func(j pouw.ProofJob) bool { return j.State == pouw.StateCompleted || j.State == pouw.StateDead })
	if done.State != pouw.StateCompleted || done.Attempts != 1 {
		t.Fatalf("job = %+v, want completed after one failed attempt", done)
	}
	hist, err := c.admin.History(t.Context(), job.JobID)
	if err != nil || len(hist) != 2 || hist[0].Outcome != pouw.OutcomeFailed || !strings.Contains(hist[0].Reason, "worker process died") {
		t.Errorf("history = %+v, %v; want a failed attempt naming the dead worker, then a completed one", hist, err)
	}
	if n := len(sp.started()); n != 2 {
		t.Errorf("%d workers started, want a fresh one after the crash", n)
	}
}

// FuzzWorkerFrame feeds arbitrary bytes to the worker side as its stdin: it
// must answer or stop with an error, never panic or allocate what a length
// merely claims.
func FuzzWorkerFrame(f *testing.F) {
	frame := func(head string, body []byte) []byte {
		var b bytes.Buffer
		_ = binary.Write(&b, binary.BigEndian, uint32(len(head)))
		b.WriteString(head)
		_ = binary.Write(&b, binary.BigEndian, uint64(len(body)))
		b.Write(body)
		return b.Bytes()
	}
	f.Add(frame(`{"backend":"stark","job_id":"x"}`, []byte("not a trace")))
	f.Add(frame(`{"backend":"nope"}`, nil))
	f.Add(frame(`{`, nil))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add(append(frame(`{}`, nil)[:6], 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff))
	reg, err := registry()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		_ = agent.ServeWorker(context.Background(), bytes.NewReader(in), &out, reg, 1<<20)
	})
}
