package boltstore

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"slices"

	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/pouw"
)

const (
	defaultPageLimit = 100
	maxPageLimit     = 1000
	maxCursorBytes   = 32
)

func validateEnqueue(req *store.EnqueueRequest, now int64) error {
	switch {
	case !req.Tier.Valid():
		return fmt.Errorf("%w: tier %d (want micro, macro or full)", store.ErrInvalid, uint8(req.Tier))
	case req.FeeBudget > pouw.MaxAmount:
		return fmt.Errorf("%w: fee_budget %d exceeds 2^53-1", store.ErrInvalid, req.FeeBudget)
	case req.RewardBudget > req.FeeBudget:
		return fmt.Errorf("%w: reward_budget %d exceeds fee_budget %d", store.ErrInvalid, req.RewardBudget, req.FeeBudget)
	case req.MaxRetries == 0:
		return fmt.Errorf("%w: max_retries must be at least 1", store.ErrInvalid)
	case req.DeadlineMs <= now:
		return fmt.Errorf("%w: deadline_ms %d is not in the future (now %d)", store.ErrInvalid, req.DeadlineMs, now)
	case req.Backend == "":
		return fmt.Errorf("%w: backend is empty", store.ErrInvalid)
	case req.TraceBytes < 0:
		return fmt.Errorf("%w: trace_bytes %d is negative", store.ErrInvalid, req.TraceBytes)
	}
	for _, d := range req.DependsOn {
		if err := pouw.ValidateJobID(d); err != nil {
			return fmt.Errorf("depends_on: %w", err)
		}
	}
	return nil
}

func dedupKey(intent pouw.Hash, tier pouw.JobTier, trace pouw.Hash) []byte {
	return cat(intent[:], []byte{byte(tier)}, trace[:])
}

// Enqueue creates a job or returns the one created for the same (intent_id,
// tier, trace_hash) within the dedup window.
func (s *Store) Enqueue(ctx context.Context, req store.EnqueueRequest) (pouw.ProofJob, bool, error) {
	var (
		job     pouw.ProofJob
		created bool
	)
	err := s.update(ctx, func(t *txn) error {
		job, created = pouw.ProofJob{}, false
		if err := validateEnqueue(&req, t.now); err != nil {
			return err
		}
		dk := dedupKey(req.IntentID, req.Tier, req.TraceHash)
		var de dedupEntry
		ok, err := t.getJSON(bktDedup, dk, &de)
		if err != nil {
			return err
		}
		if ok && de.CreatedAtMs+s.opts.DedupWindow.Milliseconds() > t.now {
			r, err := t.loadJob(de.JobID)
			if err == nil {
				job = r.ProofJob
				return nil
			}
			// Only completed jobs are purged by retention, while their dedup
			// entry lives on: answer with what the entry still knows.
			job = pouw.ProofJob{
				JobID: de.JobID, Tier: req.Tier, IntentID: req.IntentID, TraceHash: req.TraceHash,
				CreatedSeq: de.CreatedSeq, CreatedAtMs: de.CreatedAtMs, State: pouw.StateCompleted,
			}
			return nil
		}

		deps := slices.Clone(req.DependsOn)
		slices.Sort(deps)
		deps = slices.Compact(deps)
		waitingOn := 0
		for _, d := range deps {
			dr, err := t.loadJob(d)
			if err != nil {
				return fmt.Errorf("depends_on: %w", err)
			}
			switch dr.State {
			case pouw.StateDead:
				return fmt.Errorf("%w: depends_on job %s is dead", store.ErrConflict, d)
			case pouw.StateCompleted:
			default:
				waitingOn++
			}
		}

		p, err := t.pool()
		if err != nil {
			return err
		}
		if p.Available < req.RewardBudget {
			return fmt.Errorf("%w: reward_budget %d, pool available %d", store.ErrInsufficientFunds, req.RewardBudget, p.Available)
		}
		p.Available -= req.RewardBudget
		p.Reserved += req.RewardBudget
		if err := t.putPool(p); err != nil {
			return err
		}

		seq, err := t.b(bktJobs).NextSequence()
		if err != nil {
			return err
		}
		r := &record{ProofJob: pouw.ProofJob{
			JobID:        pouw.JobID(req.IntentID, req.TraceHash, req.Tier, seq),
			Tier:         req.Tier,
			IntentID:     req.IntentID,
			TraceHash:    req.TraceHash,
			TraceRef:     req.TraceRef,
			FeeBudget:    req.FeeBudget,
			RewardBudget: req.RewardBudget,
			CreatedAtMs:  t.now,
			CreatedSeq:   seq,
			DeadlineMs:   req.DeadlineMs,
			MaxRetries:   req.MaxRetries,
			Backend:      req.Backend,
			State:        pouw.StatePending,
			DependsOn:    slices.Clone(req.DependsOn),
			TraceBytes:   req.TraceBytes,
		}, WaitingOn: waitingOn}
		if waitingOn > 0 {
			r.State = pouw.StateWaiting
			for _, d := range deps {
				if err := t.b(bktWaiters).Put(cat([]byte(d), []byte(r.JobID)), nil); err != nil {
					return err
				}
			}
		}
		if err := t.save(nil, r); err != nil {
			return err
		}
		de = dedupEntry{JobID: r.JobID, CreatedSeq: seq, CreatedAtMs: t.now}
		if err := t.putJSON(bktDedup, dk, de); err != nil {
			return err
		}
		if err := t.b(bktDedupTime).Put(timeKey(t.now, seq), dk); err != nil {
			return err
		}
		job, created = r.ProofJob, true
		return t.jobEvent(pouw.EventJobCreated, r, "")
	})
	if err != nil {
		return pouw.ProofJob{}, false, err
	}
	return job, created, nil
}

