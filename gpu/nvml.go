//go:build cgo

package gpu

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// Manager is the NVML-backed Source. It is safe for concurrent use.
type Manager struct {
	lib    nvml.Interface
	log    *slog.Logger
	opts   options
	reason string // non-empty: NVML unavailable, zero devices

	mu      sync.Mutex
	devices []Device
	handles []nvml.Device // handles[i] belongs to devices[i]; nil when discovery failed
}

// New initialises NVML through lib and discovers its devices. It never fails:
// when NVML cannot be initialised (ERROR_LIBRARY_NOT_FOUND on a host without
// the driver) the Manager has zero devices, Unavailable says why, and exactly
// one line is logged. A device that cannot be read is kept, unhealthy, with
// the failing call as its reason.
func New(lib nvml.Interface, logger *slog.Logger, opts ...Option) *Manager {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	o := options{eventWait: time.Second, retryWait: 5 * time.Second}
	WithIgnoredXIDs(13, 31, 43, 45, 68, 109)(&o)
	for _, opt := range opts {
		opt(&o)
	}
	m := &Manager{lib: lib, log: logger, opts: o}
	if ret := lib.Init(); ret != nvml.SUCCESS {
		m.reason = fmt.Sprintf("NVML init: %s", nvmlError(ret))
		if ret == nvml.ERROR_LIBRARY_NOT_FOUND || ret == nvml.ERROR_DRIVER_NOT_LOADED {
			logger.Info("no NVIDIA driver on this host; running CPU-only", "nvml", nvmlError(ret))
		} else {
			logger.Warn("NVML failed to initialise; running CPU-only", "nvml", nvmlError(ret))
		}
		return m
	}
	n, ret := lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		m.reason = fmt.Sprintf("NVML device count: %s", nvmlError(ret))
		logger.Warn("NVML could not count devices; running CPU-only", "nvml", nvmlError(ret))
		return m
	}
	for i := 0; i < n; i++ {
		d, h := discover(lib, i)
		m.devices = append(m.devices, d)
		m.handles = append(m.handles, h)
	}
	logger.Info("NVML devices discovered", "count", n)
	return m
}

// Open is New on the system's NVML library.
func Open(logger *slog.Logger, opts ...Option) Source {
	return New(nvml.New(), logger, opts...)
}

// Close shuts NVML down; the Manager must not be used afterwards.
func (m *Manager) Close() error {
	if m.reason != "" {
		return nil
	}
	if ret := m.lib.Shutdown(); ret != nvml.SUCCESS {
		return fmt.Errorf("gpu: NVML shutdown: %w", ret)
	}
	return nil
}

// Unavailable is empty when NVML initialised, or says why it did not.
func (m *Manager) Unavailable() string { return m.reason }

// Devices returns a copy of the discovered devices with their health.
func (m *Manager) Devices() []Device {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Device(nil), m.devices...)
}

// MarkUnhealthy takes a device out of service with a reason (the health loop
// calls it; so may an operator tool). Marking an already unhealthy device
// keeps its first reason.
func (m *Manager) MarkUnhealthy(index int, reason string) {
	m.mu.Lock()
	var changed *Device
	for i := range m.devices {
		if m.devices[i].Index == index && m.devices[i].Healthy {
			m.devices[i].Healthy = false
			m.devices[i].UnhealthyReason = reason
			d := m.devices[i]
			changed = &d
		}
	}
	m.mu.Unlock()
	if changed != nil {
		m.log.Warn("GPU marked unhealthy; it takes no more jobs", "gpu", index, "uuid", changed.UUID, "reason", reason)
		if m.opts.onHealthChange != nil {
			m.opts.onHealthChange(*changed)
		}
	}
}

