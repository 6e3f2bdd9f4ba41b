package trace_test

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/trace"
	"github.com/pouwfarm/pouwfarm/trace/gl"
)

const fibSrc = `
; r1 = fib(r0)
.inputs 1
.outputs r1
        LI   r1, 0
        LI   r2, 1
        JZ   r0, done
loop:   ADD  r3, r1, r2
        MOV  r1, r2
        MOV  r2, r3
        ADDI r0, r0, -1
        JNZ  r0, loop
done:   HALT
`

// fibRef is fib(n) mod p computed without the VM.
func fibRef(n uint64) uint64 {
	a, b := uint64(0), uint64(1)
	for i := uint64(0); i < n; i++ {
		a, b = b, gl.Add(a, b)
	}
	return a
}

func TestBranchyLoopComputesFibonacci(t *testing.T) {
	p := trace.MustAssemble(fibSrc)
	for _, n := range []uint64{0, 1, 2, 10, 93, 200} {
		tr, err := trace.Execute(p, []uint64{n}, 1<<20)
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		seg := tr.Header.Segments[0]
		if got := seg.Outputs[0]; got != fibRef(n) {
			t.Errorf("fib(%d) = %d, want %d", n, got, fibRef(n))
		}
		wantSteps := uint64(4) // LI, LI, JZ, HALT
		if n > 0 {
			wantSteps = 3 + 5*n + 1
		}
		if seg.Steps() != wantSteps {
			t.Errorf("fib(%d): %d steps, want %d", n, seg.Steps(), wantSteps)
		}
		if err := trace.Check(tr); err != nil {
			t.Fatalf("fib(%d): Check: %v", n, err)
		}
		st, steps, err := trace.Run(p, []uint64{n}, 1<<20)
		if err != nil || steps != wantSteps || st.Regs[1] != fibRef(n) {
			t.Fatalf("Run(fib %d) = %v, %d, %v", n, st.Regs[1], steps, err)
		}
	}
}

func TestStepLimitStopsAnEndlessLoop(t *testing.T) {
	p := trace.MustAssemble("top: JMP top\nHALT")
	_, err := trace.Execute(p, nil, 1000)
	if !errors.Is(err, trace.ErrStepLimit) {
		t.Fatalf("err = %v, want ErrStepLimit", err)
	}
}

func TestExecuteRejectsWrongInputs(t *testing.T) {
	p := trace.MustAssemble(fibSrc)
	for _, in := range [][]uint64{nil, {1, 2}, {gl.P}} {
		if _, err := trace.Execute(p, in, 100); !errors.Is(err, trace.ErrInputs) {
			t.Errorf("inputs %v: err = %v, want ErrInputs", in, err)
		}
	}
}

func TestPaddingRowsCopyTheHaltRow(t *testing.T) {
	tr, err := trace.Execute(trace.MustAssemble(fibSrc), []uint64{3}, 100)
	if err != nil {
		t.Fatal(err)
	}
	e := tr.Header.Segments[0].EndRow
	if tr.Header.Rows != 32 || e != 18 {
		t.Fatalf("rows %d, halt row %d; want 32, 18", tr.Header.Rows, e)
	}
	for i := e + 1; i < tr.Header.Rows; i++ {
		for c := 0; c < trace.Width; c++ {
			if tr.At(i, c) != tr.At(e, c) {
				t.Fatalf("padding row %d column %d differs from the HALT row", i, c)
			}
		}
	}
}

// mutationCaught reports whether err names row (or the transition into it).
func mutationCaught(err error, row uint64) bool {
	var ce *trace.CheckError
	if !errors.As(err, &ce) {
		return false
	}
	for _, v := range ce.Violations {
		if v.Row == int64(row) || (v.Transition && v.Row+1 == int64(row)) {
			return true
		}
	}
	return false
}

// mutateEveryColumn changes one cell per (column, random row) of a valid
// trace and expects Check to name that row.
func mutateEveryColumn(t *testing.T, tr *trace.Trace, rowsPerColumn int, seed uint64) {
	t.Helper()
	if err := trace.Check(tr); err != nil {
		t.Fatalf("unmutated trace fails Check: %v", err)
	}
	r := rand.New(rand.NewPCG(seed, 99))
	names := trace.ColumnNames()
	for c := 0; c < trace.Width; c++ {
		for k := 0; k < rowsPerColumn; k++ {
			row := r.Uint64N(tr.Header.Rows)
			cell := &tr.Cells[row*trace.Width+uint64(c)]
			old := *cell
			// alternate small changes (a bit flip in 0/1 columns, ±1) and
			// random field elements
			switch k % 3 {
			case 0:
				*cell = gl.Add(old, 1)
			case 1:
				*cell = gl.Sub(old, 1)
			default:
				for *cell == old {
					*cell = r.Uint64N(gl.P)
				}
			}
			err := trace.Check(tr)
			if !mutationCaught(err, row) {
				t.Fatalf("column %s row %d: %d -> %d not caught at that row: %v", names[c], row, old, *cell, err)
			}
			*cell = old
		}
	}
	if err := trace.Check(tr); err != nil {
		t.Fatalf("restored trace fails Check: %v", err)
	}
}

