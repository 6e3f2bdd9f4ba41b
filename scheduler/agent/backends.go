package agent

import (
	"math/bits"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/scheduler"
	"github.com/pouwfarm/pouwfarm/trace"
)

// GPUProver is implemented by a backend that has a GPU proving path.
type GPUProver interface {
	HasGPUPath() bool
}

// SchedulerBackends describes every backend of reg to the scheduler. A
// backend runs on CPU slots, and on GPU slots too when it implements
// GPUProver. Its estimate, which reads a trace header, is asked about a
// header of the tier with the rows a trace of that many bytes holds: all the
// scheduler knows before the download.
func SchedulerBackends(reg *backends.Registry) []scheduler.Backend {
	var out []scheduler.Backend
	for _, name := range reg.Names() {
		b, err := reg.Get(name)
		if err != nil {
			continue
		}
		kinds := []scheduler.Kind{scheduler.CPU}
		if g, ok := b.(GPUProver); ok && g.HasGPUPath() {
			kinds = append(kinds, scheduler.GPU)
		}
		out = append(out, scheduler.Backend{
			Name:  name,
			Tiers: b.Tiers(),
			Kinds: kinds,
			Estimate: func(tier pouw.JobTier, traceBytes int64, kind scheduler.Kind) scheduler.Resources {
				r := b.Estimate(&trace.Header{Tier: tier, Width: trace.Width, Rows: RowsFor(traceBytes)})
				if kind == scheduler.GPU {
					return scheduler.Resources{MemoryBytes: r.GPUMemoryBytes}
				}
				// Estimate's Cores is how many the prover uses to good
				// effect, not a minimum: any CPU slot can run it.
				return scheduler.Resources{Cores: 1, MemoryBytes: r.MemoryBytes}
			},
		})
	}
	return out
}

// RowsFor is the row count (a power of two) of a trace of n bytes: the
// rows are Width 8-byte cells each, and the header is small beside them.
func RowsFor(n int64) uint64 {
	rows := uint64(max(n, 0)) / (trace.Width * 8)
	if rows <= 1 {
		return 1
	}
	if rows&(rows-1) == 0 {
		return rows
	}
	return 1 << bits.Len64(rows)
}
