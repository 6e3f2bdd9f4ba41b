package api_test

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pouwfarm/pouwfarm/pouw"
)

func TestMetricsPassLintAndCountTransitions(t *testing.T) {
	e := newEnv(t, boltBackend(), envOptions{})
	ctx := context.Background()
	tok := e.registerProver("metrics")
	if _, err := e.client(adminToken).Deposit(ctx, 10, ""); err != nil {
		t.Fatal(err)
	}
	job := e.ingest(pouw.TierMicro, 1, 3, "metrics")
	l, err := e.client(tok).Claim(ctx, pouw.ClaimRequest{Tiers: []pouw.JobTier{pouw.TierMicro}, Backends: []string{"stark"}})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = e.client(tok).Submit(ctx, job.JobID, l.LeaseToken, []byte("x"))

	problems, err := testutil.GatherAndLint(e.registry)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}
	// The transition counters follow the event log (the hub polls it).
	waitFor(t, func() bool {
		return metricValue(t, e, "pouw_job_transitions_total", "transition", "rejected", "tier", "micro") == 1 &&
			metricValue(t, e, "pouw_job_transitions_total", "transition", "claimed", "tier", "micro") == 1
	})
	_, body := e.raw("GET", "/v1/pouw/metrics", adminToken, "", nil)
	for _, want := range []string{
		`pouw_jobs{state="pending",tier="micro"} 1`,
		`pouw_pool_amount{entry="deposited"} 10`,
		`pouw_http_requests_total{code="422",route="POST /v1/pouw/jobs/{id}/submit"} 1`,
		`pouw_proof_verification_duration_seconds_count{backend="stark"} 1`,
		`pouw_provers_registered 1`,
		`pouw_event_stream_clients 0`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(string(body), tok) || strings.Contains(string(body), adminToken) || strings.Contains(string(body), job.JobID) {
		t.Error("metrics contain a token or a job id")
	}
}

// metricValue returns the value of the series name{labels...} (0 if absent).
func metricValue(t *testing.T, e *env, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := e.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	return 0
}
