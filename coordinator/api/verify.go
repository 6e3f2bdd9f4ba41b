package api

import (
	"context"
	"errors"
	"fmt"

	"github.com/pouwfarm/pouwfarm/pouw"
)

// Verifier checks a submitted proof against its job before the coordinator
// completes the job. It is declared here, by its consumer; the adapter over
// the backends registry implements it (coordinator.BackendVerifier).
//
// Verify returns nil only for a valid proof. An error wrapping
// ErrVerifierUnavailable means the check could not be made (a trace blob
// unreadable, say): the API answers 503 and leaves the lease alone so the
// prover can submit again. Any other error rejects the proof: 422
// proof_rejected and a failed attempt.
type Verifier interface {
	Verify(ctx context.Context, job pouw.ProofJob, proverID string, proof []byte) error
}

var (
	// ErrProofRejected marks a proof that did not verify (422).
	ErrProofRejected = errors.New("proof rejected")
	// ErrVerifierUnavailable marks a verification that could not be made
	// (503); the prover may retry.
	ErrVerifierUnavailable = errors.New("verifier unavailable")
)

// NoBackends is the verifier with no backend registered: it rejects every
// proof, saying so, so that nothing is ever accepted unverified.
type NoBackends struct{}

// Verify implements Verifier.
func (NoBackends) Verify(_ context.Context, job pouw.ProofJob, _ string, _ []byte) error {
	return fmt.Errorf("no backend registered for backend %q (tier %s); this coordinator cannot verify the proof", job.Backend, job.Tier)
}
