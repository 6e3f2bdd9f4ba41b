package scheduler_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/pouwfarm/pouwfarm/gpu"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/scheduler"
)

const (
	MiB = int64(1) << 20
	GiB = int64(1) << 30
)

var (
	micro = pouw.TierMicro
	macro = pouw.TierMacro
	full  = pouw.TierFull
)

// The backends of these tests: a STARK with CPU and GPU paths whose memory
// grows with the trace, a CPU-only PLONKish prover of Micro windows, and an
// aggregator that needs two cores.
var (
	stark = scheduler.Backend{
		Name: "stark", Tiers: []pouw.JobTier{micro, macro, full}, Kinds: []scheduler.Kind{scheduler.CPU, scheduler.GPU},
		Estimate: func(_ pouw.JobTier, n int64, k scheduler.Kind) scheduler.Resources {
			return scheduler.Resources{Cores: 1, MemoryBytes: 16*MiB + 64*n}
		},
	}
	plonkish = scheduler.Backend{
		Name: "plonkish", Tiers: []pouw.JobTier{micro}, Kinds: []scheduler.Kind{scheduler.CPU},
		Estimate: func(_ pouw.JobTier, n int64, _ scheduler.Kind) scheduler.Resources {
			return scheduler.Resources{Cores: 1, MemoryBytes: 8*MiB + 16*n}
		},
	}
	aggregate = scheduler.Backend{
		Name: "aggregate", Tiers: []pouw.JobTier{full}, Kinds: []scheduler.Kind{scheduler.CPU},
		Estimate: func(_ pouw.JobTier, n int64, _ scheduler.Kind) scheduler.Resources {
			return scheduler.Resources{Cores: 2, MemoryBytes: 512 * MiB}
		},
	}
)

func h100(i int) gpu.Device {
	return gpu.Device{Index: i, UUID: fmt.Sprintf("GPU-h100-%d", i), Name: "NVIDIA H100 80GB HBM3", MemoryTotalBytes: uint64(80 * GiB), ComputeCapability: "9.0", Healthy: true}
}

func a100(i int) gpu.Device {
	return gpu.Device{Index: i, UUID: fmt.Sprintf("GPU-a100-%d", i), Name: "NVIDIA A100-SXM4-40GB", MemoryTotalBytes: uint64(40 * GiB), ComputeCapability: "8.0", Healthy: true}
}

func mustModel(t testing.TB, h scheduler.HostOptions, gpus ...gpu.Device) []scheduler.Slot {
	t.Helper()
	slots, _, err := scheduler.DeviceModel(h, gpus, "")
	if err != nil {
		t.Fatal(err)
	}
	return slots
}

