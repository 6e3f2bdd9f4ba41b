package storetest

import (
	"slices"
	"strings"
	"testing"

	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/pouw"
)

func init() {
	add("DependentJobWaitsUntilEveryDependencyCompletes", testDependentJobWaitsUntilEveryDependencyCompletes)
	add("DependencyAlreadyCompletedIsSatisfied", testDependencyAlreadyCompletedIsSatisfied)
	add("DeadDependencyKillsDependents", testDeadDependencyKillsDependents)
}

func testDependentJobWaitsUntilEveryDependencyCompletes(t *testing.T, nh Factory) {
	f := newFx(t, nh, testOptions())
	f.ready()
	a := f.enqueue(tier(pouw.TierMacro))
	b := f.enqueue(tier(pouw.TierMacro))
	agg := f.enqueue(tier(pouw.TierFull), dependsOn(a.JobID, b.JobID), reward(33))
	wantState(t, agg, pouw.StateWaiting)
	if !slices.Equal(agg.DependsOn, []string{a.JobID, b.JobID}) {
		t.Fatalf("depends_on %v", agg.DependsOn)
	}
	if p := f.pool(); p.Reserved != 53 {
		t.Fatalf("a waiting job must reserve its reward too: %+v", p)
	}
	if slices.Contains(f.pendingIDs(store.PageQuery{}), agg.JobID) {
		t.Fatal("waiting job listed as pending")
	}
	la := f.claim("p1")
	lb := f.claim("p2")
	_, err := f.s.Claim(f.ctx, claimReq("p1"))
	wantErr(t, err, store.ErrNoJob, "claim while only a waiting job is left")

	f.complete(la, "p1")
	wantState(t, f.job(agg.JobID), pouw.StateWaiting)
	_, err = f.s.Claim(f.ctx, claimReq("p1", pouw.TierFull))
	wantErr(t, err, store.ErrNoJob, "claim with one dependency left")

	// A failure of the other dependency does not release the waiter.
	f.fail(lb, "p2")
	wantState(t, f.job(agg.JobID), pouw.StateWaiting)
	lb = f.claim("p2")

	mark := f.lastEventID()
	f.complete(lb, "p2")
	evs := f.eventsAfter(mark)
	if got := eventTypes(evs); !slices.Equal(got, []pouw.EventType{pouw.EventJobCompleted, pouw.EventJobReady}) ||
		evs[0].JobID != b.JobID || evs[1].JobID != agg.JobID {
		t.Fatalf("events of the last completion: %+v, want job.completed of the dependency then job.ready of the waiter", evs)
	}
	wantState(t, f.job(agg.JobID), pouw.StatePending)
	if got := f.claim("p1", pouw.TierFull).Job.JobID; got != agg.JobID {
		t.Fatalf("claimed %s, want the ready aggregation job", got)
	}
}

func testDependencyAlreadyCompletedIsSatisfied(t *testing.T, nh Factory) {
	f := newFx(t, nh, testOptions())
	f.ready()
	a := f.enqueue()
	f.complete(f.claim("p1"), "p1")
	j := f.enqueue(dependsOn(a.JobID))
	wantState(t, j, pouw.StatePending)
	b := f.enqueue()
	j2 := f.enqueue(dependsOn(a.JobID, b.JobID))
	wantState(t, j2, pouw.StateWaiting)
}

func testDeadDependencyKillsDependents(t *testing.T, nh Factory) {
	f := newFx(t, nh, testOptions())
	f.deposit(100)
	f.prover("p1")
	a := f.enqueue(retries(1), reward(10))
	b := f.enqueue(reward(10))
	c := f.enqueue(dependsOn(a.JobID, b.JobID), reward(20))
	d := f.enqueue(dependsOn(c.JobID), reward(30))
	other := f.enqueue(dependsOn(b.JobID), reward(5))
	l := f.claim("p1")
	if l.Job.JobID != a.JobID {
		t.Fatalf("claimed %s, want %s", l.Job.JobID, a.JobID)
	}
	f.fail(l, "p1")
	for _, id := range []string{a.JobID, c.JobID, d.JobID} {
		j := f.job(id)
		wantState(t, j, pouw.StateDead)
		if j.DeadReason == "" {
			t.Fatalf("job %s dead without a reason", id)
		}
	}
	if r := f.job(c.JobID).DeadReason; !strings.Contains(r, a.JobID) {
		t.Fatalf("dependent's reason %q does not name the dead dependency %s", r, a.JobID)
	}
	wantState(t, f.job(b.JobID), pouw.StatePending)
	wantState(t, f.job(other.JobID), pouw.StateWaiting)
	if p := f.pool(); p.Reserved != 15 || p.Available != 85 {
		t.Fatalf("pool %+v, want only b and other reserved (15)", p)
	}
	dead := f.deadIDs()
	slices.Sort(dead)
	want := []string{a.JobID, c.JobID, d.JobID}
	slices.Sort(want)
	sameIDs(t, "dead letter", dead, want)
}
