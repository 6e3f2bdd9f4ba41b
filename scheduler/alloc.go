package scheduler

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/pouwfarm/pouwfarm/pouw"
)

// ErrNoFit is wrapped by the error of a placement no slot can take.
var ErrNoFit = errors.New("no slot can take the job")

// ErrNotReserved is returned when releasing a reservation that is not held
// (released twice, or made on another allocator).
var ErrNotReserved = errors.New("scheduler: reservation not held")

// NoFitError lists why each slot rejected a job.
type NoFitError struct {
	Job        Job
	Rejections []Rejection
}

func (e *NoFitError) Error() string {
	parts := make([]string, len(e.Rejections))
	for i, r := range e.Rejections {
		parts[i] = r.String()
	}
	return fmt.Sprintf("%v: %s job %s on %s: %s", ErrNoFit, e.Job.Tier, e.Job.ID, e.Job.Backend, strings.Join(parts, "; "))
}

func (e *NoFitError) Unwrap() error { return ErrNoFit }

// Placement is a job put on a slot, with what it reserves there.
type Placement struct {
	// ID names the reservation once Reserve has taken it (0 before).
	ID    uint64
	Job   Job
	Slot  string
	Kind  Kind
	Need  Resources
	Score float64
	// Rejections are the slots that could not take the job, and why.
	Rejections []Rejection
}

// Allocator holds the slots of a host and what is reserved on them. It is a
// plain value with no locks: Copy it to try placements without touching the
// original. Pool makes one safe for concurrent use.
type Allocator struct {
	slots    []slotState
	backends map[string]*Backend
	checkers []Checker
	rankers  []Ranker
	reserved map[uint64]Placement
	nextID   uint64
}

// NewAllocator returns an allocator over slots for the given backends, with
// the default checkers and rankers.
func NewAllocator(slots []Slot, backends []Backend) (Allocator, error) {
	a := Allocator{
		backends: map[string]*Backend{},
		checkers: DefaultCheckers(),
		rankers:  DefaultRankers(),
		reserved: map[uint64]Placement{},
	}
	seen := map[string]bool{}
	for _, s := range slots {
		if s.ID == "" || seen[s.ID] {
			return Allocator{}, fmt.Errorf("%w: slot id %q empty or repeated", ErrInvalid, s.ID)
		}
		if s.MaxJobs < 1 || s.Capacity.Cores < 0 || s.Capacity.MemoryBytes < 0 || (s.Kind != CPU && s.Kind != GPU) {
			return Allocator{}, fmt.Errorf("%w: slot %s: %+v", ErrInvalid, s.ID, s)
		}
		seen[s.ID] = true
		a.slots = append(a.slots, slotState{Slot: s})
	}
	for _, b := range backends {
		if b.Name == "" || a.backends[b.Name] != nil {
			return Allocator{}, fmt.Errorf("%w: backend name %q empty or repeated", ErrInvalid, b.Name)
		}
		b := b
		a.backends[b.Name] = &b
	}
	return a, nil
}

// Copy returns an independent copy: reserving on it leaves a untouched.
func (a Allocator) Copy() Allocator {
	c := a
	c.slots = slices.Clone(a.slots)
	c.reserved = maps.Clone(a.reserved)
	return c
}

// Slots returns the slots.
func (a Allocator) Slots() []Slot {
	out := make([]Slot, len(a.slots))
	for i, s := range a.slots {
		out[i] = s.Slot
	}
	return out
}

// Backends returns the names of the backends, sorted.
func (a Allocator) Backends() []string {
	return slices.Sorted(maps.Keys(a.backends))
}

// Reserved returns how many reservations are held.
func (a Allocator) Reserved() int { return len(a.reserved) }

// Usage returns what is reserved on a slot and how many jobs run there.
func (a Allocator) Usage(slot string) (used Resources, jobs int, ok bool) {
	for i := range a.slots {
		if a.slots[i].ID == slot {
			return a.slots[i].used, a.slots[i].jobs, true
		}
	}
	return Resources{}, 0, false
}

