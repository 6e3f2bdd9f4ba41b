package aggregate

import (
	"errors"
	"fmt"
	"math/bits"
)

// Size classes of the intent circuit: it proves intents of at most 2^LogSteps
// steps (HALT included); larger intents go to the STARK.
const (
	MinLogSteps = 8
	MaxLogSteps = 12
)

// Limits of the aggregation width k.
const (
	MinK = 2
	MaxK = 16
)

// DefaultProgLen is the default size of the program table: programs of at
// most this many instructions can be proved.
const DefaultProgLen = 32

// MaxProgLen bounds the program table (the digest hashes it in-circuit, about
// 100 constraints per entry, and the lookup costs about 2 per entry).
const MaxProgLen = 1024

// ErrParams marks parameters outside the supported ranges.
var ErrParams = errors.New("aggregate: invalid parameters")

// Params fix both circuits, and therefore a key set.
type Params struct {
	LogSteps int `json:"log_steps"` // intents of ≤ 2^LogSteps steps
	ProgLen  int `json:"prog_len"`  // programs of ≤ ProgLen instructions
	K        int `json:"k"`         // intent proofs per aggregate proof
}

// Steps is the size class: the number of rows the intent circuit has.
func (p Params) Steps() int { return 1 << p.LogSteps }

// Validate checks the ranges.
func (p Params) Validate() error {
	switch {
	case p.LogSteps < MinLogSteps || p.LogSteps > MaxLogSteps:
		return fmt.Errorf("%w: steps 2^%d outside 2^%d..2^%d", ErrParams, p.LogSteps, MinLogSteps, MaxLogSteps)
	case p.ProgLen < 1 || p.ProgLen > MaxProgLen:
		return fmt.Errorf("%w: program table of %d entries (want 1..%d)", ErrParams, p.ProgLen, MaxProgLen)
	case p.K < MinK || p.K > MaxK || bits.OnesCount(uint(p.K)) != 1:
		return fmt.Errorf("%w: k = %d is not a power of two in %d..%d", ErrParams, p.K, MinK, MaxK)
	}
	return nil
}

// LogStepsFor returns the exponent of a steps count given as a power of two.
func LogStepsFor(steps int) (int, error) {
	if steps <= 0 || bits.OnesCount(uint(steps)) != 1 {
		return 0, fmt.Errorf("%w: steps %d is not a power of two", ErrParams, steps)
	}
	return bits.TrailingZeros(uint(steps)), nil
}

func (p Params) String() string {
	return fmt.Sprintf("steps=2^%d prog_len=%d k=%d", p.LogSteps, p.ProgLen, p.K)
}
