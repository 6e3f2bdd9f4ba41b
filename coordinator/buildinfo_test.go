package coordinator_test

import (
	"io"
	"net/http"
	"regexp"
	"runtime"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pouwfarm/pouwfarm/coordinator"
)

func TestCoordinatorMetricsExportBuildInfoAndProcessCollectors(t *testing.T) {
	c, _, _ := start(t, coordinator.Config{})
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, c.URL()+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.AdminToken())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	for _, re := range []string{
		`(?m)^pouw_build_info\{goversion="` + regexp.QuoteMeta(runtime.Version()) + `",version="[^"]+"\} 1$`,
		`(?m)^go_goroutines `,
		`(?m)^process_start_time_seconds `,
	} {
		if !regexp.MustCompile(re).Match(body) {
			t.Errorf("/metrics has no line matching %s", re)
		}
	}
}

func TestRegisterBuildInfoTwiceOnOneRegistryIsNoError(t *testing.T) {
	reg := prometheus.NewRegistry()
	for range 2 {
		if err := coordinator.RegisterBuildInfo(reg); err != nil {
			t.Fatal(err)
		}
	}
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 || mfs[0].GetName() != "pouw_build_info" || mfs[0].GetMetric()[0].GetGauge().GetValue() != 1 {
		t.Fatalf("gathered %v, %v", mfs, err)
	}
}
