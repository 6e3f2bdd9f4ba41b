package plonkish_test

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/pouwfarm/pouwfarm/backends/plonkish"
	"github.com/pouwfarm/pouwfarm/trace"
)

// microWindow returns the first window of W = 2^(k-1) steps of a long
// Fibonacci run: the largest window a circuit of 2^k rows holds.
func microWindow(b testing.TB, k int) *trace.Trace {
	w := uint64(1) << (k - 1)
	src := execute(b, fibSrc, w) // 5 steps per iteration: more than w steps
	return windows(b, src, w)[0]
}

// cpuTime is the process's user+system CPU time: on a shared, loaded
// machine it measures our work where wall time measures the neighbours too.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration) float64 {
	s := (cpuTime() - start).Seconds() / float64(b.N)
	b.ReportMetric(s, "cpu-s/op")
	return s
}

func benchKs() []int {
	ks := []int{10, 11, 12, 13}
	if os.Getenv("POUW_BENCH_FULL") == "1" {
		ks = append(ks, 14, 15, 16)
	}
	return ks
}

func BenchmarkProve(b *testing.B) {
	ctx := context.Background()
	// the default Micro job: a window of 16 steps (k = 9)
	w16 := windows(b, execute(b, fibSrc, 50), 16)[3]
	st16 := statement(b, w16, "job", "prover")
	if _, err := be.Prove(ctx, w16, st16); err != nil { // keys outside the timing
		b.Fatal(err)
	}
	b.Run("plonkish/micro/steps=16", func(b *testing.B) {
		c0 := cpuTime()
		var proof []byte
		var err error
		for b.Loop() {
			if proof, err = be.Prove(ctx, w16, st16); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, c0)
		b.ReportMetric(float64(len(proof)), "proof_bytes")
	})
	for _, k := range benchKs() {
		w := microWindow(b, k)
		st := statement(b, w, "", "")
		if err := be.WarmProver(k); err != nil { // keygen outside the timings
			b.Fatal(err)
		}
		var proof []byte
		var err error
		var floorNs, floorCPU float64
		// the floor first, so the prove line can print prove/floor (by wall
		// time and by CPU time)
		b.Run(fmt.Sprintf("floor/micro/k=%d", k), func(b *testing.B) {
			c0 := cpuTime()
			for b.Loop() {
				if err := be.Floor(w); err != nil {
					b.Fatal(err)
				}
			}
			floorNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			floorCPU = reportCPU(b, c0)
		})
		b.Run(fmt.Sprintf("plonkish/micro/k=%d", k), func(b *testing.B) {
			c0 := cpuTime()
			for b.Loop() {
				if proof, err = be.Prove(ctx, w, st); err != nil {
					b.Fatal(err)
				}
			}
			cpu := reportCPU(b, c0)
			b.ReportMetric(float64(len(proof)), "proof_bytes")
			b.ReportMetric(float64(w.Header.Rows), "steps")
			if floorNs > 0 {
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/floorNs, "prove/floor")
				b.ReportMetric(cpu/floorCPU, "cpu_prove/floor")
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	ctx := context.Background()
	w16 := windows(b, execute(b, fibSrc, 50), 16)[3]
	st16 := statement(b, w16, "job", "prover")
	p16, err := be.Prove(ctx, w16, st16)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("plonkish/micro/steps=16", func(b *testing.B) {
		c0 := cpuTime()
		for b.Loop() {
			if err := be.Verify(ctx, st16, p16); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, c0)
		b.ReportMetric(float64(len(p16)), "proof_bytes")
	})
	for _, k := range benchKs() {
		w := microWindow(b, k)
		st := statement(b, w, "", "")
		proof, err := be.Prove(ctx, w, st)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("plonkish/micro/k=%d", k), func(b *testing.B) {
			c0 := cpuTime()
			for b.Loop() {
				if err := be.Verify(ctx, st, proof); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, c0)
			b.ReportMetric(float64(len(proof)), "proof_bytes")
		})
	}
}

// BenchmarkKeygen: what the first proof or verification at a size pays
// once per process (generators by hash-to-curve, their Lagrange basis,
// fixed-column commitments).
func BenchmarkKeygen(b *testing.B) {
	for _, k := range append([]int{9}, benchKs()...) {
		// what a verifier derives: generators, fixed-column commitments
		b.Run(fmt.Sprintf("plonkish/verifier/k=%d", k), func(b *testing.B) {
			c0 := cpuTime()
			for b.Loop() {
				if _, err := plonkish.New(plonkish.Options{}).Keys(k); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, c0)
		})
		// a prover also derives the Lagrange-basis generators
		b.Run(fmt.Sprintf("plonkish/prover/k=%d", k), func(b *testing.B) {
			c0 := cpuTime()
			for b.Loop() {
				if err := plonkish.New(plonkish.Options{}).WarmProver(k); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, c0)
		})
	}
}