// discover reads one device's static facts. Any failure leaves the device
// unhealthy with the call that failed as the reason.
func discover(lib nvml.Interface, i int) (Device, nvml.Device) {
	d := Device{Index: i, Healthy: true}
	fail := func(call string, ret nvml.Return) {
		if d.Healthy {
			d.Healthy = false
			d.UnhealthyReason = fmt.Sprintf("discovery: %s: %s", call, nvmlError(ret))
		}
	}
	h, ret := lib.DeviceGetHandleByIndex(i)
	if ret != nvml.SUCCESS {
		fail("DeviceGetHandleByIndex", ret)
		return d, nil
	}
	if idx, ret := h.GetIndex(); ret == nvml.SUCCESS {
		d.Index = idx
	}
	if d.UUID, ret = h.GetUUID(); ret != nvml.SUCCESS {
		fail("GetUUID", ret)
	}
	if d.Name, ret = h.GetName(); ret != nvml.SUCCESS {
		fail("GetName", ret)
	}
	if pci, ret := h.GetPciInfo(); ret == nvml.SUCCESS {
		d.PCIBusID = cString(pci.BusId[:])
	}
	if mem, ret := h.GetMemoryInfo(); ret == nvml.SUCCESS {
		d.MemoryTotalBytes, d.MemoryUsedBytes = mem.Total, mem.Used
	} else {
		fail("GetMemoryInfo", ret)
	}
	if major, minor, ret := h.GetCudaComputeCapability(); ret == nvml.SUCCESS {
		d.ComputeCapability = formatCC(major, minor)
	} else {
		fail("GetCudaComputeCapability", ret)
	}
	// GPUs without MIG answer ERROR_NOT_SUPPORTED: MIG is simply off.
	if cur, _, ret := h.GetMigMode(); ret == nvml.SUCCESS {
		d.MIGEnabled = cur == nvml.DEVICE_MIG_ENABLE
	}
	return d, h
}

// Telemetry reads every device's counters now. A device that answers
// ERROR_GPU_IS_LOST is marked unhealthy.
func (m *Manager) Telemetry() []Telemetry {
	m.mu.Lock()
	devs := append([]Device(nil), m.devices...)
	handles := append([]nvml.Device(nil), m.handles...)
	m.mu.Unlock()
	out := make([]Telemetry, 0, len(devs))
	for i, d := range devs {
		t := Telemetry{Index: d.Index, UUID: d.UUID, MemoryTotalBytes: d.MemoryTotalBytes, Healthy: d.Healthy}
		h := handles[i]
		if h == nil {
			out = append(out, t)
			continue
		}
		lost := false
		ok := func(ret nvml.Return) bool {
			if ret == nvml.ERROR_GPU_IS_LOST {
				lost = true
			}
			return ret == nvml.SUCCESS
		}
		if u, ret := h.GetUtilizationRates(); ok(ret) {
			t.UtilizationRatio = ptr(float64(u.Gpu) / 100)
		}
		if mem, ret := h.GetMemoryInfo(); ok(ret) {
			t.MemoryUsedBytes = ptr(mem.Used)
		}
		if c, ret := h.GetTemperature(nvml.TEMPERATURE_GPU); ok(ret) {
			t.TemperatureC = ptr(float64(c))
		}
		if mw, ret := h.GetPowerUsage(); ok(ret) {
			t.PowerWatts = ptr(float64(mw) / 1000)
		}
		if mj, ret := h.GetTotalEnergyConsumption(); ok(ret) {
			t.EnergyJoules = ptr(float64(mj) / 1000)
		}
		if mask, ret := h.GetCurrentClocksEventReasons(); ok(ret) {
			t.ThrottleReasons = append([]string{}, DecodeThrottleReasons(mask)...)
		}
		if lost {
			m.MarkUnhealthy(d.Index, "GPU is lost (NVML ERROR_GPU_IS_LOST)")
			t.Healthy = false
		}
		out = append(out, t)
	}
	return out
}

// healthEvents are the NVML events that can make a device unhealthy.
const healthEvents = nvml.EventTypeXidCriticalError | nvml.EventTypeDoubleBitEccError | nvml.EventTypeSingleBitEccError

