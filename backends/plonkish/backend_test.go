package plonkish_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/backends/plonkish"
	"github.com/pouwfarm/pouwfarm/trace"
	"github.com/pouwfarm/pouwfarm/trace/workload"
)

func statement(t testing.TB, tr *trace.Trace, job, prover string) backends.Statement {
	t.Helper()
	h, err := trace.Hash(tr)
	if err != nil {
		t.Fatal(err)
	}
	return backends.Statement{Header: &tr.Header, TraceHash: h, JobID: job, ProverID: prover}
}

func rejected(err error) bool {
	return errors.Is(err, backends.ErrProofRejected) || errors.Is(err, backends.ErrInvalidProof)
}

// one shared backend: keys and generators are cached per k
var be = plonkish.New(plonkish.Options{})

func TestMicroWindowsOfEveryWorkloadProveAndVerify(t *testing.T) {
	ctx := context.Background()
	for _, name := range workload.Names() {
		t.Run(name, func(t *testing.T) {
			src, err := workload.Macro(name, 1, 64)
			if err != nil {
				t.Fatal(err)
			}
			ws := windows(t, src, 16)
			w := ws[len(ws)/2]
			st := statement(t, w, "job-"+name, "prover")
			proof, err := be.Prove(ctx, w, st)
			if err != nil {
				t.Fatal(err)
			}
			if err := be.Verify(ctx, st, proof); err != nil {
				t.Fatalf("window %d rejected: %v", w.Header.Segments[0].WindowIndex, err)
			}
		})
	}
}

func TestMacroAndFullTracesProveAndVerify(t *testing.T) {
	ctx := context.Background()
	macro, err := workload.Macro("mimc", 2, 100)
	if err != nil {
		t.Fatal(err)
	}
	full, err := workload.Full("transfers", 3, 120, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range []*trace.Trace{macro, full} {
		st := statement(t, tr, "j", "p")
		proof, err := be.Prove(ctx, tr, st)
		if err != nil {
			t.Fatal(err)
		}
		if err := be.Verify(ctx, st, proof); err != nil {
			t.Fatalf("%s trace rejected: %v", tr.Header.Tier, err)
		}
		// a changed public output of the last intent is rejected
		h := tr.Header
		h.Segments = slices.Clone(h.Segments)
		last := &h.Segments[len(h.Segments)-1]
		if len(last.Outputs) == 0 {
			t.Fatalf("%s workload has no outputs to change", tr.Header.Tier)
		}
		last.Outputs = slices.Clone(last.Outputs)
		last.Outputs[0] = (last.Outputs[0] + 1) % 0xffffffff00000001
		bad := st
		bad.Header = &h
		if err := be.Verify(ctx, bad, proof); !rejected(err) {
			t.Fatalf("%s: changed output accepted: %v", tr.Header.Tier, err)
		}
	}
}

func TestProofsAndKeysAreDeterministic(t *testing.T) {
	ctx := context.Background()
	w := windows(t, execute(t, fibSrc, 30), 16)[2]
	st := statement(t, w, "j", "p")
	other := plonkish.New(plonkish.Options{})
	p1, err := be.Prove(ctx, w, st)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := other.Prove(ctx, w, st)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p1, p2) {
		t.Fatal("the same statement gave two different proofs")
	}
	k1, _ := be.Keys(9)
	k2, _ := other.Keys(9)
	if k1.VK.Digest != k2.VK.Digest {
		t.Fatal("keygen is not deterministic")
	}
}

