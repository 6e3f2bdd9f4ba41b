package pouw

import "errors"

// ErrInvalid marks input that breaks a rule of the job model (a bad tier, a
// malformed hash, an amount out of range). Callers map it to HTTP 400.
var ErrInvalid = errors.New("invalid")
