package coordinator

import (
	"context"
	"errors"
	"fmt"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/coordinator/api"
	"github.com/pouwfarm/pouwfarm/coordinator/blob"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/trace"
)

// maxHeaderBytes bounds how much of a trace blob the verifier reads for its
// header (the rows are never needed to verify).
const maxHeaderBytes = 16 << 20

// BackendVerifier is the api.Verifier over a backends.Registry: it reads the
// trace header of the job from the blob store, derives the statement (header,
// trace hash, job id, prover id) and lets the job's backend verify the proof.
// A job whose backend is not registered, or whose trace header does not
// match the job, is rejected — never accepted unverified.
type BackendVerifier struct {
	Registry *backends.Registry
	Blobs    blob.Store
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
	h, _, err := trace.DecodeHeader(rd, maxHeaderBytes)
	if err != nil {
		if errors.Is(err, trace.ErrFormat) {
			return fmt.Errorf("the job's trace has no valid header, so no proof can verify: %v", err)
		}
		return fmt.Errorf("%w: reading the header of trace %s: %v", api.ErrVerifierUnavailable, job.TraceHash, err)
	}
	if h.Tier != job.Tier || h.IntentID != job.IntentID {
		return fmt.Errorf("the trace header (tier %s, intent %s) does not match the job (tier %s, intent %s)",
			h.Tier, h.IntentID, job.Tier, job.IntentID)
	}
	st := backends.Statement{Header: h, TraceHash: job.TraceHash, JobID: job.JobID, ProverID: proverID}
	if err := b.Verify(ctx, st, proof); err != nil {
		// A verification cut off by the request's end says nothing about
		// the proof: the prover may submit again.
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return fmt.Errorf("%w: %v", api.ErrVerifierUnavailable, err)
		}
		return err
	}
	return nil
}
