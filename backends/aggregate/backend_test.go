package aggregate

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	fr377 "github.com/consensys/gnark-crypto/ecc/bls12-377/fr"
	"github.com/consensys/gnark/backend/groth16"
	groth16bls12377 "github.com/consensys/gnark/backend/groth16/bls12-377"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/trace"
)

func TestIntentProofVerifiesAndIsBoundToItsStatement(t *testing.T) {
	b := testBackend(t)
	ctx := context.Background()
	tr := execute(t, fibSrc, 10)
	st := macroStatement(t, tr, "job-1", "prover-1")
	proof, err := b.Prove(ctx, tr, st)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("intent proof: %d bytes", len(proof))
	if err := b.Verify(ctx, st, proof); err != nil {
		t.Fatalf("valid proof rejected: %v", err)
	}
	other := execute(t, fibSrc, 11)
	for name, bad := range map[string]backends.Statement{
		"job":        macroStatement(t, tr, "job-2", "prover-1"),
		"prover":     macroStatement(t, tr, "job-1", "prover-2"),
		"trace hash": {Header: st.Header, TraceHash: [32]byte{1}, JobID: "job-1", ProverID: "prover-1"},
		"other run":  macroStatement(t, other, "job-1", "prover-1"),
	} {
		if err := b.Verify(ctx, bad, proof); !errors.Is(err, backends.ErrProofRejected) {
			t.Errorf("%s: got %v, want ErrProofRejected", name, err)
		}
	}
}

// batchStatement is the statement of an aggregation job: its manifest's
// hash, job and aggregating prover.
func batchStatement(job, prover string) backends.Statement {
	return backends.Statement{TraceHash: pouw.Hash{0xba, 0x7c}, JobID: job, ProverID: prover}
}

func proveMacro(t *testing.T, b *Backend, tr *trace.Trace, job string) (backends.Statement, []byte) {
	t.Helper()
	st := macroStatement(t, tr, job, "prover-1")
	p, err := b.Prove(context.Background(), tr, st)
	if err != nil {
		t.Fatal(err)
	}
	return st, p
}

