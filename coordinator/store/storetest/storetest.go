// Package storetest is the conformance suite that every store.Store
// implementation must pass: the same tests run against boltstore and
// redisstore.
//
// An implementation's test calls Run with a constructor of fresh harnesses.
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
