package ipa

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/consensys/gnark-crypto/ecc/bn254"
)

// Seed and DST fix the generators forever; changing either changes every
// commitment and so every key and proof.
const (
	Seed = "pouwfarm/plonkish/ipa/generators/v1"
	DST  = "POUWFARM-PLONKISH-IPA-V1_BN254G1_XMD:SHA-256_SVDW_RO_"
	// MaxK bounds the size of a commitment key (2^MaxK generators).
	MaxK = 22
)

// ErrSize reports a vector or key size outside what the scheme supports.
var ErrSize = errors.New("ipa: unsupported size")

// Params is a commitment key for vectors of length N = 2^K.
type Params struct {
	K int
	N int
	G []bn254.G1Affine // N generators for the coefficients
	U bn254.G1Affine   // generator for the inner product

	gens *Generators // for the Lagrange basis, derived on first use
}

// Generators is a process-wide-free cache of derived generators: callers own
// it (typically one per backend instance) and share it across sizes.
type Generators struct {
	mu sync.Mutex
	g  []bn254.G1Affine
	u  *bn254.G1Affine

	lmu sync.Mutex
	lag map[int][]bn254.G1Affine // N·(Lagrange-basis generators) per k
}

// Params returns the commitment key of size 2^k, deriving (and caching)
// missing generators in parallel.
func (gs *Generators) Params(k int) (*Params, error) {
	if k < 1 || k > MaxK {
		return nil, fmt.Errorf("%w: k=%d", ErrSize, k)
	}
	n := 1 << k
	gs.mu.Lock()
	defer gs.mu.Unlock()
	if gs.u == nil {
		u, err := bn254.HashToG1([]byte(Seed+"U"), []byte(DST))
		if err != nil {
			return nil, fmt.Errorf("ipa: derive U: %w", err)
		}
		gs.u = &u
	}
	if len(gs.g) < n {
		start := len(gs.g)
		ext := make([]bn254.G1Affine, n)
		copy(ext, gs.g)
		if err := deriveG(ext, start); err != nil {
			return nil, err
		}
		gs.g = ext
	}
	return &Params{K: k, N: n, G: gs.g[:n:n], U: *gs.u, gens: gs}, nil
}

// GeneratorG derives G_i on its own (used by tests to pin the derivation).
func GeneratorG(i uint32) (bn254.G1Affine, error) {
	msg := make([]byte, 0, len(Seed)+5)
	msg = append(msg, Seed...)
	msg = append(msg, 'G')
	msg = binary.BigEndian.AppendUint32(msg, i)
	return bn254.HashToG1(msg, []byte(DST))
}

func deriveG(g []bn254.G1Affine, start int) error {
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := start + w; i < len(g); i += workers {
				p, err := GeneratorG(uint32(i))
				if err != nil {
					errs[w] = fmt.Errorf("ipa: derive G_%d: %w", i, err)
					return
				}
				g[i] = p
			}
		}(w)
	}
	wg.Wait()
	return errors.Join(errs...)
}
