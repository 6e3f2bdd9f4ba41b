package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/zeebo/blake3"

	"github.com/pouwfarm/pouwfarm/coordinator/blob"
	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/pouw"
)

const maxReasonLen = 1024

func (s *Server) handlePending(w http.ResponseWriter, r *http.Request, _ caller) error {
	q, err := pageQuery(r)
	if err != nil {
		return err
	}
	page, err := s.store.Pending(r.Context(), q)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, jobList(page))
	return nil
}

func (s *Server) handleDeadLetter(w http.ResponseWriter, r *http.Request, _ caller) error {
	q, err := pageQuery(r)
	if err != nil {
		return err
	}
	page, err := s.store.DeadLetter(r.Context(), q)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, jobList(page))
	return nil
}

func jobList(p store.JobPage) pouw.JobList {
	if p.Jobs == nil {
		p.Jobs = []pouw.ProofJob{}
	}
	return pouw.JobList{Jobs: p.Jobs, NextCursor: p.NextCursor}
}

func (s *Server) handleClaim(w http.ResponseWriter, r *http.Request, c caller) error {
	var req pouw.ClaimRequest
	if err := readJSON(w, r, s.opts.Limits.MaxJSONBytes, &req); err != nil {
		return err
	}
	if len(req.Tiers) == 0 || len(req.Backends) == 0 {
		return errorf(http.StatusBadRequest, pouw.CodeInvalid, "a claim names at least one tier and one backend")
	}
	for _, t := range req.Tiers {
		// encoding/json reads a base64 string into a []uint8-kinded slice,
		// so "tiers":"full" decodes to bytes: reject what is not a tier.
		if !t.Valid() {
			return errorf(http.StatusBadRequest, pouw.CodeInvalid, "tiers must be a list of micro, macro, full")
		}
	}
	if req.MaxTraceBytes < 0 {
		return errorf(http.StatusBadRequest, pouw.CodeInvalid, "max_trace_bytes must not be negative")
	}
	if c.prover.Suspended {
		return errorf(http.StatusForbidden, CodeProverSuspended, "prover %s is suspended (%s); an admin can lift it with 'pouw provers unsuspend %s'",
			c.proverID, c.prover.SuspendReason, c.proverID)
	}
	if err := s.limits.allowClaim(c.proverID); err != nil {
		s.countLimited(err)
		return err
	}
	lease, err := s.store.Claim(r.Context(), store.ClaimRequest{
		ProverID: c.proverID, Tiers: req.Tiers, Backends: req.Backends,
		MaxTraceBytes: req.MaxTraceBytes, MinReward: req.MinReward,
	})
	if errors.Is(err, store.ErrNoJob) {
		// Nothing fits: 204 tells the farm to back off.
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err != nil {
		return err
	}
	s.limits.leased(c.proverID, lease.Job.JobID, lease.Job.LeaseExpiresAtMs)
	s.hub.poke()
	writeJSON(w, http.StatusOK, pouw.ClaimResponse{Job: lease.Job, LeaseToken: lease.Token})
	return nil
}

func (s *Server) handleJob(w http.ResponseWriter, r *http.Request, _ caller) error {
	id, err := jobIDParam(r)
	if err != nil {
		return err
	}
	job, err := s.store.Job(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, job)
	return nil
}

func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request, _ caller) error {
	id, err := jobIDParam(r)
	if err != nil {
		return err
	}
	atts, err := s.store.History(r.Context(), id)
	if err != nil {
		return err
	}
	if atts == nil {
		atts = []pouw.Attempt{}
	}
	writeJSON(w, http.StatusOK, pouw.HistoryResponse{JobID: id, Attempts: atts})
	return nil
}

// leaseRef reads the job id from the path and checks the token's presence.
func leaseRef(r *http.Request, c caller, token string) (store.LeaseRef, error) {
	id, err := jobIDParam(r)
	if err != nil {
		return store.LeaseRef{}, err
	}
	if token == "" || len(token) > 256 {
		return store.LeaseRef{}, errorf(http.StatusBadRequest, pouw.CodeInvalid, "lease_token is required")
	}
	return store.LeaseRef{JobID: id, ProverID: c.proverID, Token: token}, nil
}

