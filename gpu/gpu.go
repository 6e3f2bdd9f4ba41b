// Package gpu discovers the NVIDIA GPUs of this host through NVML
// (github.com/NVIDIA/go-nvml), reads their telemetry, watches their health
// events and exports both as Prometheus metrics.
//
// NVML is injected (New takes an nvml.Interface), so tests run against
// go-nvml's mock servers. A host without the NVIDIA driver, or a build without
// cgo, has zero GPUs: the farm keeps running CPU-only and says so in one log
// line. The package is shaped after NVIDIA/k8s-device-plugin's internal/rm:
// a small Source interface, an NVML implementation and a null one.
//
// It imports nothing of this module: the scheduler consumes it, never the
// reverse, and it must not import scheduler, coordinator or backends.
package gpu

import (
	"fmt"
	"strconv"
)

// Device is one GPU as discovered, with its current health. Memory figures
// are bytes.
type Device struct {
	Index            int    `json:"index"`
	UUID             string `json:"uuid"`
	Name             string `json:"name"`
	PCIBusID         string `json:"pci_bus_id,omitempty"`
	MemoryTotalBytes uint64 `json:"memory_total_bytes"`
	MemoryUsedBytes  uint64 `json:"memory_used_bytes"`
	// ComputeCapability is CUDA's "major.minor", e.g. "9.0" for Hopper.
	ComputeCapability string `json:"compute_capability"`
	// MIGEnabled reports the current MIG mode. The scheduler does not place
	// work on MIG instances, so it excludes such a GPU with that reason.
	MIGEnabled bool `json:"mig_enabled"`
	Healthy    bool `json:"healthy"`
	// UnhealthyReason says why Healthy is false (an XID, an ECC error, a
	// discovery failure).
	UnhealthyReason string `json:"unhealthy_reason,omitempty"`
}

// Label is the value of the `gpu` label on this device's metrics: its NVML
// index, which is bounded by the number of GPUs on the host.
func (d Device) Label() string { return strconv.Itoa(d.Index) }

// Telemetry is one reading of a device's counters. A nil field is one the
// device or driver does not report (NVML's ERROR_NOT_SUPPORTED); it is left
// out of the metrics rather than exported as zero.
type Telemetry struct {
	Index int    `json:"index"`
	UUID  string `json:"uuid"`
	// UtilizationRatio is the fraction (0-1) of the last sample period in
	// which a kernel was running.
	UtilizationRatio *float64 `json:"utilization_ratio,omitempty"`
	MemoryUsedBytes  *uint64  `json:"memory_used_bytes,omitempty"`
	MemoryTotalBytes uint64   `json:"memory_total_bytes"`
	TemperatureC     *float64 `json:"temperature_celsius,omitempty"`
	PowerWatts       *float64 `json:"power_watts,omitempty"`
	// EnergyJoules is the energy consumed since the driver was loaded.
	EnergyJoules *float64 `json:"energy_joules,omitempty"`
	// ThrottleReasons names the active clock throttle (NVML "clocks event")
	// reasons; empty when clocks run free or the field is unsupported.
	ThrottleReasons []string `json:"throttle_reasons,omitempty"`
	Healthy         bool     `json:"healthy"`
}

// Source is what the farm reads from a provider of GPUs: the devices with
// their health, and their telemetry. Both return copies.
type Source interface {
	// Devices returns every GPU discovered, healthy or not.
	Devices() []Device
	// Telemetry reads every device's counters now.
	Telemetry() []Telemetry
	// Unavailable is empty when NVML works, or says why there are no GPUs.
	Unavailable() string
}

// Null is the Source of a host without usable NVML: zero GPUs, and the reason.
type Null struct{ Reason string }

// Devices returns no devices.
func (Null) Devices() []Device { return nil }

// Telemetry returns no readings.
func (Null) Telemetry() []Telemetry { return nil }

// Unavailable returns the reason there are no GPUs.
func (n Null) Unavailable() string {
	if n.Reason == "" {
		return "no NVML"
	}
	return n.Reason
}

// throttleReasonNames maps NVML's clocks-event reason bits (nvml.h,
// nvmlClocksEventReason*) to the `reason` label of pouw_gpu_clocks_throttled.
// Kept here, not taken from go-nvml, so the no-cgo build has them too.
var throttleReasonNames = []struct {
	bit  uint64
	name string
}{
	{0x1, "gpu_idle"},
	{0x2, "applications_clocks_setting"},
	{0x4, "sw_power_cap"},
	{0x8, "hw_slowdown"},
	{0x10, "sync_boost"},
	{0x20, "sw_thermal_slowdown"},
	{0x40, "hw_thermal_slowdown"},
	{0x80, "hw_power_brake_slowdown"},
	{0x100, "display_clock_setting"},
}

// ThrottleReasonNames lists every value the `reason` label can take.
func ThrottleReasonNames() []string {
	out := make([]string, len(throttleReasonNames))
	for i, r := range throttleReasonNames {
		out[i] = r.name
	}
	return out
}

// DecodeThrottleReasons turns NVML's clocks-event bitmask into reason names;
// unknown bits are reported as "other".
func DecodeThrottleReasons(mask uint64) []string {
	var out []string
	for _, r := range throttleReasonNames {
		if mask&r.bit != 0 {
			out = append(out, r.name)
			mask &^= r.bit
		}
	}
	if mask != 0 {
		out = append(out, "other")
	}
	return out
}

// formatCC formats a CUDA compute capability.
func formatCC(major, minor int) string { return fmt.Sprintf("%d.%d", major, minor) }
