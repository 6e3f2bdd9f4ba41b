package pouw

import (
	"fmt"
	"time"
)

// MaxAmount is the largest fee or reward amount: 2^53-1, exact as a double
// (Lua numbers, JavaScript) — ARCHITECTURE.md, JSON.
const MaxAmount uint64 = 1<<53 - 1

// State is where a job is in its lifecycle.
type State string

// The job states. A job is in exactly one of them.
const (
	StateWaiting   State = "waiting"   // depends on jobs that have not completed yet
	StatePending   State = "pending"   // in the queue of its tier, claimable
	StateLeased    State = "leased"    // held by a prover under a lease
	StateCompleted State = "completed" // proof verified, reward paid
	StateDead      State = "dead"      // in the dead-letter queue
)

// States lists every state.
var States = [...]State{StateWaiting, StatePending, StateLeased, StateCompleted, StateDead}

// Valid reports whether s is a known state.
func (s State) Valid() bool {
	switch s {
	case StateWaiting, StatePending, StateLeased, StateCompleted, StateDead:
		return true
	}
	return false
}

// ProofJob is SPEC.md's ProofJob, plus the fields ARCHITECTURE.md adds
// (backend, state, depends_on) and a few the coordinator needs to serve it.
type ProofJob struct {
	JobID            string   `json:"job_id"`
	Tier             JobTier  `json:"tier"`
	IntentID         Hash     `json:"intent_id"`
	TraceHash        Hash     `json:"trace_hash"`
	TraceRef         string   `json:"trace_ref"`
	FeeBudget        uint64   `json:"fee_budget"`
	RewardBudget     uint64   `json:"reward_budget"`
	CreatedAtMs      int64    `json:"created_at_ms"`
	CreatedSeq       uint64   `json:"created_seq"`
	LeaseExpiresAtMs int64    `json:"lease_expires_at_ms"`
	DeadlineMs       int64    `json:"deadline_ms"`
	MaxRetries       uint32   `json:"max_retries"`
	Attempts         uint32   `json:"attempts"`
	Backend          string   `json:"backend"`
	State            State    `json:"state"`
	DependsOn        []string `json:"depends_on,omitempty"`

	// TraceBytes is the size of the trace blob, so claims can filter on it.
	TraceBytes int64 `json:"trace_bytes"`
	// ProverID is the prover holding the lease (leased) or that completed it.
	ProverID string `json:"prover_id,omitempty"`
	// ProofRef is the blob key of the accepted proof (completed jobs).
	ProofRef string `json:"proof_ref,omitempty"`
	// CompletedAtMs is when the proof was accepted.
	CompletedAtMs int64 `json:"completed_at_ms,omitempty"`
	// DeadReason says why the job is in the dead-letter queue.
	DeadReason string `json:"dead_reason,omitempty"`
}

// Outcome is how an attempt ended.
type Outcome string

// Attempt outcomes. Rejected, Failed and Expired count as failures
// (attempts+1); Released and Completed do not.
const (
	OutcomeActive    Outcome = "active"    // the lease is still held
	OutcomeCompleted Outcome = "completed" // proof verified
	OutcomeRejected  Outcome = "rejected"  // proof did not verify
	OutcomeFailed    Outcome = "failed"    // the prover reported a failure
	OutcomeExpired   Outcome = "expired"   // the lease ran out
	OutcomeReleased  Outcome = "released"  // given back without penalty (drain)
)

// CountsAsFailure reports whether an attempt with this outcome increments the
// job's attempts.
func (o Outcome) CountsAsFailure() bool {
	return o == OutcomeRejected || o == OutcomeFailed || o == OutcomeExpired
}

// Attempt is one lease of a job, kept as history (as River does).
type Attempt struct {
	// Number is 1 for the first lease of the job, 2 for the next, ...
	Number   uint32 `json:"number"`
	ProverID string `json:"prover_id"`
	// LeaseID identifies the lease without revealing its token: hex of the
	// first 8 bytes of BLAKE3(token). History is readable by anyone allowed to
	// read jobs, so the token itself is never kept here.
	LeaseID     string  `json:"lease_id"`
	ClaimedAtMs int64   `json:"claimed_at_ms"`
	EndedAtMs   int64   `json:"ended_at_ms,omitempty"`
	Outcome     Outcome `json:"outcome"`
	Reason      string  `json:"reason,omitempty"`
}

