package aggregate

import (
	"testing"

	"github.com/consensys/gnark-crypto/ecc"
	"github.com/consensys/gnark/frontend"
	"github.com/consensys/gnark/frontend/cs/r1cs"
	"github.com/consensys/gnark/test"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/trace"
	"github.com/pouwfarm/pouwfarm/trace/tracetest"
)

const fibSrc = tracetest.FibSource

// mixSrc exercises every opcode, wrap-around included.
const mixSrc = `
.inputs 2
.outputs r5, r4
        SUB  r2, r1, r0
        MUL  r3, r2, r2
        MULI r4, r3, -3
        ADDI r4, r4, 7
        LI   r5, 0xfffffffe00000002
        ADD  r5, r5, r4
        JMP  skip
        LI   r5, 99
skip:   MOV  r6, r5
        JZ   r7, end
        HALT
end:    HALT
`

func macroStatement(t testing.TB, tr *trace.Trace, job, prover string) backends.Statement {
	t.Helper()
	th, err := trace.Hash(tr)
	if err != nil {
		t.Fatal(err)
	}
	return backends.Statement{Header: &tr.Header, TraceHash: th, JobID: job, ProverID: prover}
}

func execute(t testing.TB, src string, inputs ...uint64) *trace.Trace {
	t.Helper()
	tr, err := trace.Execute(trace.MustAssemble(src), inputs, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Header.Tier != pouw.TierMacro {
		t.Fatal("not macro")
	}
	return tr
}

func TestIntentCircuitIsSatisfiedByValidTraces(t *testing.T) {
	p := Params{LogSteps: 8, ProgLen: DefaultProgLen, K: 2}
	cs, err := frontend.Compile(ecc.BLS12_377.ScalarField(), r1cs.NewBuilder, newIntentCircuit(p))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%v: %d constraints, %.1f per step", p, cs.GetNbConstraints(), float64(cs.GetNbConstraints())/float64(p.Steps()))
	for name, tr := range map[string]*trace.Trace{
		"fib10": execute(t, fibSrc, 10),
		"fib0":  execute(t, fibSrc, 0),
		"mix":   execute(t, mixSrc, 5, 1),
	} {
		st := macroStatement(t, tr, "job", "prover")
		ss, err := intentStatements(st)
		if err != nil {
			t.Fatal(err)
		}
		d, err := ss[0].digest(p)
		if err != nil {
			t.Fatal(err)
		}
		a, err := intentAssignment(p, tr, 0, &ss[0], d)
		if err != nil {
			t.Fatal(err)
		}
		if err := test.IsSolved(newIntentCircuit(p), a, ecc.BLS12_377.ScalarField()); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		// A wrong output must not solve.
		bad := ss[0]
		r := tr.Header.Programs[0].Outputs[0]
		bad.out[r]++
		a.Out[r] = bad.out[r]
		if d2, err := bad.digest(p); err == nil {
			a.Digest = d2
		}
		if err := test.IsSolved(newIntentCircuit(p), a, ecc.BLS12_377.ScalarField()); err == nil {
			t.Errorf("%s: forged output solves", name)
		}
	}
}
