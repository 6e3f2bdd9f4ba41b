package pouw

// The request and response bodies of the PoUW HTTP API (docs/openapi.yaml).
// They are shared by the coordinator's handlers and its Go client, so the two
// can never disagree on a field name.

// ErrorBody is the body of every non-2xx response:
// {"error":{"code":"snake_case_code","message":"human sentence"}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inside of ErrorBody.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error codes of ErrorDetail.Code.
const (
	CodeBadRequest       = "bad_request"            // 400
	CodeInvalid          = "invalid"                // 400: a rule of the job model
	CodeUnauthorized     = "unauthorized"           // 401
	CodeForbidden        = "forbidden"              // 403: wrong role
	CodeNotLeaseHolder   = "not_lease_holder"       // 403: lease held by another prover
	CodeNotFound         = "not_found"              // 404
	CodeMethodNotAllowed = "method_not_allowed"     // 405
	CodeLeaseLost        = "lease_lost"             // 409
	CodeConflict         = "conflict"               // 409: state conflict
	CodeExists           = "exists"                 // 409
	CodeInsufficientFund = "insufficient_funds"     // 409
	CodeTraceMissing     = "trace_missing"          // 409: ingest before the trace upload
	CodeTooLarge         = "too_large"              // 413
	CodeUnsupportedMedia = "unsupported_media_type" // 415
	CodeProofRejected    = "proof_rejected"         // 422
	CodeHashMismatch     = "hash_mismatch"          // 422: uploaded bytes do not hash to the key
	CodeUnavailable      = "unavailable"            // 503
	CodeInternal         = "internal"               // 500
)

// IngestRequest is the body of POST /v1/pouw/jobs (admin). The trace must
// already be uploaded under trace_hash. The coordinator picks the backend
// from its tier table.
type IngestRequest struct {
	Tier         JobTier `json:"tier"`
	IntentID     Hash    `json:"intent_id"`
	TraceHash    Hash    `json:"trace_hash"`
	FeeBudget    uint64  `json:"fee_budget"`
	RewardBudget uint64  `json:"reward_budget"`
	// DeadlineMs is absolute; 0 means now + the coordinator's default TTL.
	DeadlineMs int64 `json:"deadline_ms,omitempty"`
	// MaxRetries is the failures allowed before dead letter; 0 means the
	// coordinator's default.
	MaxRetries uint32   `json:"max_retries,omitempty"`
	DependsOn  []string `json:"depends_on,omitempty"`
}

// IngestResponse answers an ingest: the job, and whether it was created
// (false: the same intent, tier and trace was ingested before).
type IngestResponse struct {
	Job     ProofJob `json:"job"`
	Created bool     `json:"created"`
}

// ClaimRequest is the body of POST /v1/pouw/jobs/claim: what the prover's
// free slots can take now.
type ClaimRequest struct {
	// Tiers in preference order (at least one).
	Tiers []JobTier `json:"tiers"`
	// Backends the prover runs (at least one).
	Backends []string `json:"backends"`
	// MaxTraceBytes bounds the trace size; 0 means no limit.
	MaxTraceBytes int64 `json:"max_trace_bytes,omitempty"`
	// MinReward is the prover's bid.
	MinReward uint64 `json:"min_reward,omitempty"`
}

// ClaimResponse is a granted lease. The job carries trace_ref and
// lease_expires_at_ms; LeaseToken fences renew, submit, fail and release.
type ClaimResponse struct {
	Job        ProofJob `json:"job"`
	LeaseToken string   `json:"lease_token"`
}

// LeaseRequest is the body of renew: the current lease token.
type LeaseRequest struct {
	LeaseToken string `json:"lease_token"`
}

// SubmitRequest is the body of POST /v1/pouw/jobs/{id}/submit. Proof is
// standard base64 on the wire.
type SubmitRequest struct {
	LeaseToken string `json:"lease_token"`
	Proof      []byte `json:"proof"`
}

// FailRequest is the body of fail and release: the lease token and why.
type FailRequest struct {
	LeaseToken string `json:"lease_token"`
	Reason     string `json:"reason,omitempty"`
}

// JobList is one page of jobs (pending, dead letter). NextCursor is empty on
// the last page.
type JobList struct {
	Jobs       []ProofJob `json:"jobs"`
	NextCursor string     `json:"next_cursor,omitempty"`
}

// HistoryResponse is GET /v1/pouw/jobs/{id}/history.
type HistoryResponse struct {
	JobID    string    `json:"job_id"`
	Attempts []Attempt `json:"attempts"`
}

// ProverList is GET /v1/pouw/provers.
type ProverList struct {
	Provers []ProverStats `json:"provers"`
}

// RegisterProverRequest is the body of POST /v1/pouw/provers (admin).
type RegisterProverRequest struct {
	ProverID string `json:"prover_id"`
}

// RegisterProverResponse carries the prover's bearer token. It is shown
// once: the coordinator keeps only its hash.
type RegisterProverResponse struct {
	ProverID string `json:"prover_id"`
	Token    string `json:"token"`
}

// DepositRequest is the body of POST /v1/pouw/pool/deposits (admin).
type DepositRequest struct {
	Amount uint64 `json:"amount"`
	// Memo says where the funds come from (kept in the event).
	Memo string `json:"memo,omitempty"`
}

// BlobInfo answers a blob upload.
type BlobInfo struct {
	Hash Hash  `json:"hash"`
	Size int64 `json:"size"`
	// Created is false when the blob was already stored.
	Created bool `json:"created"`
}

// ResetEvent is the data of the SSE `reset` event: the requested position is
// older than the event retention, so the client must resynchronise (re-read
// the state it mirrors) and the stream continues after ResumeAfter.
type ResetEvent struct {
	ResumeAfter uint64 `json:"resume_after"`
	Reason      string `json:"reason"`
}

// Health is the body of /healthz and /readyz.
type Health struct {
	Status string `json:"status"`
}
