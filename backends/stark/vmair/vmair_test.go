package vmair_test

import (
	"context"
	"errors"
	"testing"

	"github.com/pouwfarm/pouwfarm/backends/stark/air"
	"github.com/pouwfarm/pouwfarm/backends/stark/internal/airtest"
	"github.com/pouwfarm/pouwfarm/backends/stark/prover"
	"github.com/pouwfarm/pouwfarm/backends/stark/verifier"
	"github.com/pouwfarm/pouwfarm/backends/stark/vmair"
	"github.com/pouwfarm/pouwfarm/trace"
	"github.com/pouwfarm/pouwfarm/trace/tracetest"
)

const fibSrc = tracetest.FibSource

func fibTrace(t *testing.T, n uint64) *trace.Trace {
	t.Helper()
	tr, err := trace.Execute(trace.MustAssemble(fibSrc), []uint64{n}, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := trace.Check(tr); err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestBaseAndExtensionConstraintsAgree(t *testing.T) {
	a, err := vmair.New(&fibTrace(t, 5).Header)
	if err != nil {
		t.Fatal(err)
	}
	airtest.CheckEvalAgreement(t, a, 1)
}

func TestVMTraceProvesAndABadCellFails(t *testing.T) {
	ctx := context.Background()
	tr := fibTrace(t, 20)
	a, err := vmair.New(&tr.Header)
	if err != nil {
		t.Fatal(err)
	}
	cols, err := vmair.Columns(ctx, tr)
	if err != nil {
		t.Fatal(err)
	}
	opts := air.DefaultOptions()
	p, err := prover.Prove(ctx, a, cols, []byte("s"), opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verifier.Verify(a, []byte("s"), p, 100); err != nil {
		t.Fatalf("honest proof rejected: %v", err)
	}
	cols[trace.ColR0+3][5].SetUint64(77)
	p, err = prover.Prove(ctx, a, cols, []byte("s"), opts)
	if err == nil {
		_, err = verifier.Verify(a, []byte("s"), p, 100)
		if !errors.Is(err, verifier.ErrRejected) {
			t.Fatalf("bad trace accepted: %v", err)
		}
	} else if !errors.Is(err, prover.ErrUnsatisfied) {
		t.Fatal(err)
	}
}
