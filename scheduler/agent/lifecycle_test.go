package agent_test

import (
	"context"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/pouwfarm/pouwfarm/clock"
	"github.com/pouwfarm/pouwfarm/coordinator/api"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/scheduler"
	"github.com/pouwfarm/pouwfarm/scheduler/agent"
	"github.com/pouwfarm/pouwfarm/trace/workload"
)

// longJob is a Macro job the STARK takes a good fraction of a second or
// more to prove on one core.
func longJob(t *testing.T, c *coord) pouw.ProofJob {
	t.Helper()
	steps := uint64(1 << 14)
	if raceEnabled {
		steps = 1 << 12
	}
	tr, err := workload.Macro("mimc", 3, steps)
	if err != nil {
		t.Fatal(err)
	}
	return c.ingest(t, tr, 3)
}

func TestDrainReleasesWhatCannotFinishWithinTheGrace(t *testing.T) {
	if testing.Short() {
		t.Skip("proves real jobs")
	}
	reg := realBackends(t)
	c := newCoord(t, coordOptions{registry: reg})
	job := longJob(t, c)
	f := startFarm(t, c.prover(t, "farm-1"), "farm-1", reg, scheduler.HostOptions{CPUCores: 1, HostMemoryBytes: 4 << 30},
		func(o *agent.Options) { o.DrainGrace = 20 * time.Millisecond })
	c.waitJob(t, job.JobID, time.Minute, func(j pouw.ProofJob) bool { return j.State == pouw.StateLeased })
	f.stop(t) // SIGTERM's path: ctx cancelled, grace runs out, lease released

	j, err := c.admin.Job(t.Context(), job.JobID)
	if err != nil {
		t.Fatal(err)
	}
	if j.State != pouw.StatePending || j.Attempts != 0 {
		t.Errorf("after drain: state %s attempts %d, want pending with no failure counted", j.State, j.Attempts)
	}
	hist, err := c.admin.History(t.Context(), job.JobID)
	if err != nil || len(hist) != 1 || hist[0].Outcome != pouw.OutcomeReleased || hist[0].Reason != "farm draining" {
		t.Errorf("history = %+v, %v; want one released attempt", hist, err)
	}
	if got := counterValue(t, f.reg, "pouw_farm_jobs_total", map[string]string{"outcome": agent.OutcomeReleased}); got != 1 {
		t.Errorf("released jobs counted: %v", got)
	}
}

func TestDrainLetsRunningProofsFinishWithinTheGrace(t *testing.T) {
	if testing.Short() {
		t.Skip("proves real jobs")
	}
	reg := realBackends(t)
	c := newCoord(t, coordOptions{registry: reg})
	tr, err := workload.Macro("fib", 5, 256)
	if err != nil {
		t.Fatal(err)
	}
	job := c.ingest(t, tr, 3)
	f := startFarm(t, c.prover(t, "farm-1"), "farm-1", reg, scheduler.HostOptions{CPUCores: 1, HostMemoryBytes: 4 << 30},
		func(o *agent.Options) { o.DrainGrace = time.Minute })
	c.waitJob(t, job.JobID, time.Minute, func(j pouw.ProofJob) bool { return j.State != pouw.StatePending })
	f.stop(t)
	if j, err := c.admin.Job(t.Context(), job.JobID); err != nil || j.State != pouw.StateCompleted {
		t.Errorf("job after a generous drain: %+v, %v; want completed", j, err)
	}
}

func TestLostLeaseCancelsTheProofAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("proves real jobs")
	}
	reg := realBackends(t)
	clk := clock.NewFake(time.Now())
	// A short lease, so renews (a third of it) tick while the proof runs;
	// it never expires on its own: the store's clock is fake.
	c := newCoord(t, coordOptions{registry: reg, clock: clk, verifier: api.NoBackends{}, lease: 600 * time.Millisecond})
	job := longJob(t, c)
	f := startFarm(t, c.prover(t, "farm-1"), "farm-1", reg, scheduler.HostOptions{CPUCores: 1, HostMemoryBytes: 4 << 30}, nil)
	c.waitJob(t, job.JobID, time.Minute, func(j pouw.ProofJob) bool { return j.State == pouw.StateLeased })

	// The store's clock jumps past the lease: the reaper takes the job and
	// the agent's next renew is answered lease_lost.
	clk.Advance(time.Hour)
	if _, err := c.st.ReapExpired(context.Background(), 10); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for counterValue(t, f.reg, "pouw_farm_jobs_total", map[string]string{"outcome": agent.OutcomeLeaseLost}) == 0 {
		if time.Since(start) > 30*time.Second {
			t.Fatal("the agent never noticed its lease was lost")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The proof was cancelled, not finished: no proof duration was recorded
	// and nothing was submitted.
	if n := histogramCount(t, f.reg, "pouw_farm_proof_duration_seconds"); n != 0 {
		t.Errorf("%d proofs finished after the lease was lost", n)
	}
	f.stop(t)
	hist, err := c.admin.History(t.Context(), job.JobID)
	if err != nil || len(hist) == 0 || hist[0].Outcome != pouw.OutcomeExpired {
		t.Errorf("history = %+v, %v; want the first attempt expired", hist, err)
	}
}

func histogramCount(t *testing.T, f interface {
	Gather() ([]*dto.MetricFamily, error)
}, name string) uint64 {
	t.Helper()
	mfs, err := f.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				n += m.GetHistogram().GetSampleCount()
			}
		}
	}
	return n
}
