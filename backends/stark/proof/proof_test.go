package proof_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/pouwfarm/pouwfarm/backends/stark/air"
	"github.com/pouwfarm/pouwfarm/backends/stark/internal/fibair"
	"github.com/pouwfarm/pouwfarm/backends/stark/proof"
	"github.com/pouwfarm/pouwfarm/backends/stark/prover"
)

func sampleProof(t testing.TB, n int, opts air.Options) []byte {
	t.Helper()
	main, a := fibair.Trace(n)
	p, err := prover.Prove(context.Background(), a, main, []byte("fuzz"), opts)
	if err != nil {
		t.Fatal(err)
	}
	return p.Encode()
}

func TestDecodeRoundTripsAndRejectsBadFraming(t *testing.T) {
	b := sampleProof(t, 64, air.DefaultOptions())
	p, err := proof.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p.Encode(), b) {
		t.Fatal("round trip differs")
	}
	for i := 0; i < len(b); i++ {
		if _, err := proof.Decode(b[:i]); !errors.Is(err, proof.ErrMalformed) {
			t.Fatalf("prefix of %d bytes: %v", i, err)
		}
	}
	if _, err := proof.Decode(append(bytes.Clone(b), 0)); !errors.Is(err, proof.ErrMalformed) {
		t.Fatalf("trailing byte: %v", err)
	}
	if _, err := proof.Decode(make([]byte, proof.MaxBytes+1)); !errors.Is(err, proof.ErrMalformed) {
		t.Fatalf("oversized: %v", err)
	}
}

// FuzzDecode: the decoder never panics, never allocates beyond its input's
// worth, and whatever it accepts re-encodes to the same bytes.
func FuzzDecode(f *testing.F) {
	f.Add(sampleProof(f, 8, air.DefaultOptions()))
	f.Add(sampleProof(f, 32, air.Options{Blowup: 4, Queries: 8, GrindingBits: 0, Folding: 8, FieldExtension: 2, MaxRemainder: 8}))
	f.Add([]byte("PWSTARK\x01"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := proof.Decode(b)
		if err != nil {
			if !errors.Is(err, proof.ErrMalformed) {
				t.Fatalf("error not ErrMalformed: %v", err)
			}
			return
		}
		if !bytes.Equal(p.Encode(), b) {
			t.Fatal("accepted bytes do not re-encode identically")
		}
	})
}
