package pouw

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/bits"
)

// The aggregation DAG (issue 9): POST /v1/pouw/batches takes k intents whose
// traces are uploaded, creates k Macro jobs and one Full aggregation job that
// depends on them. The aggregation job's "trace" blob is its batch manifest:
// the ordered child job ids and the statements they answer. Its proof is one
// proof over the k children's proofs, verified against the children's
// statements (each bound to the prover that completed it).

// Batch size bounds: k is a power of two in [MinBatch, MaxBatch].
const (
	MinBatch = 2
	MaxBatch = 16
)

// ValidBatchSize reports whether k intents can form one batch.
func ValidBatchSize(k int) bool {
	return k >= MinBatch && k <= MaxBatch && bits.OnesCount(uint(k)) == 1
}

// BatchIntent is one intent of a batch: its trace must already be uploaded
// under trace_hash (PUT /v1/pouw/blobs/{hash}).
type BatchIntent struct {
	IntentID     Hash   `json:"intent_id"`
	TraceHash    Hash   `json:"trace_hash"`
	FeeBudget    uint64 `json:"fee_budget"`
	RewardBudget uint64 `json:"reward_budget"`
}

// BatchRequest is the body of POST /v1/pouw/batches (admin). FeeBudget and
// RewardBudget are the aggregation job's; each intent carries its own.
// DeadlineMs and MaxRetries apply to every job of the batch (0: the
// coordinator's defaults).
type BatchRequest struct {
	Intents      []BatchIntent `json:"intents"`
	FeeBudget    uint64        `json:"fee_budget"`
	RewardBudget uint64        `json:"reward_budget"`
	DeadlineMs   int64         `json:"deadline_ms,omitempty"`
	MaxRetries   uint32        `json:"max_retries,omitempty"`
}

// BatchResponse answers a batch: the aggregation job (waiting until every
// child completes), the children in batch order, and whether the
// aggregation job was created (false: the same batch was submitted before;
// a retried request is answered with the same jobs).
type BatchResponse struct {
	Aggregation ProofJob   `json:"aggregation"`
	Children    []ProofJob `json:"children"`
	Created     bool       `json:"created"`
}

// ManifestFormat is the first line of every batch manifest encoding; no
// trace encoding starts with it (traces start with "POUWTRC\0").
const ManifestFormat = "pouw-batch-manifest-v1"

// MaxManifestBytes bounds a manifest's encoding: MaxBatch children of three
// hex fields each fit many times over.
const MaxManifestBytes = 64 << 10

// BatchManifest is the "trace" of an aggregation job.
type BatchManifest struct {
	// Backend proves and verifies the batch (and its children).
	Backend string `json:"backend"`
	// Children in batch order; the aggregate proof commits to this order.
	Children []BatchChild `json:"children"`
}

// BatchChild names one child job and the statement it answers; the
// statement's header is the trace blob's header, and its prover is the one
// that completed the child.
type BatchChild struct {
	JobID     string `json:"job_id"`
	IntentID  Hash   `json:"intent_id"`
	TraceHash Hash   `json:"trace_hash"`
}

// IntentID is the aggregation job's intent id: BatchIntentID of the
// children's intent ids in order.
func (m *BatchManifest) IntentID() Hash {
	ids := make([]Hash, len(m.Children))
	for i, c := range m.Children {
		ids[i] = c.IntentID
	}
	return BatchIntentID(ids)
}

// ChildIDs lists the children's job ids in order (the aggregation job's
// depends_on).
func (m *BatchManifest) ChildIDs() []string {
	ids := make([]string, len(m.Children))
	for i, c := range m.Children {
		ids[i] = c.JobID
	}
	return ids
}

// Validate checks the manifest's rules: a backend, a valid batch size, well
// formed and distinct child job ids, non-zero hashes.
func (m *BatchManifest) Validate() error {
	if m.Backend == "" || len(m.Backend) > 64 {
		return fmt.Errorf("%w: batch manifest: backend must be 1..64 bytes", ErrInvalid)
	}
	if !ValidBatchSize(len(m.Children)) {
		return fmt.Errorf("%w: batch manifest: %d children; a batch has a power of two in [%d, %d]", ErrInvalid, len(m.Children), MinBatch, MaxBatch)
	}
	seen := make(map[string]bool, len(m.Children))
	for i, c := range m.Children {
		if err := ValidateJobID(c.JobID); err != nil {
			return fmt.Errorf("%w: batch manifest: child %d: %w", ErrInvalid, i, err)
		}
		if seen[c.JobID] {
			return fmt.Errorf("%w: batch manifest: child %d: job %s appears twice", ErrInvalid, i, c.JobID)
		}
		seen[c.JobID] = true
		if c.IntentID.IsZero() || c.TraceHash.IsZero() {
			return fmt.Errorf("%w: batch manifest: child %d: intent_id and trace_hash are required", ErrInvalid, i)
		}
	}
	return nil
}

// EncodeManifest returns the manifest's canonical encoding: the format line,
// then compact JSON. The same manifest always encodes to the same bytes, so
// a retried batch hashes to the same aggregation job.
func EncodeManifest(m *BatchManifest) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	j, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(ManifestFormat)+1+len(j))
	out = append(out, ManifestFormat...)
	out = append(out, '\n')
	return append(out, j...), nil
}

// IsManifest reports whether b starts like a batch manifest encoding (the
// blob of an aggregation job rather than a VM trace).
func IsManifest(b []byte) bool {
	return bytes.HasPrefix(b, []byte(ManifestFormat+"\n"))
}

// DecodeManifest reads a manifest of at most MaxManifestBytes from r: the
// format line, then JSON with no unknown fields and nothing after it, and it
// must Validate and be canonical (re-encode to the same bytes), so that one
// manifest has exactly one hash.
func DecodeManifest(r io.Reader) (*BatchManifest, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxManifestBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxManifestBytes {
		return nil, fmt.Errorf("%w: batch manifest exceeds %d bytes", ErrInvalid, MaxManifestBytes)
	}
	if !IsManifest(b) {
		return nil, fmt.Errorf("%w: not a batch manifest (no %q line)", ErrInvalid, ManifestFormat)
	}
	dec := json.NewDecoder(bytes.NewReader(b[len(ManifestFormat)+1:]))
	dec.DisallowUnknownFields()
	var m BatchManifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: batch manifest: %v", ErrInvalid, err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	canon, err := EncodeManifest(&m)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(canon, b) {
		return nil, fmt.Errorf("%w: batch manifest is not in canonical form", ErrInvalid)
	}
	return &m, nil
}
