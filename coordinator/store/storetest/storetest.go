// Package storetest is the conformance suite that every store.Store
// implementation must pass: the same tests run against boltstore and
// redisstore.
//
// An implementation's test calls Run with a constructor of fresh harnesses.
// One file per area of the contract (enqueue, claim, lease, deps, pool,
// events, retention, deadletter, concurrency) adds its tests to the suite;
// model.go is a pgregory.net/rapid state machine that drives random
// operations and compares the store with an in-memory model of the rules
// after every step.
//
// Where ARCHITECTURE.md leaves a choice open, the suite fixes it, so both
// stores behave the same:
//   - Validation comes first (ErrInvalid), then deduplication (a duplicate
//     answers with the existing job even when the pool is empty), then
//     depends_on (ErrNotFound unknown, ErrConflict dead), then funds.
//   - Within the dedup window, a triple whose completed job was purged by
//     retention still answers created=false with the old job id.
//   - Claim by an unregistered prover is ErrNotFound. A claim may move the
//     pending jobs past their deadline that it meets to the dead letter.
//   - Lease checks: the current token held by another prover id, or a live
//     lease held by another prover when the caller never held one on the
//     job, is ErrNotLeaseHolder; every other wrong or stale token, and the
//     current token after expiry, is ErrLeaseLost.
//   - A failure, expiry or release past the deadline dead-letters the job;
//     a failure whose attempts reach max_retries does too. Killing a job
//     kills, transitively, every job waiting on it.
//   - Requeue: ErrConflict unless dead, past its deadline, or with a dead
//     dependency; a dependency not yet completed makes it waiting again.
//   - Events: exactly one per transition (job.created, job.claimed,
//     job.renewed, job.released, job.rejected/failed/expired, job.completed,
//     job.requeued, pool.deposit, prover.registered), plus job.ready for
//     each waiter a completion releases and job.dead for each job that dies
//     (after the failure event that killed it). BeginVerify appends none.
//     Exactly MaxEvents are kept; reading after an id older than the oldest
//     kept minus one is ErrEventsTruncated.
//   - ReapExpired also makes completed jobs past Retention unreadable
//     (ErrNotFound) and forgets dedup entries past DedupWindow.
//
// It imports store, pouw and test libraries only; it must not import an
// implementation (boltstore, redisstore): they import it.
package storetest

import (
	"testing"
	"time"

	"github.com/pouwfarm/pouwfarm/coordinator/store"
)

// Harness is one fresh, empty store plus the means to move its clock.
type Harness struct {
	// Store is empty, with the given options.
	Store store.Store
	// Advance moves the store's clock forward by d (a fake clock for
	// boltstore, the test offset key for redisstore). Tests never sleep.
	Advance func(d time.Duration)
	// Now returns the store's current time.
	Now func() time.Time
}

// Factory makes a fresh harness with the given options. Cleanup is
// registered on t.
type Factory func(t *testing.T, opts store.Options) Harness

// Run runs the whole conformance suite.
func Run(t *testing.T, newHarness Factory) {
	t.Helper()
	for _, tc := range suite {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newHarness) })
	}
}

type testCase struct {
	name string
	fn   func(t *testing.T, newHarness Factory)
}

// suite is filled by the files of this package, one per area of the contract.
var suite []testCase
