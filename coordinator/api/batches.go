package api

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/zeebo/blake3"

	"github.com/pouwfarm/pouwfarm/coordinator/blob"
	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/trace"
)

// noBatchBackend is the message of a batch refused because this coordinator
// has no aggregation backend.
const noBatchBackend = "this coordinator has no aggregation backend (start it with --aggregate-keys)"

// handleBatch is POST /v1/pouw/batches (issue 9's batch DAG): k Macro jobs,
// one per intent, proved by the batch backend, and one Full aggregation job
// that depends on them, whose "trace" is the batch manifest.
//
// The steps are ordinary idempotent enqueues, so a retried request finds
// every job it made before: the same children give the same manifest, hence
// the same aggregation job (200, created=false). A request that fails after
// some children were created leaves them as ordinary Macro jobs.
func (s *Server) handleBatch(w http.ResponseWriter, r *http.Request, _ caller) error {
	var req pouw.BatchRequest
	if err := readJSON(w, r, s.opts.Limits.MaxJSONBytes, &req); err != nil {
		return err
	}
	if err := validateBatch(&req); err != nil {
		return err
	}
	backend := s.opts.BatchBackend
	if backend == "" {
		return errorf(http.StatusConflict, pouw.CodeConflict, noBatchBackend)
	}
	ctx := r.Context()
	// Every trace must be there (and, when checked, be the Macro trace of
	// its intent) before the first job is made.
	sizes := make([]int64, len(req.Intents))
	var headers []*trace.Header
	for i, in := range req.Intents {
		info, err := s.blobs.Stat(ctx, in.TraceHash)
		if err != nil {
			if errors.Is(err, blob.ErrNotFound) {
				return errorf(http.StatusConflict, pouw.CodeTraceMissing, "intent %d: trace %s is not uploaded; PUT /v1/pouw/blobs/%s first", i, in.TraceHash, in.TraceHash)
			}
			return err
		}
		sizes[i] = info.Size
		if s.opts.CheckTraceHeader {
			h, err := s.checkTraceHeader(ctx, pouw.IngestRequest{Tier: pouw.TierMacro, IntentID: in.IntentID, TraceHash: in.TraceHash})
			if err != nil {
				return fmt.Errorf("intent %d: %w", i, err)
			}
			headers = append(headers, h)
		}
	}
	if s.opts.BatchCheck != nil && len(headers) == len(req.Intents) {
		if err := s.opts.BatchCheck(headers); err != nil {
			return errorf(http.StatusConflict, pouw.CodeConflict, "backend %s cannot prove this batch: %v", backend, err)
		}
	}
	deadline, retries := s.jobDefaults(req.DeadlineMs, req.MaxRetries)

	children := make([]pouw.ProofJob, len(req.Intents))
	m := pouw.BatchManifest{Backend: backend, Children: make([]pouw.BatchChild, len(req.Intents))}
	for i, in := range req.Intents {
		job, created, err := s.store.Enqueue(ctx, store.EnqueueRequest{
			Tier: pouw.TierMacro, IntentID: in.IntentID, TraceHash: in.TraceHash,
			TraceRef: in.TraceHash.String(), TraceBytes: sizes[i], Backend: backend,
			FeeBudget: in.FeeBudget, RewardBudget: in.RewardBudget,
			DeadlineMs: deadline, MaxRetries: retries,
		})
		if err != nil {
			return fmt.Errorf("intent %d: %w", i, err)
		}
		if !created {
			if err := batchChildUsable(i, job, backend); err != nil {
				return err
			}
		}
		children[i] = job
		m.Children[i] = pouw.BatchChild{JobID: job.JobID, IntentID: in.IntentID, TraceHash: in.TraceHash}
	}

	enc, err := pouw.EncodeManifest(&m)
	if err != nil {
		// validateBatch refused duplicate intents, so the children are
		// distinct jobs: this is a bug, not the caller's.
		return fmt.Errorf("encoding the batch manifest: %w", err)
	}
	sum := pouw.Hash(blake3.Sum256(enc))
	if _, _, err := s.blobs.Put(ctx, sum, bytes.NewReader(enc), 0); err != nil {
		return fmt.Errorf("storing the batch manifest: %w", err)
	}
	agg, created, err := s.store.Enqueue(ctx, store.EnqueueRequest{
		Tier: pouw.TierFull, IntentID: m.IntentID(), TraceHash: sum,
		TraceRef: sum.String(), TraceBytes: int64(len(enc)), Backend: backend,
		FeeBudget: req.FeeBudget, RewardBudget: req.RewardBudget,
		DeadlineMs: deadline, MaxRetries: retries, DependsOn: m.ChildIDs(),
	})
	if err != nil {
		return fmt.Errorf("the aggregation job: %w", err)
	}
	ids := m.ChildIDs()
	s.audit(ctx, r, pouw.Event{Action: pouw.ActionBatch, JobID: agg.JobID,
		Reason: fmt.Sprintf("k %d, backend %s, children %s, manifest %s, reward %d, created %t",
			len(ids), backend, strings.Join(ids, ","), sum, req.RewardBudget, created)})
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, pouw.BatchResponse{Aggregation: agg, Children: children, Created: created})
	return nil
}

