//go:build cgo

package gpu_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pouwfarm/pouwfarm/gpu"
)

func TestDiscoversEveryGPUOfADGXWithItsMemory(t *testing.T) {
	for _, tc := range []struct {
		name    string
		srv     *server.Server
		model   string
		memory  uint64
		cc      string
		devices int
	}{
		{"dgxh100", dgxh100.New(), "NVIDIA H100 80GB HBM3", 80 << 30, "9.0", 8},
		{"dgxa100", dgxa100.New(), "Mock NVIDIA A100-SXM4-40GB", 40 << 30, "8.0", 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := gpu.New(tc.srv, nil)
			if r := m.Unavailable(); r != "" {
				t.Fatalf("Unavailable() = %q on a mock server", r)
			}
			devs := m.Devices()
			if len(devs) != tc.devices {
				t.Fatalf("discovered %d devices, want %d", len(devs), tc.devices)
			}
			uuids := map[string]bool{}
			for i, d := range devs {
				if d.Index != i || d.Name != tc.model || d.MemoryTotalBytes != tc.memory || d.ComputeCapability != tc.cc {
					t.Errorf("device %d = %+v, want index %d name %q memory %d cc %s", i, d, i, tc.model, tc.memory, tc.cc)
				}
				if !d.Healthy || d.MIGEnabled {
					t.Errorf("device %d healthy=%v mig=%v, want healthy without MIG", i, d.Healthy, d.MIGEnabled)
				}
				if !strings.HasPrefix(d.UUID, "GPU-") || uuids[d.UUID] {
					t.Errorf("device %d uuid %q not a fresh GPU- uuid", i, d.UUID)
				}
				uuids[d.UUID] = true
			}
		})
	}
}

func TestDiscoveryReadsMIGModeAndPCIBusID(t *testing.T) {
	srv := dgxh100.New()
	dev := srv.Devices[2].(*server.Device)
	dev.SetMigMode(nvml.DEVICE_MIG_ENABLE)
	dev.GetPciInfoFunc = func() (nvml.PciInfo, nvml.Return) {
		var p nvml.PciInfo
		for i, c := range "00000000:1B:00.0" {
			p.BusId[i] = int8(c)
		}
		return p, nvml.SUCCESS
	}
	devs := gpu.New(srv, nil).Devices()
	if !devs[2].MIGEnabled || devs[1].MIGEnabled {
		t.Errorf("MIG: device 2 %v, device 1 %v; want only 2 enabled", devs[2].MIGEnabled, devs[1].MIGEnabled)
	}
	if devs[2].PCIBusID != "00000000:1B:00.0" {
		t.Errorf("PCI bus id = %q", devs[2].PCIBusID)
	}
}

func TestDeviceThatCannotBeReadIsKeptUnhealthyWithTheFailingCall(t *testing.T) {
	srv := dgxh100.New()
	srv.Devices[5].(*server.Device).GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) {
		return nvml.Memory{}, nvml.ERROR_UNKNOWN
	}
	devs := gpu.New(srv, nil).Devices()
	if len(devs) != 8 {
		t.Fatalf("%d devices", len(devs))
	}
	if devs[5].Healthy || !strings.Contains(devs[5].UnhealthyReason, "GetMemoryInfo") {
		t.Errorf("device 5 = %+v, want unhealthy naming GetMemoryInfo", devs[5])
	}
	if !devs[4].Healthy {
		t.Errorf("device 4 unhealthy: %s", devs[4].UnhealthyReason)
	}
}

// countingHandler counts log records, so a test can say "exactly one line".
type countingHandler struct {
	mu  sync.Mutex
	buf bytes.Buffer
	n   int
	h   slog.Handler
}

func newCountingLogger() (*slog.Logger, *countingHandler) {
	c := &countingHandler{}
	c.h = slog.NewTextHandler(&c.buf, &slog.HandlerOptions{Level: slog.LevelDebug})
	return slog.New(c), c
}
func (c *countingHandler) Enabled(ctx context.Context, l slog.Level) bool { return true }
func (c *countingHandler) Handle(ctx context.Context, r slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	return c.h.Handle(ctx, r)
}
func (c *countingHandler) WithAttrs(a []slog.Attr) slog.Handler { return c }
func (c *countingHandler) WithGroup(string) slog.Handler        { return c }
func (c *countingHandler) lines() (int, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n, c.buf.String()
}

