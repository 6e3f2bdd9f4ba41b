package agent_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/backends/plonkish"
	"github.com/pouwfarm/pouwfarm/backends/stark"
	"github.com/pouwfarm/pouwfarm/coordinator"
	"github.com/pouwfarm/pouwfarm/coordinator/api"
	"github.com/pouwfarm/pouwfarm/coordinator/blob"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/scheduler"
	"github.com/pouwfarm/pouwfarm/trace"
	"github.com/pouwfarm/pouwfarm/trace/workload"
)

// realBackends is the registry both sides use: the coordinator verifies with
// the same proof systems the farm proves with.
func realBackends(t *testing.T) *backends.Registry {
	t.Helper()
	s, err := stark.New(stark.Config{})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := backends.NewRegistry(s, plonkish.New(plonkish.Options{MaxK: 12}))
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func (co coordOptions) newVerifier(blobs blob.Store) api.Verifier {
	return coordinator.BackendVerifier{Registry: co.registry, Blobs: blobs}
}

// tierTraces returns one small trace per tier: a 16-step window, an intent,
// a batch of two intents.
func tierTraces(t *testing.T, seed uint64) []*trace.Trace {
	t.Helper()
	macro, err := workload.Macro("fib", seed, 64)
	if err != nil {
		t.Fatal(err)
	}
	micro, err := trace.Window(macro, 16, 1)
	if err != nil {
		t.Fatal(err)
	}
	full, err := workload.Full("mimc", seed, 64, 2)
	if err != nil {
		t.Fatal(err)
	}
	return []*trace.Trace{micro, macro, full}
}

func TestJobsAcrossTiersCompleteWithRealProofsAndRewardsArePaid(t *testing.T) {
	if testing.Short() {
		t.Skip("proves real jobs")
	}
	for _, kind := range stores {
		t.Run(kind, func(t *testing.T) { testJobsAcrossTiers(t, kind) })
	}
}

func testJobsAcrossTiers(t *testing.T, kind string) {
	reg := realBackends(t)
	c := newCoord(t, coordOptions{registry: reg, tiers: api.TierBackends{"plonkish", "stark", "stark"}, store: kind})
	var jobs []pouw.ProofJob
	for seed := uint64(1); seed <= 1; seed++ {
		for _, tr := range tierTraces(t, seed) {
			jobs = append(jobs, c.ingest(t, tr, 3))
		}
	}
	f := startFarm(t, c.prover(t, "farm-1"), "farm-1", reg, scheduler.HostOptions{CPUCores: 2, HostMemoryBytes: 4 << 30}, nil)
	for _, j := range jobs {
		done := c.waitJob(t, j.JobID, 5*time.Minute, func(j pouw.ProofJob) bool { return j.State != pouw.StatePending && j.State != pouw.StateLeased })
		if done.State != pouw.StateCompleted || done.Attempts != 0 || done.ProverID != "farm-1" {
			t.Errorf("job %s (%s): %+v", j.JobID, j.Tier, done)
		}
	}
	pool, err := c.admin.Pool(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !pool.Balanced() || pool.Paid != uint64(100*len(jobs)) || pool.Reserved != 0 {
		t.Errorf("pool = %+v, want balanced with %d paid", pool, 100*len(jobs))
	}
	provers, err := c.admin.Provers(t.Context())
	if err != nil || len(provers) != 1 || provers[0].JobsCompleted != uint64(len(jobs)) || provers[0].TotalFeeEarned != uint64(100*len(jobs)) {
		t.Errorf("provers = %+v, %v", provers, err)
	}
	f.stop(t)
	problems, err := testutil.GatherAndLint(f.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("farm metric %s: %s", p.Metric, p.Text)
	}
	for _, tier := range pouw.Tiers {
		if got := counterValue(t, f.reg, "pouw_farm_jobs_total", map[string]string{"tier": tier.String(), "outcome": "completed", "device": "cpu"}); got != 1 {
			t.Errorf("pouw_farm_jobs_total{tier=%s,outcome=completed} = %v, want 1; every outcome: %s", tier, got, seriesOf(t, f.reg, "pouw_farm_jobs_total"))
		}
	}
}

// seriesOf renders every series of a metric, for failure messages.
func seriesOf(t *testing.T, g prometheus.Gatherer, name string) string {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				out = append(out, m.String())
			}
		}
	}
	return strings.Join(out, "; ")
}
