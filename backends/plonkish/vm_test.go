package plonkish_test

import (
	"testing"

	"github.com/pouwfarm/pouwfarm/backends/plonkish"
	"github.com/pouwfarm/pouwfarm/trace"
	"github.com/pouwfarm/pouwfarm/trace/tracetest"
)

const fibSrc = tracetest.FibSource

// every opcode, with wrapping adds, subtractions below zero and big products
const mixSrc = `
.inputs 2
.outputs r5, r6
        LI   r4, 0xffffffff00000000
        ADD  r5, r4, r4
        SUB  r6, r0, r4
        MUL  r7, r4, r4
        MULI r8, r7, 0xfffffffe00000001
        ADDI r9, r8, -5
        MOV  r10, r9
loop:   MUL  r5, r5, r6
        SUB  r6, r6, r1
        ADDI r0, r0, -1
        JZ   r0, out
        JMP  loop
out:    ADD  r15, r5, r10
        HALT
`

func execute(t testing.TB, src string, inputs ...uint64) *trace.Trace {
	t.Helper()
	tr, err := trace.Execute(trace.MustAssemble(src), inputs, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := trace.Check(tr); err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestMockProverAcceptsValidTraces(t *testing.T) {
	for name, tr := range map[string]*trace.Trace{
		"fib": execute(t, fibSrc, 20),
		"mix": execute(t, mixSrc, 5, 3),
	} {
		fails, err := plonkish.MockProve(tr)
		if err != nil {
			t.Fatal(err)
		}
		if len(fails) != 0 {
			t.Fatalf("%s: valid trace fails the circuit: %v", name, fails)
		}
	}
}

func windows(t testing.TB, tr *trace.Trace, w uint64) []*trace.Trace {
	t.Helper()
	ws, err := trace.Slice(tr, w)
	if err != nil {
		t.Fatal(err)
	}
	return ws
}

func TestMockProverAcceptsWindowsAndBatches(t *testing.T) {
	for _, w := range windows(t, execute(t, mixSrc, 9, 4), 16) {
		if fails, err := plonkish.MockProve(w); err != nil || len(fails) != 0 {
			t.Fatalf("window %d: %v %v", w.Header.Segments[0].WindowIndex, err, fails)
		}
	}
	for _, w := range windows(t, execute(t, fibSrc, 3), 1) {
		if fails, err := plonkish.MockProve(w); err != nil || len(fails) != 0 {
			t.Fatalf("W=1 window: %v %v", err, fails)
		}
	}
	b, err := trace.Batch([]trace.Intent{
		{Program: trace.MustAssemble(fibSrc), Inputs: []uint64{7}},
		{Program: trace.MustAssemble(mixSrc), Inputs: []uint64{2, 11}},
		{Program: trace.MustAssemble(fibSrc), Inputs: []uint64{0}},
	}, 1<<16, 2)
	if err != nil {
		t.Fatal(err)
	}
	if fails, err := plonkish.MockProve(b); err != nil || len(fails) != 0 {
		t.Fatalf("batch: %v %v", err, fails)
	}
}

// docs/plonkish.md quotes these numbers: changing the circuit must change
// the docs too.
func TestCircuitShapeMatchesTheDocs(t *testing.T) {
	got := plonkish.CircuitStats()
	want := plonkish.Stats{Advice: 76, Fixed: 1, Instance: 61, GatePolys: 122, ArgumentPolys: 11, LookupInputs: 17, HelperColumns: 9, Degree: 5}
	if got != want {
		t.Fatalf("circuit shape %+v, docs say %+v", got, want)
	}
	for k, size := range map[int]int{9: 7077, 10: 7141} {
		pk, err := be.Keys(k)
		if err != nil {
			t.Fatal(err)
		}
		if pk.VK.ProofSize() != size {
			t.Fatalf("k=%d: proof size %d, docs say %d", k, pk.VK.ProofSize(), size)
		}
	}
}