func TestNoDriverMeansZeroGPUsAndOneLogLine(t *testing.T) {
	lib := &mock.Interface{InitFunc: func() nvml.Return { return nvml.ERROR_LIBRARY_NOT_FOUND }}
	logger, lines := newCountingLogger()
	m := gpu.New(lib, logger)
	if n := len(m.Devices()); n != 0 {
		t.Fatalf("%d devices without a driver", n)
	}
	if !strings.Contains(m.Unavailable(), "ERROR_LIBRARY_NOT_FOUND") {
		t.Errorf("Unavailable() = %q", m.Unavailable())
	}
	// Everything else the farm does with it must stay quiet and harmless.
	if tel := m.Telemetry(); len(tel) != 0 {
		t.Errorf("telemetry without a driver: %v", tel)
	}
	if err := m.WatchHealth(t.Context()); err != nil {
		t.Errorf("WatchHealth: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if n, out := lines.lines(); n != 1 || !strings.Contains(out, "CPU-only") {
		t.Errorf("want exactly one log line saying CPU-only, got %d:\n%s", n, out)
	}
}

// On this project's machines and in CI there is no NVIDIA driver: the real
// library must behave like the mock above. Skipped where a driver exists.
func TestSystemNVMLWithoutDriverRunsCPUOnly(t *testing.T) {
	logger, lines := newCountingLogger()
	src := gpu.Open(logger)
	if src.Unavailable() == "" {
		t.Skipf("NVML works on this host (%d GPUs); nothing to check", len(src.Devices()))
	}
	if len(src.Devices()) != 0 {
		t.Errorf("devices without NVML: %v", src.Devices())
	}
	if n, out := lines.lines(); n != 1 {
		t.Errorf("want one log line, got %d:\n%s", n, out)
	}
}

// setTelemetry fills the telemetry functions go-nvml's DGX mocks leave nil.
func setTelemetry(srv *server.Server) {
	for i, d := range srv.Devices {
		dev := d.(*server.Device)
		i := i
		dev.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
			return nvml.Utilization{Gpu: uint32(10 * i), Memory: 5}, nvml.SUCCESS
		}
		dev.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return uint32(40 + i), nvml.SUCCESS }
		dev.GetPowerUsageFunc = func() (uint32, nvml.Return) { return uint32(100_000 + 1000*i), nvml.SUCCESS }
		dev.GetTotalEnergyConsumptionFunc = func() (uint64, nvml.Return) { return uint64(5_000_000 * (i + 1)), nvml.SUCCESS }
		dev.GetCurrentClocksEventReasonsFunc = func() (uint64, nvml.Return) {
			if i == 1 {
				return nvml.ClocksEventReasonSwPowerCap | nvml.ClocksThrottleReasonHwThermalSlowdown, nvml.SUCCESS
			}
			return 0, nvml.SUCCESS
		}
		dev.MemoryInfo.Used = uint64(i) << 30
	}
}

