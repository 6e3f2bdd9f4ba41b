// Package aggregatetest gives tests of any package the aggregate backend's
// smallest key set, set up once per machine and cached (Groth16 setup takes
// minutes on a 2-core machine): under $POUW_AGGREGATE_TEST_KEYS, else
// pouw-aggregate-test-keys in the user's cache directory (what
// scripts/test.sh uses too), so every package's tests share one set. Keys are reused only while they
// match this binary's circuits (aggregate.LoadOrSetup).
package aggregatetest

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/pouwfarm/pouwfarm/backends/aggregate"
)

// Params is the smallest key set: intents of up to 2^8 steps, batches of 2.
var Params = aggregate.Params{LogSteps: aggregate.MinLogSteps, ProgLen: aggregate.DefaultProgLen, K: 2}

// Root is the cache root the keys live under.
func Root() string {
	if r := os.Getenv("POUW_AGGREGATE_TEST_KEYS"); r != "" {
		return r
	}
	return aggregate.DefaultTestKeysRoot()
}

var loaded sync.Map // aggregate.Params -> *aggregate.Keys, per test binary

// Keys returns the key set of p, setting it up when the cache lacks it. It
// skips under -short, which promises no minutes-long setup.
func Keys(t testing.TB, p aggregate.Params) *aggregate.Keys {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: needs Groth16 keys (minutes to set up when not cached)")
	}
	if k, ok := loaded.Load(p); ok {
		return k.(*aggregate.Keys)
	}
	t0 := time.Now()
	k, setup, err := aggregate.LoadOrSetup(context.Background(), p, Root(), nil)
	if err != nil {
		t.Fatalf("aggregate keys %v: %v", p, err)
	}
	if setup {
		t.Logf("set up aggregate keys %v in %v", p, time.Since(t0).Round(time.Second))
	}
	actual, _ := loaded.LoadOrStore(p, k)
	return actual.(*aggregate.Keys)
}

// Backend returns an aggregate backend over Keys(t, Params).
func Backend(t testing.TB) *aggregate.Backend {
	t.Helper()
	b, err := aggregate.New(aggregate.Options{Keys: []*aggregate.Keys{Keys(t, Params)}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}
