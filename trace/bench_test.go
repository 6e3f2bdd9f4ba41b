package trace_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/trace"
	"github.com/pouwfarm/pouwfarm/trace/workload"
)

// Benchmarks of issue 5 (figures in bench/trace.md). Sizes: 2^16 and 2^18
// steps; POUW_BENCH_BIG=1 adds 2^20.

func benchSizes() []int {
	s := []int{16, 18}
	if os.Getenv("POUW_BENCH_BIG") == "1" {
		s = append(s, 20)
	}
	return s
}

func benchIntent(b *testing.B, name string, steps uint64) trace.Intent {
	its, err := workload.Intents(name, 1, steps, 1)
	if err != nil {
		b.Fatal(err)
	}
	return its[0]
}

// BenchmarkVMRun is the interpreter alone (no trace kept), in steps/s.
func BenchmarkVMRun(b *testing.B) {
	for _, name := range []string{"fib", "mimc", "poly", "transfers"} {
		for _, lg := range benchSizes() {
			it := benchIntent(b, name, 1<<lg)
			b.Run(fmt.Sprintf("%s/macro/steps=2^%d", name, lg), func(b *testing.B) {
				var steps uint64
				for b.Loop() {
					_, n, err := trace.Run(it.Program, it.Inputs, 1<<40)
					if err != nil {
						b.Fatal(err)
					}
					steps += n
				}
				b.ReportMetric(float64(steps)/b.Elapsed().Seconds(), "steps/s")
			})
		}
	}
}

// BenchmarkTraceGen is Execute (interpreter pass, row filling, batch
// inversion, padding) in bytes of rows written per second, beside
// BenchmarkTraceGen/memcpy of the same number of bytes.
func BenchmarkTraceGen(b *testing.B) {
	for _, lg := range benchSizes() {
		it := benchIntent(b, "mimc", 1<<lg)
		tr, err := trace.Execute(it.Program, it.Inputs, 1<<40)
		if err != nil {
			b.Fatal(err)
		}
		size := int64(len(tr.Cells)) * 8
		tr = nil
		b.Run(fmt.Sprintf("mimc/macro/steps=2^%d", lg), func(b *testing.B) {
			b.SetBytes(size)
			var steps uint64
			defer cpuMetric(b, size)()
			for b.Loop() {
				tr, err := trace.Execute(it.Program, it.Inputs, 1<<40)
				if err != nil {
					b.Fatal(err)
				}
				steps += tr.Header.Steps()
			}
			b.ReportMetric(float64(steps)/b.Elapsed().Seconds(), "steps/s")
		})
		b.Run(fmt.Sprintf("memcpy/macro/steps=2^%d", lg), func(b *testing.B) {
			src := make([]uint64, size/8)
			for i := range src {
				src[i] = uint64(i)
			}
			b.SetBytes(size)
			defer cpuMetric(b, size)()
			for b.Loop() {
				dst := make([]uint64, len(src)) // Execute allocates its rows too
				copy(dst, src)
			}
		})
	}
}

func benchTrace(b *testing.B, lg int) (*trace.Trace, []byte) {
	tr, err := workload.Macro("fib", 1, 1<<lg)
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	buf.Grow(int(trace.EncodedSize(&tr.Header)))
	if err := trace.Encode(&buf, tr); err != nil {
		b.Fatal(err)
	}
	return tr, buf.Bytes()
}

func BenchmarkTraceEncode(b *testing.B) {
	for _, lg := range benchSizes() {
		tr, enc := benchTrace(b, lg)
		b.Run(fmt.Sprintf("fib/macro/steps=2^%d", lg), func(b *testing.B) {
			b.SetBytes(int64(len(enc)))
			dst := &sliceWriter{b: make([]byte, 0, len(enc))}
			defer cpuMetric(b, int64(len(enc)))()
			for b.Loop() {
				dst.b = dst.b[:0]
				if err := trace.Encode(dst, tr); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// sliceWriter appends to a preallocated slice (the encode benchmark's sink:
// it makes Encode copy every byte, as writing to a file or socket would).
type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

func BenchmarkTraceDecode(b *testing.B) {
	for _, lg := range benchSizes() {
		_, enc := benchTrace(b, lg)
		b.Run(fmt.Sprintf("fib/macro/steps=2^%d", lg), func(b *testing.B) {
			b.SetBytes(int64(len(enc)))
			defer cpuMetric(b, int64(len(enc)))()
			for b.Loop() {
				if _, err := trace.Decode(bytes.NewReader(enc), int64(len(enc))); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkTraceHash is trace.Hash (BLAKE3 while streaming the encoding),
// beside b3sum --num-threads 1 hashing the same bytes from a file in the
// same run (its process start is included, under 1% at these sizes).
func BenchmarkTraceHash(b *testing.B) {
	for _, lg := range benchSizes() {
		tr, enc := benchTrace(b, lg)
		want, _ := trace.Hash(tr)
		b.Run(fmt.Sprintf("blake3/macro/steps=2^%d", lg), func(b *testing.B) {
			b.SetBytes(int64(len(enc)))
			// CPU time of this thread too: on a shared machine wall time
			// includes waiting for a core
			defer cpuMetric(b, int64(len(enc)))()
			for b.Loop() {
				if _, err := trace.Hash(tr); err != nil {
					b.Fatal(err)
				}
			}
		})
		bin, err := exec.LookPath("b3sum")
		if err != nil {
			continue
		}
		path := filepath.Join(b.TempDir(), "t.trace")
		if err := os.WriteFile(path, enc, 0o644); err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("b3sum-1thread/macro/steps=2^%d", lg), func(b *testing.B) {
			b.SetBytes(int64(len(enc)))
			var cpu time.Duration
			for b.Loop() {
				c := exec.Command(bin, "--num-threads", "1", "--no-names", path)
				out, err := c.Output()
				if err != nil {
					b.Fatal(err)
				}
				if string(out[:64]) != want.String() {
					b.Fatal("b3sum disagrees with trace.Hash")
				}
				cpu += c.ProcessState.UserTime() + c.ProcessState.SystemTime()
			}
			reportCPU(b, int64(len(enc)), cpu)
		})
	}
}

// cpuMetric locks the benchmark to its OS thread and returns a func that
// reports its throughput per second of that thread's CPU time (cpu-MB/s):
// on a shared machine wall time includes waiting for a core.
func cpuMetric(b *testing.B, size int64) func() {
	runtime.LockOSThread()
	cpu0 := threadCPU()
	return func() {
		reportCPU(b, size, threadCPU()-cpu0)
		runtime.UnlockOSThread()
	}
}

// reportCPU reports MB per second of CPU time (cpu-MB/s).
func reportCPU(b *testing.B, size int64, cpu time.Duration) {
	if cpu > 0 {
		b.ReportMetric(float64(size)*float64(b.N)/cpu.Seconds()/1e6, "cpu-MB/s")
	}
}

// BenchmarkCheck is the executable spec over a whole trace.
func BenchmarkCheck(b *testing.B) {
	tr, err := workload.Macro("mimc", 1, 1<<16)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("mimc/macro/steps=2^16", func(b *testing.B) {
		for b.Loop() {
			if err := trace.Check(tr); err != nil {
				b.Fatal(err)
			}
		}
	})
	_ = pouw.TierMacro
}
