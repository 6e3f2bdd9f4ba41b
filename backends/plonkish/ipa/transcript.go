package ipa

import (
	"encoding/binary"

	"github.com/consensys/gnark-crypto/ecc/bn254"
	"github.com/consensys/gnark-crypto/ecc/bn254/fr"
	"github.com/zeebo/blake3"
)

// transcriptDomain separates this Fiat–Shamir transcript from every other
// BLAKE3 use in the project (job IDs, trace hashes, the STARK's transcript).
const transcriptDomain = "pouwfarm/plonkish/transcript/v1"

// Transcript is a BLAKE3 Fiat–Shamir transcript. Every message is framed
// as label-length, label, data-length, data, so no two different message
// sequences hash alike. A challenge is 64 bytes of BLAKE3 output reduced
// modulo r (bias < 2^-250) and is itself absorbed, so successive
// challenges differ even with no message in between.
type Transcript struct {
	h *blake3.Hasher
}

// NewTranscript starts a transcript for one protocol instance; label names
// the protocol (e.g. "plonkish-vm").
func NewTranscript(label string) *Transcript {
	t := &Transcript{h: blake3.New()}
	t.AppendBytes("domain", []byte(transcriptDomain))
	t.AppendBytes("protocol", []byte(label))
	return t
}

func (t *Transcript) frame(label string, n int) {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], uint64(len(label)))
	_, _ = t.h.Write(buf[:])
	_, _ = t.h.Write([]byte(label))
	binary.BigEndian.PutUint64(buf[:], uint64(n))
	_, _ = t.h.Write(buf[:])
}

// AppendBytes absorbs a labelled byte string.
func (t *Transcript) AppendBytes(label string, b []byte) {
	t.frame(label, len(b))
	_, _ = t.h.Write(b)
}

// AppendUint64 absorbs a labelled integer.
func (t *Transcript) AppendUint64(label string, v uint64) {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], v)
	t.AppendBytes(label, buf[:])
}

// AppendScalar absorbs a scalar in its canonical 32-byte big-endian form.
func (t *Transcript) AppendScalar(label string, s *fr.Element) {
	b := s.Bytes()
	t.AppendBytes(label, b[:])
}

// AppendPoint absorbs a G1 point in its 32-byte compressed form.
func (t *Transcript) AppendPoint(label string, p *bn254.G1Affine) {
	b := p.Bytes()
	t.AppendBytes(label, b[:])
}

// Challenge squeezes a scalar challenge. It never returns zero (a zero
// challenge would make the IPA's u^{-1} undefined); the chance of needing
// a second squeeze is 2^-254.
func (t *Transcript) Challenge(label string) fr.Element {
	for {
		t.frame("challenge:"+label, 0)
		var out [64]byte
		_, _ = t.h.Digest().Read(out[:])
		// feed the output back so the next challenge depends on this one
		t.AppendBytes("squeezed", out[:])
		var c fr.Element
		c.SetBytes(out[:])
		if !c.IsZero() {
			return c
		}
	}
}

// ChallengeShort squeezes a nonzero 128-bit challenge. The IPA folds the
// generators by its round challenges; a 128-bit scalar halves the cost of
// each of those n scalar multiplications (GLV then needs two 64-bit
// halves), and the argument's soundness error stays ~2k/2^128.
func (t *Transcript) ChallengeShort(label string) fr.Element {
	for {
		t.frame("challenge128:"+label, 0)
		var out [16]byte
		_, _ = t.h.Digest().Read(out[:])
		t.AppendBytes("squeezed", out[:])
		var c fr.Element
		c.SetBytes(out[:])
		if !c.IsZero() {
			return c
		}
	}
}
