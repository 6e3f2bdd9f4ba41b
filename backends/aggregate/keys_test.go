package aggregate

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"
)

// Test keys: the smallest size class, k = 2, set up once per test binary in
// a temporary directory (setup is slow). POUW_AGGREGATE_TEST_KEYS names a
// directory to reuse keys across runs: set up there when it holds none.
var testKeys struct {
	mu   sync.Mutex
	sets map[Params]*Keys
}

var testParams = Params{LogSteps: MinLogSteps, ProgLen: DefaultProgLen, K: 2}

func sharedKeys(t testing.TB) *Keys { return cachedKeys(t, testParams) }

// cachedKeys returns keys for p. Setup takes minutes on a busy 2-core
// machine, so keys are kept in a cache directory ($POUW_AGGREGATE_TEST_KEYS,
// default DefaultTestKeysRoot), one subdirectory
// per parameter set, and reused while CheckCircuits says they still match
// this binary's circuits; otherwise they are set up again, once per test
// binary.
func cachedKeys(t testing.TB, p Params) *Keys {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: needs Groth16 keys (minutes to set up when not cached)")
	}
	testKeys.mu.Lock()
	defer testKeys.mu.Unlock()
	if k := testKeys.sets[p]; k != nil {
		return k
	}
	root := os.Getenv("POUW_AGGREGATE_TEST_KEYS")
	if root == "" {
		root = DefaultTestKeysRoot()
	}
	t0 := time.Now()
	k, setup, err := LoadOrSetup(context.Background(), p, root, nil)
	if err != nil {
		t.Fatal(err)
	}
	if setup {
		t.Logf("setup %v in %v: intent %d constraints, aggregate %d", p, time.Since(t0).Round(time.Millisecond), k.IntentConstraints, k.AggConstraints)
	}
	if testKeys.sets == nil {
		testKeys.sets = map[Params]*Keys{}
	}
	testKeys.sets[p] = k
	return k
}

func testBackend(t testing.TB) *Backend {
	t.Helper()
	b, err := New(Options{Keys: []*Keys{sharedKeys(t)}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}
