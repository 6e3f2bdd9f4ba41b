package deploy

import (
	"reflect"
	"testing"
)

func TestSelectorsFindEveryMetricAndOnlyMetrics(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []selector
	}{
		{`up`, []selector{{Name: "up"}}},
		{`up{job="pouw-coordinator"} == 0 or absent(up{job="pouw-coordinator"})`, []selector{
			{Name: "up", Matchers: []matcher{{"job", "=", "pouw-coordinator"}}},
			{Name: "up", Matchers: []matcher{{"job", "=", "pouw-coordinator"}}},
		}},
		{`sum by (route, code) (rate(pouw_http_requests_total{route!="unmatched", code=~"5.."}[$__rate_interval]))`, []selector{
			{Name: "pouw_http_requests_total", Matchers: []matcher{{"route", "!=", "unmatched"}, {"code", "=~", "5.."}}},
		}},
		{`histogram_quantile(0.95, sum without (instance) (rate(pouw_farm_proof_duration_seconds_bucket{tier=~"$tier"}[5m])))`, []selector{
			{Name: "pouw_farm_proof_duration_seconds_bucket", Matchers: []matcher{{"tier", "=~", "$tier"}}},
		}},
		{`max by (tier) (pouw_oldest_pending_job_age_seconds) > on (tier) group_left(x) pouw:pending_age_budget_seconds`, []selector{
			{Name: "pouw_oldest_pending_job_age_seconds"}, {Name: "pouw:pending_age_budget_seconds"},
		}},
		{`sum(rate(x_total[5m])) by (tier) > bool 0`, []selector{{Name: "x_total"}}},
		{`a / ignoring(code) b offset 1h unless c @ end() and bool d`, []selector{
			{Name: "a"}, {Name: "b"}, {Name: "c"}, {Name: "d"},
		}},
		{`{__name__="pouw_jobs", state='pending'}`, []selector{
			{Name: "pouw_jobs", Matchers: []matcher{{"__name__", "=", "pouw_jobs"}, {"state", "=", "pending"}}},
		}},
		{`label_replace(vector(60), "tier", "$1", "x", "(.*)") * 1e3 + 0.5 - inf`, nil},
		{`max_over_time(x[1h:5m]) # comment naming not_a_metric`, []selector{{Name: "x"}}},
		{"topk(3, `y`) + count_values(\"v\", z{a=\"\\\"}\"})", []selector{
			{Name: "z", Matchers: []matcher{{"a", "=", `"}`}}},
		}},
		{`sum(pouw_gpu_memory_used_bytes{instance=~"${instance:regex}"})`, []selector{
			{Name: "pouw_gpu_memory_used_bytes", Matchers: []matcher{{"instance", "=~", "${instance:regex}"}}},
		}},
	} {
		got, err := selectors(tc.expr)
		if err != nil {
			t.Errorf("%s: %v", tc.expr, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.expr, got, tc.want)
		}
	}
}

func TestSelectorsRefuseWhatTheyCannotRead(t *testing.T) {
	for _, expr := range []string{
		`rate(x{job="a"[5m])`, // unclosed matcher block
		`x{job="a}`,           // unterminated string
		`x{job}`,              // matcher without operator
		`frobnicate(x)`,       // unknown function: a typo must not pass as a metric
		`{job="a"}`,           // selector without a name
		`x[5m`,                // unclosed range
		`sum by (tier`,        // unclosed label list
		`x ; y`,               // not PromQL
	} {
		if got, err := selectors(expr); err == nil {
			t.Errorf("%q: no error, got %+v", expr, got)
		}
	}
}