// SetHealth takes a slot out of service (reason non-empty) or back in
// (reason ""). Running jobs keep their reservations until released.
func (a *Allocator) SetHealth(slot, reason string) bool {
	for i := range a.slots {
		if a.slots[i].ID == slot {
			a.slots[i].unhealthy = reason
			return true
		}
	}
	return false
}

// Place finds the best slot for j without reserving anything. The error
// wraps ErrNoFit and is a *NoFitError with every slot's rejection.
func (a Allocator) Place(j Job) (Placement, error) {
	b := a.backends[j.Backend]
	var (
		best    = -1
		bestP   Placement
		rejects []Rejection
	)
	for i := range a.slots {
		s := &a.slots[i]
		var need Resources
		if b != nil {
			need = b.estimate(j.Tier, j.TraceBytes, s.Kind)
		}
		if r, ok := a.check(s, j, b, need); !ok {
			rejects = append(rejects, r)
			continue
		}
		score := 0.0
		for _, rk := range a.rankers {
			score += rk.Weight() * rk.Score(s, j, b, need)
		}
		if best < 0 || score > bestP.Score {
			best = i
			bestP = Placement{Job: j, Slot: s.ID, Kind: s.Kind, Need: need, Score: score}
		}
	}
	if best < 0 {
		return Placement{}, &NoFitError{Job: j, Rejections: rejects}
	}
	bestP.Rejections = rejects
	return bestP, nil
}

func (a Allocator) check(s *slotState, j Job, b *Backend, need Resources) (Rejection, bool) {
	for _, c := range a.checkers {
		if reason := c.Check(s, j, b, need); reason != "" {
			return Rejection{Slot: s.ID, Check: c.Name(), Reason: reason}, false
		}
	}
	return Rejection{}, true
}

// Reserve takes p's resources on its slot, checking again that they are
// free (the allocator may have changed since Place), and returns p with its
// reservation ID.
func (a *Allocator) Reserve(p Placement) (Placement, error) {
	for i := range a.slots {
		s := &a.slots[i]
		if s.ID != p.Slot {
			continue
		}
		if r, ok := a.check(s, p.Job, a.backends[p.Job.Backend], p.Need); !ok {
			return Placement{}, &NoFitError{Job: p.Job, Rejections: []Rejection{r}}
		}
		s.used.Cores += p.Need.Cores
		s.used.MemoryBytes += p.Need.MemoryBytes
		s.jobs++
		a.nextID++
		p.ID = a.nextID
		a.reserved[p.ID] = p
		return p, nil
	}
	return Placement{}, fmt.Errorf("%w: unknown slot %q", ErrInvalid, p.Slot)
}

// PlaceAndReserve is Place then Reserve.
func (a *Allocator) PlaceAndReserve(j Job) (Placement, error) {
	p, err := a.Place(j)
	if err != nil {
		return Placement{}, err
	}
	return a.Reserve(p)
}

// Release gives back a reservation's resources. Releasing one that is not
// held returns ErrNotReserved and changes nothing.
func (a *Allocator) Release(p Placement) error {
	held, ok := a.reserved[p.ID]
	if !ok || p.ID == 0 {
		return ErrNotReserved
	}
	delete(a.reserved, p.ID)
	for i := range a.slots {
		s := &a.slots[i]
		if s.ID == held.Slot {
			s.used.Cores -= held.Need.Cores
			s.used.MemoryBytes -= held.Need.MemoryBytes
			s.jobs--
			return nil
		}
	}
	return fmt.Errorf("%w: reservation %d on unknown slot %q", ErrInvalid, p.ID, held.Slot)
}

// Claim is what a farm may ask the coordinator for so that whatever it is
// granted can be placed now: the tiers (in preference order), the backends
// and the largest trace, all of which fit the slot it was computed for.
type Claim struct {
	Slot          string         `json:"slot"`
	Tiers         []pouw.JobTier `json:"tiers"`
	Backends      []string       `json:"backends"`
	MaxTraceBytes int64          `json:"max_trace_bytes"` // 0: no bound
}

// searchCeiling bounds the trace-size search of a slot without a trace bound.
const searchCeiling = int64(1) << 40

