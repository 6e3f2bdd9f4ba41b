package trace_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zeebo/blake3"

	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/trace"
)

// The trace test vectors of docs/test-vectors (trace-*): fixed programs and
// inputs, their encodings, pinned hashes, and invalid traces with the
// violation Check must report. POUW_UPDATE_VECTORS=1 rewrites the files.

const vectorDir = "../docs/test-vectors"

type traceVector struct {
	Name        string    `json:"name"`
	File        string    `json:"file"`
	Tier        string    `json:"tier"`
	Rows        uint64    `json:"rows"`
	Steps       uint64    `json:"steps"`
	TraceHash   pouw.Hash `json:"trace_hash"`
	Valid       bool      `json:"valid"`
	ExpectRow   *int64    `json:"expect_row,omitempty"`
	ExpectCheck string    `json:"expect_constraint,omitempty"`
	Note        string    `json:"note"`
}

type programVector struct {
	Name        string    `json:"name"`
	Source      string    `json:"source"`
	File        string    `json:"file"`
	ProgramHash pouw.Hash `json:"program_hash"`
}

type vectorFile struct {
	About    string          `json:"about"`
	Programs []programVector `json:"programs"`
	Traces   []traceVector   `json:"traces"`
}

// buildVectors makes every vector from code.
func buildVectors(t *testing.T) (map[string][]byte, vectorFile) {
	t.Helper()
	files := map[string][]byte{}
	vf := vectorFile{About: "pouw VM v1 trace vectors: see docs/test-vectors/README.md"}
	fibText, err := os.ReadFile(filepath.Join(vectorDir, "trace-fib.s"))
	if err != nil {
		t.Fatal(err)
	}
	fib, err := trace.Assemble(string(fibText))
	if err != nil {
		t.Fatal(err)
	}
	sq := trace.MustAssemble(".inputs 2\n.outputs r2\nMUL r2, r0, r1\nHALT")
	enc, _ := fib.MarshalBinary()
	files["trace-fib.prog"] = enc
	vf.Programs = append(vf.Programs, programVector{Name: "fib", Source: "trace-fib.s", File: "trace-fib.prog", ProgramHash: fib.Hash()})

	add := func(name, note string, tr *trace.Trace, mutate func(*trace.Trace)) {
		if mutate != nil {
			mutate(tr)
		}
		var buf bytes.Buffer
		if err := trace.Encode(&buf, tr); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		file := "trace-" + name + ".trace"
		files[file] = buf.Bytes()
		v := traceVector{Name: name, File: file, Tier: tr.Header.Tier.String(), Rows: tr.Header.Rows, Steps: tr.Header.Steps(),
			TraceHash: pouw.Hash(blake3.Sum256(buf.Bytes())), Valid: true, Note: note}
		var ce *trace.CheckError
		if err := trace.Check(tr); errors.As(err, &ce) {
			v.Valid = false
			row := ce.First().Row
			v.ExpectRow, v.ExpectCheck = &row, ce.First().Constraint
		} else if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		vf.Traces = append(vf.Traces, v)
	}
	exec := func() *trace.Trace {
		tr, err := trace.Execute(fib, []uint64{5}, 1000)
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	add("fib-macro", "fib(5): trace-fib.s on input 5, output r1 = 5", exec(), nil)
	macro := exec()
	win, err := trace.Window(macro, 8, 1)
	if err != nil {
		t.Fatal(err)
	}
	add("fib-micro", "window 1 (W=8) of fib-macro", win, nil)
	full, err := trace.Batch([]trace.Intent{{Program: fib, Inputs: []uint64{3}}, {Program: sq, Inputs: []uint64{6, 7}}}, 1000, pouw.TierFull)
	if err != nil {
		t.Fatal(err)
	}
	add("batch-full", "batch of fib(3) then r2 = r0*r1 on (6, 7)", full, nil)
	add("fib-bad-vd", "fib-macro with vd + 1 in row 4 (MOV r1, r2)", exec(), func(tr *trace.Trace) {
		tr.Cells[4*trace.Width+trace.ColVD]++
	})
	add("fib-bad-reg", "fib-macro with r3 of row 9 + 1 (breaks the transition from row 8)", exec(), func(tr *trace.Trace) {
		tr.Cells[9*trace.Width+trace.ColReg(3)]++
	})
	add("fib-bad-output", "fib-macro claiming output 6", exec(), func(tr *trace.Trace) {
		tr.Header.Segments[0].Outputs[0] = 6
	})
	add("fib-bad-flag", "fib-macro with row 2's f_mul set (two flags)", exec(), func(tr *trace.Trace) {
		tr.Cells[2*trace.Width+trace.ColFlag(trace.OpMUL)] = 1
	})
	return files, vf
}

func TestTraceVectorsArePinned(t *testing.T) {
	files, vf := buildVectors(t)
	js, _ := json.MarshalIndent(vf, "", "  ")
	js = append(js, '\n')
	files["trace-vectors.json"] = js
	if os.Getenv("POUW_UPDATE_VECTORS") == "1" {
		for name, b := range files {
			if err := os.WriteFile(filepath.Join(vectorDir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		t.Log("rewrote the trace vectors")
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(vectorDir, name))
		if err != nil {
			t.Fatalf("%v (POUW_UPDATE_VECTORS=1 writes the vectors)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from what the code produces: the encoding, hashing or VM changed", name)
		}
	}
	// the committed files decode, and Check agrees with the pinned verdicts
	for _, v := range vf.Traces {
		b, _ := os.ReadFile(filepath.Join(vectorDir, v.File))
		if pouw.Hash(blake3.Sum256(b)) != v.TraceHash {
			t.Errorf("%s: BLAKE3 of the file is not the pinned hash", v.File)
		}
		tr, err := trace.Decode(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatalf("%s: %v", v.File, err)
		}
		err = trace.Check(tr)
		var ce *trace.CheckError
		switch {
		case v.Valid && err != nil:
			t.Errorf("%s: %v", v.File, err)
		case !v.Valid && (!errors.As(err, &ce) || ce.First().Row != *v.ExpectRow || ce.First().Constraint != v.ExpectCheck):
			t.Errorf("%s: Check = %v, want %s at row %d", v.File, err, v.ExpectCheck, *v.ExpectRow)
		}
	}
}

// TestTraceVectorHashesMatchB3sum checks the pinned hashes with an
// independent BLAKE3 implementation when the b3sum tool is installed
// (scripts/test.sh installs it; scripts/crosscheck-trace.sh does more).
func TestTraceVectorHashesMatchB3sum(t *testing.T) {
	bin, err := exec.LookPath("b3sum")
	if err != nil {
		t.Skip("b3sum not installed")
	}
	_, vf := buildVectors(t)
	for _, v := range vf.Traces {
		out, err := exec.Command(bin, "--no-names", filepath.Join(vectorDir, v.File)).Output()
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(string(out)); got != v.TraceHash.String() {
			t.Errorf("%s: b3sum %s, pinned %s", v.File, got, v.TraceHash)
		}
	}
}