func TestAggregateProofVerifiesAndRejectsForgedBatches(t *testing.T) {
	b := testBackend(t)
	ks := b.keys[0]
	ctx := context.Background()
	stA, pA := proveMacro(t, b, execute(t, fibSrc, 10), "job-a")
	stB, pB := proveMacro(t, b, execute(t, mixSrc, 5, 1), "job-b")
	stC, pC := proveMacro(t, b, execute(t, fibSrc, 3), "job-c")

	batch := batchStatement("agg-job", "aggregator")
	agg, err := b.Aggregate(ctx, batch, []backends.Statement{stA, stB}, [][]byte{pA, pB})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("aggregate proof (k=2): %d bytes", len(agg))
	if err := b.VerifyAggregate(ctx, batch, []backends.Statement{stA, stB}, agg); err != nil {
		t.Fatalf("valid aggregate rejected: %v", err)
	}

	t.Run("verifier", func(t *testing.T) {
		for name, sts := range map[string][]backends.Statement{
			"reordered":       {stB, stA},
			"duplicated":      {stA, stA},
			"other statement": {stA, stC},
			"too few":         {stA},
		} {
			if err := b.VerifyAggregate(ctx, batch, sts, agg); !errors.Is(err, backends.ErrProofRejected) {
				t.Errorf("%s: got %v, want ErrProofRejected", name, err)
			}
		}
		// The aggregate proof is bound to its own job and prover too.
		other := batch
		other.TraceHash[0] ^= 1
		for name, bs := range map[string]backends.Statement{
			"another aggregation job": batchStatement("agg-job-2", "aggregator"),
			"another aggregator":      batchStatement("agg-job", "thief"),
			"another manifest":        other,
		} {
			if err := b.VerifyAggregate(ctx, bs, []backends.Statement{stA, stB}, agg); !errors.Is(err, backends.ErrProofRejected) {
				t.Errorf("%s: got %v, want ErrProofRejected", name, err)
			}
		}
	})

	t.Run("prover refuses", func(t *testing.T) {
		tampered := slices.Clone(pB)
		tampered[len(tampered)-60] ^= 0x01
		relabelled := slices.Clone(pA)
		relabelled[6] ^= 0xff // key id
		for name, c := range map[string]struct {
			sts    []backends.Statement
			proofs [][]byte
		}{
			"tampered child":             {[]backends.Statement{stA, stB}, [][]byte{pA, tampered}},
			"child of another statement": {[]backends.Statement{stA, stB}, [][]byte{pA, pC}},
			"reordered children":         {[]backends.Statement{stA, stB}, [][]byte{pB, pA}},
			"duplicated child":           {[]backends.Statement{stA, stA}, [][]byte{pA, pA}},
			"mismatched key":             {[]backends.Statement{stA, stB}, [][]byte{relabelled, pB}},
		} {
			if _, err := b.Aggregate(ctx, batch, c.sts, c.proofs); !errors.Is(err, backends.ErrProofRejected) && !errors.Is(err, backends.ErrInvalidProof) {
				t.Errorf("%s: got %v, want a rejection", name, err)
			}
		}
	})

	// The circuit itself, with the native checks bypassed: a prover cannot
	// make an aggregate proof for digests its children do not prove.
	t.Run("circuit refuses", func(t *testing.T) {
		g := func(p []byte) groth16.Proof {
			e, err := decodeProof(p)
			if err != nil {
				t.Fatal(err)
			}
			return e.proof
		}
		ss, err := b.childStatements([]backends.Statement{stA, stB, stC})
		if err != nil {
			t.Fatal(err)
		}
		ds, err := digests(ks.Params, ss)
		if err != nil {
			t.Fatal(err)
		}
		// A decodable but wrong child proof: Ar and Krs swapped.
		swapped := g(pB).(*groth16bls12377.Proof)
		swapped.Ar, swapped.Krs = swapped.Krs, swapped.Ar
		for name, c := range map[string]struct {
			proofs  []groth16.Proof
			digests []fr377.Element
		}{
			"child of another statement": {[]groth16.Proof{g(pA), g(pC)}, []fr377.Element{ds[0], ds[1]}},
			"tampered child":             {[]groth16.Proof{g(pA), swapped}, []fr377.Element{ds[0], ds[1]}},
		} {
			_, err := b.aggregate(ctx, ks, batch, c.proofs, c.digests)
			if err == nil || !strings.Contains(err.Error(), "constraint") {
				t.Errorf("%s: want an unsatisfied constraint, got %v", name, err)
			}
		}
	})
}

func TestFullTraceIsProvedAsOneAggregateProof(t *testing.T) {
	b := testBackend(t)
	ctx := context.Background()
	tr, err := trace.Batch([]trace.Intent{
		{Program: trace.MustAssemble(fibSrc), Inputs: []uint64{7}},
		{Program: trace.MustAssemble(mixSrc), Inputs: []uint64{2, 9}},
	}, 1<<20, pouw.TierFull)
	if err != nil {
		t.Fatal(err)
	}
	st := macroStatement(t, tr, "job-full", "prover-1")
	proof, err := b.Prove(ctx, tr, st)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Verify(ctx, st, proof); err != nil {
		t.Fatalf("valid full proof rejected: %v", err)
	}
	if err := b.Verify(ctx, macroStatement(t, tr, "job-other", "prover-1"), proof); !errors.Is(err, backends.ErrProofRejected) {
		t.Errorf("proof for another job: got %v", err)
	}
	macro := execute(t, fibSrc, 7)
	if err := b.Verify(ctx, macroStatement(t, macro, "job-full", "prover-1"), proof); !errors.Is(err, backends.ErrProofRejected) {
		t.Errorf("aggregate proof against a Macro statement: got %v", err)
	}
	// Flip bytes: every envelope byte, then every 7th byte of the proof.
	for i := 0; i < len(proof); i++ {
		if i >= envelopeLen && i%7 != 0 {
			continue
		}
		bad := slices.Clone(proof)
		bad[i] ^= 0x40
		if err := b.Verify(ctx, st, bad); err == nil {
			t.Fatalf("byte %d flipped: proof still verifies", i)
		}
	}
}

