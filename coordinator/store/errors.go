package store

import (
	"errors"

	"github.com/pouwfarm/pouwfarm/pouw"
)

// Sentinel errors. Callers branch on them with errors.Is; coordinator/api maps
// them to HTTP status codes in one place. Implementations wrap them with a
// message that says what was wrong.
var (
	// ErrInvalid is bad input (400). It is pouw.ErrInvalid, so validation
	// errors of the domain types match it too.
	ErrInvalid = pouw.ErrInvalid
	// ErrNotFound: unknown job, prover or blob (404).
	ErrNotFound = errors.New("not found")
	// ErrLeaseLost: the token is not the job's current lease — it expired
	// (reaped or not), was released, or the job was leased again (409).
	ErrLeaseLost = errors.New("lease lost")
	// ErrNotLeaseHolder: the job is leased to another prover (403).
	ErrNotLeaseHolder = errors.New("lease held by another prover")
	// ErrConflict: the job is not in a state that allows the operation (409),
	// e.g. requeue of a job that is not dead.
	ErrConflict = errors.New("state conflict")
	// ErrInsufficientFunds: the pool cannot cover the reward reservation (409).
	ErrInsufficientFunds = errors.New("insufficient funds in pool")
	// ErrNoJob: nothing pending fits the claim (the API answers 204).
	ErrNoJob = errors.New("no job available")
	// ErrEventsTruncated: events after the requested id were dropped by
	// retention; the reader must resynchronise (the SSE stream sends reset).
	ErrEventsTruncated = errors.New("events truncated by retention")
	// ErrUnavailable: the backing store cannot be reached (503).
	ErrUnavailable = errors.New("store unavailable")
	// ErrExists: a unique thing (prover id) already exists (409).
	ErrExists = errors.New("already exists")
)
