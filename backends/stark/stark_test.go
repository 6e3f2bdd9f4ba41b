package stark_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/backends/stark"
	"github.com/pouwfarm/pouwfarm/backends/stark/air"
	"github.com/pouwfarm/pouwfarm/backends/stark/proof"
	"github.com/pouwfarm/pouwfarm/backends/stark/verifier"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/trace"
	"github.com/pouwfarm/pouwfarm/trace/workload"
)

func newBackend(t testing.TB, cfg stark.Config) *stark.Backend {
	t.Helper()
	b, err := stark.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func statement(t testing.TB, tr *trace.Trace, job, prover string) backends.Statement {
	t.Helper()
	st, err := backends.StatementOf(tr, job, prover)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func macro(t testing.TB, name string, steps uint64) *trace.Trace {
	t.Helper()
	tr, err := workload.Macro(name, 7, steps)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func prove(t testing.TB, b *stark.Backend, tr *trace.Trace, st backends.Statement) []byte {
	t.Helper()
	p, err := b.Prove(context.Background(), tr, st)
	if err != nil {
		t.Fatalf("prove: %v", err)
	}
	return p
}

func mustReject(t *testing.T, b *stark.Backend, st backends.Statement, p []byte, what string) {
	t.Helper()
	err := b.Verify(context.Background(), st, p)
	if !errors.Is(err, backends.ErrProofRejected) && !errors.Is(err, backends.ErrInvalidProof) {
		t.Fatalf("%s: got %v, want a rejection", what, err)
	}
}

func TestEveryWorkloadProvesAndVerifiesAtSeveralSizes(t *testing.T) {
	b := newBackend(t, stark.Config{})
	ctx := context.Background()
	for _, name := range workload.Names() {
		for _, steps := range []uint64{40, 300, 2000} {
			t.Run(fmt.Sprintf("%s/steps=%d", name, steps), func(t *testing.T) {
				tr := macro(t, name, steps)
				st := statement(t, tr, "", "")
				p := prove(t, b, tr, st)
				if err := b.Verify(ctx, st, p); err != nil {
					t.Fatalf("verify: %v", err)
				}
				sec, err := b.SecurityBits(st, p)
				if err != nil || sec < 100 {
					t.Fatalf("security %d bits, %v", sec, err)
				}
			})
		}
	}
}

func TestFullBatchesAndMicroWindowsProveWithTheSameAIR(t *testing.T) {
	b := newBackend(t, stark.Config{})
	ctx := context.Background()
	for _, name := range workload.Names() {
		full, err := workload.Full(name, 3, 600, 3)
		if err != nil {
			t.Fatal(err)
		}
		st := statement(t, full, "", "")
		if err := b.Verify(ctx, st, prove(t, b, full, st)); err != nil {
			t.Fatalf("%s full: %v", name, err)
		}
	}
	src := macro(t, "mimc", 200)
	wins, err := trace.Slice(src, trace.DefaultWindow)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []int{0, len(wins) / 2, len(wins) - 1} {
		st := statement(t, wins[k], "", "")
		p := prove(t, b, wins[k], st)
		if err := b.Verify(ctx, st, p); err != nil {
			t.Fatalf("window %d: %v", k, err)
		}
		if k > 0 { // a window's proof does not verify for its neighbour
			mustReject(t, b, statement(t, wins[k-1], "", ""), p, "neighbouring window")
		}
	}
	lax := newBackend(t, stark.Config{SkipCheck: true})
	for _, w := range []uint64{1, 2, 4, 8} {
		small, err := trace.Window(src, w, 1)
		if err != nil {
			t.Fatal(err)
		}
		st := statement(t, small, "", "")
		p := prove(t, b, small, st)
		if err := b.Verify(ctx, st, p); err != nil {
			t.Fatalf("window of %d rows: %v", w, err)
		}
		next, err := trace.Window(src, w, 2)
		if err != nil {
			t.Fatal(err)
		}
		mustReject(t, b, statement(t, next, "", ""), p, fmt.Sprintf("window of %d rows, next window's statement", w))
		// A bad cell in the last row (the exit row) is caught.
		small.Cells[(w-1)*trace.Width+trace.ColVD]++
		bst := statement(t, small, "", "")
		if bp, err := lax.Prove(ctx, small, bst); err == nil {
			mustReject(t, b, bst, bp, fmt.Sprintf("window of %d rows with a bad cell", w))
		} else if !errors.Is(err, backends.ErrInvalidTrace) {
			t.Fatal(err)
		}
	}
}

func TestProofsAreDeterministic(t *testing.T) {
	b := newBackend(t, stark.Config{})
	tr := macro(t, "poly", 500)
	st := statement(t, tr, "0123456789abcdef0123456789abcdef", "prover-1")
	if !bytes.Equal(prove(t, b, tr, st), prove(t, b, tr, st)) {
		t.Fatal("two proofs of the same trace differ")
	}
}

func TestProofIsBoundToTraceJobAndProver(t *testing.T) {
	b := newBackend(t, stark.Config{})
	tr := macro(t, "fib", 300)
	st := statement(t, tr, "0123456789abcdef0123456789abcdef", "prover-1")
	p := prove(t, b, tr, st)
	if err := b.Verify(context.Background(), st, p); err != nil {
		t.Fatal(err)
	}
	other, err := workload.Macro("fib", 8, 300)
	if err != nil {
		t.Fatal(err)
	}
	mustReject(t, b, statement(t, other, st.JobID, st.ProverID), p, "another trace's statement")
	s2 := st
	s2.JobID = "ffffffffffffffffffffffffffffffff"
	mustReject(t, b, s2, p, "another job_id")
	s3 := st
	s3.ProverID = "prover-2"
	mustReject(t, b, s3, p, "another prover_id")
	s4 := st
	s4.ProverID, s4.JobID = "", ""
	mustReject(t, b, s4, p, "offline statement")
	s5 := st
	s5.TraceHash[0] ^= 1
	mustReject(t, b, s5, p, "another trace_hash")

	// A changed public output: the statement claims another result.
	h := tr.Header
	h.Segments = append([]trace.Segment(nil), h.Segments...)
	h.Segments[0].Outputs = append([]uint64(nil), h.Segments[0].Outputs...)
	h.Segments[0].Outputs[0]++
	s6 := st
	s6.Header = &h
	mustReject(t, b, s6, p, "changed public output")
}

func TestBadCellIsRefusedOrRejected(t *testing.T) {
	ctx := context.Background()
	strict := newBackend(t, stark.Config{})
	lax := newBackend(t, stark.Config{SkipCheck: true})
	for _, cell := range []struct {
		row uint64
		col int
	}{{3, trace.ColR0 + 1}, {10, trace.ColVD}, {0, trace.ColPC}, {20, trace.ColImm}, {7, trace.ColFlag0 + 2}, {15, trace.ColInv}} {
		tr := macro(t, "fib", 60)
		tr.Cells[cell.row*trace.Width+uint64(cell.col)] = (tr.At(cell.row, cell.col) + 1) % 0xffffffff00000001
		if trace.Check(tr) == nil {
			t.Fatalf("trace.Check accepts the mutation at row %d column %d", cell.row, cell.col)
		}
		st := statement(t, tr, "", "")
		if _, err := strict.Prove(ctx, tr, st); !errors.Is(err, backends.ErrInvalidTrace) {
			t.Fatalf("row %d column %d: prover did not refuse: %v", cell.row, cell.col, err)
		}
		p, err := lax.Prove(ctx, tr, st)
		if err != nil {
			if !errors.Is(err, backends.ErrInvalidTrace) {
				t.Fatal(err)
			}
			continue
		}
		mustReject(t, strict, st, p, fmt.Sprintf("bad cell at row %d column %d", cell.row, cell.col))
	}
}

func TestAnotherProgramsExecutionIsRejected(t *testing.T) {
	ctx := context.Background()
	lax := newBackend(t, stark.Config{SkipCheck: true})
	a := trace.MustAssemble(".inputs 2\n.outputs r2\nADD r2, r0, r1\nHALT\n")
	bp := trace.MustAssemble(".inputs 2\n.outputs r2\nMUL r2, r0, r1\nHALT\n")
	ta, err := trace.Execute(a, []uint64{3, 4}, 100)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := trace.Execute(bp, []uint64{3, 4}, 100)
	if err != nil {
		t.Fatal(err)
	}
	// B's proof does not verify for A's statement.
	pb := prove(t, lax, tb, statement(t, tb, "", ""))
	mustReject(t, lax, statement(t, ta, "", ""), pb, "another program's proof")
	// B's rows under A's header (program, hash, its claimed output 7 → 12).
	forged := &trace.Trace{Header: ta.Header, Cells: append([]uint64(nil), tb.Cells...)}
	forged.Header.Segments = append([]trace.Segment(nil), ta.Header.Segments...)
	forged.Header.Segments[0].Outputs = []uint64{12}
	if trace.Check(forged) == nil {
		t.Fatal("trace.Check accepts the forged trace")
	}
	st := statement(t, forged, "", "")
	p, err := lax.Prove(ctx, forged, st)
	if err == nil {
		mustReject(t, lax, st, p, "another program's rows under this program's header")
	} else if !errors.Is(err, backends.ErrInvalidTrace) {
		t.Fatal(err)
	}
}

func TestOptionsBelowTheMinimumSecurityAreRejected(t *testing.T) {
	weak := air.DefaultOptions()
	weak.Queries = 10
	wb := newBackend(t, stark.Config{Options: weak, MinSecurity: 20})
	tr := macro(t, "fib", 100)
	st := statement(t, tr, "", "")
	p := prove(t, wb, tr, st)
	if err := wb.Verify(context.Background(), st, p); err != nil {
		t.Fatalf("weak proof rejected by a verifier that accepts 20 bits: %v", err)
	}
	err := newBackend(t, stark.Config{}).Verify(context.Background(), st, p)
	if !errors.Is(err, backends.ErrProofRejected) || !errors.Is(err, verifier.ErrInsecure) {
		t.Fatalf("got %v, want ErrInsecure", err)
	}
	if _, err := stark.New(stark.Config{Options: air.Options{Blowup: 3, Queries: 1, Folding: 4, FieldExtension: 2, MaxRemainder: 64}}); !errors.Is(err, air.ErrOptions) {
		t.Fatalf("invalid options accepted: %v", err)
	}
}

func TestEveryByteFlipIsRejectedWithoutPanic(t *testing.T) {
	b := newBackend(t, stark.Config{})
	tr := macro(t, "transfers", 200)
	st := statement(t, tr, "0123456789abcdef0123456789abcdef", "p")
	p := prove(t, b, tr, st)
	step := max(1, len(p)/400)
	for i := 0; i < len(p); i += step {
		for _, mask := range []byte{0x01, 0x80} {
			q := bytes.Clone(p)
			q[i] ^= mask
			mustReject(t, b, st, q, fmt.Sprintf("flip %#x at byte %d of %d", mask, i, len(p)))
		}
	}
}

func TestTruncatedAndOversizedProofsGiveClearErrors(t *testing.T) {
	b := newBackend(t, stark.Config{})
	tr := macro(t, "fib", 100)
	st := statement(t, tr, "", "")
	p := prove(t, b, tr, st)
	for _, q := range [][]byte{nil, p[:4], p[:len(p)/2], p[:len(p)-1], append(bytes.Clone(p), 0), make([]byte, proof.MaxBytes+1)} {
		err := b.Verify(context.Background(), st, q)
		if !errors.Is(err, backends.ErrInvalidProof) {
			t.Fatalf("%d bytes: got %v, want ErrInvalidProof", len(q), err)
		}
	}
}

func TestProveStopsPromptlyWhenTheLeaseIsLost(t *testing.T) {
	b := newBackend(t, stark.Config{})
	tr := macro(t, "mimc", 1<<14)
	st := statement(t, tr, "", "")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := b.Prove(ctx, tr, st); done <- err }()
	time.Sleep(100 * time.Millisecond)
	cancel()
	start := time.Now()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("stopped %v after the cancel", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("prover ignored the cancel")
	}
}

func TestRegistryServesEveryTierWithTheSTARK(t *testing.T) {
	reg, err := backends.NewRegistry(newBackend(t, stark.Config{}))
	if err != nil {
		t.Fatal(err)
	}
	allStark, err := backends.ParseTable("micro=stark,macro=stark,full=stark")
	if err != nil {
		t.Fatal(err)
	}
	if err := allStark.Validate(reg); err != nil {
		t.Fatal(err)
	}
	for _, tier := range pouw.Tiers {
		if b, err := allStark.Resolve(reg, tier); err != nil || b.Name() != "stark" {
			t.Fatalf("%s: %v", tier, err)
		}
	}
	if _, err := reg.Get("halo2"); !errors.Is(err, backends.ErrUnknownBackend) {
		t.Fatalf("got %v", err)
	}
	tab, _ := backends.ParseTable("micro=plonkish,macro=stark,full=stark")
	if err := tab.Validate(reg); !errors.Is(err, backends.ErrInvalidTable) || !errors.Is(err, backends.ErrUnknownBackend) {
		t.Fatalf("table naming an unregistered backend: %v", err)
	}
	if _, err := backends.NewRegistry(newBackend(t, stark.Config{}), newBackend(t, stark.Config{})); err == nil {
		t.Fatal("duplicate backend accepted")
	}
	est := newBackend(t, stark.Config{}).Estimate(&macro(t, "fib", 1000).Header)
	if est.Cores < 1 || est.MemoryBytes <= 0 || est.Duration <= 0 || est.GPUMemoryBytes != 0 {
		t.Fatalf("estimate %+v", est)
	}
}