func TestIntentProofByteFlipsAreRejected(t *testing.T) {
	b := testBackend(t)
	ctx := context.Background()
	st, proof := proveMacro(t, b, execute(t, fibSrc, 5), "job-flip")
	for i := range proof {
		for _, bit := range []byte{0x01, 0x80} {
			bad := slices.Clone(proof)
			bad[i] ^= bit
			err := b.Verify(ctx, st, bad)
			if !errors.Is(err, backends.ErrProofRejected) && !errors.Is(err, backends.ErrInvalidProof) {
				t.Fatalf("byte %d ^ %#x: got %v", i, bit, err)
			}
		}
	}
	if err := b.Verify(ctx, st, append(slices.Clone(proof), 0)); !errors.Is(err, backends.ErrInvalidProof) {
		t.Errorf("trailing byte: got %v", err)
	}
}

func TestProveRefusesInvalidTracesAndOversizedIntents(t *testing.T) {
	b := testBackend(t)
	ctx := context.Background()
	tr := execute(t, fibSrc, 4)
	bad := &trace.Trace{Header: tr.Header, Cells: slices.Clone(tr.Cells)}
	bad.Cells[3*trace.Width+trace.ColVD]++
	if _, err := b.Prove(ctx, bad, macroStatement(t, tr, "j", "p")); !errors.Is(err, backends.ErrInvalidTrace) {
		t.Errorf("mutated trace: got %v", err)
	}
	other := execute(t, fibSrc, 5)
	if _, err := b.Prove(ctx, tr, macroStatement(t, other, "j", "p")); !errors.Is(err, ErrWitness) {
		t.Errorf("statement of another trace: got %v", err)
	}
	long := execute(t, fibSrc, 200) // 5·200+4 steps > 2^8
	if _, err := b.Prove(ctx, long, macroStatement(t, long, "j", "p")); !errors.Is(err, ErrNoKeys) {
		t.Errorf("intent past the size class: got %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := b.Prove(cctx, tr, macroStatement(t, tr, "j", "p")); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: got %v", err)
	}
}

// gnark's Prove takes no context; Prove still returns within a second of a
// cancellation (the proving step finishes in the background).
func TestCancelledProveReturnsPromptly(t *testing.T) {
	b := testBackend(t)
	if _, err := b.keys[0].proving(); err != nil {
		t.Fatal(err)
	}
	tr := execute(t, fibSrc, 40)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := b.Prove(ctx, tr, macroStatement(t, tr, "j", "p"))
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want context.Canceled", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Prove did not return within a second of the cancellation")
	}
}

func TestCheckBatchSaysWhatTheKeysCanProve(t *testing.T) {
	b := testBackend(t) // steps 2^8, k = 2
	small := &execute(t, fibSrc, 10).Header
	other := &execute(t, mixSrc, 5, 1).Header
	large := &execute(t, loopSrc, 100).Header // 403 steps > 2^8
	full, err := trace.Batch([]trace.Intent{
		{Program: trace.MustAssemble(fibSrc), Inputs: []uint64{7}},
		{Program: trace.MustAssemble(mixSrc), Inputs: []uint64{2, 9}},
	}, 1<<20, pouw.TierFull)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CheckBatch([]*trace.Header{small, other}); err != nil {
		t.Fatalf("a batch the keys take: %v", err)
	}
	for name, c := range map[string]struct {
		hs   []*trace.Header
		want error
	}{
		"too many steps":  {[]*trace.Header{small, large}, ErrNoKeys},
		"k the keys lack": {[]*trace.Header{small, other, small, other}, ErrNoKeys},
		"a full trace":    {[]*trace.Header{small, &full.Header}, backends.ErrProofRejected},
	} {
		if err := b.CheckBatch(c.hs); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}