func (s *Server) handleRenew(w http.ResponseWriter, r *http.Request, c caller) error {
	var req pouw.LeaseRequest
	if err := readJSON(w, r, s.opts.Limits.MaxJSONBytes, &req); err != nil {
		return err
	}
	ref, err := leaseRef(r, c, req.LeaseToken)
	if err != nil {
		return err
	}
	job, err := s.store.Renew(r.Context(), ref)
	if err != nil {
		return err
	}
	s.limits.leased(c.proverID, job.JobID, job.LeaseExpiresAtMs)
	s.hub.poke()
	writeJSON(w, http.StatusOK, job)
	return nil
}

func (s *Server) handleFail(w http.ResponseWriter, r *http.Request, c caller) error {
	return s.endLease(w, r, c, func(ctx context.Context, ref store.LeaseRef, reason string) (pouw.ProofJob, error) {
		return s.store.Fail(ctx, ref, pouw.OutcomeFailed, reason)
	})
}

func (s *Server) handleRelease(w http.ResponseWriter, r *http.Request, c caller) error {
	return s.endLease(w, r, c, s.store.Release)
}

func (s *Server) endLease(w http.ResponseWriter, r *http.Request, c caller,
	end func(context.Context, store.LeaseRef, string) (pouw.ProofJob, error)) error {
	var req pouw.FailRequest
	if err := readJSON(w, r, s.opts.Limits.MaxJSONBytes, &req); err != nil {
		return err
	}
	ref, err := leaseRef(r, c, req.LeaseToken)
	if err != nil {
		return err
	}
	if len(req.Reason) > maxReasonLen {
		return errorf(http.StatusBadRequest, pouw.CodeInvalid, "reason is longer than %d bytes", maxReasonLen)
	}
	job, err := end(r.Context(), ref, req.Reason)
	if err != nil {
		return err
	}
	s.limits.ended(c.proverID, ref.JobID, ref.Token)
	s.hub.poke()
	writeJSON(w, http.StatusOK, job)
	return nil
}

// handleSubmit verifies a proof and completes the job, or records the
// rejection. The store steps around verification (BeginVerify, then
// Complete or Fail) keep the reaper off the job while it is checked.
func (s *Server) handleSubmit(w http.ResponseWriter, r *http.Request, c caller) error {
	var req pouw.SubmitRequest
	// base64 is 4/3 of the proof; 64 KiB covers the JSON around it.
	limit := s.opts.Limits.MaxProofBytes/3*4 + 4 + 64<<10
	if err := readJSON(w, r, limit, &req); err != nil {
		return err
	}
	ref, err := leaseRef(r, c, req.LeaseToken)
	if err != nil {
		return err
	}
	if len(req.Proof) == 0 {
		return errorf(http.StatusBadRequest, pouw.CodeInvalid, "proof is empty")
	}
	if int64(len(req.Proof)) > s.opts.Limits.MaxProofBytes {
		return errorf(http.StatusRequestEntityTooLarge, pouw.CodeTooLarge, "proof exceeds %d bytes", s.opts.Limits.MaxProofBytes)
	}
	if err := s.limits.allowSubmit(c.proverID); err != nil {
		s.countLimited(err)
		return err
	}
	ctx := r.Context()
	job, err := s.store.BeginVerify(ctx, ref, s.opts.VerifyBudget)
	if err != nil {
		return err
	}
	// From here on the outcome must be recorded even if the prover hangs
	// up: the lease is extended, and abandoning it would stall the job
	// until the extension runs out.
	ctx = context.WithoutCancel(ctx)
	vctx, cancel := context.WithTimeout(ctx, s.opts.VerifyBudget)
	start := time.Now()
	verr := s.opts.Verifier.Verify(vctx, job, c.proverID, req.Proof)
	cancel()
	s.metrics.verifyDuration.WithLabelValues(job.Backend).Observe(time.Since(start).Seconds())
	if verr != nil {
		if errors.Is(verr, ErrVerifierUnavailable) {
			return s.verifyUnavailable(ctx, ref, verr)
		}
		s.limits.ended(c.proverID, ref.JobID, ref.Token)
		defer s.afterVerified(ctx, c, true)
		// Backends already say "proof rejected: ..."; say it once.
		reason := strings.TrimPrefix(verr.Error(), ErrProofRejected.Error()+": ")
		if len(reason) > maxReasonLen {
			reason = reason[:maxReasonLen]
		}
		if _, err := s.store.Fail(ctx, ref, pouw.OutcomeRejected, reason); err != nil {
			return fmt.Errorf("recording the rejected proof of %s: %w", ref.JobID, err)
		}
		s.hub.poke()
		return fmt.Errorf("%w: %s", ErrProofRejected, reason)
	}
	sum := pouw.Hash(blake3.Sum256(req.Proof))
	if _, _, err := s.blobs.Put(ctx, sum, bytes.NewReader(req.Proof), 0); err != nil {
		return fmt.Errorf("storing the proof of %s: %w", ref.JobID, err)
	}
	defer s.afterVerified(ctx, c, false)
	done, err := s.store.Complete(ctx, ref, sum.String())
	s.limits.ended(c.proverID, ref.JobID, ref.Token)
	if err != nil {
		return err
	}
	s.hub.poke()
	writeJSON(w, http.StatusOK, done)
	return nil
}

