package boltstore

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/pouw"
)

// Deposit adds amount to the pool.
func (s *Store) Deposit(ctx context.Context, amount uint64, by string) (pouw.PoolStatus, error) {
	if amount == 0 || amount > pouw.MaxAmount {
		return pouw.PoolStatus{}, fmt.Errorf("%w: deposit amount %d (want 1 to 2^53-1)", store.ErrInvalid, amount)
	}
	var out pouw.PoolStatus
	err := s.update(ctx, func(t *txn) error {
		p, err := t.pool()
		if err != nil {
			return err
		}
		if p.Deposited+amount > pouw.MaxAmount {
			return fmt.Errorf("%w: deposit of %d would take the pool past 2^53-1", store.ErrInvalid, amount)
		}
		p.Deposited += amount
		p.Available += amount
		if err := t.putPool(p); err != nil {
			return err
		}
		out = p
		return t.event(pouw.Event{Type: pouw.EventPoolDeposit, Amount: amount, Reason: by})
	})
	return out, err
}

// Pool returns the ledger.
func (s *Store) Pool(ctx context.Context) (pouw.PoolStatus, error) {
	var out pouw.PoolStatus
	err := s.view(ctx, func(t *txn) error {
		var err error
		out, err = t.pool()
		return err
	})
	return out, err
}

// RegisterProver adds a prover; both its id and its token hash must be new.
func (s *Store) RegisterProver(ctx context.Context, p store.Prover) error {
	if p.ID == "" || strings.TrimSpace(p.ID) != p.ID || len(p.ID) > 128 {
		return fmt.Errorf("%w: prover id %q (want 1-128 characters, no surrounding space)", store.ErrInvalid, p.ID)
	}
	if p.TokenHash.IsZero() {
		return fmt.Errorf("%w: prover %q has no token hash", store.ErrInvalid, p.ID)
	}
	return s.update(ctx, func(t *txn) error {
		if t.b(bktProvers).Get([]byte(p.ID)) != nil {
			return fmt.Errorf("%w: prover %q", store.ErrExists, p.ID)
		}
		if t.b(bktProverTok).Get(p.TokenHash[:]) != nil {
			return fmt.Errorf("%w: another prover has this token", store.ErrExists)
		}
		rec := &proverRec{ID: p.ID, TokenHash: p.TokenHash, CreatedAtMs: t.now,
			Stats:  pouw.ProverStats{ProverID: p.ID},
			Tokens: map[string]int64{p.TokenHash.String(): expiry(t.now, p.TTL)}}
		if err := t.saveProver(rec); err != nil {
			return err
		}
		if err := t.b(bktProverTok).Put(p.TokenHash[:], []byte(p.ID)); err != nil {
			return err
		}
		return t.event(pouw.Event{Type: pouw.EventProverRegistered, ProverID: p.ID})
	})
}

// ProverByTokenHash finds the prover whose token hashes to h.
func (s *Store) ProverByTokenHash(ctx context.Context, h pouw.Hash) (store.Prover, error) {
	var out store.Prover
	err := s.view(ctx, func(t *txn) error {
		id := t.b(bktProverTok).Get(h[:])
		if id == nil {
			return fmt.Errorf("%w: no prover with this token", store.ErrNotFound)
		}
		p, err := t.loadProver(string(id))
		if err != nil {
			return err
		}
		exp, live := p.tokens()[h.String()]
		if !live || (exp > 0 && t.now >= exp) {
			return fmt.Errorf("%w: no prover with this token", store.ErrNotFound)
		}
		out = store.Prover{ID: p.ID, TokenHash: h, CreatedAtMs: p.CreatedAtMs, ExpiresAtMs: exp,
			Suspended: p.Suspended, SuspendReason: p.SuspendReason, LiftedAtMs: p.LiftedAtMs}
		return nil
	})
	return out, err
}

// Provers lists every prover with its statistics, by id.
func (s *Store) Provers(ctx context.Context) ([]pouw.ProverStats, error) {
	out := []pouw.ProverStats{}
	err := s.view(ctx, func(t *txn) error {
		return t.b(bktProvers).ForEach(func(_, v []byte) error {
			var p proverRec
			if err := jsonUnmarshal(v, &p); err != nil {
				return err
			}
			out = append(out, p.Stats)
			return nil
		})
	})
	slices.SortFunc(out, func(a, b pouw.ProverStats) int { return strings.Compare(a.ProverID, b.ProverID) })
	return out, err
}

// Events returns up to limit events with id > after.
func (s *Store) Events(ctx context.Context, after uint64, limit int) ([]pouw.Event, error) {
	limit = pageLimit(limit)
	out := []pouw.Event{}
	err := s.view(ctx, func(t *txn) error {
		c := t.b(bktEvents).Cursor()
		k, _ := c.First()
		if k != nil && be64(k) > after+1 {
			return fmt.Errorf("%w: oldest kept event is %d, asked for events after %d", store.ErrEventsTruncated, be64(k), after)
		}
		for k, v := c.Seek(u64(after + 1)); k != nil && len(out) < limit; k, v = c.Next() {
			var ev pouw.Event
			if err := jsonUnmarshal(v, &ev); err != nil {
				return err
			}
			out = append(out, ev)
		}
		return nil
	})
	return out, err
}
