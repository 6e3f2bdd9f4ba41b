package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/pouw"
)

func init() {
	add("EveryTransitionAppendsOneEvent", testEveryTransitionAppendsOneEvent)
	add("EventsReadFromAnID", testEventsReadFromAnID)
	add("EventsTruncatedBeyondRetention", testEventsTruncatedBeyondRetention)
}

// step runs op and checks it appended exactly the events want, for job id
// (when set), with ids strictly increasing.
func (f *fx) step(what string, want []pouw.EventType, jobID string, op func()) []pouw.Event {
	f.t.Helper()
	mark := f.lastEventID()
	op()
	evs := f.eventsAfter(mark)
	if got := eventTypes(evs); !slices.Equal(got, want) {
		f.t.Fatalf("%s appended %v, want %v", what, got, want)
	}
	for i, e := range evs {
		if i > 0 && e.ID <= evs[i-1].ID {
			f.t.Fatalf("%s: event ids not increasing: %d after %d", what, e.ID, evs[i-1].ID)
		}
		if e.AtMs != f.nowMs() {
			f.t.Fatalf("%s: event at %d, want now %d", what, e.AtMs, f.nowMs())
		}
		if jobID != "" && e.JobID != jobID {
			f.t.Fatalf("%s: event %+v, want job %s", what, e, jobID)
		}
	}
	return evs
}

func testEveryTransitionAppendsOneEvent(t *testing.T, nh Factory) {
	f := newFx(t, nh, testOptions())
	T := func(ts ...pouw.EventType) []pouw.EventType { return ts }
	var evs []pouw.Event
	evs = f.step("deposit", T(pouw.EventPoolDeposit), "", func() { f.deposit(500) })
	if evs[0].Amount != 500 {
		t.Fatalf("deposit event %+v, want amount 500", evs[0])
	}
	evs = f.step("register", T(pouw.EventProverRegistered), "", func() { f.prover("p1") })
	if evs[0].ProverID != "p1" {
		t.Fatalf("register event %+v", evs[0])
	}
	var job pouw.ProofJob
	evs = f.step("enqueue", T(pouw.EventJobCreated), "", func() { job = f.enqueue(retries(2), reward(40)) })
	if evs[0].JobID != job.JobID || evs[0].Tier == nil || *evs[0].Tier != job.Tier || evs[0].State != pouw.StatePending {
		t.Fatalf("created event %+v", evs[0])
	}
	id := job.JobID
	f.step("duplicate enqueue", nil, "", func() {
		if _, created, err := f.s.Enqueue(f.ctx, store.EnqueueRequest{
			Tier: job.Tier, IntentID: job.IntentID, TraceHash: job.TraceHash, TraceRef: job.TraceRef,
			Backend: job.Backend, FeeBudget: 100, RewardBudget: 40, DeadlineMs: job.DeadlineMs, MaxRetries: 2,
		}); err != nil || created {
			t.Fatalf("duplicate: created=%v err=%v", created, err)
		}
	})
	var l store.Lease
	evs = f.step("claim", T(pouw.EventJobClaimed), id, func() { l = f.claim("p1") })
	if evs[0].ProverID != "p1" || evs[0].State != pouw.StateLeased {
		t.Fatalf("claimed event %+v", evs[0])
	}
	f.step("renew", T(pouw.EventJobRenewed), id, func() {
		f.advance(time.Second)
		if _, err := f.s.Renew(f.ctx, ref(l, "p1")); err != nil {
			t.Fatal(err)
		}
	})
	f.step("release", T(pouw.EventJobReleased), id, func() {
		if _, err := f.s.Release(f.ctx, ref(l, "p1"), "drain"); err != nil {
			t.Fatal(err)
		}
	})
	f.step("claim", T(pouw.EventJobClaimed), id, func() { l = f.claim("p1") })
	evs = f.step("reject", T(pouw.EventJobRejected), id, func() {
		if _, err := f.s.Fail(f.ctx, ref(l, "p1"), pouw.OutcomeRejected, "bad proof"); err != nil {
			t.Fatal(err)
		}
	})
	if evs[0].Attempts != 1 || evs[0].State != pouw.StatePending {
		t.Fatalf("rejected event %+v, want attempts 1, state pending", evs[0])
	}
	f.step("claim", T(pouw.EventJobClaimed), id, func() { l = f.claim("p1") })
	evs = f.step("expiry to dead letter", T(pouw.EventJobExpired, pouw.EventJobDead), id, func() {
		f.advance(f.opts.LeaseDuration[job.Tier])
		f.reap()
	})
	if evs[1].State != pouw.StateDead || evs[1].Reason == "" {
		t.Fatalf("dead event %+v, want state dead with a reason", evs[1])
	}
	f.step("requeue", T(pouw.EventJobRequeued), id, func() {
		if _, err := f.s.Requeue(f.ctx, id); err != nil {
			t.Fatal(err)
		}
	})
	f.step("claim", T(pouw.EventJobClaimed), id, func() { l = f.claim("p1") })
	f.step("verify", nil, id, func() {
		if _, err := f.s.BeginVerify(f.ctx, ref(l, "p1"), time.Minute); err != nil {
			t.Fatal(err)
		}
	})
	evs = f.step("complete", T(pouw.EventJobCompleted), id, func() { f.complete(l, "p1") })
	if evs[0].Amount != 40 || evs[0].ProverID != "p1" || evs[0].State != pouw.StateCompleted {
		t.Fatalf("completed event %+v, want amount 40 paid to p1", evs[0])
	}
	other := f.enqueue(retries(1))
	l = f.claim("p1")
	f.step("fail to dead letter", T(pouw.EventJobFailed, pouw.EventJobDead), other.JobID, func() { f.fail(l, "p1") })
	f.step("refused calls", nil, "", func() {
		_, _ = f.s.Renew(f.ctx, ref(l, "p1"))
		_, _, _ = f.s.Enqueue(f.ctx, f.req(retries(0)))
		_, _ = f.s.Claim(f.ctx, claimReq("p1"))
	})
}