func (s *Server) handleProvers(w http.ResponseWriter, r *http.Request, _ caller) error {
	ps, err := s.store.Provers(r.Context())
	if err != nil {
		return err
	}
	if ps == nil {
		ps = []pouw.ProverStats{}
	}
	writeJSON(w, http.StatusOK, pouw.ProverList{Provers: ps})
	return nil
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request, _ caller) error {
	st, err := s.store.Status(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (s *Server) handlePool(w http.ResponseWriter, r *http.Request, _ caller) error {
	p, err := s.store.Pool(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

func (s *Server) handleIngest(w http.ResponseWriter, r *http.Request, _ caller) error {
	var req pouw.IngestRequest
	if err := readJSON(w, r, s.opts.Limits.MaxJSONBytes, &req); err != nil {
		return err
	}
	if !req.Tier.Valid() {
		return errorf(http.StatusBadRequest, pouw.CodeInvalid, "tier is required")
	}
	for _, d := range req.DependsOn {
		if err := pouw.ValidateJobID(d); err != nil {
			return errorf(http.StatusBadRequest, pouw.CodeInvalid, "depends_on: %w", err)
		}
	}
	ctx := r.Context()
	info, err := s.blobs.Stat(ctx, req.TraceHash)
	if err != nil {
		if errors.Is(err, blob.ErrNotFound) {
			return errorf(http.StatusConflict, pouw.CodeTraceMissing, "trace %s is not uploaded; PUT /v1/pouw/blobs/%s first", req.TraceHash, req.TraceHash)
		}
		return err
	}
	if s.opts.CheckTraceHeader {
		if _, err := s.checkTraceHeader(ctx, req); err != nil {
			return err
		}
	}
	deadline, retries := s.jobDefaults(req.DeadlineMs, req.MaxRetries)
	job, created, err := s.store.Enqueue(ctx, store.EnqueueRequest{
		Tier: req.Tier, IntentID: req.IntentID, TraceHash: req.TraceHash,
		TraceRef: req.TraceHash.String(), TraceBytes: info.Size,
		Backend: s.opts.Tiers[req.Tier], FeeBudget: req.FeeBudget, RewardBudget: req.RewardBudget,
		DeadlineMs: deadline, MaxRetries: retries, DependsOn: req.DependsOn,
	})
	if err != nil {
		return err
	}
	s.audit(ctx, r, pouw.Event{Action: pouw.ActionIngest, JobID: job.JobID,
		Reason: fmt.Sprintf("tier %s, trace %s, reward %d, created %t", req.Tier, req.TraceHash, req.RewardBudget, created)})
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, pouw.IngestResponse{Job: job, Created: created})
	return nil
}

// jobDefaults fills in the coordinator's defaults for a request that left
// the deadline (now + DefaultTTL) or max_retries out (0).
func (s *Server) jobDefaults(deadlineMs int64, maxRetries uint32) (int64, uint32) {
	if deadlineMs == 0 {
		deadlineMs = s.opts.Clock.Now().Add(s.opts.DefaultTTL).UnixMilli()
	}
	if maxRetries == 0 {
		maxRetries = s.opts.DefaultMaxRetries
	}
	return deadlineMs, maxRetries
}

func hashParam(r *http.Request) (pouw.Hash, error) {
	h, err := pouw.ParseHash(r.PathValue("hash"))
	if err != nil {
		return h, errorf(http.StatusBadRequest, pouw.CodeInvalid, "blob hash: %w", err)
	}
	return h, nil
}

func (s *Server) handlePutBlob(w http.ResponseWriter, r *http.Request, _ caller) error {
	h, err := hashParam(r)
	if err != nil {
		return err
	}
	if err := wantContentType(r, "application/octet-stream"); err != nil {
		return err
	}
	if r.ContentLength > s.opts.Limits.MaxTraceBytes {
		return errorf(http.StatusRequestEntityTooLarge, pouw.CodeTooLarge, "blob of %d bytes exceeds the limit of %d", r.ContentLength, s.opts.Limits.MaxTraceBytes)
	}
	// An upload must keep up at least ~1 MiB/s (plus a minute of slack),
	// so a trickling client cannot hold a connection and a temp file
	// forever; without a length it gets the time of the largest blob.
	size := r.ContentLength
	if size < 0 {
		size = s.opts.Limits.MaxTraceBytes
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(time.Minute + time.Duration(size>>20)*time.Second))
	body := http.MaxBytesReader(w, r.Body, s.opts.Limits.MaxTraceBytes)
	n, created, err := s.blobs.Put(r.Context(), h, body, s.opts.Limits.MaxTraceBytes)
	if err != nil {
		return err
	}
	s.audit(r.Context(), r, pouw.Event{Action: pouw.ActionUploadBlob, Reason: fmt.Sprintf("blob %s, %d bytes, created %t", h, n, created)})
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, pouw.BlobInfo{Hash: h, Size: n, Created: created})
	return nil
}

// handleGetBlob serves a blob with its hash as a strong ETag; http.ServeContent
// answers Range and If-None-Match / If-Range.
func (s *Server) handleGetBlob(w http.ResponseWriter, r *http.Request, _ caller) error {
	h, err := hashParam(r)
	if err != nil {
		return err
	}
	rd, info, err := s.blobs.Open(r.Context(), h)
	if err != nil {
		return err
	}
	defer rd.Close()
	w.Header().Set("ETag", `"`+h.String()+`"`)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	http.ServeContent(w, r, "", info.ModTime, rd)
	return nil
}

var proverIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

func (s *Server) handleRegisterProver(w http.ResponseWriter, r *http.Request, _ caller) error {
	var req pouw.RegisterProverRequest
	if err := readJSON(w, r, s.opts.Limits.MaxJSONBytes, &req); err != nil {
		return err
	}
	if !proverIDPattern.MatchString(req.ProverID) {
		return errorf(http.StatusBadRequest, pouw.CodeInvalid,
			"prover_id must be 1-64 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit")
	}
	token := NewToken(ProverTokenPrefix)
	if err := s.store.RegisterProver(r.Context(), store.Prover{
		ID: req.ProverID, TokenHash: TokenHash(token), CreatedAtMs: s.opts.Clock.Now().UnixMilli(),
		TTL: s.opts.TokenTTL,
	}); err != nil {
		return err
	}
	s.audit(r.Context(), r, pouw.Event{Action: pouw.ActionRegister, ProverID: req.ProverID})
	writeJSON(w, http.StatusCreated, pouw.RegisterProverResponse{ProverID: req.ProverID, Token: token})
	return nil
}

func (s *Server) handleRequeue(w http.ResponseWriter, r *http.Request, _ caller) error {
	id, err := jobIDParam(r)
	if err != nil {
		return err
	}
	if r.ContentLength > 0 {
		return errorf(http.StatusBadRequest, pouw.CodeBadRequest, "requeue takes no body")
	}
	job, err := s.store.Requeue(r.Context(), id)
	if err != nil {
		return err
	}
	s.audit(r.Context(), r, pouw.Event{Action: pouw.ActionRequeue, JobID: id})
	writeJSON(w, http.StatusOK, job)
	return nil
}

func (s *Server) handleDeposit(w http.ResponseWriter, r *http.Request, _ caller) error {
	var req pouw.DepositRequest
	if err := readJSON(w, r, s.opts.Limits.MaxJSONBytes, &req); err != nil {
		return err
	}
	if req.Amount == 0 || req.Amount > pouw.MaxAmount {
		return errorf(http.StatusBadRequest, pouw.CodeInvalid, "amount must be from 1 to 2^53-1")
	}
	if len(req.Memo) > 256 {
		return errorf(http.StatusBadRequest, pouw.CodeInvalid, "memo is longer than 256 bytes")
	}
	by := "admin"
	if req.Memo != "" {
		by = "admin: " + req.Memo
	}
	p, err := s.store.Deposit(r.Context(), req.Amount, by)
	if err != nil {
		return err
	}
	s.audit(r.Context(), r, pouw.Event{Action: pouw.ActionDeposit, Amount: req.Amount, Reason: req.Memo})
	writeJSON(w, http.StatusOK, p)
	return nil
}
