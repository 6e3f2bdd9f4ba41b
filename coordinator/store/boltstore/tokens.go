package boltstore

import (
	"context"
	"fmt"
	"time"

	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/pouw"
)

// AddProverToken implements store.Store.
func (s *Store) AddProverToken(ctx context.Context, id string, h pouw.Hash, ttl, grace time.Duration) error {
	if h.IsZero() || ttl < 0 || grace < 0 {
		return fmt.Errorf("%w: token hash zero or negative duration", store.ErrInvalid)
	}
	return s.update(ctx, func(t *txn) error {
		expiresAtMs, graceUntilMs := expiry(t.now, ttl), expiry(t.now, grace)
		p, err := t.loadProver(id)
		if err != nil {
			return err
		}
		if t.b(bktProverTok).Get(h[:]) != nil {
			return fmt.Errorf("%w: another token has this hash", store.ErrExists)
		}
		toks := p.tokens()
		if graceUntilMs > 0 {
			for k, exp := range toks {
				if exp == 0 || exp > graceUntilMs {
					toks[k] = graceUntilMs
				}
			}
		}
		toks[h.String()] = expiresAtMs
		if err := t.b(bktProverTok).Put(h[:], []byte(id)); err != nil {
			return err
		}
		return t.saveProver(p)
	})
}

// expiry is now + d in ms, or 0 (never) for d = 0.
func expiry(nowMs int64, d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return nowMs + d.Milliseconds()
}

// RevokeProverTokens implements store.Store.
func (s *Store) RevokeProverTokens(ctx context.Context, id string) (int, error) {
	var n int
	err := s.update(ctx, func(t *txn) error {
		n = 0
		p, err := t.loadProver(id)
		if err != nil {
			return err
		}
		for k := range p.tokens() {
			h, err := pouw.ParseHash(k)
			if err != nil {
				return err
			}
			if err := t.b(bktProverTok).Delete(h[:]); err != nil {
				return err
			}
			n++
		}
		p.Tokens = map[string]int64{}
		return t.saveProver(p)
	})
	return n, err
}

// SetProverSuspended implements store.Store.
func (s *Store) SetProverSuspended(ctx context.Context, id string, suspended bool, reason string) (store.Prover, error) {
	var out store.Prover
	err := s.update(ctx, func(t *txn) error {
		p, err := t.loadProver(id)
		if err != nil {
			return err
		}
		if suspended {
			p.Suspended, p.SuspendReason = true, reason
		} else {
			p.Suspended, p.SuspendReason, p.LiftedAtMs = false, "", t.now
		}
		out = store.Prover{ID: p.ID, TokenHash: p.TokenHash, CreatedAtMs: p.CreatedAtMs,
			Suspended: p.Suspended, SuspendReason: p.SuspendReason, LiftedAtMs: p.LiftedAtMs}
		return t.saveProver(p)
	})
	return out, err
}

// Audit implements store.Store.
func (s *Store) Audit(ctx context.Context, ev pouw.Event) error {
	if ev.Type == "" {
		return fmt.Errorf("%w: audit event without a type", store.ErrInvalid)
	}
	return s.update(ctx, func(t *txn) error {
		return t.event(pouw.Event{Type: ev.Type, Actor: ev.Actor, Action: ev.Action, JobID: ev.JobID,
			ProverID: ev.ProverID, Amount: ev.Amount, Reason: ev.Reason})
	})
}
