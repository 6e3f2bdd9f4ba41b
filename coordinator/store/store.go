// Package store defines the durable job store of the coordinator: the Store
// interface that coordinator/api consumes, its options and sentinel errors.
// Implementations live in redisstore (production, shared by many
// coordinators) and boltstore (embedded default); storetest is the one
// conformance suite both must pass.
//
// Every method is one atomic transition: it validates everything before its
// first write, so an error leaves nothing half-written. Time comes from the
// store's clock (Redis TIME in redisstore, an injected clock.Clock in
// boltstore), never from the caller.
//
// This package imports pouw and clock only; it must not import api, blob,
// scheduler or backends.
package store

import (
	"context"
	"time"

	"github.com/pouwfarm/pouwfarm/pouw"
)

// Store is the job queue, lease table, fee pool, prover registry and event
// log of one deployment.
type Store interface {
	// Enqueue creates a job, or returns the existing one when the same
	// (intent_id, tier, trace_hash) was enqueued within the dedup window
	// (created=false). It reserves reward_budget from the pool
	// (ErrInsufficientFunds when the pool cannot cover it). A job with
	// DependsOn waits until all of them complete.
	Enqueue(ctx context.Context, req EnqueueRequest) (job pouw.ProofJob, created bool, err error)

	// Job returns one job (ErrNotFound when unknown or expired by retention).
	Job(ctx context.Context, id string) (pouw.ProofJob, error)

	// Pending lists pending jobs in claim order: earliest deadline, then
	// highest reward, then lowest created_seq.
	Pending(ctx context.Context, q PageQuery) (JobPage, error)

	// Claim leases the first pending job, in the claimer's tier preference
	// order and then claim order, that fits the request. ErrNoJob when none
	// fits. Its cost does not grow with queue depth.
	Claim(ctx context.Context, req ClaimRequest) (Lease, error)

	// Renew extends a lease to now + the tier's lease length.
	Renew(ctx context.Context, ref LeaseRef) (pouw.ProofJob, error)

	// BeginVerify is called when a proof arrives, before it is verified: it
	// checks the lease is current and unexpired and extends it to at least
	// now + budget, so the reaper cannot take the job while its proof is
	// being verified.
	BeginVerify(ctx context.Context, ref LeaseRef, budget time.Duration) (pouw.ProofJob, error)

	// Complete marks the job completed with its verified proof, pays
	// reward_budget to the prover, updates the prover's statistics and makes
	// pending every waiting job whose last dependency this was — one atomic
	// step.
	Complete(ctx context.Context, ref LeaseRef, proofRef string) (pouw.ProofJob, error)

	// Fail ends the lease as a failure (outcome OutcomeRejected or
	// OutcomeFailed): attempts+1, back to pending, or to dead letter when
	// attempts reaches max_retries or the deadline has passed.
	Fail(ctx context.Context, ref LeaseRef, outcome pouw.Outcome, reason string) (pouw.ProofJob, error)

	// Release gives the lease back without counting a failure.
	Release(ctx context.Context, ref LeaseRef, reason string) (pouw.ProofJob, error)

	// ReapExpired processes at most limit expired leases (as failures with
	// OutcomeExpired) and jobs past their deadline (to dead letter). Safe to
	// run from several coordinators at once: each expiry happens exactly once.
	ReapExpired(ctx context.Context, limit int) (int, error)

	// Requeue brings a dead job back to pending (admin): attempts reset to 0,
	// reward reserved again (ErrInsufficientFunds when short).
	Requeue(ctx context.Context, id string) (pouw.ProofJob, error)

	// History returns every attempt of a job, oldest first.
	History(ctx context.Context, id string) ([]pouw.Attempt, error)

	// DeadLetter lists dead jobs, most recently dead first.
	DeadLetter(ctx context.Context, q PageQuery) (JobPage, error)

	// RegisterProver adds a prover with the hash of its token (ErrExists when
	// the id is taken).
	RegisterProver(ctx context.Context, p Prover) error
	// ProverByTokenHash finds the prover whose token hashes to h.
	ProverByTokenHash(ctx context.Context, h pouw.Hash) (Prover, error)
	// Provers lists every registered prover with its statistics.
	Provers(ctx context.Context) ([]pouw.ProverStats, error)

	// AddProverToken gives prover id another token (rotation) that works
	// for ttl (0: no expiry). When grace > 0, every other token of the
	// prover stops working at now + grace at the latest. ErrNotFound for an
	// unknown prover, ErrExists when the hash is taken.
	AddProverToken(ctx context.Context, id string, h pouw.Hash, ttl, grace time.Duration) error
	// RevokeProverTokens makes every token of prover id invalid at once and
	// returns how many there were (ErrNotFound for an unknown prover).
	RevokeProverTokens(ctx context.Context, id string) (int, error)
	// SetProverSuspended suspends (with a reason) or reinstates prover id;
	// reinstating records LiftedAtMs = now (ErrNotFound when unknown).
	SetProverSuspended(ctx context.Context, id string, suspended bool, reason string) (Prover, error)
	// Audit appends ev (its Type, Actor, Action, JobID, ProverID, Amount
	// and Reason) to the event log; the store assigns ID and AtMs.
	Audit(ctx context.Context, ev pouw.Event) error

	// Deposit adds amount to the pool (admin).
	Deposit(ctx context.Context, amount uint64, by string) (pouw.PoolStatus, error)
	// Pool returns the pool ledger.
	Pool(ctx context.Context) (pouw.PoolStatus, error)

	// Status counts jobs per state and tier.
	Status(ctx context.Context) (pouw.SystemStatus, error)

	// Events returns up to limit events with id > after, in id order.
	// ErrEventsTruncated when events after `after` were already dropped by
	// retention (the reader must resynchronise).
	Events(ctx context.Context, after uint64, limit int) ([]pouw.Event, error)

	// Ping checks that the store is reachable (readiness).
	Ping(ctx context.Context) error

	// Close releases the store's resources.
	Close() error
}