func TestForgedProofsAndStatementsAreRejected(t *testing.T) {
	ctx := context.Background()
	src := execute(t, mixSrc, 9, 4)
	ws := windows(t, src, 16)
	w := ws[1]
	st := statement(t, w, "job1", "prover1")
	proof, err := be.Prove(ctx, w, st)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("byte flips across the proof", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 1))
		step := len(proof) / 40
		for pos := 0; pos < len(proof); pos += step {
			bad := slices.Clone(proof)
			bad[pos+rng.IntN(step)%(len(proof)-pos)] ^= byte(1 << rng.IntN(8))
			if err := be.Verify(ctx, st, bad); !rejected(err) {
				t.Fatalf("flip near byte %d: got %v", pos, err)
			}
		}
	})
	t.Run("truncated and oversized", func(t *testing.T) {
		for _, b := range [][]byte{nil, proof[:10], proof[:len(proof)-1], append(slices.Clone(proof), 0)} {
			if err := be.Verify(ctx, st, b); !errors.Is(err, backends.ErrInvalidProof) {
				t.Fatalf("%d bytes: got %v", len(b), err)
			}
		}
	})
	t.Run("another trace's statement", func(t *testing.T) {
		for _, o := range []*trace.Trace{ws[0], ws[2], windows(t, execute(t, mixSrc, 9, 5), 16)[1]} {
			if err := be.Verify(ctx, statement(t, o, "job1", "prover1"), proof); !rejected(err) {
				t.Fatalf("proof verified for another window: %v", err)
			}
		}
	})
	t.Run("another job or prover", func(t *testing.T) {
		for _, s := range []backends.Statement{statement(t, w, "job2", "prover1"), statement(t, w, "job1", "prover2"), statement(t, w, "", "")} {
			if err := be.Verify(ctx, s, proof); !rejected(err) {
				t.Fatalf("proof verified for job %q prover %q", s.JobID, s.ProverID)
			}
		}
	})
	t.Run("changed public value", func(t *testing.T) {
		h := w.Header
		h.Segments = slices.Clone(h.Segments)
		h.Segments[0].End.Regs[6]++
		s := st
		s.Header = &h
		if err := be.Verify(ctx, s, proof); !rejected(err) {
			t.Fatalf("changed end register: got %v", err)
		}
		h2 := w.Header
		h2.Segments = slices.Clone(h2.Segments)
		h2.Segments[0].Start.Regs[0]++
		s.Header = &h2
		if err := be.Verify(ctx, s, proof); !rejected(err) {
			t.Fatalf("changed start register: got %v", err)
		}
	})
	t.Run("tampered commitment", func(t *testing.T) {
		// swap two advice commitments (both valid points): bytes 5.. hold them
		bad := slices.Clone(proof)
		copy(bad[5:37], proof[37:69])
		copy(bad[37:69], proof[5:37])
		if err := be.Verify(ctx, st, bad); !rejected(err) {
			t.Fatalf("swapped commitments: got %v", err)
		}
	})
}

func TestInvalidTraceIsRefused(t *testing.T) {
	w := windows(t, execute(t, fibSrc, 30), 16)[1]
	bad := &trace.Trace{Header: w.Header, Cells: slices.Clone(w.Cells)}
	bad.Cells[5*trace.Width+trace.ColVD]++
	if _, err := be.Prove(context.Background(), bad, statement(t, bad, "", "")); !errors.Is(err, backends.ErrInvalidTrace) {
		t.Fatalf("got %v, want ErrInvalidTrace", err)
	}
}

func TestMockProverFindsTheRowTraceCheckFinds(t *testing.T) {
	src := execute(t, mixSrc, 6, 4)
	w := windows(t, src, 32)[0]
	rng := rand.New(rand.NewPCG(9, 9))
	for col := 0; col < trace.Width; col++ {
		row := rng.IntN(int(w.Header.Rows))
		bad := &trace.Trace{Header: w.Header, Cells: slices.Clone(w.Cells)}
		i := row*trace.Width + col
		bad.Cells[i] = (bad.Cells[i] + 1) % 0xffffffff00000001
		checkErr := trace.Check(bad)
		var ce *trace.CheckError
		if !errors.As(checkErr, &ce) {
			t.Fatalf("column %d row %d: trace.Check did not catch the mutation: %v", col, row, checkErr)
		}
		fails, err := plonkish.MockProve(bad)
		if err != nil {
			t.Fatal(err)
		}
		if len(fails) == 0 {
			t.Fatalf("column %s row %d: MockProver accepts a trace Check rejects (%v)", trace.ColumnNames()[col], row, checkErr)
		}
		// the circuit fails at the mutated row or at the transition into it,
		// as trace.Check does
		at := func(r int) bool {
			for _, f := range fails {
				if f.Row == r {
					return true
				}
			}
			return false
		}
		if !at(row) && !at(row-1) {
			t.Fatalf("column %s row %d: MockProver reports %v, Check %v", trace.ColumnNames()[col], row, fails, ce.Violations)
		}
		// and at Check's first violation (multiplicities excepted: the
		// circuit's lookup implies them rather than checking the header's)
		for _, v := range ce.Violations {
			if strings.HasPrefix(v.Constraint, "multiplicity") {
				continue
			}
			if !at(int(v.Row)) {
				t.Fatalf("column %s row %d: Check's violation %v not among MockProver's %v", trace.ColumnNames()[col], row, v, fails)
			}
			break
		}
	}
}

func TestMockProverNamesTheFailingGate(t *testing.T) {
	w := windows(t, execute(t, mixSrc, 6, 4), 16)[0]
	// row 3 is MUL r7, r4, r4 (0-based pc 3): a wrong product
	bad := &trace.Trace{Header: w.Header, Cells: slices.Clone(w.Cells)}
	if bad.At(3, trace.ColFlag(trace.OpMUL)) != 1 {
		t.Fatal("row 3 is not a MUL")
	}
	bad.Cells[3*trace.Width+trace.ColVD] = 12345
	fails, err := plonkish.MockProve(bad)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range fails {
		found = found || (f.Name == "op_mul" && f.Row == 3)
	}
	if !found {
		t.Fatalf("op_mul at row 3 not reported: %v", fails)
	}
}

