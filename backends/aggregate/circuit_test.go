package aggregate

import (
	"math/big"
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
	// docs/aggregate.md gives 24,211 at 2^8 (57 per step + ≈ 9.6k fixed);
	// a change that costs more per step should say so there.
	if n := cs.GetNbConstraints(); n > 24211 {
		t.Errorf("%d constraints at 2^8, docs/aggregate.md says 24,211", n)
	}
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

// gadgetSrc: r2 = 2 · 0x7fffffff80000003 = p + 5, so its MUL row has the
// quotient q = 1 and the remainder 5; then r3 = r0 − r2 wraps, and r6 =
// p − 1 is the largest canonical value (its high half is 2^32 − 1).
const gadgetSrc = `
.inputs 2
.outputs r2, r3
        MUL  r2, r0, r1
        SUB  r3, r0, r2
        MOV  r4, r3
        ADDI r6, r7, -1
        JZ   r5, end
        HALT
end:    HALT
`

// solvedAssignment returns a satisfying assignment of src's trace for p.
func solvedAssignment(t *testing.T, p Params, src string, inputs ...uint64) *intentCircuit {
	t.Helper()
	tr := execute(t, src, inputs...)
	ss, err := intentStatements(macroStatement(t, tr, "job", "prover"))
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
		t.Fatalf("valid assignment: %v", err)
	}
	return a
}

// Every gadget of the intent circuit rejects a witness that breaks it: each
// case changes a valid assignment in one place (with compensating changes
// where a cheaper check would otherwise catch it first).
func TestIntentCircuitGadgetsRejectBadWitnesses(t *testing.T) {
	p := Params{LogSteps: 8, ProgLen: 8, K: 2}
	rMinus1 := new(big.Int).Sub(ecc.BLS12_377.ScalarField(), big.NewInt(1)) // −1 in the native field
	for name, mutate := range map[string]func(a *intentCircuit){
		// Goldilocks arithmetic (row 0: MUL, q = 1, vd = 5).
		"non-canonical remainder (q−1, vd+p)": func(a *intentCircuit) {
			// vd + p = 0xffffffff00000006: hi = 2^32−1 with lo ≠ 0.
			// The canonical product cannot give lo = 6 with hi = 2^32 − 1,
			// whatever m.
			for j := range a.Rows[0].Vd {
				a.Rows[0].Vd[j] = uint64(0xffffffff00000006 >> (8 * (j + 1)) & 0xff)
			}
			a.Rows[0].M = 12345
		},
		"wrong quotient (q+2^8)":     func(a *intentCircuit) { a.Rows[0].Q[0] = 1 },
		"remainder off by 2^8":       func(a *intentCircuit) { a.Rows[0].Vd[0] = 1 },
		"quotient limb out of range": func(a *intentCircuit) { a.Rows[0].Q[0], a.Rows[0].Q[1] = 256, rMinus1 },
		"wrong canonical witness m":  func(a *intentCircuit) { a.Rows[0].M = 6 },
		"remainder limb out of range (same value)": func(a *intentCircuit) {
			// byte 1 = 2^8 and byte 2 = −1 keep vd: neither is a byte.
			a.Rows[0].Vd[0], a.Rows[0].Vd[1] = 256, rMinus1
		},
		"wrong operand read":          func(a *intentCircuit) { a.Rows[1].Va = 3 },
		"wrong old value of rd":       func(a *intentCircuit) { a.Rows[1].Old = 1 },
		"stale timestamp gap":         func(a *intentCircuit) { a.Rows[2].Gap[0][0] = 1 },
		"timestamp limb out of range": func(a *intentCircuit) { a.Rows[2].Gap[0][0], a.Rows[2].Gap[0][1] = 256, rMinus1 },
		"wrong final value":           func(a *intentCircuit) { a.FinalV[5] = 1 },
		"wrong final time":            func(a *intentCircuit) { a.FinalT[9] = 1 },
		// MOV r4, r3 as rd = 20, ra = 2 keeps the word; register 20 does
		// not exist.
		"register index out of range": func(a *intentCircuit) { a.Rows[2].Rd, a.Rows[2].Ra = 20, 2 },
		"wrong immediate":             func(a *intentCircuit) { a.Rows[4].Imm = 4 },
		"two opcode flags": func(a *intentCircuit) {
			a.Rows[2].F[trace.OpADD] = 1
		},
		"no opcode flag (HALT) on a MOV row": func(a *intentCircuit) { a.Rows[2].F[trace.OpMOV] = 0 },
		"non-boolean flag":                   func(a *intentCircuit) { a.Rows[2].F[trace.OpMOV], a.Rows[2].F[trace.OpMUL] = 2, rMinus1 },
		"start value":                        func(a *intentCircuit) { a.Start[7] = 1 },
	} {
		t.Run(name, func(t *testing.T) {
			a := solvedAssignment(t, p, gadgetSrc, 2, 0x7fffffff80000003)
			mutate(a)
			err := test.IsSolved(newIntentCircuit(p), a, ecc.BLS12_377.ScalarField())
			if err == nil {
				t.Fatal("tampered witness solves")
			}
			t.Logf("%.200s", err)
		})
	}
}
