package boltstore_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/pouwfarm/pouwfarm/clock"
	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/coordinator/store/boltstore"
	"github.com/pouwfarm/pouwfarm/coordinator/store/storetest"
)

// epoch is where the fake clock starts: a fixed, realistic time.
var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func newHarness(t *testing.T, opts store.Options) storetest.Harness {
	clk := clock.NewFake(epoch)
	s, err := boltstore.Open(filepath.Join(t.TempDir(), "pouw.db"), opts, clk, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return storetest.Harness{Store: s, Advance: clk.Advance, Now: clk.Now}
}

func TestConformance(t *testing.T) {
	storetest.Run(t, newHarness)
}