func mustAlloc(t testing.TB, slots []scheduler.Slot, backends ...scheduler.Backend) scheduler.Allocator {
	t.Helper()
	a, err := scheduler.NewAllocator(slots, backends)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func job(id string, tier pouw.JobTier, backend string, bytes int64) scheduler.Job {
	return scheduler.Job{ID: id, Tier: tier, Backend: backend, TraceBytes: bytes}
}

// placed is the expected outcome of one placement: a slot, or the check
// that rejected the job on each slot (slot=check:reason-substring).
type placed struct {
	slot    string
	rejects []string
}

func TestPlacementOfJobMixesOnDeviceSets(t *testing.T) {
	all := scheduler.GPUSelection{All: true}
	twoCPU := scheduler.HostOptions{CPUCores: 2, HostMemoryBytes: 2 * GiB}
	for _, tc := range []struct {
		name     string
		slots    []scheduler.Slot
		backends []scheduler.Backend
		jobs     []scheduler.Job
		want     []placed
	}{
		{
			name:  "two CPU slots take micro jobs until busy",
			slots: mustModel(t, twoCPU), backends: []scheduler.Backend{stark},
			jobs: []scheduler.Job{job("a", micro, "stark", 1000), job("b", micro, "stark", 1000), job("c", micro, "stark", 1000)},
			want: []placed{{slot: "cpu0"}, {slot: "cpu1"}, {rejects: []string{"cpu0=capacity:busy", "cpu1=capacity:busy"}}},
		},
		{
			name:  "macro and full go to the GPU, micro to a CPU",
			slots: mustModel(t, scheduler.HostOptions{CPUCores: 2, HostMemoryBytes: 2 * GiB, GPUs: all}, h100(0)), backends: []scheduler.Backend{stark},
			jobs: []scheduler.Job{job("m", micro, "stark", 1000), job("M", macro, "stark", 1<<20), job("F", full, "stark", 1<<24)},
			want: []placed{{slot: "cpu0"}, {slot: "gpu0"}, {slot: "gpu0"}},
		},
		{
			name:  "a full GPU spills macro to a CPU slot",
			slots: mustModel(t, scheduler.HostOptions{CPUCores: 1, HostMemoryBytes: 2 * GiB, GPUs: all, JobsPerGPU: 1}, h100(0)), backends: []scheduler.Backend{stark},
			jobs: []scheduler.Job{job("M1", macro, "stark", 1<<20), job("M2", macro, "stark", 1<<20)},
			want: []placed{{slot: "gpu0"}, {slot: "cpu0"}},
		},
		{
			name:  "a backend without a GPU path stays on CPU",
			slots: mustModel(t, scheduler.HostOptions{CPUCores: 1, HostMemoryBytes: 2 * GiB, GPUs: all}, h100(0)), backends: []scheduler.Backend{plonkish},
			jobs: []scheduler.Job{job("p1", micro, "plonkish", 1000), job("p2", micro, "plonkish", 1000)},
			want: []placed{{slot: "cpu0"}, {rejects: []string{"cpu0=capacity:busy", "gpu0=backend:no gpu path"}}},
		},
		{
			name:  "unknown backend and unproved tier are rejected with reasons",
			slots: mustModel(t, twoCPU), backends: []scheduler.Backend{plonkish},
			jobs: []scheduler.Job{job("x", macro, "winterfell", 10), job("y", macro, "plonkish", 10)},
			want: []placed{
				{rejects: []string{`cpu0=backend:"winterfell" is not run`, `cpu1=backend:"winterfell" is not run`}},
				{rejects: []string{"cpu0=backend:does not prove the macro tier", "cpu1=backend:does not prove the macro tier"}},
			},
		},
		{
			name:  "best fit puts a job on the smaller GPU that holds it",
			slots: mustModel(t, scheduler.HostOptions{GPUs: all}, h100(0), a100(1)), backends: []scheduler.Backend{stark},
			// 16 MiB + 64 * 256 MiB = 16 GiB + 16 MiB: fits both; best fit picks the A100.
			jobs: []scheduler.Job{job("F1", full, "stark", 256*MiB), job("F2", full, "stark", 400*MiB), job("F3", full, "stark", 400*MiB)},
			// F2 needs 25 GiB: the A100 has 24 GiB left, so the H100. F3 then
			// fits the H100's 55 GiB but no longer the A100.
			want: []placed{{slot: "gpu1"}, {slot: "gpu0"}, {slot: "gpu0"}},
		},
		{
			name:  "GPU memory runs out before its job slots",
			slots: mustModel(t, scheduler.HostOptions{GPUs: all, JobsPerGPU: 4}, a100(0)), backends: []scheduler.Backend{stark},
			jobs: []scheduler.Job{job("F1", full, "stark", 320*MiB), job("F2", full, "stark", 320*MiB)},
			want: []placed{{slot: "gpu0"}, {rejects: []string{"gpu0=capacity:of gpu memory"}}},
		},
		{
			name:  "a trace too large for the host's memory is rejected on every CPU slot",
			slots: mustModel(t, twoCPU), backends: []scheduler.Backend{stark},
			jobs: []scheduler.Job{job("big", full, "stark", 64*MiB)},
			want: []placed{{rejects: []string{"cpu0=capacity:the slot has 1.0 GiB", "cpu1=capacity:the slot has 1.0 GiB"}}},
		},
		{
			name:  "trace size bound",
			slots: mustModel(t, scheduler.HostOptions{CPUCores: 1, HostMemoryBytes: 8 * GiB, MaxTraceBytes: 1 << 20}), backends: []scheduler.Backend{stark},
			jobs: []scheduler.Job{job("ok", macro, "stark", 1<<20)},
			want: []placed{{slot: "cpu0"}},
		},
		{
			name:  "trace size bound rejects",
			slots: mustModel(t, scheduler.HostOptions{CPUCores: 1, HostMemoryBytes: 8 * GiB, MaxTraceBytes: 1 << 20}), backends: []scheduler.Backend{stark},
			jobs: []scheduler.Job{job("no", macro, "stark", 1<<20+1)},
			want: []placed{{rejects: []string{"cpu0=trace_size:exceeds the slot's 1048576"}}},
		},
		{
			name:  "aggregation needs two cores: only a two-core slot takes it",
			slots: mustModel(t, scheduler.HostOptions{CPUCores: 4, CoresPerSlot: 2, HostMemoryBytes: 4 * GiB}), backends: []scheduler.Backend{aggregate, stark},
			jobs: []scheduler.Job{job("agg", full, "aggregate", 100), job("s", micro, "stark", 100), job("agg2", full, "aggregate", 100)},
			want: []placed{{slot: "cpu0"}, {slot: "cpu1"}, {rejects: []string{"cpu0=capacity:busy", "cpu1=capacity:busy"}}},
		},
		{
			name:  "aggregation on one-core slots",
			slots: mustModel(t, twoCPU), backends: []scheduler.Backend{aggregate},
			jobs: []scheduler.Job{job("agg", full, "aggregate", 100)},
			want: []placed{{rejects: []string{"cpu0=capacity:needs 2 cores, the slot has 1", "cpu1=capacity:needs 2 cores, the slot has 1"}}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := mustAlloc(t, tc.slots, tc.backends...)
			for i, j := range tc.jobs {
				got, err := a.PlaceAndReserve(j)
				want := tc.want[i]
				if want.slot != "" {
					if err != nil || got.Slot != want.slot {
						t.Fatalf("job %s: placed on %q (%v), want %s", j.ID, got.Slot, err, want.slot)
					}
					continue
				}
				var nf *scheduler.NoFitError
				if !errors.As(err, &nf) || !errors.Is(err, scheduler.ErrNoFit) {
					t.Fatalf("job %s: placed on %q (%v), want rejection", j.ID, got.Slot, err)
				}
				if len(nf.Rejections) != len(want.rejects) {
					t.Fatalf("job %s: rejections %v, want %v", j.ID, nf.Rejections, want.rejects)
				}
				for k, r := range nf.Rejections {
					slotCheck, reason, _ := strings.Cut(want.rejects[k], ":")
					if r.Slot+"="+r.Check != slotCheck || !strings.Contains(r.Reason, reason) {
						t.Errorf("job %s: rejection %d = %s=%s %q, want %s containing %q", j.ID, k, r.Slot, r.Check, r.Reason, slotCheck, reason)
					}
				}
			}
		})
	}
}

func TestUnhealthyGPUIsTakenOutOfScheduling(t *testing.T) {
	slots := mustModel(t, scheduler.HostOptions{CPUCores: 1, HostMemoryBytes: 2 * GiB, GPUs: scheduler.GPUSelection{All: true}}, h100(0), h100(1))
	pool := scheduler.NewPool(mustAlloc(t, slots, stark))
	if c := pool.Claims(); len(c) != 2 || c[0].Slot != "gpu0" || c[1].Slot != "cpu0" {
		// gpu0 and gpu1 make the same claim, so only one is listed.
		t.Fatalf("claims before: %+v", c)
	}
	bad := h100(0)
	bad.Healthy, bad.UnhealthyReason = false, "XID 79 critical error"
	pool.SyncGPUHealth([]gpu.Device{bad, h100(1)})

	for i := 0; i < 2; i++ {
		r, err := pool.Acquire(job(fmt.Sprint(i), full, "stark", 1<<20))
		if err != nil {
			t.Fatal(err)
		}
		if s := r.Placement().Slot; s == "gpu0" {
			t.Fatalf("job placed on the unhealthy gpu0")
		}
		rej := r.Placement().Rejections
		if len(rej) == 0 || rej[0].Slot != "gpu0" || rej[0].Check != "health" || !strings.Contains(rej[0].Reason, "XID 79") {
			t.Errorf("rejections = %v, want gpu0 unhealthy with XID 79", rej)
		}
	}
	for _, c := range pool.Claims() {
		if c.Slot == "gpu0" {
			t.Errorf("claims still advertise the unhealthy gpu0: %+v", c)
		}
	}
}

func TestDeviceModelExcludesWithReasons(t *testing.T) {
	mig := h100(2)
	mig.MIGEnabled = true
	sick := h100(3)
	sick.Healthy, sick.UnhealthyReason = false, "double-bit ECC error"
	sel, err := scheduler.ParseGPUSelection("0,2,3")
	if err != nil {
		t.Fatal(err)
	}
	slots, excl, err := scheduler.DeviceModel(scheduler.HostOptions{CPUCores: 5, CoresPerSlot: 2, HostMemoryBytes: 4 * GiB, GPUs: sel}, []gpu.Device{h100(0), h100(1), mig, sick}, "")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range slots {
		ids = append(ids, s.ID)
	}
	if !slices.Equal(ids, []string{"cpu0", "cpu1", "gpu0"}) {
		t.Errorf("slots = %v", ids)
	}
	if slots[0].Capacity != (scheduler.Resources{Cores: 2, MemoryBytes: 2 * GiB}) || slots[2].Capacity.MemoryBytes != 80*GiB {
		t.Errorf("capacities: %+v %+v", slots[0].Capacity, slots[2].Capacity)
	}
	want := []string{"fewer than a slot's 2 cores", "not selected by --gpus 0,2,3", "MIG mode is enabled", "unhealthy: double-bit ECC error"}
	if len(excl) != len(want) {
		t.Fatalf("exclusions = %+v", excl)
	}
	for i, w := range want {
		if !strings.Contains(excl[i].Reason, w) {
			t.Errorf("exclusion %d = %+v, want %q", i, excl[i], w)
		}
	}

	if _, _, err := scheduler.DeviceModel(scheduler.HostOptions{GPUs: scheduler.GPUSelection{Indices: []int{4}}}, []gpu.Device{h100(0)}, ""); !errors.Is(err, scheduler.ErrInvalid) {
		t.Errorf("selecting a missing GPU: %v", err)
	}
	_, excl, err = scheduler.DeviceModel(scheduler.HostOptions{CPUCores: 1, GPUs: scheduler.GPUSelection{All: true}}, nil, "NVML init: ERROR_LIBRARY_NOT_FOUND")
	if err != nil || len(excl) != 1 || !strings.Contains(excl[0].Reason, "ERROR_LIBRARY_NOT_FOUND") {
		t.Errorf("no driver: %+v %v", excl, err)
	}
}

func TestParseGPUSelection(t *testing.T) {
	for in, want := range map[string]string{"all": "all", "none": "none", "": "none", "0,1": "0,1", " 3 , 1,3": "3,1"} {
		got, err := scheduler.ParseGPUSelection(in)
		if err != nil || got.String() != want {
			t.Errorf("ParseGPUSelection(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"some", "1,-2", "0,,1", "gpu0"} {
		if _, err := scheduler.ParseGPUSelection(in); !errors.Is(err, scheduler.ErrInvalid) {
			t.Errorf("ParseGPUSelection(%q) err = %v", in, err)
		}
	}
}

func TestClaimsAdvertiseOnlyWhatFreeSlotsCanPlace(t *testing.T) {
	slots := mustModel(t, scheduler.HostOptions{CPUCores: 2, HostMemoryBytes: 2 * GiB, GPUs: scheduler.GPUSelection{All: true}, JobsPerGPU: 1}, a100(0))
	a := mustAlloc(t, slots, stark, plonkish)
	claims := a.Claims()
	if len(claims) != 3 {
		t.Fatalf("claims = %+v, want the GPU's and the (identical) CPU slots' two", claims)
	}
	gpuC, plonkC, cpuC := claims[0], claims[1], claims[2]
	if gpuC.Slot != "gpu0" || !slices.Equal(gpuC.Tiers, []pouw.JobTier{full, macro, micro}) || !slices.Equal(gpuC.Backends, []string{"stark"}) {
		t.Errorf("GPU claim = %+v, want full,macro,micro on stark", gpuC)
	}
	if plonkC.Slot != "cpu0" || !slices.Equal(plonkC.Tiers, []pouw.JobTier{micro}) || !slices.Equal(plonkC.Backends, []string{"plonkish"}) {
		t.Errorf("CPU claim = %+v, want micro on plonkish", plonkC)
	}
	// Macro and Full belong on the GPU (stark has a GPU path), so on a CPU
	// they come after Micro.
	if cpuC.Slot != "cpu0" || !slices.Equal(cpuC.Tiers, []pouw.JobTier{micro, macro, full}) || !slices.Equal(cpuC.Backends, []string{"stark"}) {
		t.Errorf("CPU claim = %+v, want micro,macro,full on stark", cpuC)
	}
	// The estimate bounds the claims: (slot memory - 16 MiB) / 64 bytes of trace.
	if want := (GiB - 16*MiB) / 64; cpuC.MaxTraceBytes != want {
		t.Errorf("CPU claim max trace = %d, want %d", cpuC.MaxTraceBytes, want)
	}
	if want := (40*GiB - 16*MiB) / 64; gpuC.MaxTraceBytes != want {
		t.Errorf("GPU claim max trace = %d, want %d", gpuC.MaxTraceBytes, want)
	}
	if want := (GiB - 8*MiB) / 16; plonkC.MaxTraceBytes != want {
		t.Errorf("plonkish claim max trace = %d, want %d", plonkC.MaxTraceBytes, want)
	}

	// Every job a claim admits is placeable now, on the claim's slot at
	// worst; one byte more does not fit that slot.
	for _, c := range claims {
		for _, tier := range c.Tiers {
			for _, b := range c.Backends {
				trial := a.Copy()
				for _, other := range trial.Slots() {
					if other.ID != c.Slot {
						trial.SetHealth(other.ID, "isolate the claim's slot")
					}
				}
				if _, err := trial.Place(job("j", tier, b, c.MaxTraceBytes)); err != nil {
					t.Errorf("claim on %s admits %s/%s of %d bytes, but: %v", c.Slot, tier, b, c.MaxTraceBytes, err)
				}
				if _, err := trial.Place(job("j", tier, b, c.MaxTraceBytes+1)); err == nil {
					t.Errorf("claim on %s is not tight: %s/%s of %d bytes fits too", c.Slot, tier, b, c.MaxTraceBytes+1)
				}
			}
		}
	}

	// Busy slots claim nothing; when everything is busy there is no claim.
	for i := 0; i < 3; i++ {
		if _, err := a.PlaceAndReserve(job(fmt.Sprint(i), micro, "stark", 10)); err != nil {
			t.Fatal(err)
		}
	}
	if c := a.Claims(); len(c) != 0 {
		t.Errorf("claims while every slot is busy: %+v", c)
	}
}

func TestCopyIsIndependent(t *testing.T) {
	a := mustAlloc(t, mustModel(t, scheduler.HostOptions{CPUCores: 1, HostMemoryBytes: GiB}), stark)
	trial := a.Copy()
	if _, err := trial.PlaceAndReserve(job("x", micro, "stark", 10)); err != nil {
		t.Fatal(err)
	}
	if a.Reserved() != 0 || len(a.Claims()) != 1 {
		t.Errorf("trying a placement on a copy changed the original: %d reserved", a.Reserved())
	}
	if trial.Reserved() != 1 || len(trial.Claims()) != 0 {
		t.Errorf("copy: %d reserved, claims %v", trial.Reserved(), trial.Claims())
	}
}

func TestReleaseTwiceIsRefused(t *testing.T) {
	a := mustAlloc(t, mustModel(t, scheduler.HostOptions{CPUCores: 1, HostMemoryBytes: GiB}), stark)
	p, err := a.PlaceAndReserve(job("x", micro, "stark", 10))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Release(p); err != nil {
		t.Fatal(err)
	}
	if err := a.Release(p); !errors.Is(err, scheduler.ErrNotReserved) {
		t.Errorf("second release: %v", err)
	}
	if used, jobs, _ := a.Usage("cpu0"); used != (scheduler.Resources{}) || jobs != 0 {
		t.Errorf("after release: %+v %d jobs", used, jobs)
	}
}
