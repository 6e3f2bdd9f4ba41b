// Package scheduler is the farm side of pouwfarm: the device model of a host
// (CPU slots made of cores, GPU slots made of one GPU and its memory), the
// placement of a claimed job onto a slot — a chain of feasibility checks
// followed by rankers, in the style of Nomad's feasible/rank — the
// reservations that placement makes, and the claim capabilities a farm
// advertises so it only ever leases what it can place now.
//
// The Allocator is a plain value: copy it, try a placement, throw the copy
// away. Pool wraps one in a mutex for the agent's goroutines and hands out
// Reservations that release exactly once on every exit path.
//
// It imports pouw and gpu. It must not import coordinator (the farm talks to
// the coordinator over HTTP, through coordinator/client, in the agent) nor any
// backend implementation: backends are described to it by Backend values.
package scheduler

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/pouwfarm/pouwfarm/gpu"
	"github.com/pouwfarm/pouwfarm/pouw"
)

// ErrInvalid is wrapped by every error about a malformed option or model.
var ErrInvalid = errors.New("scheduler: invalid")

// Kind is the kind of device a slot is.
type Kind string

// Device kinds.
const (
	CPU Kind = "cpu"
	GPU Kind = "gpu"
)

// Resources is what one proof needs from a slot, or what a slot has.
type Resources struct {
	// Cores is the fewest CPU cores the proof can run on (CPU slots). A
	// proof on a CPU slot uses every core of the slot.
	Cores int `json:"cores"`
	// MemoryBytes is host memory on a CPU slot, device memory on a GPU slot.
	MemoryBytes int64 `json:"memory_bytes"`
}

// Slot is one place a proof can run.
type Slot struct {
	ID   string `json:"id"` // "cpu0", "gpu3"
	Kind Kind   `json:"kind"`
	// Capacity: on a CPU slot, its group of cores (the worker's GOMAXPROCS)
	// and its share of host memory; on a GPU slot, the GPU's memory.
	Capacity Resources `json:"capacity"`
	// MaxJobs is how many proofs the slot runs at once.
	MaxJobs int `json:"max_jobs"`
	// MaxTraceBytes bounds the traces the slot accepts; 0 means no bound.
	MaxTraceBytes int64 `json:"max_trace_bytes,omitempty"`
	// GPUIndex is the NVML index of a GPU slot, -1 on a CPU slot.
	GPUIndex int `json:"gpu_index"`
	// Device describes the hardware for people ("2 cores", "NVIDIA H100 ...").
	Device string `json:"device"`
}

// Exclusion is a device this host has but will not schedule on, and why.
type Exclusion struct {
	Device string `json:"device"`
	Reason string `json:"reason"`
}

// GPUSelection is the --gpus flag: all, none, or a list of NVML indices.
type GPUSelection struct {
	All     bool
	Indices []int
}

// ParseGPUSelection parses "all", "none" (or "") and "0,1,3".
func ParseGPUSelection(s string) (GPUSelection, error) {
	switch strings.TrimSpace(s) {
	case "all":
		return GPUSelection{All: true}, nil
	case "none", "":
		return GPUSelection{}, nil
	}
	var sel GPUSelection
	for _, f := range strings.Split(s, ",") {
		i, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || i < 0 {
			return GPUSelection{}, fmt.Errorf("%w: --gpus %q: want all, none or a comma-separated list of GPU indices", ErrInvalid, s)
		}
		if !slices.Contains(sel.Indices, i) {
			sel.Indices = append(sel.Indices, i)
		}
	}
	return sel, nil
}

// String renders the selection as the flag would take it.
func (g GPUSelection) String() string {
	if g.All {
		return "all"
	}
	if len(g.Indices) == 0 {
		return "none"
	}
	parts := make([]string, len(g.Indices))
	for i, x := range g.Indices {
		parts[i] = strconv.Itoa(x)
	}
	return strings.Join(parts, ",")
}

func (g GPUSelection) selects(i int) bool { return g.All || slices.Contains(g.Indices, i) }

// HostOptions describe what of this host the farm may use.
type HostOptions struct {
	// CPUCores is how many cores go to proving (0: no CPU slots).
	CPUCores int
	// CoresPerSlot groups cores into slots; CPUCores/CoresPerSlot slots are
	// made (default 1).
	CoresPerSlot int
	// HostMemoryBytes is shared evenly by the CPU slots.
	HostMemoryBytes int64
	// GPUs selects the GPUs to use.
	GPUs GPUSelection
	// JobsPerGPU is how many proofs one GPU runs at once while its memory
	// lasts (default 2).
	JobsPerGPU int
	// MaxTraceBytes bounds every slot's traces (0: no bound).
	MaxTraceBytes int64
}

