package agent_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/coordinator/api"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/scheduler"
	"github.com/pouwfarm/pouwfarm/scheduler/agent"
	"github.com/pouwfarm/pouwfarm/trace"
	"github.com/pouwfarm/pouwfarm/trace/workload"
)

// failingBackend fails every proof and records when, and for whom.
type failingBackend struct {
	mu     sync.Mutex
	at     []time.Time
	prover []string
}

func (b *failingBackend) Name() string          { return "stark" }
func (b *failingBackend) Tiers() []pouw.JobTier { return pouw.Tiers[:] }
func (b *failingBackend) Prove(_ context.Context, _ *trace.Trace, st backends.Statement) ([]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.at = append(b.at, time.Now())
	b.prover = append(b.prover, st.ProverID)
	return nil, errors.New("injected backend fault")
}
func (b *failingBackend) Verify(context.Context, backends.Statement, []byte) error {
	return errors.New("nothing verifies")
}
func (b *failingBackend) Estimate(*trace.Header) backends.Resources {
	return backends.Resources{Cores: 1}
}

func (b *failingBackend) calls() ([]time.Time, []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]time.Time(nil), b.at...), append([]string(nil), b.prover...)
}

func TestTokenOfAnotherProverStopsTheFarmWithoutSpendingAnAttempt(t *testing.T) {
	c := newCoord(t, coordOptions{verifier: api.NoBackends{}})
	tr, err := workload.Macro("fib", 1, 64)
	if err != nil {
		t.Fatal(err)
	}
	job := c.ingest(t, tr, 2)
	fb := &failingBackend{}
	reg, err := backends.NewRegistry(fb)
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
	a, err := agent.New(agent.Options{Coordinator: c.prover(t, "farm-a"), ProverID: "farm-b", Pool: scheduler.NewPool(alloc), Backends: reg,
		IdleMin: 10 * time.Millisecond, IdleMax: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	err = a.Run(ctx)
	if !errors.Is(err, agent.ErrProverMismatch) || err.Error() != `token belongs to prover "farm-a", not --prover-id "farm-b"` {
		t.Fatalf("Run = %v, want the prover mismatch error", err)
	}
	if at, _ := fb.calls(); len(at) != 0 {
		t.Errorf("the farm proved %d times under the wrong prover id", len(at))
	}
	got := c.waitJob(t, job.JobID, 10*time.Second, func(j pouw.ProofJob) bool { return j.State == pouw.StatePending })
	if got.Attempts != 0 {
		t.Errorf("attempts = %d after a released lease, want 0", got.Attempts)
	}
}

func TestFarmWithoutProverIDBindsProofsToTheTokensProver(t *testing.T) {
	c := newCoord(t, coordOptions{verifier: api.NoBackends{}})
	tr, err := workload.Macro("fib", 1, 64)
	if err != nil {
		t.Fatal(err)
	}
	job := c.ingest(t, tr, 1)
	fb := &failingBackend{}
	reg, err := backends.NewRegistry(fb)
	if err != nil {
		t.Fatal(err)
	}
	startFarm(t, c.prover(t, "farm-a"), "", reg, scheduler.HostOptions{CPUCores: 1, HostMemoryBytes: 1 << 30}, nil)
	c.waitJob(t, job.JobID, 30*time.Second, func(j pouw.ProofJob) bool { return j.State == pouw.StateDead })
	if _, who := fb.calls(); len(who) != 1 || who[0] != "farm-a" {
		t.Errorf("proofs bound to %q, want [farm-a]", who)
	}
}

func TestFailedJobRestsTheSlotBeforeTheNextAttempt(t *testing.T) {
	c := newCoord(t, coordOptions{verifier: api.NoBackends{}})
	tr, err := workload.Macro("fib", 1, 64)
	if err != nil {
		t.Fatal(err)
	}
	job := c.ingest(t, tr, 3)
	fb := &failingBackend{}
	reg, err := backends.NewRegistry(fb)
	if err != nil {
		t.Fatal(err)
	}
	const lo = 40 * time.Millisecond
	startFarm(t, c.prover(t, "farm-a"), "farm-a", reg, scheduler.HostOptions{CPUCores: 1, HostMemoryBytes: 1 << 30},
		func(o *agent.Options) { o.FailBackoffMin, o.FailBackoffMax = lo, 10*lo })
	c.waitJob(t, job.JobID, 30*time.Second, func(j pouw.ProofJob) bool { return j.State == pouw.StateDead })
	at, _ := fb.calls()
	if len(at) != 3 {
		t.Fatalf("%d attempts, want 3", len(at))
	}
	// The n-th failure in a row rests at least lo·2^(n-1).
	for i, want := range []time.Duration{lo, 2 * lo} {
		if gap := at[i+1].Sub(at[i]); gap < want {
			t.Errorf("attempt %d came %v after the failure before it, want ≥ %v", i+2, gap, want)
		}
	}
}