func TestTelemetryIsExportedAsLintCleanMetrics(t *testing.T) {
	srv := dgxh100.New()
	setTelemetry(srv)
	m := gpu.New(srv, nil)
	reg := prometheus.NewPedanticRegistry()
	if err := gpu.RegisterMetrics(reg, m); err != nil {
		t.Fatal(err)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	want := `
# HELP pouw_gpu_utilization_ratio Fraction of the last sample period in which a kernel ran on the GPU (0-1).
# TYPE pouw_gpu_utilization_ratio gauge
pouw_gpu_utilization_ratio{gpu="0"} 0
pouw_gpu_utilization_ratio{gpu="1"} 0.1
pouw_gpu_utilization_ratio{gpu="2"} 0.2
pouw_gpu_utilization_ratio{gpu="3"} 0.3
pouw_gpu_utilization_ratio{gpu="4"} 0.4
pouw_gpu_utilization_ratio{gpu="5"} 0.5
pouw_gpu_utilization_ratio{gpu="6"} 0.6
pouw_gpu_utilization_ratio{gpu="7"} 0.7
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "pouw_gpu_utilization_ratio"); err != nil {
		t.Error(err)
	}
	for name, want := range map[string]int{
		"pouw_gpu_memory_used_bytes": 8, "pouw_gpu_memory_total_bytes": 8, "pouw_gpu_temperature_celsius": 8,
		"pouw_gpu_power_watts": 8, "pouw_gpu_energy_joules_total": 8, "pouw_gpu_healthy": 8, "pouw_gpu_info": 8,
		"pouw_gpu_clocks_throttled": 8 * (len(gpu.ThrottleReasonNames()) + 1),
	} {
		if got := testutil.CollectAndCount(gpu.NewCollector(m), name); got != want {
			t.Errorf("%s: %d series, want %d", name, got, want)
		}
	}
	tel := m.Telemetry()
	if got := *tel[3].PowerWatts; got != 103 {
		t.Errorf("power of gpu 3 = %v W, want 103 (NVML reports mW)", got)
	}
	if got := *tel[1].EnergyJoules; got != 10_000 {
		t.Errorf("energy of gpu 1 = %v J, want 10000 (NVML reports mJ)", got)
	}
	if got := *tel[2].MemoryUsedBytes; got != 2<<30 {
		t.Errorf("memory used of gpu 2 = %d", got)
	}
	if got := strings.Join(tel[1].ThrottleReasons, ","); got != "sw_power_cap,hw_thermal_slowdown" {
		t.Errorf("throttle reasons of gpu 1 = %q", got)
	}
}

func TestUnsupportedTelemetryIsLeftOutNotZero(t *testing.T) {
	srv := dgxa100.New()
	setTelemetry(srv)
	for _, d := range srv.Devices {
		d.(*server.Device).GetPowerUsageFunc = func() (uint32, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
	}
	m := gpu.New(srv, nil)
	if n := testutil.CollectAndCount(gpu.NewCollector(m), "pouw_gpu_power_watts"); n != 0 {
		t.Errorf("%d power series from GPUs that do not report power", n)
	}
	if n := testutil.CollectAndCount(gpu.NewCollector(m), "pouw_gpu_temperature_celsius"); n != 8 {
		t.Errorf("temperature: %d series", n)
	}
}

func TestLostGPUIsMarkedUnhealthyByTelemetry(t *testing.T) {
	srv := dgxh100.New()
	setTelemetry(srv)
	srv.Devices[6].(*server.Device).GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) {
		return 0, nvml.ERROR_GPU_IS_LOST
	}
	m := gpu.New(srv, nil)
	m.Telemetry()
	if d := m.Devices()[6]; d.Healthy || !strings.Contains(d.UnhealthyReason, "lost") {
		t.Errorf("device 6 = %+v, want unhealthy: lost", d)
	}
	want := "# HELP pouw_gpu_healthy 1 while the GPU is healthy and schedulable, 0 after an XID or ECC error.\n# TYPE pouw_gpu_healthy gauge\n"
	for i := 0; i < 8; i++ {
		v := 1
		if i == 6 {
			v = 0
		}
		want += fmt.Sprintf("pouw_gpu_healthy{gpu=\"%d\"} %d\n", i, v)
	}
	if err := testutil.CollectAndCompare(gpu.NewCollector(m), strings.NewReader(want), "pouw_gpu_healthy"); err != nil {
		t.Error(err)
	}
}

// eventFeed is an NVML event set fed by the test: Wait returns queued events,
// or ERROR_TIMEOUT when none is queued, as the real one does.
type eventFeed struct {
	ch chan nvml.EventData
}

func (f *eventFeed) set() *mock.EventSet {
	return &mock.EventSet{
		WaitFunc: func(ms uint32) (nvml.EventData, nvml.Return) {
			select {
			case e := <-f.ch:
				return e, nvml.SUCCESS
			case <-time.After(time.Duration(ms) * time.Millisecond):
				return nvml.EventData{}, nvml.ERROR_TIMEOUT
			}
		},
		FreeFunc: func() nvml.Return { return nvml.SUCCESS },
	}
}

func watchable(srv *server.Server, feed *eventFeed) {
	srv.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) { return feed.set(), nvml.SUCCESS }
	for _, d := range srv.Devices {
		dev := d.(*server.Device)
		dev.GetSupportedEventTypesFunc = func() (uint64, nvml.Return) {
			return nvml.EventTypeXidCriticalError | nvml.EventTypeDoubleBitEccError | nvml.EventTypeSingleBitEccError | nvml.EventTypePState, nvml.SUCCESS
		}
		dev.RegisterEventsFunc = func(types uint64, _ nvml.EventSet) nvml.Return {
			if types&nvml.EventTypePState != 0 {
				return nvml.ERROR_INVALID_ARGUMENT // only health events are asked for
			}
			return nvml.SUCCESS
		}
	}
}

func TestCriticalXIDMarksThatDeviceUnhealthy(t *testing.T) {
	srv := dgxh100.New()
	feed := &eventFeed{ch: make(chan nvml.EventData, 4)}
	watchable(srv, feed)
	changed := make(chan gpu.Device, 8)
	m := gpu.New(srv, nil, gpu.WithEventWait(10*time.Millisecond), gpu.WithHealthChange(func(d gpu.Device) { changed <- d }))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.WatchHealth(ctx) }()

	// An application XID (13: a user kernel faulted) and a corrected ECC
	// error leave devices alone; XID 79 (fallen off the bus) does not.
	feed.ch <- nvml.EventData{Device: srv.Devices[1], EventType: nvml.EventTypeXidCriticalError, EventData: 13}
	feed.ch <- nvml.EventData{Device: srv.Devices[2], EventType: nvml.EventTypeSingleBitEccError}
	feed.ch <- nvml.EventData{Device: srv.Devices[3], EventType: nvml.EventTypeXidCriticalError, EventData: 79}
	select {
	case d := <-changed:
		if d.Index != 3 || d.Healthy || !strings.Contains(d.UnhealthyReason, "XID 79") {
			t.Fatalf("changed device = %+v, want gpu 3 unhealthy with XID 79", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no health change after XID 79")
	}
	feed.ch <- nvml.EventData{Device: srv.Devices[4], EventType: nvml.EventTypeDoubleBitEccError}
	select {
	case d := <-changed:
		if d.Index != 4 || !strings.Contains(d.UnhealthyReason, "ECC") {
			t.Fatalf("changed device = %+v, want gpu 4 with a double-bit ECC error", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no health change after a double-bit ECC error")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("WatchHealth returned %v, want context.Canceled", err)
	}
	for _, d := range m.Devices() {
		if want := d.Index != 3 && d.Index != 4; d.Healthy != want {
			t.Errorf("gpu %d healthy = %v, want %v (%s)", d.Index, d.Healthy, want, d.UnhealthyReason)
		}
	}
}

func TestHealthLoopSurvivesNVMLErrorsAndPanics(t *testing.T) {
	srv := dgxa100.New()
	feed := &eventFeed{ch: make(chan nvml.EventData)}
	watchable(srv, feed)
	calls := 0
	srv.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) {
		s := feed.set()
		s.WaitFunc = func(uint32) (nvml.EventData, nvml.Return) {
			calls++
			if calls < 3 {
				return nvml.EventData{}, nvml.ERROR_UNKNOWN
			}
			panic("driver bug")
		}
		return s, nvml.SUCCESS
	}
	logger, lines := newCountingLogger()
	m := gpu.New(srv, logger, gpu.WithRetryWait(time.Millisecond))
	if err := m.WatchHealth(t.Context()); err != nil {
		t.Fatalf("WatchHealth after a panic = %v, want nil", err)
	}
	_, out := lines.lines()
	if strings.Count(out, "event wait failed") != 1 || !strings.Contains(out, "panic") {
		t.Errorf("want one wait-failure line and one panic line, got:\n%s", out)
	}
	for _, d := range m.Devices() {
		if !d.Healthy {
			t.Errorf("gpu %d marked unhealthy by a loop error", d.Index)
		}
	}
}
