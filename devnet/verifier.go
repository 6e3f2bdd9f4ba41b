package devnet

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

// Verifier is the coordinator's api.Verifier over a backends.Registry: it
// reads the trace header from the blob store (the rows are never needed),
// derives the statement bound to the job and the prover, and asks the job's
// backend.
type Verifier struct {
	Blobs    blob.Store
	Backends *backends.Registry
	// MaxHeaderBytes bounds how much of the trace blob the header may take
	// (default 16 MiB).
	MaxHeaderBytes int64
}

// Verify implements api.Verifier.
func (v Verifier) Verify(ctx context.Context, job pouw.ProofJob, proverID string, proof []byte) error {
	b, err := v.Backends.Get(job.Backend)
	if err != nil {
		return fmt.Errorf("this coordinator cannot verify: %w", err)
	}
	r, _, err := v.Blobs.Open(ctx, job.TraceHash)
	if err != nil {
		return fmt.Errorf("%w: reading the trace of %s: %v", api.ErrVerifierUnavailable, job.JobID, err)
	}
	defer r.Close()
	limit := v.MaxHeaderBytes
	if limit <= 0 {
		limit = 16 << 20
	}
	h, _, err := trace.DecodeHeader(r, limit)
	if err != nil {
		return fmt.Errorf("the job's trace header does not decode: %w", err)
	}
	st := backends.Statement{Header: h, TraceHash: job.TraceHash, JobID: job.JobID, ProverID: proverID}
	if err := b.Verify(ctx, st, proof); err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return fmt.Errorf("%w: %v", api.ErrVerifierUnavailable, err)
		}
		return err
	}
	return nil
}

var _ api.Verifier = Verifier{}
