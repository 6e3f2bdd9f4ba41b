package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/zeebo/blake3"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/coordinator/client"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/scheduler"
	"github.com/pouwfarm/pouwfarm/trace"
)

// Aggregation jobs (the batch DAG of issue 9). A Full job whose blob is a
// batch manifest (pouw.IsManifest) is proved over its children's accepted
// proofs: for child i, the statement is the header of the child's trace,
// its trace_hash, its job id and the prover that completed it, and the proof
// is the blob named by its proof_ref. The agent reads each child's detail
// from the coordinator, downloads the child's trace (hash-checked; only its
// header is kept) and its proof (hash-checked against proof_ref), and hands
// them to the backend's Aggregate, in a worker process when the backend is
// isolated.
//
// What goes wrong is sorted in two: what the coordinator says or serves
// that cannot be proved (a child that is not completed, a manifest that
// disagrees with the job, a blob that does not hash to its name) fails the
// job, as a bad trace does, so a broken batch reaches the dead-letter queue
// after max_retries; a coordinator that cannot answer now (network, 5xx,
// rate limit, a token refused meanwhile) releases the job without counting
// an attempt, and the slot rests as after a failure before claiming again.

// MaxChildHeaderBytes bounds the part of a child's trace an aggregation job
// keeps: the header. The rest of the trace is hashed as it streams past and
// dropped. A header of one program of trace.MaxProgramLen instructions and
// its multiplicities fits.
const MaxChildHeaderBytes = 4 << 20

// errRetryLater marks a child fetch that failed for a reason that may pass
// (the coordinator unreachable or overloaded).
var errRetryLater = errors.New("coordinator could not serve the batch's children now")

// proveBatch proves an aggregation job whose blob (hash-checked) is a
// manifest. It returns the proof, or an outcome and its reason; when jobCtx
// ends first the caller ignores both.
func (a *Agent) proveBatch(jobCtx context.Context, j pouw.ProofJob, b backends.Backend, blob []byte, pl scheduler.Placement) (proof []byte, proving time.Duration, outcome, reason string) {
	agg, ok := b.(backends.Aggregator)
	if !ok {
		return nil, 0, OutcomeFailed, fmt.Sprintf("job's blob is a batch manifest, but backend %q does not aggregate proofs", j.Backend)
	}
	m, err := pouw.DecodeManifest(bytes.NewReader(blob))
	if err != nil {
		return nil, 0, OutcomeFailed, "batch manifest: " + err.Error()
	}
	if err := checkManifest(j, m); err != nil {
		return nil, 0, OutcomeFailed, err.Error()
	}
	gStart := time.Now()
	sts, proofs, err := a.gatherChildren(jobCtx, m)
	a.m.stageSeconds.WithLabelValues("children").Observe(time.Since(gStart).Seconds())
	switch {
	case jobCtx.Err() != nil:
		return nil, 0, "", ""
	case errors.Is(err, errRetryLater):
		return nil, 0, outcomeRetryLater, err.Error()
	case errors.Is(err, errHashMismatch):
		return nil, 0, OutcomeHashMismatch, err.Error()
	case err != nil:
		return nil, 0, OutcomeFailed, err.Error()
	}
	// The aggregate proof is bound to this job and the prover the
	// coordinator verifies for, as every proof is.
	batch := backends.Statement{TraceHash: j.TraceHash, JobID: j.JobID, ProverID: a.proverID(j)}
	start := time.Now()
	if a.isolated(j.Backend) {
		proof, err = a.o.Workers.Aggregate(jobCtx, a.slots[pl.Slot], j.Backend, batch, sts, proofs)
	} else {
		proof, err = agg.Aggregate(jobCtx, batch, sts, proofs)
	}
	proving = time.Since(start)
	if err != nil {
		return nil, proving, OutcomeFailed, "aggregate: " + err.Error()
	}
	return proof, proving, "", ""
}

// checkManifest checks what the manifest says against the job it is the
// blob of.
func checkManifest(j pouw.ProofJob, m *pouw.BatchManifest) error {
	if j.Tier != pouw.TierFull {
		return fmt.Errorf("batch manifest on a %s job; aggregation jobs are %s", j.Tier, pouw.TierFull)
	}
	if m.Backend != j.Backend {
		return fmt.Errorf("batch manifest names backend %q, job is %q", m.Backend, j.Backend)
	}
	if ids := m.ChildIDs(); !slices.Equal(ids, j.DependsOn) {
		return fmt.Errorf("batch manifest children [%s] differ from the job's depends_on [%s]", strings.Join(ids, " "), strings.Join(j.DependsOn, " "))
	}
	if id := m.IntentID(); id != j.IntentID {
		return fmt.Errorf("batch manifest's intent id is %s, job's %s", id, j.IntentID)
	}
	return nil
}

// gatherChildren reads every child of m from the coordinator, in order: its
// statement (bound to the prover that completed it) and its accepted proof.
// Errors wrap errRetryLater when the coordinator could not answer,
// errHashMismatch when a blob does not hash to its name.
func (a *Agent) gatherChildren(ctx context.Context, m *pouw.BatchManifest) ([]backends.Statement, [][]byte, error) {
	sts := make([]backends.Statement, len(m.Children))
	proofs := make([][]byte, len(m.Children))
	for i, c := range m.Children {
		st, proof, err := a.child(ctx, m, c)
		if err != nil {
			return nil, nil, fmt.Errorf("child %d (%s): %w", i, c.JobID, err)
		}
		sts[i], proofs[i] = st, proof
	}
	return sts, proofs, nil
}

