package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/pouw"
)

func init() {
	add("ConcurrentClaimsGrantEachJobOnce", testConcurrentClaimsGrantEachJobOnce)
	add("ConcurrentReapersExpireEachLeaseOnce", testConcurrentReapersExpireEachLeaseOnce)
}

const (
	concurrentJobs    = 60
	concurrentWorkers = 8
)

func testConcurrentClaimsGrantEachJobOnce(t *testing.T, nh Factory) {
	f := newFx(t, nh, testOptions())
	f.deposit(1_000_000)
	for w := range concurrentWorkers {
		f.prover(fmt.Sprintf("w%d", w))
	}
	for i := range concurrentJobs {
		f.enqueue(tier(pouw.Tiers[i%3]))
	}
	var (
		mu     sync.Mutex
		holder = map[string]string{}
		wg     sync.WaitGroup
		errs   = make(chan error, concurrentWorkers)
	)
	for w := range concurrentWorkers {
		wg.Go(func() {
			me := fmt.Sprintf("w%d", w)
			for {
				l, err := f.s.Claim(f.ctx, claimReq(me))
				if errors.Is(err, store.ErrNoJob) {
					return
				}
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				if prev, ok := holder[l.Job.JobID]; ok {
					errs <- fmt.Errorf("job %s claimed by %s and %s", l.Job.JobID, prev, me)
				}
				holder[l.Job.JobID] = me
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(holder) != concurrentJobs {
		t.Fatalf("%d jobs claimed, want %d", len(holder), concurrentJobs)
	}
	for id, p := range holder {
		if j := f.job(id); j.State != pouw.StateLeased || j.ProverID != p {
			t.Fatalf("job %s: %s by %q, want leased by %s", id, j.State, j.ProverID, p)
		}
	}
}

func testConcurrentReapersExpireEachLeaseOnce(t *testing.T, nh Factory) {
	f := newFx(t, nh, testOptions())
	f.ready()
	var jobs []string
	for range concurrentJobs {
		jobs = append(jobs, f.enqueue(tier(pouw.TierMicro)).JobID)
	}
	for range concurrentJobs {
		f.claim("p1")
	}
	mark := f.lastEventID()
	f.advance(f.opts.LeaseDuration[pouw.TierMicro])
	var (
		mu    sync.Mutex
		total int
		wg    sync.WaitGroup
		errs  = make(chan error, concurrentWorkers)
	)
	for range concurrentWorkers {
		wg.Go(func() {
			for {
				n, err := f.s.ReapExpired(f.ctx, 3)
				if err != nil {
					errs <- err
					return
				}
				if n == 0 {
					return
				}
				mu.Lock()
				total += n
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if total != concurrentJobs {
		t.Fatalf("reapers processed %d expiries, want %d", total, concurrentJobs)
	}
	for _, id := range jobs {
		j := f.job(id)
		h := f.history(id)
		if j.State != pouw.StatePending || j.Attempts != 1 || len(h) != 1 || h[0].Outcome != pouw.OutcomeExpired {
			t.Fatalf("job %s: %s attempts %d history %+v, want pending with one expired attempt", id, j.State, j.Attempts, h)
		}
	}
	expired := 0
	for _, e := range f.eventsAfter(mark) {
		if e.Type != pouw.EventJobExpired {
			t.Fatalf("unexpected event %+v", e)
		}
		expired++
	}
	if expired != concurrentJobs {
		t.Fatalf("%d job.expired events, want %d", expired, concurrentJobs)
	}
}
