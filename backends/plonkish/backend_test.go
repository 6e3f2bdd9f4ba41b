package plonkish_test

import (
	"context"
	"errors"
	"testing"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/backends/plonkish"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/trace"
)

func statement(t testing.TB, tr *trace.Trace, job, prover string) backends.Statement {
	t.Helper()
	h, err := trace.Hash(tr)
	if err != nil {
		t.Fatal(err)
	}
	return backends.Statement{Header: &tr.Header, TraceHash: h, JobID: job, ProverID: prover}
}

func TestMicroWindowProvesAndVerifies(t *testing.T) {
	b := plonkish.New(plonkish.Options{})
	ctx := context.Background()
	w := windows(t, execute(t, mixSrc, 9, 4), 16)[1]
	st := statement(t, w, "job1", "prover1")
	proof, err := b.Prove(ctx, w, st)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("micro window (16 steps): proof %d bytes", len(proof))
	if err := b.Verify(ctx, st, proof); err != nil {
		t.Fatalf("honest proof rejected: %v", err)
	}
}

var _ = pouw.TierMicro
var _ = errors.Is
