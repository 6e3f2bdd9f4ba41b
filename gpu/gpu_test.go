package gpu_test

import (
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pouwfarm/pouwfarm/gpu"
)

func TestDecodeThrottleReasons(t *testing.T) {
	for _, tc := range []struct {
		mask uint64
		want []string
	}{
		{0, nil},
		{0x1, []string{"gpu_idle"}},
		{0x4 | 0x40, []string{"sw_power_cap", "hw_thermal_slowdown"}},
		{0x8 | 1<<20, []string{"hw_slowdown", "other"}},
	} {
		if got := gpu.DecodeThrottleReasons(tc.mask); !slices.Equal(got, tc.want) {
			t.Errorf("DecodeThrottleReasons(%#x) = %v, want %v", tc.mask, got, tc.want)
		}
	}
}

func TestNullSourceExportsNothingAndSaysWhy(t *testing.T) {
	src := gpu.Null{Reason: "no driver"}
	if src.Unavailable() != "no driver" || len(src.Devices()) != 0 || len(src.Telemetry()) != 0 {
		t.Fatalf("Null = %q %v %v", src.Unavailable(), src.Devices(), src.Telemetry())
	}
	if (gpu.Null{}).Unavailable() == "" {
		t.Error("a Null source with no reason must still say it is unavailable")
	}
	reg := prometheus.NewPedanticRegistry()
	if err := gpu.RegisterMetrics(reg, src); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 0 {
		t.Errorf("a host without GPUs exports %d GPU series (%v)", n, err)
	}
}
