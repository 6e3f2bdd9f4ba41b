package aggregate

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/consensys/gnark/backend/groth16"
	"github.com/consensys/gnark/frontend"
	"github.com/consensys/gnark/frontend/cs/r1cs"
	stdgroth16 "github.com/consensys/gnark/std/recursion/groth16"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/trace"
)

// Benchmarks (bench/aggregate.md). By default: intent proofs at steps = 2^8
// and aggregation of k = 2 and 4; POUW_BENCH_FULL=1 adds the size classes
// 2^9..2^12 and k = 8, 16. Keys are set up (and cached, see cachedKeys)
// first when missing — minutes to hours on a small machine.
func benchFull() bool { return os.Getenv("POUW_BENCH_FULL") == "1" }

// cpuSeconds is this process's user+system CPU time: on the shared
// development machine wall time depends on the neighbours, CPU time less.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// loopSrc runs n iterations of a 4-instruction loop body: 4n+3 steps.
const loopSrc = `
.inputs 1
.outputs r1
        LI   r1, 1
loop:   MULI r1, r1, 3
        ADDI r1, r1, 1
        ADDI r0, r0, -1
        JNZ  r0, loop
        HALT
`

// fillingTrace is an intent of close to 2^logSteps steps.
func fillingTrace(b testing.TB, logSteps int) *trace.Trace {
	n := (uint64(1)<<logSteps - 3) / 4
	return execute(b, loopSrc, n)
}

func BenchmarkProve(b *testing.B) {
	classes := []int{MinLogSteps}
	if benchFull() {
		classes = []int{8, 9, 10, 11, 12}
	}
	for _, ls := range classes {
		b.Run(fmt.Sprintf("aggregate/macro/steps=%d", 1<<ls), func(b *testing.B) {
			p := Params{LogSteps: ls, ProgLen: DefaultProgLen, K: 2}
			be, err := New(Options{Keys: []*Keys{cachedKeys(b, p)}})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := be.keys[0].proving(); err != nil { // read the keys outside the timing
				b.Fatal(err)
			}
			tr := fillingTrace(b, ls)
			st := macroStatement(b, tr, "bench", "bench")
			var proof []byte
			b.ResetTimer()
			c0 := cpuSeconds()
			for range b.N {
				if proof, err = be.Prove(context.Background(), tr, st); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric((cpuSeconds()-c0)/float64(b.N), "cpu_s/op")
			b.ReportMetric(float64(len(proof)), "proof_bytes")
			b.ReportMetric(float64(be.keys[0].IntentConstraints), "constraints")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6/float64(tr.Header.Steps())*1000, "ms/1000steps")
			t0 := time.Now()
			if err := be.Verify(context.Background(), st, proof); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(time.Since(t0).Microseconds())/1000, "verify_ms")
		})
	}
}

func BenchmarkAggregate(b *testing.B) {
	ks := []int{2, 4}
	if benchFull() {
		ks = []int{2, 4, 8, 16}
	}
	for _, k := range ks {
		b.Run(fmt.Sprintf("aggregate/full/k=%d", k), func(b *testing.B) {
			p := Params{LogSteps: MinLogSteps, ProgLen: DefaultProgLen, K: k}
			be, err := New(Options{Keys: []*Keys{cachedKeys(b, p)}})
			if err != nil {
				b.Fatal(err)
			}
			sts := make([]backends.Statement, k)
			proofs := make([][]byte, k)
			for i := range k {
				tr := execute(b, loopSrc, uint64(10+i))
				sts[i] = macroStatement(b, tr, fmt.Sprintf("child-%d", i), "bench")
				if proofs[i], err = be.Prove(context.Background(), tr, sts[i]); err != nil {
					b.Fatal(err)
				}
			}
			batch := batchStatement("bench-agg", "bench")
			var agg []byte
			b.ResetTimer()
			c0 := cpuSeconds()
			for range b.N {
				if agg, err = be.Aggregate(context.Background(), batch, sts, proofs); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric((cpuSeconds()-c0)/float64(b.N), "cpu_s/op")
			b.ReportMetric(float64(len(agg)), "proof_bytes")
			b.ReportMetric(float64(be.keys[0].AggConstraints), "constraints")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e9/float64(k), "s/child")
			t0 := time.Now()
			if err := be.VerifyAggregate(context.Background(), batch, sts, agg); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(time.Since(t0).Microseconds())/1000, "verify_ms")
		})
	}
}

// BenchmarkProveDummyKey times intent proving for the size classes without
// their (slow) setup: gnark's DummySetup fills a proving key of the right
// shape with one repeated point. The proofs do not verify; steps=256 also
// runs in BenchmarkProve with real keys, for comparison.
func BenchmarkProveDummyKey(b *testing.B) {
	classes := []int{8, 10, 12}
	for _, ls := range classes {
		b.Run(fmt.Sprintf("aggregate/macro/steps=%d", 1<<ls), func(b *testing.B) {
			p := Params{LogSteps: ls, ProgLen: DefaultProgLen, K: 2}
			cs, err := frontend.Compile(innerCurve.ScalarField(), r1cs.NewBuilder, newIntentCircuit(p))
			if err != nil {
				b.Fatal(err)
			}
			pk, err := groth16.DummySetup(cs)
			if err != nil {
				b.Fatal(err)
			}
			tr := fillingTrace(b, ls)
			ss, err := intentStatements(macroStatement(b, tr, "bench", "bench"))
			if err != nil {
				b.Fatal(err)
			}
			d, err := ss[0].digest(p)
			if err != nil {
				b.Fatal(err)
			}
			a, err := intentAssignment(p, tr, 0, &ss[0], d)
			if err != nil {
				b.Fatal(err)
			}
			w, err := frontend.NewWitness(a, innerCurve.ScalarField())
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			c0 := cpuSeconds()
			for range b.N {
				if _, err := groth16.Prove(cs, pk, w, stdgroth16.GetNativeProverOptions(outerCurve.ScalarField(), innerCurve.ScalarField())); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric((cpuSeconds()-c0)/float64(b.N), "cpu_s/op")
			b.ReportMetric(float64(cs.GetNbConstraints()), "constraints")
			b.ReportMetric(float64(cs.GetNbConstraints())/float64(p.Steps()), "constraints/step")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6/float64(tr.Header.Steps())*1000, "ms/1000steps")
		})
	}
}