func testEventsReadFromAnID(t *testing.T, nh Factory) {
	f := newFx(t, nh, testOptions())
	f.ready()
	for range 10 {
		f.enqueue()
	}
	all := f.eventsAfter(0)
	if len(all) != 13 {
		t.Fatalf("%d events, want 13 (deposit, 2 provers, 10 jobs)", len(all))
	}
	mid := all[5].ID
	got, err := f.s.Events(f.ctx, mid, 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got[0].ID != all[6].ID || got[3].ID != all[9].ID {
		t.Fatalf("Events(%d, 4) = %+v, want events 7..10", mid, got)
	}
	last := all[len(all)-1].ID
	if got, err := f.s.Events(f.ctx, last, 10); err != nil || len(got) != 0 {
		t.Fatalf("Events after the last: %+v %v", got, err)
	}
}

func testEventsTruncatedBeyondRetention(t *testing.T, nh Factory) {
	opts := testOptions()
	opts.MaxEvents = 5
	f := newFx(t, nh, opts)
	f.ready()
	for range 9 {
		f.enqueue()
	}
	// 12 events were appended; only the last 5 are kept.
	_, err := f.s.Events(f.ctx, 0, 100)
	wantErr(t, err, store.ErrEventsTruncated, "reading from the start after retention dropped events")
	probe, err := f.s.Events(f.ctx, 1<<40, 1)
	if err != nil || len(probe) != 0 {
		t.Fatalf("Events after a future id: %+v %v", probe, err)
	}
	// The first position that reads without truncation gives the kept events.
	var last uint64
	for after := uint64(0); after < 100; after++ {
		evs, err := f.s.Events(f.ctx, after, 100)
		if err == nil {
			if len(evs) != 5 {
				t.Fatalf("first readable position after=%d gave %d events, want the 5 kept", after, len(evs))
			}
			last = evs[4].ID
			break
		}
		wantErr(t, err, store.ErrEventsTruncated, "reading before the kept events")
	}
	if last == 0 {
		t.Fatal("no position readable")
	}
	if evs, err := f.s.Events(f.ctx, last-5, 100); err != nil || len(evs) != 5 {
		t.Fatalf("Events(last-5): %d events, %v", len(evs), err)
	}
	_, err = f.s.Events(f.ctx, last-6, 100)
	wantErr(t, err, store.ErrEventsTruncated, "reading one before the oldest kept event")
}
