package pouw

import "fmt"

// JobTier is the granularity of a proof job (SPEC.md, Job Tiers). Its numeric
// value is the byte that goes into the job ID derivation.
type JobTier uint8

// The tiers, with the byte values fixed by ARCHITECTURE.md.
const (
	TierMicro JobTier = 0 // a window of W steps of one intent
	TierMacro JobTier = 1 // one intent
	TierFull  JobTier = 2 // a batch of intents
)

// Tiers lists every tier in ascending order.
var Tiers = [...]JobTier{TierMicro, TierMacro, TierFull}

// ParseTier parses "micro", "macro" or "full".
func ParseTier(s string) (JobTier, error) {
	switch s {
	case "micro":
		return TierMicro, nil
	case "macro":
		return TierMacro, nil
	case "full":
		return TierFull, nil
	}
	return 0, fmt.Errorf("%w: unknown tier %q (want micro, macro or full)", ErrInvalid, s)
}

// Valid reports whether t is one of the three tiers.
func (t JobTier) Valid() bool { return t <= TierFull }

// String returns the wire name of the tier.
func (t JobTier) String() string {
	switch t {
	case TierMicro:
		return "micro"
	case TierMacro:
		return "macro"
	case TierFull:
		return "full"
	}
	return fmt.Sprintf("tier(%d)", uint8(t))
}

// MarshalText implements encoding.TextMarshaler.
func (t JobTier) MarshalText() ([]byte, error) {
	if !t.Valid() {
		return nil, fmt.Errorf("%w: tier %d", ErrInvalid, uint8(t))
	}
	return []byte(t.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (t *JobTier) UnmarshalText(b []byte) error {
	v, err := ParseTier(string(b))
	if err != nil {
		return err
	}
	*t = v
	return nil
}
