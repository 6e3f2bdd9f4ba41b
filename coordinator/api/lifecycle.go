package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/trace"
)

// maxHeaderBytes bounds how much of a trace blob ingest reads for its header.
const maxHeaderBytes = 16 << 20

// checkTraceHeader reads the uploaded trace's header and refuses a job whose
// tier or intent differs from it: the verifier derives the statement from
// that header, so such a job could never be completed, and every prover
// that leased it would burn work and attempts on it.
func (s *Server) checkTraceHeader(ctx context.Context, req pouw.IngestRequest) (*trace.Header, error) {
	rd, info, err := s.blobs.Open(ctx, req.TraceHash)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	h, hlen, err := trace.DecodeHeader(rd, maxHeaderBytes)
	if err != nil {
		if errors.Is(err, trace.ErrFormat) {
			return nil, errorf(http.StatusBadRequest, pouw.CodeInvalid, "trace %s has no valid trace header: %v", req.TraceHash, err)
		}
		return nil, fmt.Errorf("reading the header of trace %s: %w", req.TraceHash, err)
	}
	if h.Tier != req.Tier || h.IntentID != req.IntentID {
		return nil, errorf(http.StatusBadRequest, pouw.CodeInvalid,
			"the trace header says tier %s, intent %s; the request says tier %s, intent %s", h.Tier, h.IntentID, req.Tier, req.IntentID)
	}
	// The size check stands in for reading the rows: a truncated or padded
	// blob could only fail at every prover that leases it (docs/trace-format.md:
	// header + rows × width × 8 bytes, nothing after). Validate bounds Rows
	// (≤ 2^28) and Width, so the product cannot overflow.
	if want := hlen + int64(h.Rows)*int64(h.Width)*8; info.Size != want {
		return nil, errorf(http.StatusBadRequest, pouw.CodeInvalid,
			"trace %s is %d bytes but its header (%d bytes, %d rows × %d columns) implies %d: truncated or padded",
			req.TraceHash, info.Size, hlen, h.Rows, h.Width, want)
	}
	return h, nil
}

// verifyUnavailable answers a verification that could not be made. The
// lease stays (503, the prover may submit again) until the lease has seen
// MaxVerifyAttempts of them; then the lease fails, so a proof that always
// times out cannot hold its job by resubmitting (each BeginVerify extends
// the lease).
func (s *Server) verifyUnavailable(ctx context.Context, ref store.LeaseRef, verr error) error {
	n := s.limits.verifyUnavailable(ref.JobID, ref.Token)
	if n < s.opts.MaxVerifyAttempts {
		return verr
	}
	s.limits.ended(ref.ProverID, ref.JobID, ref.Token)
	s.metrics.verifyGiveUps.Inc()
	reason := fmt.Sprintf("the proof could not be verified %d times (last: %v)", n, verr)
	if len(reason) > maxReasonLen {
		reason = reason[:maxReasonLen]
	}
	if _, err := s.store.Fail(ctx, ref, pouw.OutcomeFailed, reason); err != nil {
		return fmt.Errorf("failing the lease of %s after %d unverifiable submits: %w", ref.JobID, n, err)
	}
	s.hub.poke()
	return errorf(http.StatusConflict, pouw.CodeLeaseLost, "%s; the lease is ended", reason)
}

// afterVerified feeds the suspension rule with a verified proof's outcome
// and suspends the prover when most of its recent proofs were rejected.
func (s *Server) afterVerified(ctx context.Context, c caller, rejected bool) {
	suspend, why := s.limits.verified(c.proverID, rejected, c.prover.LiftedAtMs)
	if !suspend {
		return
	}
	if _, err := s.store.SetProverSuspended(ctx, c.proverID, true, why); err != nil {
		s.log.Error("suspending a prover failed", "prover", c.proverID, "err", err)
		return
	}
	s.metrics.suspensions.Inc()
	s.log.Warn("prover suspended", "prover", c.proverID, "reason", why)
	if err := s.store.Audit(ctx, pouw.Event{Type: pouw.EventProverSuspended, Actor: "coordinator",
		ProverID: c.proverID, Reason: why}); err != nil {
		s.log.Error("recording a suspension failed", "prover", c.proverID, "err", err)
	}
	s.hub.poke()
}

func (s *Server) countLimited(err error) {
	var rl *rateLimited
	if !errors.As(err, &rl) {
		return
	}
	s.metrics.limited.WithLabelValues(rl.kind).Inc()
}

func proverParam(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if !proverIDPattern.MatchString(id) {
		return "", errorf(http.StatusBadRequest, pouw.CodeInvalid, "prover id %q is not a valid prover id", id)
	}
	return id, nil
}

// RotateTokenRequest is the body of POST /v1/pouw/provers/{id}/tokens.
type RotateTokenRequest struct {
	// GraceMs is how long the prover's other tokens keep working (0: the
	// coordinator's default).
	GraceMs int64 `json:"grace_ms,omitempty"`
}

