package aggregate

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/consensys/gnark-crypto/ecc"
	"github.com/consensys/gnark/backend/groth16"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/pouw"
)

// Proof envelope (docs/aggregate.md, Proof format):
//
//	4   magic "PWAG"
//	1   version (1)
//	1   kind: 1 intent proof (BLS12-377), 2 aggregate proof (BW6-761)
//	32  key id: BLAKE3 of the verifying key it was made with
//	..  the gnark Groth16 proof, compressed points (gnark's WriteTo)
const (
	proofVersion = 1
	kindIntent   = 1
	kindAggr     = 2
	envelopeLen  = 4 + 1 + 1 + 32
	// MaxProofBytes bounds a proof: both kinds are under 1 KiB.
	MaxProofBytes = 2048
)

// maxCommitments: gnark merges every lookup and range check of a circuit
// into one BSB22 commitment.
const maxCommitments = 1

// compressedSizes returns the compressed G1 and G2 point sizes.
func compressedSizes(c ecc.ID) (g1, g2 int) {
	if c == outerCurve {
		return 96, 96
	}
	return 48, 96
}

var proofMagic = [4]byte{'P', 'W', 'A', 'G'}

type envelope struct {
	kind  byte
	keyID pouw.Hash
	proof groth16.Proof
}

func encodeProof(kind byte, id pouw.Hash, p groth16.Proof) ([]byte, error) {
	var b bytes.Buffer
	b.Write(proofMagic[:])
	b.WriteByte(proofVersion)
	b.WriteByte(kind)
	b.Write(id[:])
	if _, err := p.WriteTo(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// decodeProof parses an envelope. The gnark decoder checks that every point
// is on its curve and in its subgroup; trailing bytes are refused so each
// proof has one encoding.
func decodeProof(b []byte) (*envelope, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", backends.ErrInvalidProof, fmt.Sprintf(format, a...))
	}
	if len(b) > MaxProofBytes {
		return nil, bad("%d bytes (max %d)", len(b), MaxProofBytes)
	}
	if len(b) < envelopeLen {
		return nil, bad("%d bytes, shorter than the envelope", len(b))
	}
	if !bytes.Equal(b[:4], proofMagic[:]) {
		return nil, bad("bad magic")
	}
	if b[4] != proofVersion {
		return nil, bad("version %d", b[4])
	}
	e := &envelope{kind: b[5]}
	var curve ecc.ID
	switch e.kind {
	case kindIntent:
		curve = innerCurve
	case kindAggr:
		curve = outerCurve
	default:
		return nil, bad("kind %d", e.kind)
	}
	copy(e.keyID[:], b[6:envelopeLen])
	// gnark-crypto's decoder allocates a slice of the length it reads, so
	// the commitment count is checked here first: Ar, Bs, Krs, u32 count,
	// count commitments, one proof of knowledge, all compressed.
	g1, g2 := compressedSizes(curve)
	body := b[envelopeLen:]
	if len(body) < 2*g1+g2+4 {
		return nil, bad("groth16 proof of %d bytes", len(body))
	}
	n := binary.BigEndian.Uint32(body[2*g1+g2:])
	if n > maxCommitments || len(body) != 2*g1+g2+4+int(n)*g1+g1 {
		return nil, bad("groth16 proof of %d bytes with %d commitments", len(body), n)
	}
	e.proof = groth16.NewProof(curve)
	r := bytes.NewReader(body)
	if _, err := e.proof.ReadFrom(r); err != nil {
		return nil, bad("groth16 proof: %v", err)
	}
	if r.Len() != 0 {
		return nil, bad("%d trailing bytes", r.Len())
	}
	return e, nil
}