// DeviceModel builds the slots of a host from its options and its GPUs
// (gpus as the gpu package discovered them, gpuUnavailable its reason for
// having none). Every device left out is listed with its reason. Selecting a
// GPU index the host does not have is an error.
func DeviceModel(h HostOptions, gpus []gpu.Device, gpuUnavailable string) ([]Slot, []Exclusion, error) {
	if h.CPUCores < 0 || h.CoresPerSlot < 0 || h.HostMemoryBytes < 0 || h.JobsPerGPU < 0 || h.MaxTraceBytes < 0 {
		return nil, nil, fmt.Errorf("%w: negative host option %+v", ErrInvalid, h)
	}
	per := h.CoresPerSlot
	if per == 0 {
		per = 1
	}
	var slots []Slot
	var excl []Exclusion
	n := h.CPUCores / per
	for i := 0; i < n; i++ {
		mem := int64(0)
		if n > 0 {
			mem = h.HostMemoryBytes / int64(n)
		}
		slots = append(slots, Slot{
			ID: fmt.Sprintf("cpu%d", i), Kind: CPU,
			Capacity: Resources{Cores: per, MemoryBytes: mem},
			MaxJobs:  1, MaxTraceBytes: h.MaxTraceBytes, GPUIndex: -1,
			Device: fmt.Sprintf("%d core%s", per, plural(per)),
		})
	}
	if rest := h.CPUCores - n*per; rest > 0 {
		excl = append(excl, Exclusion{
			Device: fmt.Sprintf("%d core%s", rest, plural(rest)),
			Reason: fmt.Sprintf("fewer than a slot's %d cores (--cores-per-slot)", per),
		})
	}

	jobs := h.JobsPerGPU
	if jobs == 0 {
		jobs = 2
	}
	found := map[int]bool{}
	for _, d := range gpus {
		found[d.Index] = true
		name := fmt.Sprintf("gpu%d %s (%s)", d.Index, d.Name, d.UUID)
		switch {
		case !h.GPUs.selects(d.Index):
			excl = append(excl, Exclusion{Device: name, Reason: "not selected by --gpus " + h.GPUs.String()})
		case !d.Healthy:
			excl = append(excl, Exclusion{Device: name, Reason: "unhealthy: " + d.UnhealthyReason})
		case d.MIGEnabled:
			excl = append(excl, Exclusion{Device: name, Reason: "MIG mode is enabled; MIG instances are not scheduled"})
		case d.MemoryTotalBytes == 0:
			excl = append(excl, Exclusion{Device: name, Reason: "reports no memory"})
		default:
			slots = append(slots, Slot{
				ID: fmt.Sprintf("gpu%d", d.Index), Kind: GPU,
				Capacity: Resources{MemoryBytes: int64(d.MemoryTotalBytes)},
				MaxJobs:  jobs, MaxTraceBytes: h.MaxTraceBytes, GPUIndex: d.Index,
				Device: fmt.Sprintf("%s, %s, compute %s", d.Name, formatBytes(int64(d.MemoryTotalBytes)), d.ComputeCapability),
			})
		}
	}
	for _, i := range h.GPUs.Indices {
		if !found[i] {
			return nil, nil, fmt.Errorf("%w: --gpus selects GPU %d, but this host has %d GPU%s%s", ErrInvalid, i, len(gpus), plural(len(gpus)), unavailableSuffix(gpuUnavailable))
		}
	}
	if len(gpus) == 0 && gpuUnavailable != "" && h.GPUs.All {
		excl = append(excl, Exclusion{Device: "NVIDIA GPUs", Reason: gpuUnavailable})
	}
	return slots, excl, nil
}

func unavailableSuffix(r string) string {
	if r == "" {
		return ""
	}
	return " (" + r + ")"
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// formatBytes renders a size in binary units for people.
func formatBytes(b int64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%d B", b)
	}
	div, exp := int64(unit), 0
	for n := b / unit; n >= unit; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(b)/float64(div), "KMGTPE"[exp])
}

// Backend describes a proof system to the scheduler: which tiers it proves,
// on which kinds of device, and what one proof needs.
type Backend struct {
	Name  string
	Tiers []pouw.JobTier
	Kinds []Kind
	// Estimate returns what one proof of a trace of traceBytes bytes at tier
	// needs on a device of kind. It must not decrease as traceBytes grows
	// (claim capabilities search on it). Nil means one core and no memory
	// to speak of.
	Estimate func(tier pouw.JobTier, traceBytes int64, kind Kind) Resources
}

func (b Backend) proves(t pouw.JobTier) bool { return slices.Contains(b.Tiers, t) }
func (b Backend) runsOn(k Kind) bool         { return slices.Contains(b.Kinds, k) }

func (b Backend) estimate(t pouw.JobTier, traceBytes int64, k Kind) Resources {
	if b.Estimate == nil {
		if k == CPU {
			return Resources{Cores: 1}
		}
		return Resources{}
	}
	r := b.Estimate(t, traceBytes, k)
	if k == GPU {
		// A GPU slot's resource is its memory; host cores feeding it are
		// not scheduled.
		r.Cores = 0
	}
	return r
}