// WatchHealth marks devices unhealthy on critical XID and double-bit ECC
// events until ctx is done. It never crashes the process: NVML errors are
// logged and retried, and a device that cannot deliver events is simply not
// watched (said once in the log). It returns ctx.Err() when cancelled, or nil
// at once when there is nothing to watch.
func (m *Manager) WatchHealth(ctx context.Context) (err error) {
	if m.reason != "" {
		return nil
	}
	defer func() {
		// A binding that panics (a nil mock function, a driver bug surfacing
		// through cgo) must not take the farm down with it.
		if r := recover(); r != nil {
			m.log.Error("GPU health loop stopped after a panic; devices are no longer watched", "panic", fmt.Sprint(r))
			err = nil
		}
	}()
	set, ret := m.lib.EventSetCreate()
	if ret != nvml.SUCCESS {
		m.log.Warn("cannot create an NVML event set; GPU health is not watched", "nvml", nvmlError(ret))
		return nil
	}
	defer set.Free()

	m.mu.Lock()
	devs := append([]Device(nil), m.devices...)
	handles := append([]nvml.Device(nil), m.handles...)
	m.mu.Unlock()
	byUUID := map[string]int{}
	watched := 0
	for i, h := range handles {
		if h == nil {
			continue
		}
		byUUID[devs[i].UUID] = devs[i].Index
		supported, ret := h.GetSupportedEventTypes()
		if ret != nvml.SUCCESS {
			m.log.Info("GPU reports no health events; not watched", "gpu", devs[i].Index, "nvml", nvmlError(ret))
			continue
		}
		if ret := h.RegisterEvents(supported&healthEvents, set); ret != nvml.SUCCESS {
			m.log.Info("cannot register GPU health events; not watched", "gpu", devs[i].Index, "nvml", nvmlError(ret))
			continue
		}
		watched++
	}
	if watched == 0 {
		return nil
	}

	waitMs := uint32(m.opts.eventWait / time.Millisecond)
	var lastErr nvml.Return = nvml.SUCCESS
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		e, ret := set.Wait(waitMs)
		switch {
		case ret == nvml.ERROR_TIMEOUT:
			continue
		case ret != nvml.SUCCESS:
			// Log each distinct error once, then back off: a flapping
			// driver must not flood the log or spin a core.
			if ret != lastErr {
				m.log.Warn("NVML event wait failed; retrying", "nvml", nvmlError(ret))
				lastErr = ret
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(m.opts.retryWait):
			}
			continue
		}
		lastErr = nvml.SUCCESS
		m.handleEvent(e, byUUID)
	}
}

func (m *Manager) handleEvent(e nvml.EventData, byUUID map[string]int) {
	var reason string
	switch e.EventType {
	case nvml.EventTypeXidCriticalError:
		if m.opts.ignoredXIDs[e.EventData] {
			m.log.Info("application XID on GPU; device stays healthy", "xid", e.EventData)
			return
		}
		reason = fmt.Sprintf("XID %d critical error", e.EventData)
	case nvml.EventTypeDoubleBitEccError:
		reason = "double-bit ECC error"
	default:
		// Single-bit ECC errors are corrected by the hardware: worth a log
		// line, not worth taking the GPU away.
		m.log.Info("corrected GPU event", "event_type", e.EventType)
		return
	}
	// An event without a device concerns them all (NVML reports some XIDs
	// that way).
	if e.Device == nil {
		for _, idx := range byUUID {
			m.MarkUnhealthy(idx, reason)
		}
		return
	}
	uuid, ret := e.Device.GetUUID()
	idx, known := byUUID[uuid]
	if ret != nvml.SUCCESS || !known {
		for _, idx := range byUUID {
			m.MarkUnhealthy(idx, reason+" on an unidentified device")
		}
		return
	}
	m.MarkUnhealthy(idx, reason)
}

func nvmlError(ret nvml.Return) string {
	return ret.Error()
}

// cString converts a NUL-terminated C char array.
func cString(b []int8) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		out = append(out, byte(c))
	}
	return string(out)
}

func ptr[T any](v T) *T { return &v }

var _ Source = (*Manager)(nil)
