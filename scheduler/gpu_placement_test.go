//go:build cgo

package scheduler_test

import (
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"

	"github.com/pouwfarm/pouwfarm/gpu"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/scheduler"
)

// gpuAggregate is the aggregate backend as an icicle build describes it: a
// GPU path whose estimate asks for GPU memory (50 GiB: one proof per 80 GiB
// H100 at a time), and a CPU path. kinds drops the GPU path for the default
// build.
func gpuAggregate(kinds ...scheduler.Kind) scheduler.Backend {
	return scheduler.Backend{
		Name: "aggregate", Tiers: []pouw.JobTier{macro, full}, Kinds: kinds,
		Estimate: func(_ pouw.JobTier, n int64, k scheduler.Kind) scheduler.Resources {
			if k == scheduler.GPU {
				return scheduler.Resources{MemoryBytes: 50*GiB + n}
			}
			return scheduler.Resources{Cores: 1, MemoryBytes: 4 * GiB}
		},
	}
}

// On go-nvml's DGX H100 mock plus two CPU slots: Macro and Full jobs of a
// backend with a GPU path go to the GPUs while their memory lasts, then to
// the CPU slots; a job larger than any GPU goes to a CPU slot; without the
// GPU path every job goes to the CPU slots.
func TestBackendAskingForGPUMemoryIsPlacedOnDGXH100GPUs(t *testing.T) {
	m := gpu.New(dgxh100.New(), nil)
	if len(m.Devices()) != 8 {
		t.Fatalf("dgxh100 mock: %d devices, %q", len(m.Devices()), m.Unavailable())
	}
	slots, _, err := scheduler.DeviceModel(scheduler.HostOptions{
		CPUCores: 2, HostMemoryBytes: 16 * GiB, GPUs: scheduler.GPUSelection{All: true},
	}, m.Devices(), m.Unavailable())
	if err != nil {
		t.Fatal(err)
	}
	pool := scheduler.NewPool(mustAlloc(t, slots, gpuAggregate(scheduler.CPU, scheduler.GPU)))
	gpus := map[string]bool{}
	for i := range 10 {
		tier := []pouw.JobTier{macro, full}[i%2]
		r, err := pool.Acquire(job("j", tier, "aggregate", 1<<20))
		if err != nil {
			t.Fatalf("job %d (%s): %v", i, tier, err)
		}
		pl := r.Placement()
		switch {
		case i < 8 && (pl.Kind != scheduler.GPU || pl.Need.MemoryBytes != 50*GiB+1<<20 || gpus[pl.Slot]):
			t.Errorf("job %d (%s) placed on %s needing %v: want a GPU of its own, with its GPU memory reserved", i, tier, pl.Slot, pl.Need)
		case i >= 8 && pl.Kind != scheduler.CPU:
			t.Errorf("job %d (%s) placed on %s: every GPU holds one 50 GiB proof, want a CPU slot", i, tier, pl.Slot)
		case i >= 8 && !rejectedFor(pl.Rejections, "gpu", "30.0 GiB free"):
			t.Errorf("job %d: GPU rejections %v do not say the memory is taken", i, pl.Rejections)
		}
		gpus[pl.Slot] = true
	}

	a := mustAlloc(t, slots, gpuAggregate(scheduler.CPU, scheduler.GPU))
	pl, err := a.Place(job("huge", full, "aggregate", 40*GiB))
	if err != nil {
		t.Fatal(err)
	}
	if pl.Kind != scheduler.CPU || !rejectedFor(pl.Rejections, "gpu", "the slot has 80.0 GiB") {
		t.Errorf("a 90 GiB GPU proof placed on %s, rejections %v: want a CPU slot, every GPU too small", pl.Slot, pl.Rejections)
	}

	a = mustAlloc(t, slots, gpuAggregate(scheduler.CPU))
	pl, err = a.Place(job("j", macro, "aggregate", 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	if pl.Kind != scheduler.CPU || !rejectedFor(pl.Rejections, "gpu", "has no gpu path") {
		t.Errorf("CPU-only backend placed on %s, rejections %v", pl.Slot, pl.Rejections)
	}
}

// rejectedFor reports whether every slot whose id starts with prefix was
// rejected with a reason containing reason.
func rejectedFor(rs []scheduler.Rejection, prefix, reason string) bool {
	n := 0
	for _, r := range rs {
		if strings.HasPrefix(r.Slot, prefix) {
			if !strings.Contains(r.Reason, reason) {
				return false
			}
			n++
		}
	}
	return n > 0
}
