package boltstore

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/pouw"
)

func validateClaim(req *store.ClaimRequest) error {
	switch {
	case req.ProverID == "":
		return fmt.Errorf("%w: claim without prover id", store.ErrInvalid)
	case len(req.Tiers) == 0:
		return fmt.Errorf("%w: claim names no tier", store.ErrInvalid)
	case len(req.Backends) == 0:
		return fmt.Errorf("%w: claim names no backend", store.ErrInvalid)
	case req.MaxTraceBytes < 0:
		return fmt.Errorf("%w: max_trace_bytes %d is negative", store.ErrInvalid, req.MaxTraceBytes)
	case req.MinReward > pouw.MaxAmount:
		return fmt.Errorf("%w: min_reward %d exceeds 2^53-1", store.ErrInvalid, req.MinReward)
	}
	for _, tier := range req.Tiers {
		if !tier.Valid() {
			return fmt.Errorf("%w: tier %d (want micro, macro or full)", store.ErrInvalid, uint8(tier))
		}
	}
	for _, b := range req.Backends {
		if b == "" {
			return fmt.Errorf("%w: empty backend name", store.ErrInvalid)
		}
	}
	return nil
}

// Claim leases the first pending job that fits. For each tier in preference
// order it looks at the front of the (tier, backend) index of every backend
// the claimer runs, skipping at most MaxClaimScan entries per index that the
// filters (trace size, min_reward) reject, and takes the best of the fronts.
// Pending jobs past their deadline sit at the front of every index (claim
// order starts with the deadline); the claim moves those it meets to the dead
// letter in the same transaction instead of skipping them forever.
func (s *Store) Claim(ctx context.Context, req store.ClaimRequest) (store.Lease, error) {
	if err := validateClaim(&req); err != nil {
		return store.Lease{}, err
	}
	token, err := newToken()
	if err != nil {
		return store.Lease{}, err
	}
	var lease store.Lease
	noJob := false
	err = s.update(ctx, func(t *txn) error {
		lease, noJob = store.Lease{}, false
		prover, err := t.loadProver(req.ProverID)
		if err != nil {
			return err
		}
		var expired []string
		var chosen string
		for _, tier := range uniq(req.Tiers) {
			var bestKey []byte
			for _, backend := range uniq(req.Backends) {
				tb := t.b(bktPendTB).Bucket(tbBucketName(tier, backend))
				if tb == nil {
					continue
				}
				c := tb.Cursor()
				scanned := 0
				for k, v := c.First(); k != nil && scanned < s.opts.MaxClaimScan; k, v = c.Next() {
					scanned++
					id, traceBytes := parsePendVal(v)
					if claimKeyDeadline(k) <= t.now {
						expired = append(expired, id)
						continue
					}
					if req.MaxTraceBytes > 0 && traceBytes > req.MaxTraceBytes {
						continue
					}
					if claimKeyReward(k) < req.MinReward {
						continue
					}
					if bestKey == nil || bytes.Compare(k, bestKey) < 0 {
						bestKey, chosen = slices.Clone(k), id
					}
					break
				}
			}
			if bestKey != nil {
				break
			}
		}
		for _, id := range expired {
			if err := t.killIfPastDeadline(id); err != nil {
				return err
			}
		}
		if chosen == "" {
			noJob = true
			return nil
		}
		old, err := t.loadJob(chosen)
		if err != nil {
			return err
		}
		r := *old
		r.State = pouw.StateLeased
		r.ProverID = req.ProverID
		r.Token = token
		r.Leases++
		r.ClaimedAtMs = t.now
		r.LeaseExpiresAtMs = t.now + s.opts.LeaseDuration[r.Tier].Milliseconds()
		if err := t.save(old, &r); err != nil {
			return err
		}
		a := pouw.Attempt{
			Number: r.Leases, ProverID: req.ProverID, LeaseID: leaseID(token),
			ClaimedAtMs: t.now, Outcome: pouw.OutcomeActive,
		}
		if err := t.putJSON(bktHist, histKey(r.JobID, r.Leases), a); err != nil {
			return err
		}
		prover.Stats.LastSeenMs = t.now
		if err := t.saveProver(prover); err != nil {
			return err
		}
		lease = store.Lease{Job: r.ProofJob, Token: token}
		return t.jobEvent(pouw.EventJobClaimed, &r, "")
	})
	if err != nil {
		return store.Lease{}, err
	}
	if noJob {
		return store.Lease{}, store.ErrNoJob
	}
	return lease, nil
}

