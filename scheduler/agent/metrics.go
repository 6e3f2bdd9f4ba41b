package agent

import (
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pouwfarm/pouwfarm/scheduler"
)

// metrics are the farm's: jobs by tier/backend/device/outcome, proof
// duration, slot busy ratio and claim latency.
type metrics struct {
	jobs         *prometheus.CounterVec
	proofSeconds *prometheus.HistogramVec
	claimSeconds *prometheus.HistogramVec
	slotBusy     *prometheus.GaugeVec
	stageSeconds *prometheus.HistogramVec

	mu      sync.Mutex
	running map[string]int
	maxJobs map[string]int
}

func newMetrics(reg prometheus.Registerer, pool *scheduler.Pool) (*metrics, error) {
	m := &metrics{
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pouw_farm_jobs_total",
			Help: "Jobs this farm finished, by tier, backend, device kind and outcome.",
		}, []string{"tier", "backend", "device", "outcome"}),
		proofSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pouw_farm_proof_duration_seconds",
			Help:    "Time to prove one job, by tier, backend and device kind.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 12),
		}, []string{"tier", "backend", "device"}),
		claimSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pouw_farm_claim_duration_seconds",
			Help:    "Latency of one claim request, by result (granted, empty, error).",
			Buckets: prometheus.ExponentialBuckets(0.001, 3, 10),
		}, []string{"result"}),
		slotBusy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pouw_farm_slot_busy_ratio",
			Help: "Fraction of a slot's job capacity in use (0-1).",
		}, []string{"slot"}),
		stageSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pouw_farm_stage_duration_seconds",
			Help:    "Time of a job's orchestration stages: download (with the BLAKE3 check), children (an aggregation job's child details, traces and proofs) and submit (with the coordinator's verification).",
			Buckets: prometheus.ExponentialBuckets(0.001, 3, 10),
		}, []string{"stage"}),
		running: map[string]int{},
		maxJobs: map[string]int{},
	}
	for _, s := range pool.Snapshot().Slots() {
		m.maxJobs[s.ID] = s.MaxJobs
		m.slotBusy.WithLabelValues(s.ID).Set(0)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.jobs, m.proofSeconds, m.claimSeconds, m.slotBusy, m.stageSeconds} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("agent: register metrics: %w", err)
			}
		}
	}
	return m, nil
}

func (m *metrics) busy(slot string, delta int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.running[slot] += delta
	if n := m.maxJobs[slot]; n > 0 {
		m.slotBusy.WithLabelValues(slot).Set(float64(m.running[slot]) / float64(n))
	}
}
