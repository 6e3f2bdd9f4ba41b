package prover_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pouwfarm/pouwfarm/backends/stark/air"
	"github.com/pouwfarm/pouwfarm/backends/stark/field"
	"github.com/pouwfarm/pouwfarm/backends/stark/internal/fibair"
	"github.com/pouwfarm/pouwfarm/backends/stark/proof"
	"github.com/pouwfarm/pouwfarm/backends/stark/prover"
	"github.com/pouwfarm/pouwfarm/backends/stark/verifier"
)

func TestFibonacciProvesAndVerifies(t *testing.T) {
	for _, tc := range []struct {
		n    int
		opts air.Options
	}{
		{8, air.DefaultOptions()},
		{64, air.DefaultOptions()},
		{1024, air.DefaultOptions()},
		{256, air.Options{Blowup: 4, Queries: 40, GrindingBits: 8, Folding: 8, FieldExtension: 2, MaxRemainder: 8}},
		{512, air.Options{Blowup: 16, Queries: 25, GrindingBits: 4, Folding: 4, FieldExtension: 2, MaxRemainder: 4}},
	} {
		main, a := fibair.Trace(tc.n)
		seed := []byte("statement")
		p, err := prover.Prove(context.Background(), a, main, seed, tc.opts)
		if err != nil {
			t.Fatalf("n=%d: prove: %v", tc.n, err)
		}
		b := p.Encode()
		q, err := proof.Decode(b)
		if err != nil {
			t.Fatalf("n=%d: decode: %v", tc.n, err)
		}
		if !bytes.Equal(q.Encode(), b) {
			t.Fatalf("n=%d: encoding does not round-trip", tc.n)
		}
		if _, err := verifier.Verify(a, seed, q, 0); err != nil {
			t.Fatalf("n=%d: honest proof rejected: %v", tc.n, err)
		}
		if _, err := verifier.Verify(a, []byte("another statement"), q, 0); !errors.Is(err, verifier.ErrRejected) {
			t.Fatalf("n=%d: proof verified for another statement: %v", tc.n, err)
		}
		wrong := *a
		wrong.Result.Add(&wrong.Result, new(field.Base).SetOne())
		if _, err := verifier.Verify(&wrong, seed, q, 0); !errors.Is(err, verifier.ErrRejected) {
			t.Fatalf("n=%d: proof verified for another public output: %v", tc.n, err)
		}
	}
}

func TestABadCellIsRefusedOrRejected(t *testing.T) {
	for col := range 4 {
		for _, row := range []int{0, 17, 63} {
			main, a := fibair.Trace(64)
			main[col][row].SetUint64(5)
			p, err := prover.Prove(context.Background(), a, main, nil, air.DefaultOptions())
			if err != nil {
				if !errors.Is(err, prover.ErrUnsatisfied) {
					t.Fatalf("col %d row %d: %v", col, row, err)
				}
				continue
			}
			if _, err := verifier.Verify(a, nil, p, 0); !errors.Is(err, verifier.ErrRejected) {
				t.Fatalf("col %d row %d: proof of a bad trace accepted: %v", col, row, err)
			}
		}
	}
}

func TestProveStopsWithinASecondOfCancel(t *testing.T) {
	main, a := fibair.Trace(1 << 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := prover.Prove(ctx, a, main, nil, air.DefaultOptions()); done <- err }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	start := time.Now()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("stopped after %v", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("prover did not stop")
	}
}