// Job returns one job.
func (s *Store) Job(ctx context.Context, id string) (pouw.ProofJob, error) {
	var job pouw.ProofJob
	err := s.view(ctx, func(t *txn) error {
		r, err := t.loadJob(id)
		if err != nil {
			return err
		}
		job = r.ProofJob
		return nil
	})
	return job, err
}

func pageLimit(n int) int {
	if n <= 0 {
		return defaultPageLimit
	}
	return min(n, maxPageLimit)
}

func decodeCursor(c string) ([]byte, error) {
	if c == "" {
		return nil, nil
	}
	// A cursor is an index key (24 bytes for pending, 16 for dead): anything
	// much longer did not come from us.
	if len(c) > 2*maxCursorBytes {
		return nil, fmt.Errorf("%w: page cursor of %d characters", store.ErrInvalid, len(c))
	}
	b, err := hex.DecodeString(c)
	if err != nil || len(b) == 0 {
		return nil, fmt.Errorf("%w: page cursor %q", store.ErrInvalid, c)
	}
	return b, nil
}

// Pending lists pending jobs in claim order.
func (s *Store) Pending(ctx context.Context, q store.PageQuery) (store.JobPage, error) {
	var page store.JobPage
	if q.Tier != nil && !q.Tier.Valid() {
		return page, fmt.Errorf("%w: tier %d", store.ErrInvalid, uint8(*q.Tier))
	}
	after, err := decodeCursor(q.Cursor)
	if err != nil {
		return page, err
	}
	limit := pageLimit(q.Limit)
	err = s.view(ctx, func(t *txn) error {
		b, prefix := t.b(bktPendAll), []byte(nil)
		if q.Tier != nil {
			b, prefix = t.b(bktPendTier), []byte{byte(*q.Tier)}
		}
		c := b.Cursor()
		var k, v []byte
		if after == nil {
			k, v = c.Seek(prefix)
		} else {
			k, v = c.Seek(cat(prefix, after))
			if k != nil && bytes.Equal(k, cat(prefix, after)) {
				k, v = c.Next()
			}
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if len(page.Jobs) == limit {
				page.NextCursor = hex.EncodeToString(claimKey(&page.Jobs[len(page.Jobs)-1]))
				break
			}
			id, _ := parsePendVal(v)
			r, err := t.loadJob(id)
			if err != nil {
				return err
			}
			page.Jobs = append(page.Jobs, r.ProofJob)
		}
		return nil
	})
	return page, err
}

// DeadLetter lists dead jobs, most recently dead first.
func (s *Store) DeadLetter(ctx context.Context, q store.PageQuery) (store.JobPage, error) {
	var page store.JobPage
	if q.Tier != nil && !q.Tier.Valid() {
		return page, fmt.Errorf("%w: tier %d", store.ErrInvalid, uint8(*q.Tier))
	}
	before, err := decodeCursor(q.Cursor)
	if err != nil {
		return page, err
	}
	limit := pageLimit(q.Limit)
	err = s.view(ctx, func(t *txn) error {
		c := t.b(bktDead).Cursor()
		var k, v []byte
		if before == nil {
			k, v = c.Last()
		} else if k, _ = c.Seek(before); k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
		var lastKey []byte
		for ; k != nil; k, v = c.Prev() {
			r, err := t.loadJob(string(v))
			if err != nil {
				return err
			}
			if q.Tier != nil && r.Tier != *q.Tier {
				continue
			}
			if len(page.Jobs) == limit {
				page.NextCursor = hex.EncodeToString(lastKey)
				break
			}
			page.Jobs = append(page.Jobs, r.ProofJob)
			lastKey = slices.Clone(k)
		}
		return nil
	})
	return page, err
}