// Claims returns what the free slots can take now, the slots that prefer
// heavy work (GPUs) first. A claim names the tiers (in the slot's preference
// order), the backends and the largest trace it admits, and every
// combination it admits fits its slot now — so whatever the coordinator
// grants is placeable. Backends are grouped by the tiers they prove, since a
// claim cannot say "this backend for these tiers only". Slots that can take
// nothing give no claim; identical claims of identical slots are listed once.
func (a Allocator) Claims() []Claim {
	var out []Claim
	for _, kind := range []Kind{GPU, CPU} {
		for i := range a.slots {
			s := &a.slots[i]
			if s.Kind != kind {
				continue
			}
			for _, c := range a.claimsFor(s) {
				if !slices.ContainsFunc(out, func(o Claim) bool { return sameClaim(o, c) }) {
					out = append(out, c)
				}
			}
		}
	}
	return out
}

func sameClaim(a, b Claim) bool {
	return slices.Equal(a.Tiers, b.Tiers) && slices.Equal(a.Backends, b.Backends) && a.MaxTraceBytes == b.MaxTraceBytes
}

func (a Allocator) claimsFor(s *slotState) []Claim {
	var out []Claim
	group := map[string]int{} // tier set -> index in out
	for _, name := range a.Backends() {
		b := a.backends[name]
		var tiers []pouw.JobTier
		max := int64(-1)
		for _, t := range pouw.Tiers {
			if !b.proves(t) {
				continue
			}
			j := Job{Tier: t, Backend: name}
			if _, ok := a.check(s, j, b, b.estimate(t, 0, s.Kind)); !ok {
				continue
			}
			tiers = append(tiers, t)
			max = minBound(max, a.maxTraceBytes(s, j, b))
		}
		if len(tiers) == 0 {
			continue
		}
		key := fmt.Sprint(tiers)
		if i, ok := group[key]; ok {
			out[i].Backends = append(out[i].Backends, name)
			out[i].MaxTraceBytes = minBound(out[i].MaxTraceBytes, max)
			continue
		}
		group[key] = len(out)
		out = append(out, Claim{Slot: s.ID, Tiers: a.orderTiers(s.Kind, tiers, b), Backends: []string{name}, MaxTraceBytes: max})
	}
	return out
}

// minBound is the tighter of two trace bounds, where 0 means none and -1
// means not set yet.
func minBound(x, y int64) int64 {
	switch {
	case x < 0:
		return y
	case y < 0, y == 0:
		return x
	case x == 0:
		return y
	}
	return min(x, y)
}

// orderTiers puts first the tiers this kind of slot is preferred for; among
// them the heavier first on a GPU, the lighter first on a CPU.
func (a Allocator) orderTiers(k Kind, tiers []pouw.JobTier, b *Backend) []pouw.JobTier {
	tiers = slices.Clone(tiers)
	slices.SortStableFunc(tiers, func(x, y pouw.JobTier) int {
		px, py := PreferredKind(x, b) == k, PreferredKind(y, b) == k
		switch {
		case px && !py:
			return -1
		case py && !px:
			return 1
		case k == GPU:
			return int(y) - int(x)
		default:
			return int(x) - int(y)
		}
	})
	return tiers
}

// maxTraceBytes is the largest trace of j's tier and backend that fits s now
// (0: no bound), found by bisection on the backend's monotone estimate.
func (a Allocator) maxTraceBytes(s *slotState, j Job, b *Backend) int64 {
	hi := s.MaxTraceBytes
	if hi == 0 {
		hi = searchCeiling
	}
	fits := func(n int64) bool {
		j.TraceBytes = n
		_, ok := a.check(s, j, b, b.estimate(j.Tier, n, s.Kind))
		return ok
	}
	if fits(hi) {
		return s.MaxTraceBytes // the slot's own bound, or none
	}
	lo := int64(0) // fits(lo) holds: the caller checked size 0
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if fits(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	if lo == 0 {
		// Only an empty trace fits: advertise the smallest non-zero bound so
		// 0 is not read as "no bound".
		return 1
	}
	return lo
}