func uniq[T comparable](in []T) []T {
	out := make([]T, 0, len(in))
	for _, v := range in {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

func (t *txn) killIfPastDeadline(id string) error {
	r, err := t.loadJob(id)
	if err != nil {
		return err
	}
	if (r.State == pouw.StatePending || r.State == pouw.StateWaiting) && r.DeadlineMs <= t.now {
		return t.kill(r, "deadline passed")
	}
	return nil
}

// kill moves a job to the dead letter, returns its reservation to the pool and
// kills every job waiting on it, transitively.
func (t *txn) kill(old *record, reason string) error {
	r := *old
	r.State = pouw.StateDead
	r.DeadReason = reason
	r.DeadAtMs = t.now
	r.Token, r.LeaseExpiresAtMs, r.WaitingOn = "", 0, 0
	r.ProverID = ""
	if err := t.save(old, &r); err != nil {
		return err
	}
	p, err := t.pool()
	if err != nil {
		return err
	}
	p.Reserved -= r.RewardBudget
	p.Available += r.RewardBudget
	if err := t.putPool(p); err != nil {
		return err
	}
	if err := t.jobEvent(pouw.EventJobDead, &r, reason); err != nil {
		return err
	}
	for _, dep := range t.waiters(r.JobID) {
		// A requeue of a dependent writes its entries again.
		if err := t.b(bktWaiters).Delete(cat([]byte(r.JobID), []byte(dep))); err != nil {
			return err
		}
		dr, err := t.loadJob(dep)
		if err != nil {
			return err
		}
		if dr.State == pouw.StateWaiting {
			if err := t.kill(dr, "dependency "+r.JobID+" is dead"); err != nil {
				return err
			}
		}
	}
	return nil
}

// waiters returns the ids of the jobs that named id in depends_on.
func (t *txn) waiters(id string) []string {
	var out []string
	c := t.b(bktWaiters).Cursor()
	for k, _ := c.Seek([]byte(id)); k != nil && bytes.HasPrefix(k, []byte(id)); k, _ = c.Next() {
		out = append(out, string(k[len(id):]))
	}
	return out
}

// checkLease loads the job of ref and checks ref holds its current, unexpired
// lease. A wrong token is ErrLeaseLost, except for a prover that never held a
// lease on the job while another prover holds one now (ErrNotLeaseHolder).
func (t *txn) checkLease(ref store.LeaseRef) (*record, error) {
	if ref.ProverID == "" {
		return nil, fmt.Errorf("%w: no prover id", store.ErrInvalid)
	}
	r, err := t.loadJob(ref.JobID)
	if err != nil {
		return nil, err
	}
	live := r.State == pouw.StateLeased && t.now < r.LeaseExpiresAtMs
	if r.State == pouw.StateLeased && subtle.ConstantTimeCompare([]byte(r.Token), []byte(ref.Token)) == 1 {
		if r.ProverID != ref.ProverID {
			return nil, fmt.Errorf("%w: job %s is leased to %s", store.ErrNotLeaseHolder, r.JobID, r.ProverID)
		}
		if !live {
			return nil, fmt.Errorf("%w: lease on job %s expired at %d (now %d)", store.ErrLeaseLost, r.JobID, r.LeaseExpiresAtMs, t.now)
		}
		return r, nil
	}
	if live && r.ProverID != ref.ProverID {
		held, err := t.heldBy(r.JobID, ref.ProverID)
		if err != nil {
			return nil, err
		}
		if !held {
			return nil, fmt.Errorf("%w: job %s is leased to %s", store.ErrNotLeaseHolder, r.JobID, r.ProverID)
		}
	}
	return nil, fmt.Errorf("%w: token is not the current lease of job %s (job is %s)", store.ErrLeaseLost, r.JobID, r.State)
}

func (t *txn) heldBy(id, prover string) (bool, error) {
	h, err := t.history(id)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(h, func(a pouw.Attempt) bool { return a.ProverID == prover }), nil
}

func (t *txn) touchProver(id string, fn func(p *proverRec)) error {
	p, err := t.loadProver(id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	fn(p)
	return t.saveProver(p)
}

// Renew extends the lease to now + the tier's lease length.
func (s *Store) Renew(ctx context.Context, ref store.LeaseRef) (pouw.ProofJob, error) {
	var job pouw.ProofJob
	err := s.update(ctx, func(t *txn) error {
		old, err := t.checkLease(ref)
		if err != nil {
			return err
		}
		r := *old
		r.LeaseExpiresAtMs = t.now + s.opts.LeaseDuration[r.Tier].Milliseconds()
		if err := t.save(old, &r); err != nil {
			return err
		}
		if err := t.touchProver(ref.ProverID, func(p *proverRec) { p.Stats.LastSeenMs = t.now }); err != nil {
			return err
		}
		job = r.ProofJob
		return t.jobEvent(pouw.EventJobRenewed, &r, "")
	})
	return job, err
}

// BeginVerify checks the lease and extends it to at least now + budget, so the
// reaper leaves the job alone while its proof is verified. It is not a state
// change and appends no event.
func (s *Store) BeginVerify(ctx context.Context, ref store.LeaseRef, budget time.Duration) (pouw.ProofJob, error) {
	if budget <= 0 {
		return pouw.ProofJob{}, fmt.Errorf("%w: verification budget %s", store.ErrInvalid, budget)
	}
	var job pouw.ProofJob
	err := s.update(ctx, func(t *txn) error {
		old, err := t.checkLease(ref)
		if err != nil {
			return err
		}
		r := *old
		r.LeaseExpiresAtMs = max(r.LeaseExpiresAtMs, t.now+budget.Milliseconds())
		if err := t.save(old, &r); err != nil {
			return err
		}
		if err := t.touchProver(ref.ProverID, func(p *proverRec) { p.Stats.LastSeenMs = t.now }); err != nil {
			return err
		}
		job = r.ProofJob
		return nil
	})
	return job, err
}

func (t *txn) endAttempt(r *record, outcome pouw.Outcome, reason string) error {
	k := histKey(r.JobID, r.Leases)
	var a pouw.Attempt
	if _, err := t.getJSON(bktHist, k, &a); err != nil {
		return err
	}
	a.EndedAtMs = t.now
	a.Outcome = outcome
	a.Reason = reason
	return t.putJSON(bktHist, k, a)
}

// Complete marks the job completed, pays the reward, updates the prover's
// statistics and readies the jobs whose last dependency this was.
func (s *Store) Complete(ctx context.Context, ref store.LeaseRef, proofRef string) (pouw.ProofJob, error) {
	if proofRef == "" {
		return pouw.ProofJob{}, fmt.Errorf("%w: empty proof reference", store.ErrInvalid)
	}
	var job pouw.ProofJob
	err := s.update(ctx, func(t *txn) error {
		old, err := t.checkLease(ref)
		if err != nil {
			return err
		}
		prover, err := t.loadProver(ref.ProverID)
		if err != nil {
			return err
		}
		r := *old
		r.State = pouw.StateCompleted
		r.ProofRef = proofRef
		r.CompletedAtMs = t.now
		r.Token, r.LeaseExpiresAtMs = "", 0
		if err := t.save(old, &r); err != nil {
			return err
		}
		if err := t.endAttempt(&r, pouw.OutcomeCompleted, ""); err != nil {
			return err
		}
		p, err := t.pool()
		if err != nil {
			return err
		}
		p.Reserved -= r.RewardBudget
		p.Paid += r.RewardBudget
		if err := t.putPool(p); err != nil {
			return err
		}
		st := &prover.Stats
		st.JobsCompleted++
		st.TotalFeeEarned += r.RewardBudget
		prover.TotalCompletionMs += t.now - old.ClaimedAtMs
		st.AvgCompletionTimeMs = prover.TotalCompletionMs / int64(st.JobsCompleted)
		st.LastSeenMs = t.now
		if err := t.saveProver(prover); err != nil {
			return err
		}
		ev := pouw.Event{Type: pouw.EventJobCompleted, JobID: r.JobID, Tier: &r.Tier, State: r.State,
			ProverID: r.ProverID, Attempts: r.Attempts, Amount: r.RewardBudget}
		if err := t.event(ev); err != nil {
			return err
		}
		job = r.ProofJob
		return t.readyWaiters(r.JobID)
	})
	return job, err
}

// readyWaiters counts the completion of id against every job waiting on it;
// those with nothing left to wait for become pending.
func (t *txn) readyWaiters(id string) error {
	for _, w := range t.waiters(id) {
		if err := t.b(bktWaiters).Delete(cat([]byte(id), []byte(w))); err != nil {
			return err
		}
		old, err := t.loadJob(w)
		if err != nil {
			return err
		}
		if old.State != pouw.StateWaiting {
			continue
		}
		r := *old
		r.WaitingOn--
		if r.WaitingOn <= 0 {
			r.WaitingOn = 0
			r.State = pouw.StatePending
		}
		if err := t.save(old, &r); err != nil {
			return err
		}
		if r.State == pouw.StatePending {
			if err := t.jobEvent(pouw.EventJobReady, &r, ""); err != nil {
				return err
			}
		}
	}
	return nil
}

// endLease ends a lease that did not complete: records the attempt, counts a
// failure unless released, and puts the job back to pending or, when its
// retries are used up or its deadline has passed, to the dead letter.
func (t *txn) endLease(old *record, outcome pouw.Outcome, reason string) (*record, error) {
	r := *old
	if err := t.endAttempt(&r, outcome, reason); err != nil {
		return nil, err
	}
	holder := r.ProverID
	if outcome.CountsAsFailure() {
		r.Attempts++
		if err := t.touchProver(holder, func(p *proverRec) {
			p.Stats.JobsFailed++
			if outcome != pouw.OutcomeExpired {
				p.Stats.LastSeenMs = t.now
			}
		}); err != nil {
			return nil, err
		}
	} else if err := t.touchProver(holder, func(p *proverRec) { p.Stats.LastSeenMs = t.now }); err != nil {
		return nil, err
	}
	r.State = pouw.StatePending
	r.Token, r.LeaseExpiresAtMs, r.ProverID = "", 0, ""
	if err := t.save(old, &r); err != nil {
		return nil, err
	}
	var dead string
	switch {
	case r.Attempts >= r.MaxRetries:
		dead = fmt.Sprintf("max_retries reached (%d failed attempts), last: %s", r.Attempts, outcome)
		if reason != "" {
			dead += ": " + reason
		}
	case r.DeadlineMs <= t.now:
		dead = "deadline passed"
	}
	typ := map[pouw.Outcome]pouw.EventType{
		pouw.OutcomeRejected: pouw.EventJobRejected,
		pouw.OutcomeFailed:   pouw.EventJobFailed,
		pouw.OutcomeExpired:  pouw.EventJobExpired,
		pouw.OutcomeReleased: pouw.EventJobReleased,
	}[outcome]
	ev := pouw.Event{Type: typ, JobID: r.JobID, Tier: &r.Tier, State: r.State, ProverID: holder,
		Attempts: r.Attempts, Reason: reason}
	if dead != "" {
		ev.State = pouw.StateDead
	}
	if err := t.event(ev); err != nil {
		return nil, err
	}
	if dead != "" {
		if err := t.kill(&r, dead); err != nil {
			return nil, err
		}
		return t.loadJob(r.JobID)
	}
	return &r, nil
}

// Fail ends the lease as a failure.
func (s *Store) Fail(ctx context.Context, ref store.LeaseRef, outcome pouw.Outcome, reason string) (pouw.ProofJob, error) {
	if outcome != pouw.OutcomeRejected && outcome != pouw.OutcomeFailed {
		return pouw.ProofJob{}, fmt.Errorf("%w: fail outcome %q (want rejected or failed)", store.ErrInvalid, outcome)
	}
	return s.endBy(ctx, ref, outcome, reason)
}

// Release gives the lease back without counting a failure.
func (s *Store) Release(ctx context.Context, ref store.LeaseRef, reason string) (pouw.ProofJob, error) {
	return s.endBy(ctx, ref, pouw.OutcomeReleased, reason)
}

func (s *Store) endBy(ctx context.Context, ref store.LeaseRef, outcome pouw.Outcome, reason string) (pouw.ProofJob, error) {
	var job pouw.ProofJob
	err := s.update(ctx, func(t *txn) error {
		old, err := t.checkLease(ref)
		if err != nil {
			return err
		}
		r, err := t.endLease(old, outcome, reason)
		if err != nil {
			return err
		}
		job = r.ProofJob
		return nil
	})
	return job, err
}

// ReapExpired ends at most limit expired leases (OutcomeExpired) and moves
// pending and waiting jobs past their deadline to the dead letter; it also
// purges completed jobs past retention and dedup entries past the dedup
// window. It returns how many leases and deadlines it processed. bbolt runs
// one writer at a time, so concurrent reapers process each expiry once.
func (s *Store) ReapExpired(ctx context.Context, limit int) (int, error) {
	if limit <= 0 {
		return 0, fmt.Errorf("%w: reap limit %d", store.ErrInvalid, limit)
	}
	n := 0
	err := s.update(ctx, func(t *txn) error {
		n = 0
		ids := t.frontIDs(bktLeased, limit, func(k []byte) bool { return int64(be64(k[:8])) <= t.now }, nil)
		for _, id := range ids {
			r, err := t.loadJob(id)
			if err != nil {
				return err
			}
			if r.State != pouw.StateLeased || r.LeaseExpiresAtMs > t.now {
				continue
			}
			if _, err := t.endLease(r, pouw.OutcomeExpired, "lease expired"); err != nil {
				return err
			}
			n++
		}
		pastDeadline := func(k []byte) bool { return int64(be64(k[:8])) <= t.now }
		for _, b := range [][]byte{bktPendAll, bktWaiting} {
			ids := t.frontIDs(b, limit-n, pastDeadline, func(v []byte) string { return string(v[:pouw.JobIDLen]) })
			for _, id := range ids {
				r, err := t.loadJob(id)
				if err != nil {
					return err
				}
				if (r.State == pouw.StatePending || r.State == pouw.StateWaiting) && r.DeadlineMs <= t.now {
					if err := t.kill(r, "deadline passed"); err != nil {
						return err
					}
					n++
				}
			}
		}
		return t.purge(limit)
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// frontIDs returns up to limit job ids from the front of an index while due
// says the key is due. Collected first: bbolt cursors must not see the bucket
// change under them.
func (t *txn) frontIDs(bucket []byte, limit int, due func(k []byte) bool, idOf func(v []byte) string) []string {
	if idOf == nil {
		idOf = func(v []byte) string { return string(v) }
	}
	var ids []string
	c := t.b(bucket).Cursor()
	for k, v := c.First(); k != nil && len(ids) < limit && due(k); k, v = c.Next() {
		ids = append(ids, idOf(v))
	}
	return ids
}

// purge deletes up to limit completed jobs past retention (detail and
// history) and dedup entries past the dedup window.
func (t *txn) purge(limit int) error {
	retention := t.s.opts.Retention.Milliseconds()
	ids := t.frontIDs(bktCompleted, limit, func(k []byte) bool { return int64(be64(k[:8]))+retention <= t.now }, nil)
	for _, id := range ids {
		var r record
		if ok, err := t.getJSON(bktJobs, []byte(id), &r); err != nil || !ok {
			return err
		}
		if err := t.unindex(&r, true); err != nil {
			return err
		}
		if err := t.b(bktJobs).Delete([]byte(id)); err != nil {
			return err
		}
		for n := uint32(1); n <= r.Leases; n++ {
			if err := t.b(bktHist).Delete(histKey(id, n)); err != nil {
				return err
			}
		}
	}
	window := t.s.opts.DedupWindow.Milliseconds()
	c := t.b(bktDedupTime).Cursor()
	type kv struct{ k, dk []byte }
	var due []kv
	for k, v := c.First(); k != nil && len(due) < limit && int64(be64(k[:8]))+window <= t.now; k, v = c.Next() {
		due = append(due, kv{slices.Clone(k), slices.Clone(v)})
	}
	for _, d := range due {
		var de dedupEntry
		ok, err := t.getJSON(bktDedup, d.dk, &de)
		if err != nil {
			return err
		}
		// A newer job may own the key by now; only drop the entry it points to.
		if ok && de.CreatedSeq == be64(d.k[8:]) {
			if err := t.b(bktDedup).Delete(d.dk); err != nil {
				return err
			}
		}
		if err := t.b(bktDedupTime).Delete(d.k); err != nil {
			return err
		}
	}
	return nil
}
