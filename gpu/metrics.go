package gpu

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports a Source's telemetry as Prometheus metrics, read at
// scrape time so no reading is older than the scrape. Labels: `gpu` (the
// NVML index) and, on the throttle metric, `reason` — both bounded.
type Collector struct {
	src Source

	info, util, memUsed, memTotal, temp, power, energy, healthy, throttled *prometheus.Desc
}

// NewCollector returns a collector of src's telemetry.
func NewCollector(src Source) *Collector {
	gpu := []string{"gpu"}
	return &Collector{
		src:       src,
		info:      prometheus.NewDesc("pouw_gpu_info", "Static facts of a GPU; always 1.", []string{"gpu", "uuid", "name", "pci_bus_id", "compute_capability"}, nil),
		util:      prometheus.NewDesc("pouw_gpu_utilization_ratio", "Fraction of the last sample period in which a kernel ran on the GPU (0-1).", gpu, nil),
		memUsed:   prometheus.NewDesc("pouw_gpu_memory_used_bytes", "GPU memory in use, by every process.", gpu, nil),
		memTotal:  prometheus.NewDesc("pouw_gpu_memory_total_bytes", "GPU memory installed.", gpu, nil),
		temp:      prometheus.NewDesc("pouw_gpu_temperature_celsius", "GPU core temperature.", gpu, nil),
		power:     prometheus.NewDesc("pouw_gpu_power_watts", "GPU board power draw.", gpu, nil),
		energy:    prometheus.NewDesc("pouw_gpu_energy_joules_total", "Energy consumed by the GPU since the driver was loaded.", gpu, nil),
		healthy:   prometheus.NewDesc("pouw_gpu_healthy", "1 while the GPU is healthy and schedulable, 0 after an XID or ECC error.", gpu, nil),
		throttled: prometheus.NewDesc("pouw_gpu_clocks_throttled", "1 while the named clock throttle reason is active on the GPU.", []string{"gpu", "reason"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.info, c.util, c.memUsed, c.memTotal, c.temp, c.power, c.energy, c.healthy, c.throttled} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	devs := map[int]Device{}
	for _, d := range c.src.Devices() {
		devs[d.Index] = d
		ch <- prometheus.MustNewConstMetric(c.info, prometheus.GaugeValue, 1, d.Label(), d.UUID, d.Name, d.PCIBusID, d.ComputeCapability)
	}
	for _, t := range c.src.Telemetry() {
		l := fmt.Sprint(t.Index)
		gauge := func(desc *prometheus.Desc, v *float64) {
			if v != nil {
				ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, *v, l)
			}
		}
		gauge(c.util, t.UtilizationRatio)
		gauge(c.temp, t.TemperatureC)
		gauge(c.power, t.PowerWatts)
		if t.MemoryUsedBytes != nil {
			ch <- prometheus.MustNewConstMetric(c.memUsed, prometheus.GaugeValue, float64(*t.MemoryUsedBytes), l)
		}
		ch <- prometheus.MustNewConstMetric(c.memTotal, prometheus.GaugeValue, float64(t.MemoryTotalBytes), l)
		if t.EnergyJoules != nil {
			ch <- prometheus.MustNewConstMetric(c.energy, prometheus.CounterValue, *t.EnergyJoules, l)
		}
		h := 0.0
		if t.Healthy {
			h = 1
		}
		ch <- prometheus.MustNewConstMetric(c.healthy, prometheus.GaugeValue, h, l)
		active := map[string]bool{}
		for _, r := range t.ThrottleReasons {
			active[r] = true
		}
		// Every known reason is exported, 0 or 1, so a dashboard can tell
		// "not throttled" from "not reported"; only devices that report
		// the bitmask at all get the series.
		if t.ThrottleReasons != nil {
			for _, r := range append(ThrottleReasonNames(), "other") {
				v := 0.0
				if active[r] {
					v = 1
				}
				ch <- prometheus.MustNewConstMetric(c.throttled, prometheus.GaugeValue, v, l, r)
			}
		}
	}
}

// RegisterMetrics registers a Collector of src on reg.
func RegisterMetrics(reg prometheus.Registerer, src Source) error {
	if err := reg.Register(NewCollector(src)); err != nil {
		return fmt.Errorf("gpu: register metrics: %w", err)
	}
	return nil
}
