package boltstore_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pouwfarm/pouwfarm/clock"
	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/pouw"
)

// FuzzPageCursor feeds arbitrary cursors (they arrive from HTTP query
// strings) to Pending and DeadLetter: the answer is a page or ErrInvalid,
// never a panic, and a page never holds a job that is not in the list.
func FuzzPageCursor(f *testing.F) {
	ctx := context.Background()
	clk := clock.NewFake(epoch)
	s, err := openForFuzz(f, clk)
	if err != nil {
		f.Fatal(err)
	}
	page, err := s.Pending(ctx, store.PageQuery{Limit: 2})
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{"", page.NextCursor, "00", "zz", strings.Repeat("ff", 24), strings.Repeat("0", 65), "🙂"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, cursor string) {
		for name, list := range map[string]func(context.Context, store.PageQuery) (store.JobPage, error){
			"pending": s.Pending, "dead letter": s.DeadLetter,
		} {
			page, err := list(ctx, store.PageQuery{Limit: 3, Cursor: cursor})
			if err != nil {
				if !errors.Is(err, store.ErrInvalid) {
					t.Fatalf("%s with cursor %q: %v, want a page or ErrInvalid", name, cursor, err)
				}
				continue
			}
			for _, j := range page.Jobs {
				if name == "pending" && j.State != pouw.StatePending || name == "dead letter" && j.State != pouw.StateDead {
					t.Fatalf("%s listed a %s job", name, j.State)
				}
			}
		}
	})
}

func openForFuzz(f *testing.F, clk *clock.Fake) (store.Store, error) {
	ctx := context.Background()
	s, err := openStore(filepath.Join(f.TempDir(), "pouw.db"), clk)
	if err != nil {
		return nil, err
	}
	f.Cleanup(func() { _ = s.Close() })
	if _, err := s.Deposit(ctx, 1000, "admin"); err != nil {
		return nil, err
	}
	if err := s.RegisterProver(ctx, store.Prover{ID: "p1", TokenHash: hash(9, 1)}); err != nil {
		return nil, err
	}
	for i := range 6 {
		r := enqueueReq(clk, i)
		r.MaxRetries = 1
		if _, _, err := s.Enqueue(ctx, r); err != nil {
			return nil, err
		}
	}
	for range 3 {
		l, err := s.Claim(ctx, store.ClaimRequest{ProverID: "p1", Tiers: []pouw.JobTier{pouw.TierMacro}, Backends: []string{"stark"}})
		if err != nil {
			return nil, err
		}
		if _, err := s.Fail(ctx, store.LeaseRef{JobID: l.Job.JobID, ProverID: "p1", Token: l.Token}, pouw.OutcomeFailed, "x"); err != nil {
			return nil, err
		}
	}
	return s, nil
}