func TestEstimateGrowsWithTheCircuit(t *testing.T) {
	small := windows(t, execute(t, fibSrc, 30), 16)[0]
	big := execute(t, fibSrc, 2000)
	rs, rb := be.Estimate(&small.Header), be.Estimate(&big.Header)
	if rs.Cores < 1 || rs.MemoryBytes <= 0 || rs.Duration <= 0 || rs.GPUMemoryBytes != 0 {
		t.Fatalf("implausible estimate %+v", rs)
	}
	if rb.MemoryBytes <= rs.MemoryBytes || rb.Duration <= rs.Duration {
		t.Fatalf("a 2^14-row trace is estimated no costlier than a micro window: %+v vs %+v", rb, rs)
	}
}

// The farm proves several jobs at once with one Backend: keys, generators
// and their caches must be shared safely (run with -race).
func TestConcurrentProofsShareOneBackend(t *testing.T) {
	fresh := plonkish.New(plonkish.Options{})
	ctx := context.Background()
	ws := windows(t, execute(t, fibSrc, 25), 16)[:3]
	errs := make(chan error, len(ws))
	for _, w := range ws {
		go func() {
			st := statement(t, w, "j", "p")
			proof, err := fresh.Prove(ctx, w, st)
			if err == nil {
				err = fresh.Verify(ctx, st, proof)
			}
			errs <- err
		}()
	}
	for range ws {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestCancelledContextStopsTheProver(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	w := windows(t, execute(t, fibSrc, 25), 16)[0]
	if _, err := be.Prove(ctx, w, statement(t, w, "", "")); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

// SecurityBits verifies (pouw verify calls only it for reporters): a proof
// for another statement, job or prover, or a forged one, gets an error.
func TestSecurityBitsVerifiesTheProof(t *testing.T) {
	ws := windows(t, execute(t, fibSrc, 25), 16)
	st := statement(t, ws[0], "", "")
	proof, err := be.Prove(context.Background(), ws[0], st)
	if err != nil {
		t.Fatal(err)
	}
	bits, err := be.SecurityBits(st, proof)
	if err != nil || bits != plonkish.SecurityBits {
		t.Fatalf("SecurityBits = %d, %v", bits, err)
	}
	if _, err := be.SecurityBits(st, proof[:100]); !errors.Is(err, backends.ErrInvalidProof) {
		t.Fatalf("truncated proof: %v", err)
	}
	for _, other := range []backends.Statement{statement(t, ws[1], "", ""), statement(t, ws[0], "", "other"), statement(t, ws[0], "job", "")} {
		if _, err := be.SecurityBits(other, proof); !rejected(err) {
			t.Fatalf("SecurityBits accepted the proof for another statement: %v", err)
		}
	}
	// a proof of nothing: every point the identity, every scalar zero
	forged := slices.Clone(proof)
	for off := 5; off+32 <= len(forged); off += 32 {
		point := forged[off]>>6 != 0 // compressed points carry flag bits
		clear(forged[off : off+32])
		if point {
			forged[off] = 0x40 // compressed infinity
		}
	}
	for _, f := range [][]byte{forged, append(slices.Clone(proof[:5]), make([]byte, len(proof)-5)...)} {
		if _, err := be.SecurityBits(st, f); !rejected(err) {
			t.Fatalf("SecurityBits accepted a forged proof: %v", err)
		}
		if err := be.Verify(context.Background(), st, f); !rejected(err) {
			t.Fatalf("Verify accepted a forged proof: %v", err)
		}
	}
}

func TestCheckWitnessNamesTheFailingGate(t *testing.T) {
	w := windows(t, execute(t, mixSrc, 6, 4), 16)[0]
	if fails, err := be.CheckWitness(w); err != nil || len(fails) != 0 {
		t.Fatalf("valid window: %v %v", fails, err)
	}
	bad := &trace.Trace{Header: w.Header, Cells: slices.Clone(w.Cells)}
	bad.Cells[3*trace.Width+trace.ColVD] = 12345 // row 3 is a MUL
	fails, err := be.CheckWitness(bad)
	if err != nil || len(fails) == 0 || !strings.Contains(strings.Join(fails, "\n"), `gate "op_mul" #0 fails at row 3`) {
		t.Fatalf("got %v %v", fails, err)
	}
}
