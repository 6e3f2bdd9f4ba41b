package plonkish_test

import (
	"context"
	"slices"
	"testing"
)

// FuzzVerify feeds arbitrary bytes to the proof decoder and verifier: they
// must never panic, and nothing but the honest proof may verify.
func FuzzVerify(f *testing.F) {
	w := windows(f, execute(f, fibSrc, 12), 16)[0]
	st := statement(f, w, "j", "p")
	ctx := context.Background()
	proof, err := be.Prove(ctx, w, st)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(proof)
	f.Add(proof[:len(proof)/2])
	f.Add([]byte("PLK\x01\x09"))
	f.Add([]byte{})
	mid := slices.Clone(proof)
	mid[len(mid)/2] ^= 0x80
	f.Add(mid)
	f.Fuzz(func(t *testing.T, b []byte) {
		err := be.Verify(ctx, st, b)
		if err == nil && !slices.Equal(b, proof) {
			t.Fatal("a proof other than the honest one verified")
		}
		if err != nil && !rejected(err) {
			t.Fatalf("error wraps neither ErrInvalidProof nor ErrProofRejected: %v", err)
		}
	})
}