func TestSingleCellMutationsAreCaughtAtTheirRow(t *testing.T) {
	tr, err := trace.Execute(trace.MustAssemble(fibSrc), []uint64{7}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	mutateEveryColumn(t, tr, 6, 1)
}

func TestCheckRejectsAForgedOutput(t *testing.T) {
	tr, _ := trace.Execute(trace.MustAssemble(fibSrc), []uint64{5}, 1000)
	tr.Header.Segments[0].Outputs[0] = gl.Add(tr.Header.Segments[0].Outputs[0], 1)
	var ce *trace.CheckError
	if err := trace.Check(tr); !errors.As(err, &ce) || ce.First().Constraint != "output[0]" {
		t.Fatalf("Check = %v, want output[0]", err)
	}
}

func TestCheckRejectsALaterHaltClaim(t *testing.T) {
	tr, _ := trace.Execute(trace.MustAssemble(fibSrc), []uint64{2}, 1000)
	tr.Header.Segments[0].EndRow++ // claim the first padding row as the HALT
	var ce *trace.CheckError
	if err := trace.Check(tr); !errors.As(err, &ce) || ce.First().Constraint != "halt_first" {
		t.Fatalf("Check = %v, want halt_first", err)
	}
}

func TestCheckRejectsWrongMultiplicities(t *testing.T) {
	tr, _ := trace.Execute(trace.MustAssemble(fibSrc), []uint64{2}, 1000)
	m := tr.Header.Multiplicities[0]
	m[0]++
	m[len(m)-1]--
	var ce *trace.CheckError
	if err := trace.Check(tr); !errors.As(err, &ce) || ce.First().Constraint != "multiplicity[0][0]" {
		t.Fatalf("Check = %v, want multiplicity[0][0]", err)
	}
}

func TestCheckRejectsAnotherProgramsExecution(t *testing.T) {
	tr, _ := trace.Execute(trace.MustAssemble(fibSrc), []uint64{4}, 1000)
	other := trace.MustAssemble(fibSrc + "\nHALT") // one more instruction: another program
	tr.Header.Programs[0] = other
	tr.Header.ProgramHashes[0] = other.Hash()
	tr.Header.Multiplicities[0] = append(tr.Header.Multiplicities[0], 0)
	if err := trace.Check(tr); err != nil {
		// the rows still match the common prefix; nothing differs in rows,
		// so this must pass: the program table only grew.
		t.Fatalf("a superset program table should accept the rows: %v", err)
	}
	sub := trace.MustAssemble(`
.inputs 1
.outputs r1
        LI   r1, 0
        LI   r2, 1
        JZ   r0, done
loop:   ADD  r3, r2, r1
        MOV  r1, r2
        MOV  r2, r3
        ADDI r0, r0, -1
        JNZ  r0, loop
done:   HALT
`) // same length, one operand order swapped
	tr.Header.Programs[0] = sub
	tr.Header.ProgramHashes[0] = sub.Hash()
	tr.Header.Multiplicities[0] = tr.Header.Multiplicities[0][:len(sub.Instrs)]
	var ce *trace.CheckError
	if err := trace.Check(tr); !errors.As(err, &ce) || ce.First().Constraint != "lookup" || ce.First().Row != 3 {
		t.Fatalf("Check = %v, want lookup at row 3", err)
	}
}

func TestBatchResetsRegistersAtEachIntent(t *testing.T) {
	p := trace.MustAssemble(fibSrc)
	sq := trace.MustAssemble(".inputs 2\n.outputs r2\nMUL r2, r0, r1\nHALT")
	intents := []trace.Intent{{Program: p, Inputs: []uint64{5}}, {Program: sq, Inputs: []uint64{3, 4}}, {Program: p, Inputs: []uint64{9}}}
	tr, err := trace.Batch(intents, 1000, pouw.TierFull)
	if err != nil {
		t.Fatal(err)
	}
	h := tr.Header
	if len(h.Programs) != 2 || len(h.Segments) != 3 {
		t.Fatalf("%d programs, %d segments", len(h.Programs), len(h.Segments))
	}
	if h.Segments[0].Outputs[0] != fibRef(5) || h.Segments[1].Outputs[0] != 12 || h.Segments[2].Outputs[0] != fibRef(9) {
		t.Fatalf("outputs %v %v %v", h.Segments[0].Outputs, h.Segments[1].Outputs, h.Segments[2].Outputs)
	}
	if h.IntentID != trace.BatchIntentID(h.Segments) {
		t.Fatal("batch intent id not derived from its intents")
	}
	if err := trace.Check(tr); err != nil {
		t.Fatal(err)
	}
	mutateEveryColumn(t, tr, 3, 2)
}
