package boltstore_test

import (
	"os"
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

// memDir is a temp dir in memory (/dev/shm) where there is one: the
// conformance suite is about semantics, and an fsync per transition on a
// shared disk would make it slow. Durability across reopen is tested on a
// real disk (reopen_test.go).
func memDir(t *testing.T) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "boltstore-test-"); err == nil {
			t.Cleanup(func() { _ = os.RemoveAll(dir) })
			return dir
		}
	}
	return t.TempDir()
}

func newHarness(t *testing.T, opts store.Options) storetest.Harness {
	clk := clock.NewFake(epoch)
	s, err := boltstore.Open(filepath.Join(memDir(t), "pouw.db"), opts, clk, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return storetest.Harness{Store: s, Advance: clk.Advance, Now: clk.Now}
}

func TestConformance(t *testing.T) {
	storetest.Run(t, newHarness)
}
