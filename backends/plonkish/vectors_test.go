package plonkish_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/backends/plonkish"
	"github.com/pouwfarm/pouwfarm/trace"
)

// The shared trace vectors are the cross-backend contract: valid traces
// prove and verify, and for each invalid one the MockProver fails the
// constraint trace.Check names, at its row, and the prover refuses.
func TestSharedTraceVectors(t *testing.T) {
	dir := filepath.Join("..", "..", "docs", "test-vectors")
	raw, err := os.ReadFile(filepath.Join(dir, "trace-vectors.json"))
	if err != nil {
		t.Skipf("no shared vectors: %v", err)
	}
	var vec struct {
		Traces []struct {
			Name, File       string
			Valid            bool
			ExpectRow        int    `json:"expect_row"`
			ExpectConstraint string `json:"expect_constraint"`
		}
	}
	if err := json.Unmarshal(raw, &vec); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, v := range vec.Traces {
		t.Run(v.Name, func(t *testing.T) {
			f, err := os.Open(filepath.Join(dir, v.File))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			tr, err := trace.Decode(f, 1<<24)
			if err != nil {
				t.Fatal(err)
			}
			st := statement(t, tr, "", "")
			if v.Valid {
				proof, err := be.Prove(ctx, tr, st)
				if err != nil {
					t.Fatal(err)
				}
				if err := be.Verify(ctx, st, proof); err != nil {
					t.Fatal(err)
				}
				return
			}
			if _, err := be.Prove(ctx, tr, st); !errors.Is(err, backends.ErrInvalidTrace) {
				t.Fatalf("prover accepted an invalid trace: %v", err)
			}
			fails, err := plonkish.MockProve(tr)
			if err != nil {
				t.Fatal(err)
			}
			// the circuit checks outputs with its exit:reg[i] gates
			want := v.ExpectConstraint
			for _, f := range fails {
				name := f.Name
				if strings.HasPrefix(want, "output[") && strings.HasPrefix(name, "exit:reg[") {
					name = want
				}
				if f.Row == v.ExpectRow && name == want {
					return
				}
			}
			t.Fatalf("MockProver did not report %s at row %d: %v", want, v.ExpectRow, fails)
		})
	}
}
