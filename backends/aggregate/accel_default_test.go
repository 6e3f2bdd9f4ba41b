//go:build !icicle

package aggregate_test

import (
	"strings"
	"testing"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/backends/aggregate"
	"github.com/pouwfarm/pouwfarm/gpu"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/scheduler"
	"github.com/pouwfarm/pouwfarm/scheduler/agent"
	"github.com/pouwfarm/pouwfarm/trace"
	"github.com/pouwfarm/pouwfarm/trace/tracetest"
)

// Keys with the constraint counts of the smallest size class; Estimate
// needs no proving key.
func estimateOnlyBackend(t *testing.T) *aggregate.Backend {
	t.Helper()
	p := aggregate.Params{LogSteps: aggregate.MinLogSteps, ProgLen: aggregate.DefaultProgLen, K: 2}
	b, err := aggregate.New(aggregate.Options{Keys: []*aggregate.Keys{{Params: p, IntentConstraints: 14_000, AggConstraints: 75_000}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The default build is pure Go: no GPU path, no GPU memory asked for, and
// the farm gives the aggregate backend CPU slots only.
func TestDefaultBuildProvesOnTheCPUAndAsksNoGPUMemory(t *testing.T) {
	if aggregate.GPUAccelerated() {
		t.Fatal("a build without the icicle tag reports GPU acceleration")
	}
	b := estimateOnlyBackend(t)
	if b.HasGPUPath() {
		t.Error("HasGPUPath in the default build")
	}
	if n, why := b.GPU(); n != 0 || !strings.Contains(why, "icicle") {
		t.Errorf("GPU() = %d, %q; want 0 and the missing build tag", n, why)
	}

	prog := trace.MustAssemble(tracetest.FibSource)
	macro, err := trace.Execute(prog, []uint64{10}, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	full, err := trace.Batch([]trace.Intent{{Program: prog, Inputs: []uint64{3}}, {Program: prog, Inputs: []uint64{4}}}, 1<<20, pouw.TierFull)
	if err != nil {
		t.Fatal(err)
	}
	for name, h := range map[string]*trace.Header{
		"macro trace": &macro.Header,
		"full trace":  &full.Header,
		// What the scheduler asks before it downloads a trace.
		"macro, rows only": {Tier: pouw.TierMacro, Width: trace.Width, Rows: 256},
		"full, rows only":  {Tier: pouw.TierFull, Width: trace.Width, Rows: 512},
	} {
		r := b.Estimate(h)
		if r.MemoryBytes <= 0 || r.Duration <= 0 {
			t.Errorf("%s: estimate %+v, want host memory and a duration", name, r)
		}
		if r.GPUMemoryBytes != 0 {
			t.Errorf("%s: estimate asks for %d bytes of GPU memory in the default build", name, r.GPUMemoryBytes)
		}
	}

	reg, err := backends.NewRegistry(b)
	if err != nil {
		t.Fatal(err)
	}
	sbs := agent.SchedulerBackends(reg)
	if len(sbs) != 1 || len(sbs[0].Kinds) != 1 || sbs[0].Kinds[0] != scheduler.CPU {
		t.Fatalf("scheduler backends %+v: want aggregate on CPU slots only", sbs)
	}
	h100 := func(i int) gpu.Device {
		return gpu.Device{Index: i, Name: "NVIDIA H100 80GB HBM3", MemoryTotalBytes: 80 << 30, Healthy: true}
	}
	slots, _, err := scheduler.DeviceModel(scheduler.HostOptions{CPUCores: 2, HostMemoryBytes: 16 << 30, GPUs: scheduler.GPUSelection{All: true}},
		[]gpu.Device{h100(0), h100(1)}, "")
	if err != nil {
		t.Fatal(err)
	}
	a, err := scheduler.NewAllocator(slots, sbs)
	if err != nil {
		t.Fatal(err)
	}
	for _, tier := range []pouw.JobTier{pouw.TierMacro, pouw.TierFull} {
		pl, err := a.Place(scheduler.Job{ID: "j", Tier: tier, Backend: aggregate.Name, TraceBytes: 1 << 16})
		if err != nil {
			t.Fatalf("%s: %v", tier, err)
		}
		if pl.Kind != scheduler.CPU {
			t.Errorf("%s: placed on %s (%s), want a CPU slot", tier, pl.Slot, pl.Kind)
		}
		for _, r := range pl.Rejections {
			if strings.HasPrefix(r.Slot, "gpu") && !strings.Contains(r.Reason, "no gpu path") {
				t.Errorf("%s: %s rejected for %q, want no gpu path", tier, r.Slot, r.Reason)
			}
		}
	}
}
