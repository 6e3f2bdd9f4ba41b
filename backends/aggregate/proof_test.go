package aggregate

import (
	"bytes"
	"errors"
	"testing"

	bls12377 "github.com/consensys/gnark-crypto/ecc/bls12-377"
	bw6761 "github.com/consensys/gnark-crypto/ecc/bw6-761"
	"github.com/consensys/gnark/backend/groth16"
	groth16bls12377 "github.com/consensys/gnark/backend/groth16/bls12-377"
	groth16bw6761 "github.com/consensys/gnark/backend/groth16/bw6-761"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/pouw"
)

// wellFormed returns encodings of structurally valid (not verifying) proofs
// of both kinds, built from the curves' generators: seeds that reach the
// point decoders.
func wellFormed(t testing.TB) [][]byte {
	_, _, g1, g2 := bls12377.Generators()
	inner := &groth16bls12377.Proof{Ar: g1, Bs: g2, Krs: g1, Commitments: []bls12377.G1Affine{g1}, CommitmentPok: g1}
	_, _, h1, h2 := bw6761.Generators()
	outer := &groth16bw6761.Proof{Ar: h1, Bs: h2, Krs: h1, Commitments: []bw6761.G1Affine{h1}, CommitmentPok: h1}
	var out [][]byte
	for _, c := range []struct {
		kind byte
		p    groth16.Proof
	}{{kindIntent, inner}, {kindAggr, outer}} {
		b, err := encodeProof(c.kind, pouw.Hash{7}, c.p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func TestDecodeProofRoundTripsAndRefusesMalformedEnvelopes(t *testing.T) {
	for _, b := range wellFormed(t) {
		e, err := decodeProof(b)
		if err != nil {
			t.Fatalf("well-formed proof: %v", err)
		}
		again, err := encodeProof(e.kind, e.keyID, e.proof)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("round trip differs (%v)", err)
		}
		for name, bad := range map[string][]byte{
			"empty":       nil,
			"truncated":   b[:len(b)-1],
			"trailing":    append(bytes.Clone(b), 0),
			"magic":       append([]byte("XWAG"), b[4:]...),
			"version":     append(append(bytes.Clone(b[:4]), 2), b[5:]...),
			"kind":        append(append(bytes.Clone(b[:5]), 9), b[6:]...),
			"oversized":   make([]byte, MaxProofBytes+1),
			"commitments": withCommitmentCount(b, 1<<30),
		} {
			if _, err := decodeProof(bad); !errors.Is(err, backends.ErrInvalidProof) {
				t.Errorf("%s: got %v, want ErrInvalidProof", name, err)
			}
		}
	}
}

// withCommitmentCount rewrites the commitment count of an encoded proof.
func withCommitmentCount(b []byte, n uint32) []byte {
	out := bytes.Clone(b)
	curve := innerCurve
	if b[5] == kindAggr {
		curve = outerCurve
	}
	g1, g2 := compressedSizes(curve)
	o := envelopeLen + 2*g1 + g2
	out[o], out[o+1], out[o+2], out[o+3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	return out
}

// FuzzDecodeProof: the decoder never panics, and what it accepts re-encodes
// to the same bytes (one encoding per proof).
func FuzzDecodeProof(f *testing.F) {
	for _, b := range wellFormed(f) {
		f.Add(b)
		f.Add(b[:envelopeLen+10])
		f.Add(withCommitmentCount(b, 0))
	}
	f.Add([]byte("PWAG"))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeProof(b)
		if err != nil {
			if !errors.Is(err, backends.ErrInvalidProof) {
				t.Fatalf("error not wrapping ErrInvalidProof: %v", err)
			}
			return
		}
		again, err := encodeProof(e.kind, e.keyID, e.proof)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("accepted bytes do not re-encode identically (%v)", err)
		}
	})
}
