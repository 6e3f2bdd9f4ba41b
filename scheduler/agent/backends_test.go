package agent_test

import (
	"slices"
	"testing"

	"github.com/pouwfarm/pouwfarm/backends/stark"
	"github.com/pouwfarm/pouwfarm/backends/stark/air"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/scheduler"
	"github.com/pouwfarm/pouwfarm/scheduler/agent"
	"github.com/pouwfarm/pouwfarm/trace"
)

func TestRowsForIsThePowerOfTwoRowCountOfATrace(t *testing.T) {
	row := int64(trace.Width * 8)
	for _, tc := range []struct {
		bytes int64
		want  uint64
	}{
		{0, 1}, {-5, 1}, {row, 1}, {2 * row, 2}, {3 * row, 4}, {1024*row + 100, 1024}, {1025 * row, 2048},
	} {
		if got := agent.RowsFor(tc.bytes); got != tc.want {
			t.Errorf("RowsFor(%d) = %d, want %d", tc.bytes, got, tc.want)
		}
	}
}

func TestSchedulerBackendsDescribeTheRegistry(t *testing.T) {
	reg := realBackends(t)
	bs := agent.SchedulerBackends(reg)
	if len(bs) != 2 || bs[0].Name != "plonkish" || bs[1].Name != "stark" {
		t.Fatalf("backends = %+v", bs)
	}
	s := bs[1]
	if !slices.Equal(s.Kinds, []scheduler.Kind{scheduler.CPU}) || len(s.Tiers) != 3 {
		t.Errorf("stark: kinds %v tiers %v; want CPU only (no GPU path), every tier", s.Kinds, s.Tiers)
	}
	// The estimate is the backend's, on the rows the trace size implies,
	// and grows with the trace (the claim search relies on it).
	small := s.Estimate(pouw.TierMacro, 64*int64(trace.Width*8), scheduler.CPU)
	big := s.Estimate(pouw.TierMacro, 4096*int64(trace.Width*8), scheduler.CPU)
	if want := stark.MemoryBytes(4096, air.DefaultOptions()); big.MemoryBytes != want || small.MemoryBytes >= big.MemoryBytes || big.Cores != 1 {
		t.Errorf("estimates: small %+v, big %+v, want big memory %d", small, big, want)
	}
}