// History returns the attempts of a job, oldest first.
func (s *Store) History(ctx context.Context, id string) ([]pouw.Attempt, error) {
	var out []pouw.Attempt
	err := s.view(ctx, func(t *txn) error {
		if _, err := t.loadJob(id); err != nil {
			return err
		}
		var err error
		out, err = t.history(id)
		return err
	})
	return out, err
}

func (t *txn) history(id string) ([]pouw.Attempt, error) {
	out := []pouw.Attempt{}
	c := t.b(bktHist).Cursor()
	for k, v := c.Seek([]byte(id)); k != nil && bytes.HasPrefix(k, []byte(id)); k, v = c.Next() {
		var a pouw.Attempt
		if err := jsonUnmarshal(v, &a); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// Requeue brings a dead job back: attempts reset, reward reserved again.
func (s *Store) Requeue(ctx context.Context, id string) (pouw.ProofJob, error) {
	var job pouw.ProofJob
	err := s.update(ctx, func(t *txn) error {
		old, err := t.loadJob(id)
		if err != nil {
			return err
		}
		if old.State != pouw.StateDead {
			return fmt.Errorf("%w: job %s is %s, not dead", store.ErrConflict, id, old.State)
		}
		if old.DeadlineMs <= t.now {
			return fmt.Errorf("%w: job %s is past its deadline", store.ErrConflict, id)
		}
		r := *old
		r.WaitingOn = 0
		for _, d := range r.DependsOn {
			dr, err := t.loadJob(d)
			if err != nil {
				// Only completed jobs are purged, so a dependency that is gone
				// has completed.
				continue
			}
			switch dr.State {
			case pouw.StateDead:
				return fmt.Errorf("%w: depends_on job %s is dead", store.ErrConflict, d)
			case pouw.StateCompleted:
			default:
				r.WaitingOn++
				if err := t.b(bktWaiters).Put(cat([]byte(d), []byte(id)), nil); err != nil {
					return err
				}
			}
		}
		p, err := t.pool()
		if err != nil {
			return err
		}
		if p.Available < r.RewardBudget {
			return fmt.Errorf("%w: reward_budget %d, pool available %d", store.ErrInsufficientFunds, r.RewardBudget, p.Available)
		}
		p.Available -= r.RewardBudget
		p.Reserved += r.RewardBudget
		if err := t.putPool(p); err != nil {
			return err
		}
		r.Attempts, r.DeadReason, r.DeadAtMs = 0, "", 0
		r.State = pouw.StatePending
		if r.WaitingOn > 0 {
			r.State = pouw.StateWaiting
		}
		if err := t.save(old, &r); err != nil {
			return err
		}
		job = r.ProofJob
		return t.jobEvent(pouw.EventJobRequeued, &r, "")
	})
	return job, err
}

// Status counts jobs per state and tier.
func (s *Store) Status(ctx context.Context) (pouw.SystemStatus, error) {
	var st pouw.SystemStatus
	err := s.view(ctx, func(t *txn) error {
		st.NowMs = t.now
		for _, tier := range pouw.Tiers {
			ts := pouw.TierStatus{Tier: tier, Counts: map[pouw.State]uint64{}}
			for _, state := range pouw.States {
				ts.Counts[state] = t.count(tier, state)
			}
			c := t.b(bktPendAge).Cursor()
			if k, v := c.Seek([]byte{byte(tier)}); k != nil && k[0] == byte(tier) {
				ts.OldestPendingAgeMs = max(0, t.now-int64(be64(v)))
			}
			st.Tiers = append(st.Tiers, ts)
		}
		var err error
		if st.Pool, err = t.pool(); err != nil {
			return err
		}
		st.Provers = uint64(t.b(bktProvers).Stats().KeyN)
		st.LastSeq = t.b(bktJobs).Sequence()
		return nil
	})
	return st, err
}