// ProverStats is SPEC.md's prover statistics.
type ProverStats struct {
	ProverID            string `json:"prover_id"`
	JobsCompleted       uint64 `json:"jobs_completed"`
	JobsFailed          uint64 `json:"jobs_failed"`
	TotalFeeEarned      uint64 `json:"total_fee_earned"`
	AvgCompletionTimeMs int64  `json:"avg_completion_time_ms"`
	LastSeenMs          int64  `json:"last_seen_ms"`
}

// EventType names a state change.
type EventType string

// Event types. Every state change appends exactly one event.
const (
	EventJobCreated       EventType = "job.created"
	EventJobReady         EventType = "job.ready" // waiting -> pending
	EventJobClaimed       EventType = "job.claimed"
	EventJobRenewed       EventType = "job.renewed"
	EventJobReleased      EventType = "job.released"
	EventJobCompleted     EventType = "job.completed"
	EventJobRejected      EventType = "job.rejected"
	EventJobFailed        EventType = "job.failed"
	EventJobExpired       EventType = "job.expired"
	EventJobDead          EventType = "job.dead"
	EventJobRequeued      EventType = "job.requeued"
	EventPoolDeposit      EventType = "pool.deposit"
	EventProverRegistered EventType = "prover.registered"
	// EventAdminAction is the audit log: one per admin action (ingest,
	// upload, prover registration, token rotation and revocation,
	// suspension and its lifting, deposit, requeue), naming who did it in
	// Actor and what in Action.
	EventAdminAction EventType = "admin.action"
	// EventProverSuspended is appended when the coordinator suspends a
	// prover whose recent proofs were mostly rejected (Actor "coordinator").
	EventProverSuspended EventType = "prover.suspended"
)

// Audit actions (Event.Action of EventAdminAction).
const (
	ActionIngest       = "ingest"
	ActionUploadBlob   = "blob.upload"
	ActionRegister     = "prover.register"
	ActionRotateToken  = "token.rotate"
	ActionRevokeTokens = "token.revoke"
	ActionSuspend      = "prover.suspend"
	ActionUnsuspend    = "prover.unsuspend"
	ActionDeposit      = "pool.deposit"
	ActionRequeue      = "dead_letter.requeue"
	ActionBatch        = "batch" // POST /v1/pouw/batches: Event.JobID is the aggregation job
)

// Event is one entry of the event stream. IDs increase strictly.
type Event struct {
	ID       uint64    `json:"id"`
	Type     EventType `json:"type"`
	AtMs     int64     `json:"at_ms"`
	JobID    string    `json:"job_id,omitempty"`
	Tier     *JobTier  `json:"tier,omitempty"`
	State    State     `json:"state,omitempty"`
	ProverID string    `json:"prover_id,omitempty"`
	Attempts uint32    `json:"attempts,omitempty"`
	Amount   uint64    `json:"amount,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	// Actor is who did it (audit events): "admin:<key id>" or "coordinator".
	Actor string `json:"actor,omitempty"`
	// Action is what an admin.action event records (Action* constants).
	Action string `json:"action,omitempty"`
}

// Validate checks the fields that a job must have whatever its state.
func (j *ProofJob) Validate() error {
	if err := ValidateJobID(j.JobID); err != nil {
		return err
	}
	if !j.Tier.Valid() {
		return fmt.Errorf("%w: tier %d", ErrInvalid, uint8(j.Tier))
	}
	if !j.State.Valid() {
		return fmt.Errorf("%w: state %q", ErrInvalid, j.State)
	}
	if j.RewardBudget > j.FeeBudget {
		return fmt.Errorf("%w: reward_budget %d exceeds fee_budget %d", ErrInvalid, j.RewardBudget, j.FeeBudget)
	}
	if j.FeeBudget > MaxAmount {
		return fmt.Errorf("%w: fee_budget %d exceeds 2^53-1", ErrInvalid, j.FeeBudget)
	}
	if j.MaxRetries == 0 {
		return fmt.Errorf("%w: max_retries must be at least 1", ErrInvalid)
	}
	if j.Backend == "" {
		return fmt.Errorf("%w: job has no backend", ErrInvalid)
	}
	return nil
}

// Millis converts a time to integer milliseconds since the Unix epoch.
func Millis(t time.Time) int64 { return t.UnixMilli() }
