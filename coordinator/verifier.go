package coordinator

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/coordinator/api"
	"github.com/pouwfarm/pouwfarm/coordinator/blob"
	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/trace"
)

// maxHeaderBytes bounds how much of a trace blob the verifier reads for its
// header (the rows are never needed to verify).
const maxHeaderBytes = 16 << 20

// JobReader reads one job; store.Store satisfies it. The verifier reads an
// aggregation job's children through it.
type JobReader interface {
	Job(ctx context.Context, id string) (pouw.ProofJob, error)
}

// BackendVerifier is the api.Verifier over a backends.Registry: it reads the
// trace header of the job from the blob store, derives the statement (header,
// trace hash, job id, prover id) and lets the job's backend verify the proof.
// A job whose backend is not registered, or whose trace header does not
// match the job, is rejected — never accepted unverified.
//
// An aggregation job of the batch DAG (its trace blob is a batch manifest)
// is verified as one: the backend must be a backends.Aggregator, every
// child must be completed, and the proof must verify against the children's
// statements in batch order, each bound to the prover that completed it.
type BackendVerifier struct {
	Registry *backends.Registry
	Blobs    blob.Store
	// Jobs reads the children of an aggregation job; without it every
	// aggregate proof is rejected.
	Jobs JobReader
}

var _ api.Verifier = BackendVerifier{}

// Verify implements api.Verifier.
func (v BackendVerifier) Verify(ctx context.Context, job pouw.ProofJob, proverID string, proof []byte) error {
	b, err := v.Registry.Get(job.Backend)
	if errors.Is(err, backends.ErrUnknownBackend) {
		return fmt.Errorf("no backend registered for backend %q (tier %s): %v", job.Backend, job.Tier, err)
	}
	if err != nil {
		return err
	}
	if !backends.Serves(b, job.Tier) {
		return fmt.Errorf("backend %q does not verify %s jobs", job.Backend, job.Tier)
	}
	rd, _, err := v.Blobs.Open(ctx, job.TraceHash)
	if err != nil {
		// The trace was there at ingest: this is the coordinator's
		// trouble, not the prover's; let it submit again.
		return fmt.Errorf("%w: reading trace %s: %v", api.ErrVerifierUnavailable, job.TraceHash, err)
	}
	defer rd.Close()
	br := bufio.NewReader(rd)
	head, err := br.Peek(len(pouw.ManifestFormat) + 1)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: reading trace %s: %v", api.ErrVerifierUnavailable, job.TraceHash, err)
	}
	if pouw.IsManifest(head) {
		return v.verifyBatch(ctx, b, job, proverID, br, proof)
	}
	h, err := decodeHeader(br, job.TraceHash)
	if err != nil {
		return err
	}
	if h.Tier != job.Tier || h.IntentID != job.IntentID {
		return fmt.Errorf("the trace header (tier %s, intent %s) does not match the job (tier %s, intent %s)",
			h.Tier, h.IntentID, job.Tier, job.IntentID)
	}
	st := backends.Statement{Header: h, TraceHash: job.TraceHash, JobID: job.JobID, ProverID: proverID}
	return unavailableIfCut(b.Verify(ctx, st, proof))
}

// decodeHeader reads a trace header: a malformed one rejects (no proof can
// verify against it), a failed read is the coordinator's trouble.
func decodeHeader(r io.Reader, h pouw.Hash) (*trace.Header, error) {
	hd, _, err := trace.DecodeHeader(r, maxHeaderBytes)
	if err != nil {
		if errors.Is(err, trace.ErrFormat) {
			return nil, fmt.Errorf("the trace %s has no valid header, so no proof can verify: %v", h, err)
		}
		return nil, fmt.Errorf("%w: reading the header of trace %s: %v", api.ErrVerifierUnavailable, h, err)
	}
	return hd, nil
}

// unavailableIfCut turns a verification cut off by the request's end (which
// says nothing about the proof) into ErrVerifierUnavailable: the prover may
// submit again.
func unavailableIfCut(err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return fmt.Errorf("%w: %v", api.ErrVerifierUnavailable, err)
	}
	return err
}

