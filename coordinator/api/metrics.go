package api

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/pouw"
)

// metrics are the coordinator's Prometheus series, on the registry the
// caller passes in (no global registry). Labels are bounded: route patterns,
// status codes, tiers, backends, states, event types — never a job id, a
// prover id or a token.
type metrics struct {
	requests       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	verifyDuration *prometheus.HistogramVec
	streamClients  prometheus.Gauge
	// transitions counts job lifecycle events by kind and tier. They come
	// from the deployment's event log (the hub reads every event), so with
	// several coordinators each reports the deployment's totals: aggregate
	// them with max(), not sum().
	transitions *prometheus.CounterVec
	// Abuse limits (issue 13): the configured values, and how often they
	// bit.
	limit         *prometheus.GaugeVec
	limited       *prometheus.CounterVec
	suspensions   prometheus.Counter
	verifyGiveUps prometheus.Counter
}

// eventMetric maps the event types that count as a lifecycle transition to
// the metric's `transition` label.
var eventMetric = map[pouw.EventType]string{
	pouw.EventJobCreated:   "created",
	pouw.EventJobClaimed:   "claimed",
	pouw.EventJobCompleted: "completed",
	pouw.EventJobRejected:  "rejected",
	pouw.EventJobFailed:    "failed",
	pouw.EventJobExpired:   "expired",
	pouw.EventJobDead:      "dead_lettered",
	pouw.EventJobReleased:  "released",
	pouw.EventJobRequeued:  "requeued",
}

func newMetrics(reg prometheus.Registerer, st store.Store) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pouw_http_requests_total",
			Help: "HTTP requests served, by route pattern and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pouw_http_request_duration_seconds",
			Help:    "Time to serve an HTTP request, by route pattern (event streams excluded).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
		}, []string{"route"}),
		verifyDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pouw_proof_verification_duration_seconds",
			Help:    "Time to verify a submitted proof, by backend.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"backend"}),
		streamClients: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pouw_event_stream_clients",
			Help: "Clients connected to the event stream.",
		}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pouw_job_transitions_total",
			Help: "Job lifecycle transitions seen in the deployment's event log since this coordinator started, by transition (claimed, completed, rejected, failed, expired, dead_lettered, ...) and tier.",
		}, []string{"transition", "tier"}),
	}
	for _, tier := range pouw.Tiers {
		for _, tr := range eventMetric {
			m.transitions.WithLabelValues(tr, tier.String())
		}
	}
	m.limit = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "pouw_prover_limit",
		Help: "Configured per-prover abuse limits and token lifetimes, by limit (0: off).",
	}, []string{"limit"})
	m.limited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pouw_prover_limited_total",
		Help: "Requests answered 429 by a per-prover limit, by limit (claim_rate, submit_rate, max_leases).",
	}, []string{"limit"})
	for _, l := range []string{"claim_rate", "submit_rate", "max_leases"} {
		m.limited.WithLabelValues(l)
	}
	m.suspensions = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pouw_prover_suspensions_total",
		Help: "Provers this coordinator suspended because most of their recent proofs were rejected.",
	})
	m.verifyGiveUps = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pouw_verify_attempts_exhausted_total",
		Help: "Leases failed because their proof could not be verified MaxVerifyAttempts times.",
	})
	reg.MustRegister(m.requests, m.duration, m.verifyDuration, m.streamClients, m.transitions,
		m.limit, m.limited, m.suspensions, m.verifyGiveUps, &statusCollector{store: st})
	return m
}

// exportLimits publishes the configured limits.
func (m *metrics) exportLimits(o Options) {
	a := o.Abuse
	for k, v := range map[string]float64{
		"max_leases": float64(a.MaxLeases), "claim_rate": a.ClaimRate, "claim_burst": float64(a.ClaimBurst),
		"submit_rate": a.SubmitRate, "submit_burst": float64(a.SubmitBurst),
		"suspend_window": float64(a.SuspendWindow), "suspend_min_proofs": float64(a.SuspendMinProofs),
		"suspend_reject_ratio": a.SuspendRejectRatio, "max_verify_attempts": float64(o.MaxVerifyAttempts),
		"token_ttl_seconds": o.TokenTTL.Seconds(), "rotate_grace_seconds": o.RotateGrace.Seconds(),
		"max_trace_bytes": float64(o.Limits.MaxTraceBytes), "max_proof_bytes": float64(o.Limits.MaxProofBytes),
		"max_json_bytes": float64(o.Limits.MaxJSONBytes),
	} {
		m.limit.WithLabelValues(k).Set(v)
	}
}

func (m *metrics) observeEvent(ev pouw.Event) {
	tr, ok := eventMetric[ev.Type]
	if !ok || ev.Tier == nil {
		return
	}
	m.transitions.WithLabelValues(tr, ev.Tier.String()).Inc()
}

// statusCollector reads the store's status at scrape time: jobs by state and
// tier, the pool ledger and the number of provers. Reading at scrape time
// keeps the figures right with several coordinators on one store.
type statusCollector struct {
	store store.Store
}

var (
	jobsDesc = prometheus.NewDesc("pouw_jobs",
		"Jobs in the store, by state and tier.", []string{"state", "tier"}, nil)
	oldestDesc = prometheus.NewDesc("pouw_oldest_pending_job_age_seconds",
		"Age of the oldest pending job, by tier (0 when none).", []string{"tier"}, nil)
	poolDesc = prometheus.NewDesc("pouw_pool_amount",
		"Fee pool ledger, by entry: deposited = available + reserved + paid.", []string{"entry"}, nil)
	proversDesc = prometheus.NewDesc("pouw_provers_registered",
		"Registered provers.", nil, nil)
	storeUpDesc = prometheus.NewDesc("pouw_store_up",
		"1 when the store answered the last scrape, 0 otherwise.", nil, nil)
)

func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- jobsDesc
	ch <- oldestDesc
	ch <- poolDesc
	ch <- proversDesc
	ch <- storeUpDesc
}

func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.store.Status(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(storeUpDesc, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(storeUpDesc, prometheus.GaugeValue, 1)
	for _, ts := range st.Tiers {
		for _, s := range pouw.States {
			ch <- prometheus.MustNewConstMetric(jobsDesc, prometheus.GaugeValue, float64(ts.Counts[s]), string(s), ts.Tier.String())
		}
		ch <- prometheus.MustNewConstMetric(oldestDesc, prometheus.GaugeValue, float64(ts.OldestPendingAgeMs)/1000, ts.Tier.String())
	}
	for entry, v := range map[string]uint64{
		"deposited": st.Pool.Deposited, "available": st.Pool.Available,
		"reserved": st.Pool.Reserved, "paid": st.Pool.Paid,
	} {
		ch <- prometheus.MustNewConstMetric(poolDesc, prometheus.GaugeValue, float64(v), entry)
	}
	ch <- prometheus.MustNewConstMetric(proversDesc, prometheus.GaugeValue, float64(st.Provers))
}