// RotateTokenResponse carries the new token, shown once.
type RotateTokenResponse struct {
	ProverID string `json:"prover_id"`
	Token    string `json:"token"`
	// ExpiresAtMs: when the new token stops working (0: never).
	ExpiresAtMs int64 `json:"expires_at_ms"`
	// OldValidUntilMs: when the prover's previous tokens stop working.
	OldValidUntilMs int64 `json:"old_valid_until_ms"`
}

// RevokeResponse answers POST /v1/pouw/provers/{id}/revoke.
type RevokeResponse struct {
	ProverID string `json:"prover_id"`
	Revoked  int    `json:"revoked"`
}

// SuspendRequest is the body of POST /v1/pouw/provers/{id}/suspend.
type SuspendRequest struct {
	Reason string `json:"reason"`
}

// SuspensionResponse answers suspend and unsuspend.
type SuspensionResponse struct {
	ProverID   string `json:"prover_id"`
	Suspended  bool   `json:"suspended"`
	Reason     string `json:"reason,omitempty"`
	LiftedAtMs int64  `json:"lifted_at_ms,omitempty"`
}

func (s *Server) handleRotateToken(w http.ResponseWriter, r *http.Request, _ caller) error {
	id, err := proverParam(r)
	if err != nil {
		return err
	}
	var req RotateTokenRequest
	if err := readJSON(w, r, s.opts.Limits.MaxJSONBytes, &req); err != nil {
		return err
	}
	if req.GraceMs < 0 || req.GraceMs > (365*24*time.Hour).Milliseconds() {
		return errorf(http.StatusBadRequest, pouw.CodeInvalid, "grace_ms must be from 0 to a year")
	}
	grace := time.Duration(req.GraceMs) * time.Millisecond
	if grace == 0 {
		grace = s.opts.RotateGrace
	}
	token := NewToken(ProverTokenPrefix)
	if err := s.store.AddProverToken(r.Context(), id, TokenHash(token), s.opts.TokenTTL, grace); err != nil {
		return err
	}
	s.audit(r.Context(), r, pouw.Event{Action: pouw.ActionRotateToken, ProverID: id,
		Reason: fmt.Sprintf("old tokens work for %s more", grace)})
	// The store stamps the times with its clock; these are this
	// coordinator's reading of them, for the operator.
	now := s.opts.Clock.Now()
	var exp int64
	if s.opts.TokenTTL > 0 {
		exp = now.Add(s.opts.TokenTTL).UnixMilli()
	}
	writeJSON(w, http.StatusCreated, RotateTokenResponse{ProverID: id, Token: token, ExpiresAtMs: exp, OldValidUntilMs: now.Add(grace).UnixMilli()})
	return nil
}

func (s *Server) handleRevokeTokens(w http.ResponseWriter, r *http.Request, _ caller) error {
	id, err := proverParam(r)
	if err != nil {
		return err
	}
	if r.ContentLength > 0 {
		return errorf(http.StatusBadRequest, pouw.CodeBadRequest, "revoke takes no body")
	}
	n, err := s.store.RevokeProverTokens(r.Context(), id)
	if err != nil {
		return err
	}
	s.audit(r.Context(), r, pouw.Event{Action: pouw.ActionRevokeTokens, ProverID: id, Amount: uint64(n)})
	writeJSON(w, http.StatusOK, RevokeResponse{ProverID: id, Revoked: n})
	return nil
}

func (s *Server) handleSuspend(w http.ResponseWriter, r *http.Request, _ caller) error {
	id, err := proverParam(r)
	if err != nil {
		return err
	}
	var req SuspendRequest
	if err := readJSON(w, r, s.opts.Limits.MaxJSONBytes, &req); err != nil {
		return err
	}
	if req.Reason == "" || len(req.Reason) > maxReasonLen {
		return errorf(http.StatusBadRequest, pouw.CodeInvalid, "reason is required, at most %d bytes", maxReasonLen)
	}
	p, err := s.store.SetProverSuspended(r.Context(), id, true, req.Reason)
	if err != nil {
		return err
	}
	s.audit(r.Context(), r, pouw.Event{Action: pouw.ActionSuspend, ProverID: id, Reason: req.Reason})
	writeJSON(w, http.StatusOK, SuspensionResponse{ProverID: id, Suspended: p.Suspended, Reason: p.SuspendReason})
	return nil
}

func (s *Server) handleUnsuspend(w http.ResponseWriter, r *http.Request, _ caller) error {
	id, err := proverParam(r)
	if err != nil {
		return err
	}
	if r.ContentLength > 0 {
		return errorf(http.StatusBadRequest, pouw.CodeBadRequest, "unsuspend takes no body")
	}
	p, err := s.store.SetProverSuspended(r.Context(), id, false, "")
	if err != nil {
		return err
	}
	s.audit(r.Context(), r, pouw.Event{Action: pouw.ActionUnsuspend, ProverID: id})
	writeJSON(w, http.StatusOK, SuspensionResponse{ProverID: id, Suspended: p.Suspended, LiftedAtMs: p.LiftedAtMs})
	return nil
}