// verifyBatch verifies the proof of an aggregation job whose trace blob is
// the batch manifest read from r: against the children's statements and
// the batch's own (manifest hash, job, submitting prover), so an aggregate
// proof taken from another job or prover is worthless.
func (v BackendVerifier) verifyBatch(ctx context.Context, b backends.Backend, job pouw.ProofJob, proverID string, r io.Reader, proof []byte) error {
	agg, ok := b.(backends.Aggregator)
	if !ok {
		return fmt.Errorf("the job is a batch but backend %q does not aggregate proofs, so it cannot verify one", job.Backend)
	}
	m, err := pouw.DecodeManifest(r)
	if err != nil {
		if errors.Is(err, pouw.ErrInvalid) {
			return fmt.Errorf("the job's batch manifest %s is invalid, so no proof can verify: %v", job.TraceHash, err)
		}
		return fmt.Errorf("%w: reading the batch manifest %s: %v", api.ErrVerifierUnavailable, job.TraceHash, err)
	}
	switch {
	case job.Tier != pouw.TierFull:
		return fmt.Errorf("the job's trace is a batch manifest but the job is of tier %s, not full", job.Tier)
	case m.Backend != job.Backend:
		return fmt.Errorf("the batch manifest names backend %q, the job %q", m.Backend, job.Backend)
	case m.IntentID() != job.IntentID:
		return fmt.Errorf("the batch manifest's intents hash to %s, the job's intent is %s", m.IntentID(), job.IntentID)
	case !slices.Equal(m.ChildIDs(), job.DependsOn):
		return fmt.Errorf("the batch manifest's children %v are not the job's depends_on %v", m.ChildIDs(), job.DependsOn)
	case v.Jobs == nil:
		return errors.New("this coordinator's verifier cannot read jobs, so it cannot verify a batch")
	}
	sts := make([]backends.Statement, len(m.Children))
	for i, c := range m.Children {
		st, err := v.childStatement(ctx, job, c)
		if err != nil {
			return fmt.Errorf("child %d (job %s): %w", i, c.JobID, err)
		}
		sts[i] = st
	}
	batch := backends.Statement{TraceHash: job.TraceHash, JobID: job.JobID, ProverID: proverID}
	return unavailableIfCut(agg.VerifyAggregate(ctx, batch, sts, proof))
}

// childStatement is the statement a completed child proved: its trace's
// header, its trace hash, its job id and the prover that completed it.
func (v BackendVerifier) childStatement(ctx context.Context, job pouw.ProofJob, c pouw.BatchChild) (backends.Statement, error) {
	child, err := v.Jobs.Job(ctx, c.JobID)
	if errors.Is(err, store.ErrNotFound) {
		return backends.Statement{}, errors.New("the job is gone (expired by retention?), so the batch cannot verify")
	}
	if err != nil {
		return backends.Statement{}, fmt.Errorf("%w: reading the job: %v", api.ErrVerifierUnavailable, err)
	}
	switch {
	case child.State != pouw.StateCompleted || child.ProverID == "":
		return backends.Statement{}, fmt.Errorf("the job is %s, not completed", child.State)
	case child.Tier != pouw.TierMacro:
		return backends.Statement{}, fmt.Errorf("the job is of tier %s, not macro", child.Tier)
	case child.Backend != job.Backend:
		return backends.Statement{}, fmt.Errorf("the job was proved by backend %q, the batch by %q", child.Backend, job.Backend)
	case child.IntentID != c.IntentID || child.TraceHash != c.TraceHash:
		return backends.Statement{}, fmt.Errorf("the job (intent %s, trace %s) is not the manifest's (intent %s, trace %s)",
			child.IntentID, child.TraceHash, c.IntentID, c.TraceHash)
	}
	rd, _, err := v.Blobs.Open(ctx, c.TraceHash)
	if err != nil {
		return backends.Statement{}, fmt.Errorf("%w: reading trace %s: %v", api.ErrVerifierUnavailable, c.TraceHash, err)
	}
	defer rd.Close()
	h, err := decodeHeader(rd, c.TraceHash)
	if err != nil {
		return backends.Statement{}, err
	}
	if h.Tier != pouw.TierMacro || h.IntentID != c.IntentID {
		return backends.Statement{}, fmt.Errorf("the trace header (tier %s, intent %s) is not a macro trace of intent %s",
			h.Tier, h.IntentID, c.IntentID)
	}
	return backends.Statement{Header: h, TraceHash: c.TraceHash, JobID: child.JobID, ProverID: child.ProverID}, nil
}