// validateBatch checks what can be checked before touching the store, so
// that no child is created for a request that is bound to be refused.
func validateBatch(req *pouw.BatchRequest) error {
	k := len(req.Intents)
	if !pouw.ValidBatchSize(k) {
		return errorf(http.StatusBadRequest, pouw.CodeInvalid, "a batch has a power of two from %d to %d intents, not %d", pouw.MinBatch, pouw.MaxBatch, k)
	}
	if err := checkBudgets(req.FeeBudget, req.RewardBudget); err != nil {
		return errorf(http.StatusBadRequest, pouw.CodeInvalid, "the aggregation job: %s", err)
	}
	type key struct{ intent, trace pouw.Hash }
	seen := make(map[key]int, k)
	for i, in := range req.Intents {
		if in.IntentID.IsZero() || in.TraceHash.IsZero() {
			return errorf(http.StatusBadRequest, pouw.CodeInvalid, "intent %d: intent_id and trace_hash are required", i)
		}
		if err := checkBudgets(in.FeeBudget, in.RewardBudget); err != nil {
			return errorf(http.StatusBadRequest, pouw.CodeInvalid, "intent %d: %s", i, err)
		}
		kk := key{in.IntentID, in.TraceHash}
		if j, dup := seen[kk]; dup {
			return errorf(http.StatusBadRequest, pouw.CodeInvalid, "intents %d and %d are the same intent and trace; a batch proves distinct statements", j, i)
		}
		seen[kk] = i
	}
	return nil
}

func checkBudgets(fee, reward uint64) error {
	switch {
	case fee > pouw.MaxAmount:
		return fmt.Errorf("fee_budget %d exceeds 2^53-1", fee)
	case reward > fee:
		return fmt.Errorf("reward_budget %d exceeds fee_budget %d", reward, fee)
	}
	return nil
}

// batchChildUsable checks a child that deduplicated to an existing job: it
// can join the batch only if the batch backend proves it (its proof must be
// one the aggregation can take) and it can still complete.
func batchChildUsable(i int, job pouw.ProofJob, backend string) error {
	switch {
	case job.Backend == "":
		// The dedup entry outlived the job (retention): neither its proof
		// nor its prover can be found any more.
		return errorf(http.StatusConflict, pouw.CodeConflict,
			"intent %d: job %s proved this intent and trace and was purged by retention; its proof cannot be aggregated",
			i, job.JobID)
	case job.Backend != backend:
		return errorf(http.StatusConflict, pouw.CodeConflict,
			"intent %d: job %s (backend %s) already proves this intent and trace; a batch's children must be proved by backend %s",
			i, job.JobID, job.Backend, backend)
	case job.State == pouw.StateDead:
		return errorf(http.StatusConflict, pouw.CodeConflict,
			"intent %d: job %s of this intent and trace is in the dead-letter queue (%s); requeue it and send the batch again",
			i, job.JobID, job.DeadReason)
	case len(job.DependsOn) > 0:
		return errorf(http.StatusConflict, pouw.CodeConflict,
			"intent %d: job %s of this intent and trace depends on other jobs; a batch's children must not", i, job.JobID)
	}
	return nil
}
