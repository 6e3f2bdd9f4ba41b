package storetest

import (
	"testing"
	"time"

	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/pouw"
)

func init() {
	add("DeadLetterListsMostRecentlyDeadFirstWithPaging", testDeadLetterListsMostRecentlyDeadFirstWithPaging)
}

func testDeadLetterListsMostRecentlyDeadFirstWithPaging(t *testing.T, nh Factory) {
	f := newFx(t, nh, testOptions())
	f.ready()
	var dead []string // in the order they die
	for i, tr := range []pouw.JobTier{pouw.TierMacro, pouw.TierMicro, pouw.TierMacro, pouw.TierFull, pouw.TierMacro} {
		j := f.enqueue(tier(tr), retries(1), deadlineIn(time.Duration(10-i)*time.Hour, f))
		l := f.claim("p1", tr)
		if l.Job.JobID != j.JobID {
			t.Fatalf("claimed %s, want %s", l.Job.JobID, j.JobID)
		}
		f.fail(l, "p1")
		dead = append(dead, j.JobID)
		f.advance(time.Second)
	}
	want := []string{dead[4], dead[3], dead[2], dead[1], dead[0]}
	var got []string
	q := store.PageQuery{Limit: 2}
	for pages := 1; ; pages++ {
		page, err := f.s.DeadLetter(f.ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Jobs) > 2 {
			t.Fatalf("page of %d with limit 2", len(page.Jobs))
		}
		for _, j := range page.Jobs {
			wantState(t, j, pouw.StateDead)
			got = append(got, j.JobID)
		}
		if page.NextCursor == "" {
			if pages != 3 {
				t.Fatalf("%d pages for 5 dead jobs by 2, want 3", pages)
			}
			break
		}
		q.Cursor = page.NextCursor
	}
	sameIDs(t, "dead letter, most recent first", got, want)

	macro := pouw.TierMacro
	page, err := f.s.DeadLetter(f.ctx, store.PageQuery{Tier: &macro, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	sameIDs(t, "dead letter of macro", ids(page.Jobs), []string{dead[4], dead[2], dead[0]})

	// A requeued job leaves the list; paging still works around the gap.
	if _, err := f.s.Requeue(f.ctx, dead[3]); err != nil {
		t.Fatal(err)
	}
	first, err := f.s.DeadLetter(f.ctx, store.PageQuery{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	rest, err := f.s.DeadLetter(f.ctx, store.PageQuery{Limit: 10, Cursor: first.NextCursor})
	if err != nil {
		t.Fatal(err)
	}
	sameIDs(t, "dead letter after a requeue", append(ids(first.Jobs), ids(rest.Jobs)...), []string{dead[4], dead[2], dead[1], dead[0]})
}
