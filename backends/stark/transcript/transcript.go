// Package transcript is the STARK's Fiat–Shamir channel: a BLAKE3 sponge-like
// chain that absorbs the statement and every commitment and draws the
// verifier's challenges (extension-field elements, query positions) and
// checks proof-of-work grinding. Prover and verifier run the same sequence of
// calls, so any byte that differs changes every later challenge.
//
// state_0 = BLAKE3("pouwfarm-stark-v1" || seed); Absorb(label, data) sets
// state = BLAKE3(0x01 || state || u32le(len label) || label || data);
// challenge i after the last absorb = BLAKE3(0x02 || state || u64le(i)).
// It imports nothing of this module but field.
package transcript

import (
	"context"
	"encoding/binary"
	"math/bits"
	"slices"

	"github.com/zeebo/blake3"

	"github.com/pouwfarm/pouwfarm/backends/stark/field"
)

// Domain is the domain separator hashed into the initial state.
const Domain = "pouwfarm-stark-v1"

// Transcript is the Fiat–Shamir state. The zero value is not usable; use New.
type Transcript struct {
	state [32]byte
	ctr   uint64
}

// New starts a transcript from the statement's seed bytes.
func New(seed []byte) *Transcript {
	h := blake3.New()
	_, _ = h.Write([]byte(Domain))
	_, _ = h.Write(seed)
	t := &Transcript{}
	h.Sum(t.state[:0])
	return t
}

// Absorb mixes labelled data into the state and restarts the challenge
// counter.
func (t *Transcript) Absorb(label string, data []byte) {
	h := blake3.New()
	var l [4]byte
	binary.LittleEndian.PutUint32(l[:], uint32(len(label)))
	_, _ = h.Write([]byte{1})
	_, _ = h.Write(t.state[:])
	_, _ = h.Write(l[:])
	_, _ = h.Write([]byte(label))
	_, _ = h.Write(data)
	h.Sum(t.state[:0])
	t.ctr = 0
}

func (t *Transcript) next() [32]byte {
	var buf [1 + 32 + 8]byte
	buf[0] = 2
	copy(buf[1:], t.state[:])
	binary.LittleEndian.PutUint64(buf[33:], t.ctr)
	t.ctr++
	return blake3.Sum256(buf[:])
}

// drawBase draws a uniform base element by rejection: 8-byte words ≥ p are
// skipped (probability 2^-32 each).
func (t *Transcript) drawBase() field.Base {
	for {
		out := t.next()
		for i := 0; i < 32; i += 8 {
			if v := binary.LittleEndian.Uint64(out[i:]); v < field.Modulus {
				return field.New(v)
			}
		}
	}
}

// DrawExt draws a uniform extension element.
func (t *Transcript) DrawExt() field.Ext {
	a0 := t.drawBase()
	a1 := t.drawBase()
	return field.Ext{A0: a0, A1: a1}
}

// DrawExts draws n extension elements.
func (t *Transcript) DrawExts(n int) []field.Ext {
	out := make([]field.Ext, n)
	for i := range out {
		out[i] = t.DrawExt()
	}
	return out
}

// powHash is BLAKE3(0x03 || state || u64le(nonce)).
func (t *Transcript) powHash(nonce uint64) [32]byte {
	var buf [1 + 32 + 8]byte
	buf[0] = 3
	copy(buf[1:], t.state[:])
	binary.LittleEndian.PutUint64(buf[33:], nonce)
	return blake3.Sum256(buf[:])
}

// leadingZeros counts the leading zero bits of the digest read as a
// big-endian number.
func leadingZeros(d [32]byte) int {
	n := 0
	for i := 0; i < 32; i += 8 {
		z := bits.LeadingZeros64(binary.BigEndian.Uint64(d[i:]))
		n += z
		if z < 64 {
			break
		}
	}
	return n
}

// CheckPoW reports whether nonce meets the grinding target of bits leading
// zero bits for the current state.
func (t *Transcript) CheckPoW(nonce uint64, bits int) bool {
	return leadingZeros(t.powHash(nonce)) >= bits
}

// Grind finds the smallest nonce that meets the target, searching on all
// cores; it returns ctx.Err() if cancelled.
func (t *Transcript) Grind(ctx context.Context, bits int, workers int) (uint64, error) {
	if bits == 0 {
		return 0, nil
	}
	const batch = 1 << 12
	if workers < 1 {
		workers = 1
	}
	for base := uint64(0); ; base += batch * uint64(workers) {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		found := make([]uint64, workers)
		done := make(chan int, workers)
		for w := range workers {
			go func() {
				found[w] = ^uint64(0)
				lo := base + uint64(w)*batch
				for n := lo; n < lo+batch; n++ {
					if t.CheckPoW(n, bits) {
						found[w] = n
						break
					}
				}
				done <- w
			}()
		}
		for range workers {
			<-done
		}
		// The smallest nonce wins, so the proof is deterministic however
		// many workers searched.
		if m := slices.Min(found); m != ^uint64(0) {
			return m, nil
		}
	}
}

// DrawPositions absorbs the grinding nonce and draws count query positions
// in [0, domain) (domain a power of two), returned sorted and without
// duplicates.
func (t *Transcript) DrawPositions(nonce uint64, count, domain int) []int {
	var nb [8]byte
	binary.LittleEndian.PutUint64(nb[:], nonce)
	t.Absorb("pow-nonce", nb[:])
	mask := uint64(domain - 1)
	pos := make([]int, 0, count)
	for len(pos) < count {
		out := t.next()
		for i := 0; i < 32 && len(pos) < count; i += 8 {
			pos = append(pos, int(binary.LittleEndian.Uint64(out[i:])&mask))
		}
	}
	slices.Sort(pos)
	return slices.Compact(pos)
}
