package scheduler_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/scheduler"
)

// errProof stands for a prover failure in the sequences below.
var errProof = errors.New("proof failed")

// runJob is the shape of the agent's use of a reservation: acquire, defer
// the release, then fail or succeed or panic.
func runJob(pool *scheduler.Pool, j scheduler.Job, outcome int) (err error) {
	r, err := pool.Acquire(j)
	if err != nil {
		return err
	}
	defer r.Release()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	switch outcome {
	case 0:
		return nil
	case 1:
		return errProof
	default:
		panic("backend crashed")
	}
}

func randomJob(rng *rand.Rand, i int) scheduler.Job {
	backends := []string{"stark", "plonkish", "aggregate", "unknown"}
	return scheduler.Job{
		ID:         fmt.Sprint(i),
		Tier:       pouw.Tiers[rng.IntN(3)],
		Backend:    backends[rng.IntN(len(backends))],
		TraceBytes: rng.Int64N(512 * MiB),
	}
}

func leakTestSlots(t testing.TB) []scheduler.Slot {
	return mustModel(t, scheduler.HostOptions{CPUCores: 6, CoresPerSlot: 2, HostMemoryBytes: 6 * GiB, GPUs: scheduler.GPUSelection{All: true}, JobsPerGPU: 3}, h100(0), a100(1))
}

// checkInvariants: nothing over capacity, and the slots' usage adds up to
// the reservations held.
func checkInvariants(t *testing.T, a scheduler.Allocator, held map[uint64]scheduler.Placement) {
	t.Helper()
	for _, s := range a.Slots() {
		used, jobs, _ := a.Usage(s.ID)
		var want scheduler.Resources
		n := 0
		for _, p := range held {
			if p.Slot == s.ID {
				want.Cores += p.Need.Cores
				want.MemoryBytes += p.Need.MemoryBytes
				n++
			}
		}
		if used != want || jobs != n {
			t.Fatalf("slot %s: usage %+v/%d jobs, reservations say %+v/%d", s.ID, used, jobs, want, n)
		}
		if used.Cores > s.Capacity.Cores || used.MemoryBytes > s.Capacity.MemoryBytes || jobs > s.MaxJobs || used.Cores < 0 || used.MemoryBytes < 0 {
			t.Fatalf("slot %s over capacity: %+v, %d jobs of %+v/%d", s.ID, used, jobs, s.Capacity, s.MaxJobs)
		}
	}
	if a.Reserved() != len(held) {
		t.Fatalf("%d reservations held, want %d", a.Reserved(), len(held))
	}
}

// TestNoReservationLeaksAfterRandomSequences drives an Allocator through
// 10,000 random placements, releases, failed placements, double releases
// and health changes, checking after every step that usage equals the sum
// of the reservations held, and at the end that nothing is left.
func TestNoReservationLeaksAfterRandomSequences(t *testing.T) {
	const sequences, steps = 100, 100
	for seq := 0; seq < sequences; seq++ {
		rng := rand.New(rand.NewPCG(uint64(seq), 7))
		a := mustAlloc(t, leakTestSlots(t), stark, plonkish, aggregate)
		held := map[uint64]scheduler.Placement{}
		var released []scheduler.Placement
		for step := 0; step < steps; step++ {
			switch op := rng.IntN(10); {
			case op < 5: // place
				p, err := a.PlaceAndReserve(randomJob(rng, step))
				if err == nil {
					held[p.ID] = p
				} else if !errors.Is(err, scheduler.ErrNoFit) {
					t.Fatalf("seq %d step %d: %v", seq, step, err)
				}
			case op < 8: // release one
				for id, p := range held {
					if err := a.Release(p); err != nil {
						t.Fatalf("seq %d: release %d: %v", seq, id, err)
					}
					delete(held, id)
					released = append(released, p)
					break
				}
			case op < 9: // release again: refused, changes nothing
				if len(released) > 0 {
					if err := a.Release(released[rng.IntN(len(released))]); !errors.Is(err, scheduler.ErrNotReserved) {
						t.Fatalf("seq %d: double release: %v", seq, err)
					}
				}
			default: // a GPU turns unhealthy or back
				reason := ""
				if rng.IntN(2) == 0 {
					reason = "XID 79"
				}
				a.SetHealth(fmt.Sprintf("gpu%d", rng.IntN(2)), reason)
			}
			checkInvariants(t, a, held)
		}
		for id, p := range held {
			if err := a.Release(p); err != nil {
				t.Fatal(err)
			}
			delete(held, id)
		}
		checkInvariants(t, a, held)
		if a.Reserved() != 0 {
			t.Fatalf("seq %d: %d reservations leaked", seq, a.Reserved())
		}
	}
}

// TestPoolReleasesOnEveryExitPathUnderConcurrency runs 10,000 jobs from 8
// goroutines through Acquire/defer Release with random successes, errors
// and panics (run with -race), then checks nothing is held.
func TestPoolReleasesOnEveryExitPathUnderConcurrency(t *testing.T) {
	pool := scheduler.NewPool(mustAlloc(t, leakTestSlots(t), stark, plonkish, aggregate))
	const workers, perWorker = 8, 1250
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[string]int{}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 11))
			for i := 0; i < perWorker; i++ {
				err := runJob(pool, randomJob(rng, i), rng.IntN(3))
				key := "ok"
				switch {
				case errors.Is(err, scheduler.ErrNoFit):
					key = "no_fit"
				case errors.Is(err, errProof):
					key = "failed"
				case err != nil:
					key = "panicked"
				}
				mu.Lock()
				counts[key]++
				mu.Unlock()
				if i%100 == 0 {
					pool.Claims() // claims read the pool concurrently with placements
				}
			}
		}()
	}
	wg.Wait()
	snap := pool.Snapshot()
	if n := snap.Reserved(); n != 0 {
		t.Fatalf("%d reservations leaked (%v)", n, counts)
	}
	checkInvariants(t, snap, nil)
	for _, k := range []string{"ok", "failed", "panicked", "no_fit"} {
		if counts[k] == 0 {
			t.Errorf("no job took the %q path: %v", k, counts)
		}
	}
}