// EnqueueRequest describes a job to create. The store assigns job_id,
// created_seq, created_at_ms and state.
type EnqueueRequest struct {
	Tier       pouw.JobTier
	IntentID   pouw.Hash
	TraceHash  pouw.Hash
	TraceRef   string
	TraceBytes int64
	// Backend is fixed at ingest from the coordinator's tier -> backend table.
	Backend      string
	FeeBudget    uint64
	RewardBudget uint64
	// DeadlineMs is absolute, in the store's clock; it must be in the future.
	DeadlineMs int64
	MaxRetries uint32
	// DependsOn lists job ids that must complete before this job is pending.
	DependsOn []string
}

// ClaimRequest says what a prover can take now.
type ClaimRequest struct {
	ProverID string
	// Tiers in preference order (at least one).
	Tiers []pouw.JobTier
	// Backends the claimer runs (at least one).
	Backends []string
	// MaxTraceBytes bounds the trace size; 0 means no limit.
	MaxTraceBytes int64
	// MinReward is the prover's bid: only jobs with reward_budget >= MinReward.
	MinReward uint64
}

// Lease is a granted claim. Token fences every later call on the job.
type Lease struct {
	Job   pouw.ProofJob
	Token string
}

// LeaseRef names a lease held by a prover.
type LeaseRef struct {
	JobID    string
	ProverID string
	Token    string
}

// PageQuery pages through a list. Cursor is opaque and comes from the
// previous page's NextCursor; Tier filters when set.
type PageQuery struct {
	Tier   *pouw.JobTier
	Limit  int
	Cursor string
}

// JobPage is one page of jobs; NextCursor is empty on the last page.
type JobPage struct {
	Jobs       []pouw.ProofJob
	NextCursor string
}

// Prover is a registered prover. Only the hashes of its tokens are kept.
// ProverByTokenHash fills the fields of the token it was asked about: a
// token past ExpiresAtMs (judged by the store's clock) or revoked is not
// found at all.
type Prover struct {
	ID          string
	TokenHash   pouw.Hash
	CreatedAtMs int64
	// ExpiresAtMs is when this token stops working (0: never). RegisterProver
	// ignores it and sets it from TTL and the store's clock.
	ExpiresAtMs int64
	// TTL is how long the token given to RegisterProver works (0: no
	// expiry).
	TTL time.Duration
	// Suspended provers may read but not claim or submit.
	Suspended     bool
	SuspendReason string
	// LiftedAtMs is when a suspension was last lifted (0: never).
	LiftedAtMs int64
}

// Options are the semantics every implementation shares.
type Options struct {
	// LeaseDuration per tier, indexed by pouw.JobTier.
	LeaseDuration [3]time.Duration
	// DedupWindow is how long (intent_id, tier, trace_hash) maps to its job.
	DedupWindow time.Duration
	// Retention is how long a completed job's detail and history are kept.
	Retention time.Duration
	// MaxEvents is how many events are kept (older ones are dropped).
	MaxEvents int
	// MaxClaimScan bounds how many pending entries one claim examines when
	// filters (min_reward, max trace bytes) skip jobs.
	MaxClaimScan int
}

// DefaultOptions returns ARCHITECTURE.md's defaults.
func DefaultOptions() Options {
	return Options{
		LeaseDuration: [3]time.Duration{30 * time.Second, 120 * time.Second, 600 * time.Second},
		DedupWindow:   30 * 24 * time.Hour,
		Retention:     30 * 24 * time.Hour,
		MaxEvents:     100_000,
		MaxClaimScan:  256,
	}
}

// WithDefaults fills zero fields from DefaultOptions.
func (o Options) WithDefaults() Options {
	d := DefaultOptions()
	for i := range o.LeaseDuration {
		if o.LeaseDuration[i] <= 0 {
			o.LeaseDuration[i] = d.LeaseDuration[i]
		}
	}
	if o.DedupWindow <= 0 {
		o.DedupWindow = d.DedupWindow
	}
	if o.Retention <= 0 {
		o.Retention = d.Retention
	}
	if o.MaxEvents <= 0 {
		o.MaxEvents = d.MaxEvents
	}
	if o.MaxClaimScan <= 0 {
		o.MaxClaimScan = d.MaxClaimScan
	}
	return o
}