func (a *Agent) child(ctx context.Context, m *pouw.BatchManifest, c pouw.BatchChild) (backends.Statement, []byte, error) {
	cj, err := a.o.Coordinator.Job(ctx, c.JobID)
	if err != nil {
		return backends.Statement{}, nil, fetchError("reading the job", err)
	}
	switch {
	case cj.JobID != c.JobID:
		return backends.Statement{}, nil, fmt.Errorf("the coordinator answered with job %q", cj.JobID)
	case cj.State != pouw.StateCompleted:
		return backends.Statement{}, nil, fmt.Errorf("child is %s, not completed", cj.State)
	case cj.ProverID == "" || cj.ProofRef == "":
		return backends.Statement{}, nil, errors.New("completed child names no prover_id or proof_ref (its detail may have expired)")
	case cj.TraceHash != c.TraceHash:
		return backends.Statement{}, nil, fmt.Errorf("child's trace_hash is %s, manifest says %s", cj.TraceHash, c.TraceHash)
	case cj.IntentID != c.IntentID:
		return backends.Statement{}, nil, fmt.Errorf("child's intent_id is %s, manifest says %s", cj.IntentID, c.IntentID)
	case cj.Backend != m.Backend:
		return backends.Statement{}, nil, fmt.Errorf("child was proved with backend %q, the batch aggregates %q proofs", cj.Backend, m.Backend)
	}
	h, err := a.childHeader(ctx, cj)
	if err != nil {
		return backends.Statement{}, nil, err
	}
	proof, err := a.childProof(ctx, cj)
	if err != nil {
		return backends.Statement{}, nil, err
	}
	return backends.Statement{Header: h, TraceHash: cj.TraceHash, JobID: cj.JobID, ProverID: cj.ProverID}, proof, nil
}

// childHeader downloads a child's trace, checks it hashes to trace_hash and
// decodes its header. Only the first MaxChildHeaderBytes are kept; the
// whole trace is bounded as the agent's own downloads are.
func (a *Agent) childHeader(ctx context.Context, cj pouw.ProofJob) (*trace.Header, error) {
	key, err := traceKey(cj)
	if err != nil {
		return nil, err
	}
	limit := a.o.MaxTraceBytes
	if cj.TraceBytes > 0 && cj.TraceBytes < limit {
		limit = cj.TraceBytes
	}
	w := &prefixHasher{h: blake3.New(), keep: MaxChildHeaderBytes, limit: limit}
	if _, err := a.o.Coordinator.DownloadBlob(ctx, key, w); err != nil {
		return nil, fetchError("downloading the trace", err)
	}
	if got := pouw.Hash(w.h.Sum(nil)); got != cj.TraceHash {
		return nil, fmt.Errorf("%w: child trace hashes to %s, its job says %s", errHashMismatch, got, cj.TraceHash)
	}
	h, _, err := trace.DecodeHeader(bytes.NewReader(w.prefix), w.n)
	if err != nil {
		return nil, fmt.Errorf("child trace header does not decode: %w", err)
	}
	return h, nil
}

// childProof downloads a child's accepted proof, which the coordinator
// stores content-addressed under proof_ref, and checks its BLAKE3.
func (a *Agent) childProof(ctx context.Context, cj pouw.ProofJob) ([]byte, error) {
	ref, err := pouw.ParseHash(strings.TrimPrefix(cj.ProofRef, "blake3:"))
	if err != nil {
		return nil, fmt.Errorf("proof_ref %q is not a blob hash: %w", cj.ProofRef, err)
	}
	w := &limitedBuffer{limit: MaxProofBytes}
	if _, err := a.o.Coordinator.DownloadBlob(ctx, ref, w); err != nil {
		return nil, fetchError("downloading the proof", err)
	}
	if got := pouw.Hash(blake3.Sum256(w.buf.Bytes())); got != ref {
		return nil, fmt.Errorf("%w: child proof hashes to %s, proof_ref is %s", errHashMismatch, got, ref)
	}
	return w.buf.Bytes(), nil
}

// fetchError sorts an error of the coordinator client: a blob that does not
// hash to its key, an unknown job or blob, or an oversized blob is the
// batch's fault and will not change by asking again (the job fails);
// anything else — unreachable, 5xx, rate limited, a token refused or
// suspended meanwhile — is not the job's fault (errRetryLater: the job is
// released, and a refused token stops the farm at its next claim).
func fetchError(what string, err error) error {
	switch {
	case errors.Is(err, client.ErrHashMismatch):
		return fmt.Errorf("%w: %s: %v", errHashMismatch, what, err)
	case errors.Is(err, errTooLarge), errors.Is(err, client.ErrNotFound), errors.Is(err, client.ErrTooLarge):
		return fmt.Errorf("%s: %w", what, err)
	default:
		return fmt.Errorf("%w: %s: %w", errRetryLater, what, err)
	}
}

// prefixHasher hashes everything written to it, keeps the first keep bytes
// and refuses to take more than limit in all.
type prefixHasher struct {
	h      *blake3.Hasher
	prefix []byte
	keep   int
	n      int64
	limit  int64
}

func (p *prefixHasher) Write(b []byte) (int, error) {
	if p.n+int64(len(b)) > p.limit {
		return 0, fmt.Errorf("%w: larger than %d bytes", errTooLarge, p.limit)
	}
	if room := p.keep - len(p.prefix); room > 0 {
		p.prefix = append(p.prefix, b[:min(room, len(b))]...)
	}
	_, _ = p.h.Write(b)
	p.n += int64(len(b))
	return len(b), nil
}
