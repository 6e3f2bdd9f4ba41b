package scheduler

import "github.com/pouwfarm/pouwfarm/pouw"

// Ranker scores a feasible slot for a job; higher is better. Scores are
// weighted and summed (Nomad's rank iterators, flattened).
type Ranker interface {
	Name() string
	Weight() float64
	// Score returns a value in [0, 1].
	Score(s *slotState, j Job, b *Backend, need Resources) float64
}

// DefaultRankers prefer the right kind of device first, then the tightest
// fit; the kind weight is larger than any fit score so fit only breaks ties.
func DefaultRankers() []Ranker { return []Ranker{kindRanker{}, bestFitRanker{}} }

// PreferredKind is where a job of tier on backend b belongs: a GPU for Macro
// and Full when the backend has a GPU path (the work is large enough to pay
// for the transfer), a CPU for Micro (sub-second proofs gain nothing from a
// GPU and would only keep it from larger work).
func PreferredKind(t pouw.JobTier, b *Backend) Kind {
	if t != pouw.TierMicro && b != nil && b.runsOn(GPU) {
		return GPU
	}
	return CPU
}

type kindRanker struct{}

func (kindRanker) Name() string    { return "kind" }
func (kindRanker) Weight() float64 { return 10 }
func (kindRanker) Score(s *slotState, j Job, b *Backend, _ Resources) float64 {
	if s.Kind == PreferredKind(j.Tier, b) {
		return 1
	}
	return 0
}

// bestFitRanker packs: the slot left with the least free memory (relative to
// its size) after the placement wins, keeping large slots whole for large
// jobs.
type bestFitRanker struct{}

func (bestFitRanker) Name() string    { return "best_fit" }
func (bestFitRanker) Weight() float64 { return 1 }
func (bestFitRanker) Score(s *slotState, _ Job, _ *Backend, need Resources) float64 {
	if s.Capacity.MemoryBytes <= 0 {
		return 0
	}
	left := float64(s.free().MemoryBytes-need.MemoryBytes) / float64(s.Capacity.MemoryBytes)
	return 1 - left
}
