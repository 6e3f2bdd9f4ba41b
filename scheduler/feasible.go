package scheduler

import (
	"fmt"

	"github.com/pouwfarm/pouwfarm/pouw"
)

// Job is what placement knows of a claimed job before its trace is read.
type Job struct {
	ID         string
	Tier       pouw.JobTier
	Backend    string
	TraceBytes int64
}

// Rejection is why one slot cannot take one job.
type Rejection struct {
	Slot   string `json:"slot"`
	Check  string `json:"check"` // the checker that said no
	Reason string `json:"reason"`
}

func (r Rejection) String() string { return r.Slot + ": " + r.Reason }

// slotState is a slot with its health and what is reserved on it.
type slotState struct {
	Slot
	unhealthy string // non-empty: out of service, and why
	used      Resources
	jobs      int
}

func (s *slotState) free() Resources {
	return Resources{Cores: s.Capacity.Cores - s.used.Cores, MemoryBytes: s.Capacity.MemoryBytes - s.used.MemoryBytes}
}

// Checker is one feasibility check: can this slot run this job at all, now.
// It returns "" to accept, or the reason it rejects.
type Checker interface {
	Name() string
	Check(s *slotState, j Job, b *Backend, need Resources) string
}

// DefaultCheckers is the feasibility chain, cheapest and most telling first:
// health, then what the backend can do, then size, then free capacity.
func DefaultCheckers() []Checker {
	return []Checker{healthCheck{}, backendCheck{}, traceSizeCheck{}, capacityCheck{}}
}

type healthCheck struct{}

func (healthCheck) Name() string { return "health" }
func (healthCheck) Check(s *slotState, _ Job, _ *Backend, _ Resources) string {
	if s.unhealthy != "" {
		return "unhealthy: " + s.unhealthy
	}
	return ""
}

type backendCheck struct{}

func (backendCheck) Name() string { return "backend" }
func (backendCheck) Check(s *slotState, j Job, b *Backend, _ Resources) string {
	switch {
	case b == nil:
		return fmt.Sprintf("backend %q is not run by this farm", j.Backend)
	case !b.proves(j.Tier):
		return fmt.Sprintf("backend %s does not prove the %s tier", b.Name, j.Tier)
	case !b.runsOn(s.Kind):
		return fmt.Sprintf("backend %s has no %s path", b.Name, s.Kind)
	}
	return ""
}

type traceSizeCheck struct{}

func (traceSizeCheck) Name() string { return "trace_size" }
func (traceSizeCheck) Check(s *slotState, j Job, _ *Backend, _ Resources) string {
	if s.MaxTraceBytes > 0 && j.TraceBytes > s.MaxTraceBytes {
		return fmt.Sprintf("trace of %d bytes exceeds the slot's %d", j.TraceBytes, s.MaxTraceBytes)
	}
	return ""
}

type capacityCheck struct{}

func (capacityCheck) Name() string { return "capacity" }
func (capacityCheck) Check(s *slotState, _ Job, _ *Backend, need Resources) string {
	f := s.free()
	switch {
	case s.jobs >= s.MaxJobs:
		return fmt.Sprintf("busy: %d of %d jobs running", s.jobs, s.MaxJobs)
	case need.Cores > s.Capacity.Cores:
		return fmt.Sprintf("needs %d cores, the slot has %d", need.Cores, s.Capacity.Cores)
	case need.Cores > f.Cores:
		return fmt.Sprintf("needs %d cores, %d free", need.Cores, f.Cores)
	case need.MemoryBytes > s.Capacity.MemoryBytes:
		return fmt.Sprintf("needs %s of %s memory, the slot has %s", formatBytes(need.MemoryBytes), s.Kind, formatBytes(s.Capacity.MemoryBytes))
	case need.MemoryBytes > f.MemoryBytes:
		return fmt.Sprintf("needs %s of %s memory, %s free", formatBytes(need.MemoryBytes), s.Kind, formatBytes(f.MemoryBytes))
	}
	return ""
}
