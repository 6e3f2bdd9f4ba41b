package stark_test

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/pouwfarm/pouwfarm/backends/stark"
	"github.com/pouwfarm/pouwfarm/backends/stark/air"
	"github.com/pouwfarm/pouwfarm/backends/stark/prover"
	"github.com/pouwfarm/pouwfarm/backends/stark/vmair"
	"github.com/pouwfarm/pouwfarm/trace"
	"github.com/pouwfarm/pouwfarm/trace/workload"
)

// benchSizes are the step counts of the benchmarks: 2^12..2^18, and 2^20
// with POUW_BENCH_FULL=1.
func benchSizes() []int {
	s := []int{12, 14, 16, 18}
	if os.Getenv("POUW_BENCH_FULL") == "1" {
		s = append(s, 20)
	}
	return s
}

// benchTrace is a Macro fib trace whose row count is exactly 2^logSteps
// (the workload is sized a little below so its HALT fits).
func benchTrace(b *testing.B, logSteps int) *trace.Trace {
	b.Helper()
	tr, err := workload.Macro("fib", 1, uint64(1)<<logSteps-8)
	if err != nil {
		b.Fatal(err)
	}
	if tr.Header.Rows != 1<<logSteps {
		b.Fatalf("trace has %d rows, want 2^%d", tr.Header.Rows, logSteps)
	}
	return tr
}

// cpuTime is the process's user+system CPU time: on a shared machine it
// says what the work costs regardless of how much of the cores it got.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// floor times the trace's LDE and Merkle commitment alone: the best wall
// and CPU times of three runs.
func floor(b *testing.B, tr *trace.Trace, blowup int) (wall, cpu time.Duration) {
	cols, err := vmair.Columns(context.Background(), tr)
	if err != nil {
		b.Fatal(err)
	}
	wall, cpu = time.Duration(1<<62), time.Duration(1<<62)
	for range 3 {
		start, c0 := time.Now(), cpuTime()
		if _, err := prover.FloorCommit(context.Background(), cols, blowup); err != nil {
			b.Fatal(err)
		}
		wall, cpu = min(wall, time.Since(start)), min(cpu, cpuTime()-c0)
	}
	return wall, cpu
}

// BenchmarkProve proves Macro traces; it reports the proof size, the CPU
// time, and the ratios to the floor (trace LDE + Merkle commitment of the
// same trace, measured in the same run, best of 3) in wall and CPU time —
// the CPU ratio is the one to trust on a shared machine.
func BenchmarkProve(b *testing.B) {
	be, err := stark.New(stark.Config{})
	if err != nil {
		b.Fatal(err)
	}
	for _, lg := range benchSizes() {
		b.Run(fmt.Sprintf("stark/macro/steps=2^%d", lg), func(b *testing.B) {
			tr := benchTrace(b, lg)
			st := statement(b, tr, "", "")
			fl, flCPU := floor(b, tr, air.DefaultOptions().Blowup)
			var size int
			cpu0 := cpuTime()
			b.ResetTimer()
			for b.Loop() {
				p, err := be.Prove(context.Background(), tr, st)
				if err != nil {
					b.Fatal(err)
				}
				size = len(p)
			}
			cpu := float64(cpuTime()-cpu0) / float64(b.N)
			b.ReportMetric(cpu/1e6, "cpu_ms/op")
			b.ReportMetric(float64(size), "proof_bytes")
			b.ReportMetric(float64(fl.Milliseconds()), "floor_ms")
			b.ReportMetric(float64(flCPU.Milliseconds()), "floor_cpu_ms")
			b.ReportMetric(float64(b.Elapsed())/float64(b.N)/float64(fl), "prove/floor")
			b.ReportMetric(cpu/float64(flCPU), "prove/floor_cpu")
		})
	}
}

// BenchmarkFloor is the floor alone: the trace's LDE and Merkle commitment.
func BenchmarkFloor(b *testing.B) {
	for _, lg := range benchSizes() {
		b.Run(fmt.Sprintf("stark/macro/steps=2^%d", lg), func(b *testing.B) {
			cols, err := vmair.Columns(context.Background(), benchTrace(b, lg))
			if err != nil {
				b.Fatal(err)
			}
			cpu0 := cpuTime()
			for b.Loop() {
				if _, err := prover.FloorCommit(context.Background(), cols, air.DefaultOptions().Blowup); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((cpuTime()-cpu0).Milliseconds())/float64(b.N), "cpu_ms/op")
		})
	}
}

// BenchmarkVerify verifies a proof of a 2^16-step Macro trace.
func BenchmarkVerify(b *testing.B) {
	be, err := stark.New(stark.Config{})
	if err != nil {
		b.Fatal(err)
	}
	for _, lg := range []int{12, 16} {
		b.Run(fmt.Sprintf("stark/macro/steps=2^%d", lg), func(b *testing.B) {
			tr := benchTrace(b, lg)
			st := statement(b, tr, "", "")
			p, err := be.Prove(context.Background(), tr, st)
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				if err := be.Verify(context.Background(), st, p); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(p)), "proof_bytes")
		})
	}
}
