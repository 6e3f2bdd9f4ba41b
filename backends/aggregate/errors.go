package aggregate

import "errors"

// Errors callers branch on (besides the backends sentinels).
var (
	// ErrTooLarge: the intent or its program does not fit the keys' size
	// class (prove it with the STARK, or set up larger keys).
	ErrTooLarge = errors.New("aggregate: intent too large for the keys")
	// ErrWitness: the trace does not match its statement.
	ErrWitness = errors.New("aggregate: trace does not fit its statement")
	// ErrKeyMismatch: a proof or key directory made for other keys.
	ErrKeyMismatch = errors.New("aggregate: key mismatch")
	// ErrNoKeys: no loaded key set serves the request.
	ErrNoKeys = errors.New("aggregate: no keys for this size")
)
