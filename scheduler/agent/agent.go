// Package agent is the prover agent of a farm: for each free slot it claims
// a job the slot can take now, downloads the trace and checks its BLAKE3
// against trace_hash, proves it on the slot (an aggregation job, whose blob
// is a batch manifest, over its children's accepted proofs: batch.go), and
// submits the proof with the lease token — renewing the lease at a third of its length, cancelling the
// proof the moment the lease is lost, backing off with jitter when nothing
// is pending or the coordinator is unreachable, and draining on shutdown.
//
// It talks to the coordinator only through the Coordinator interface, which
// coordinator/client's Client satisfies (HTTP). It must not import the
// coordinator's store, api or blob packages.
package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/zeebo/blake3"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/clock"
	"github.com/pouwfarm/pouwfarm/coordinator/client"
	"github.com/pouwfarm/pouwfarm/gpu"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/scheduler"
	"github.com/pouwfarm/pouwfarm/trace"
)

// Coordinator is the part of the PoUW API the agent uses. The sentinel
// errors it is expected to return are coordinator/client's (ErrNoJob,
// ErrLeaseLost, ErrNotLeaseHolder, ErrHashMismatch, ErrProofRejected).
type Coordinator interface {
	Claim(ctx context.Context, req pouw.ClaimRequest) (pouw.ClaimResponse, error)
	Renew(ctx context.Context, id, leaseToken string) (pouw.ProofJob, error)
	Submit(ctx context.Context, id, leaseToken string, proof []byte) (pouw.ProofJob, error)
	Fail(ctx context.Context, id, leaseToken, reason string) (pouw.ProofJob, error)
	Release(ctx context.Context, id, leaseToken, reason string) (pouw.ProofJob, error)
	DownloadBlob(ctx context.Context, h pouw.Hash, w io.Writer) (int64, error)
	// Job reads a job's detail: an aggregation job reads its children's
	// (state, prover_id, proof_ref).
	Job(ctx context.Context, id string) (pouw.ProofJob, error)
}

// Outcome of one job on this farm, the `outcome` label of the job counter.
const (
	OutcomeCompleted    = "completed"     // proof accepted
	OutcomeRejected     = "rejected"      // proof refused by the coordinator
	OutcomeFailed       = "failed"        // reported with fail: bad trace, backend error
	OutcomeHashMismatch = "hash_mismatch" // trace did not hash to trace_hash; reported with fail
	OutcomeLeaseLost    = "lease_lost"    // the lease went away; the proof was cancelled
	OutcomeReleased     = "released"      // given back (drain, or unplaceable)
	OutcomeError        = "error"         // the coordinator could not be told

	// outcomeRetryLater is internal: the job is released (no attempt
	// counted) because the coordinator could not serve what it needs now
	// (an aggregation job's children), and the slot rests as after a
	// failure. It is counted and reported as OutcomeReleased.
	outcomeRetryLater = "retry_later"
)

// Options configure an Agent. Coordinator, Pool and Backends are required.
type Options struct {
	Coordinator Coordinator
	// ProverID is the prover the token is expected to belong to. Proofs
	// are bound to the prover the coordinator names in each claim (the one
	// it verifies for); when ProverID is set and the coordinator names
	// another, the lease is released and Run stops with ErrProverMismatch.
	// Empty: take the id from the claims.
	ProverID string
	Pool     *scheduler.Pool
	Backends *backends.Registry
	// GPUs, when set, is read before each claim so an unhealthy GPU stops
	// taking jobs.
	GPUs   gpu.Source
	Logger *slog.Logger
	// Registerer receives the farm metrics (nil: not exported).
	Registerer prometheus.Registerer
	Clock      clock.Clock
	// MaxTraceBytes bounds a download whatever the claim said (default 1 GiB).
	MaxTraceBytes int64
	// MinReward is this farm's bid on every claim.
	MinReward uint64
	// IdleMin and IdleMax bound the backoff when nothing is pending or the
	// coordinator is unreachable (defaults 100 ms and 5 s; full jitter).
	IdleMin, IdleMax time.Duration
	// DrainGrace is how long running proofs may finish after shutdown
	// begins before their leases are released (default 30 s).
	DrainGrace time.Duration
	// MinRenew bounds how often a lease is renewed (default 1 s).
	MinRenew time.Duration
	// FailBackoffMin and FailBackoffMax bound how long a slot rests after
	// a job on it failed or was rejected (defaults 1 s and 30 s): the n-th
	// failure in a row waits between FailBackoffMin·2^(n-1) and twice that,
	// capped at FailBackoffMax; a completed job resets it. Without it a
	// transient fault would re-claim the same job and spend every attempt
	// in milliseconds.
	FailBackoffMin, FailBackoffMax time.Duration
	// Workers, when set, proves in per-slot worker processes the backends
	// named in Isolate (every backend when Isolate is empty).
	Workers *WorkerPool
	Isolate []string
	// OnDone, when set, is told of every job the agent finishes (from the
	// job's goroutine; keep it quick).
	OnDone func(JobResult)
}

// JobResult is one finished job as the agent saw it.
type JobResult struct {
	JobID   string
	Tier    pouw.JobTier
	Backend string
	Slot    string
	Outcome string
	Reason  string
	// Proving is the time spent proving (0 when it never got that far).
	Proving time.Duration
}

// Agent runs the claim → download → prove → submit loop over a Pool.
type Agent struct {
	o   Options
	log *slog.Logger
	m   *metrics

	freed chan struct{} // a slot was released
	wg    sync.WaitGroup
	slots map[string]scheduler.Slot
	// answered is set by the first claim the coordinator answers (a job or
	// none): the farm's readiness.
	answered atomic.Bool

	mu sync.Mutex
	// failStreak counts the failed jobs in a row of each slot.
	failStreak map[string]int
}

// ErrProverMismatch is returned by Run when the coordinator leases jobs to
// another prover than Options.ProverID: the token belongs to someone else,
// and every proof bound to ProverID would be rejected.
var ErrProverMismatch = errors.New("token belongs to another prover")

// proverMismatch carries ErrProverMismatch with a message naming both ids.
type proverMismatch struct{ token, configured string }

func (e proverMismatch) Error() string {
	return fmt.Sprintf("token belongs to prover %q, not --prover-id %q", e.token, e.configured)
}
func (e proverMismatch) Unwrap() error { return ErrProverMismatch }

// Ready reports whether the agent has slots to prove on and the
// coordinator has answered at least one claim (a job or "nothing
// pending"); a farm's /readyz serves it. It stays true once set: a
// coordinator that goes away later is the backoff's business, not a reason
// to restart the farm.
func (a *Agent) Ready() bool {
	return len(a.slots) > 0 && a.answered.Load()
}

// New checks opts and registers the farm metrics.
func New(opts Options) (*Agent, error) {
	if opts.Coordinator == nil || opts.Pool == nil || opts.Backends == nil {
		return nil, errors.New("agent: Coordinator, Pool and Backends are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.MaxTraceBytes <= 0 {
		opts.MaxTraceBytes = 1 << 30
	}
	if opts.IdleMin <= 0 {
		opts.IdleMin = 100 * time.Millisecond
	}
	if opts.IdleMax < opts.IdleMin {
		opts.IdleMax = max(5*time.Second, opts.IdleMin)
	}
	if opts.DrainGrace <= 0 {
		opts.DrainGrace = 30 * time.Second
	}
	if opts.MinRenew <= 0 {
		opts.MinRenew = time.Second
	}
	if opts.FailBackoffMin <= 0 {
		opts.FailBackoffMin = time.Second
	}
	if opts.FailBackoffMax < opts.FailBackoffMin {
		opts.FailBackoffMax = max(30*time.Second, opts.FailBackoffMin)
	}
	m, err := newMetrics(opts.Registerer, opts.Pool)
	if err != nil {
		return nil, err
	}
	slots := map[string]scheduler.Slot{}
	for _, s := range opts.Pool.Snapshot().Slots() {
		slots[s.ID] = s
	}
	return &Agent{o: opts, log: opts.Logger, m: m, freed: make(chan struct{}, 1), slots: slots, failStreak: map[string]int{}}, nil
}

// Run claims and proves until ctx is cancelled, then drains: it stops
// claiming, lets running proofs finish for DrainGrace, cancels the rest and
// releases their leases (no failure counted). It returns nil after a clean
// drain, or an error wrapping client.ErrUnauthorized / ErrForbidden when the
// coordinator refuses the farm's token (after draining likewise).
func (a *Agent) Run(ctx context.Context) error {
	// Proofs run under work, not ctx, so shutdown does not kill them at once.
	work, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()

	idle := 0
	var runErr error
	for ctx.Err() == nil {
		if a.o.GPUs != nil {
			a.o.Pool.SyncGPUHealth(a.o.GPUs.Devices())
		}
		claims := a.o.Pool.Claims()
		if len(claims) == 0 {
			// Every slot is busy: wait for one to free up.
			select {
			case <-ctx.Done():
			case <-a.freed:
			}
			continue
		}
		granted, reachable, fatal := a.claimOnce(ctx, work, claims)
		if fatal != nil {
			// A token the coordinator refuses, or one of another prover,
			// will not start working by itself: stop (after draining) and
			// say why.
			a.log.Error("stopping the farm", "err", fatal)
			runErr = fatal
			break
		}
		if granted {
			idle = 0
			continue
		}
		if !reachable || idle < 30 {
			idle++
		}
		a.sleep(ctx, idle)
	}

	a.log.Info("draining: no more claims; waiting for running proofs", "grace", a.o.DrainGrace)
	done := make(chan struct{})
	go func() { a.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(a.o.DrainGrace):
		a.log.Warn("drain grace over; cancelling running proofs and releasing their leases")
		stopWork()
		<-done
	}
	a.log.Info("farm stopped")
	return runErr
}

// claimOnce tries the pool's claims in order and starts the first job
// granted. reachable is false when the coordinator could not be asked;
// fatal is set when it refuses the token.
func (a *Agent) claimOnce(ctx, work context.Context, claims []scheduler.Claim) (granted, reachable bool, fatal error) {
	for _, c := range claims {
		start := time.Now()
		resp, err := a.o.Coordinator.Claim(ctx, pouw.ClaimRequest{
			Tiers: c.Tiers, Backends: c.Backends, MaxTraceBytes: c.MaxTraceBytes, MinReward: a.o.MinReward,
		})
		switch {
		case err == nil:
			a.answered.Store(true)
			a.m.claimSeconds.WithLabelValues("granted").Observe(time.Since(start).Seconds())
		case errors.Is(err, client.ErrNoJob):
			a.answered.Store(true)
			a.m.claimSeconds.WithLabelValues("empty").Observe(time.Since(start).Seconds())
			continue
		default:
			a.m.claimSeconds.WithLabelValues("error").Observe(time.Since(start).Seconds())
			if errors.Is(err, client.ErrUnauthorized) || errors.Is(err, client.ErrForbidden) {
				return false, true, fmt.Errorf("agent: claim refused: %w", err)
			}
			if ctx.Err() == nil {
				a.log.Warn("claim failed; backing off", "err", err)
			}
			return false, false, nil
		}
		if got := resp.Job.ProverID; a.o.ProverID != "" && got != "" && got != a.o.ProverID {
			// Every proof bound to ProverID would be rejected and charged
			// to the token's prover: give the lease back untouched.
			mm := proverMismatch{token: got, configured: a.o.ProverID}
			a.endLease(resp.Job, resp.LeaseToken, OutcomeReleased, mm.Error(), "")
			return false, true, mm
		}
		if a.proverID(resp.Job) == "" {
			err := errors.New("agent: the coordinator did not name the prover of the lease; give the farm its prover id")
			a.endLease(resp.Job, resp.LeaseToken, OutcomeReleased, err.Error(), "")
			return false, true, err
		}
		a.start(ctx, work, resp)
		return true, true, nil
	}
	return false, true, nil
}

// start reserves a slot for a granted job and proves it in a goroutine. A
// job the pool cannot place (the pool changed since the claim was computed)
// is released at once, without penalty.
func (a *Agent) start(ctx, work context.Context, lease pouw.ClaimResponse) {
	j := lease.Job
	res, err := a.o.Pool.Acquire(scheduler.Job{ID: j.JobID, Tier: j.Tier, Backend: j.Backend, TraceBytes: j.TraceBytes})
	if err != nil {
		a.log.Warn("granted job cannot be placed; releasing it", "job", j.JobID, "err", err)
		a.endLease(j, lease.LeaseToken, OutcomeReleased, "farm cannot place it: "+err.Error(), "")
		return
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer func() {
			res.Release()
			select {
			case a.freed <- struct{}{}:
			default:
			}
		}()
		pl := res.Placement()
		if outcome := a.prove(work, lease, pl); outcome != "" {
			a.restAfter(ctx, pl.Slot, outcome)
		}
	}()
}

// prove runs one leased job on its reserved slot, from download to submit.
func (a *Agent) prove(work context.Context, lease pouw.ClaimResponse, pl scheduler.Placement) string {
	j := lease.Job
	log := a.log.With("job", j.JobID, "tier", j.Tier, "backend", j.Backend, "slot", pl.Slot)
	a.m.busy(pl.Slot, +1)
	defer a.m.busy(pl.Slot, -1)

	jobCtx, cancel := context.WithCancelCause(work)
	defer cancel(nil)
	renewDone := make(chan struct{})
	go func() {
		defer close(renewDone)
		a.renew(jobCtx, cancel, lease, log)
	}()
	defer func() { cancel(nil); <-renewDone }()

	outcome, reason, elapsed := a.proveAndSubmit(jobCtx, lease, pl, log)
	retryLater := outcome == outcomeRetryLater
	if retryLater {
		outcome = OutcomeReleased
	}
	if outcome == "" {
		// The job context ended: the lease was lost, or the drain grace ran out.
		if errors.Is(context.Cause(jobCtx), errLeaseLost) {
			outcome, reason = OutcomeLeaseLost, "lease lost while proving; proof cancelled"
		} else {
			outcome, reason = OutcomeReleased, "farm draining"
		}
	}
	outcome = a.finish(j, lease.LeaseToken, pl, outcome, reason, elapsed, log)
	if retryLater && outcome == OutcomeReleased {
		// Released because the coordinator could not serve what the job
		// needs: rest the slot as after a failure, so it does not claim the
		// same job straight back.
		return outcomeRetryLater
	}
	return outcome
}

// proverID is the prover a job's proof is bound to: the one the
// coordinator leased it to (and will verify for), else Options.ProverID.
func (a *Agent) proverID(j pouw.ProofJob) string {
	if j.ProverID != "" {
		return j.ProverID
	}
	return a.o.ProverID
}

// restAfter keeps a slot reserved for a jittered, growing while after a
// failed or rejected job on it, so it does not re-claim the same job at
// once; a completed job resets the streak. Shutdown (ctx) cuts the rest
// short.
func (a *Agent) restAfter(ctx context.Context, slot, outcome string) {
	a.mu.Lock()
	switch outcome {
	case OutcomeCompleted:
		delete(a.failStreak, slot)
		a.mu.Unlock()
		return
	case OutcomeFailed, OutcomeHashMismatch, OutcomeRejected, OutcomeError, outcomeRetryLater:
		a.failStreak[slot]++
	default:
		// Lease lost or released: not this slot's fault.
		a.mu.Unlock()
		return
	}
	n := a.failStreak[slot]
	a.mu.Unlock()
	d := failBackoff(a.o.FailBackoffMin, a.o.FailBackoffMax, n)
	a.log.Info("slot resting after a failed job", "slot", slot, "failures_in_a_row", n, "seconds", d.Seconds())
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// failBackoff is the rest after the n-th failure in a row (n ≥ 1):
// uniform in [lo·2^(n-1), 2·lo·2^(n-1)), capped at hi.
func failBackoff(lo, hi time.Duration, n int) time.Duration {
	base := lo << min(n-1, 20)
	if base <= 0 || base > hi {
		base = hi
	}
	return min(base+time.Duration(rand.Int64N(int64(base))), hi)
}

var errLeaseLost = errors.New("lease lost")

// isolated reports whether backend proves in a worker process.
func (a *Agent) isolated(backend string) bool {
	if a.o.Workers == nil {
		return false
	}
	return len(a.o.Isolate) == 0 || slices.Contains(a.o.Isolate, backend)
}

// proveAndSubmit returns the outcome, or "" when jobCtx ended first.
func (a *Agent) proveAndSubmit(jobCtx context.Context, lease pouw.ClaimResponse, pl scheduler.Placement, log *slog.Logger) (outcome, reason string, proving time.Duration) {
	j := lease.Job
	b, err := a.o.Backends.Get(j.Backend)
	if err != nil {
		return OutcomeFailed, "farm does not run backend: " + err.Error(), 0
	}
	dlStart := time.Now()
	blob, err := a.download(jobCtx, j)
	a.m.stageSeconds.WithLabelValues("download").Observe(time.Since(dlStart).Seconds())
	if jobCtx.Err() != nil {
		return "", "", 0
	}
	if err != nil {
		if errors.Is(err, errHashMismatch) || errors.Is(err, client.ErrHashMismatch) {
			return OutcomeHashMismatch, err.Error(), 0
		}
		return OutcomeFailed, "trace download: " + err.Error(), 0
	}
	var proof []byte
	if pouw.IsManifest(blob) {
		// An aggregation job of the batch DAG: its blob is the manifest,
		// and its proof is made over the children's accepted proofs.
		proof, proving, outcome, reason = a.proveBatch(jobCtx, j, b, blob, pl)
	} else {
		proof, proving, outcome, reason = a.proveTrace(jobCtx, j, b, blob, pl)
	}
	if jobCtx.Err() != nil {
		return "", "", proving
	}
	if outcome != "" {
		return outcome, reason, proving
	}
	a.m.proofSeconds.WithLabelValues(j.Tier.String(), j.Backend, string(pl.Kind)).Observe(proving.Seconds())
	log.Debug("proved", "seconds", proving.Seconds(), "proof_bytes", len(proof))

	// The submit must not be cut off by a drain that starts while the
	// coordinator verifies: the proof is done, deliver it.
	subCtx, cancel := context.WithTimeout(context.WithoutCancel(jobCtx), 10*time.Minute)
	defer cancel()
	subStart := time.Now()
	_, err = a.o.Coordinator.Submit(subCtx, j.JobID, lease.LeaseToken, proof)
	a.m.stageSeconds.WithLabelValues("submit").Observe(time.Since(subStart).Seconds())
	switch {
	case err == nil:
		return OutcomeCompleted, "", proving
	case errors.Is(err, client.ErrProofRejected):
		return OutcomeRejected, err.Error(), proving
	case errors.Is(err, client.ErrLeaseLost), errors.Is(err, client.ErrNotLeaseHolder):
		return OutcomeLeaseLost, "lease lost before the submit: " + err.Error(), proving
	default:
		return OutcomeError, "submit: " + err.Error(), proving
	}
}

// proveTrace proves a trace blob (already hash-checked) on the slot, in a
// worker process when the backend is isolated. It returns the proof, or an
// outcome and its reason; when jobCtx ends first the caller ignores both.
func (a *Agent) proveTrace(jobCtx context.Context, j pouw.ProofJob, b backends.Backend, blob []byte, pl scheduler.Placement) (proof []byte, proving time.Duration, outcome, reason string) {
	// start is taken once the trace is decoded, so proof_seconds times
	// the backend alone (download has its own stage).
	var (
		start time.Time
		err   error
	)
	if a.isolated(j.Backend) {
		// The worker decodes the rows; the header is enough here.
		h, _, herr := trace.DecodeHeader(bytes.NewReader(blob), int64(len(blob)))
		if herr != nil {
			return nil, 0, OutcomeFailed, "trace does not decode: " + herr.Error()
		}
		if h.Tier != j.Tier {
			return nil, 0, OutcomeFailed, fmt.Sprintf("trace is a %s trace, job is %s", h.Tier, j.Tier)
		}
		st := backends.Statement{Header: h, TraceHash: j.TraceHash, JobID: j.JobID, ProverID: a.proverID(j)}
		start = time.Now()
		proof, err = a.o.Workers.Prove(jobCtx, a.slots[pl.Slot], j.Backend, blob, st)
	} else {
		var t *trace.Trace
		t, err = trace.Decode(bytes.NewReader(blob), int64(len(blob)))
		if err != nil {
			return nil, 0, OutcomeFailed, "trace does not decode: " + err.Error()
		}
		blob = nil
		if t.Header.Tier != j.Tier {
			return nil, 0, OutcomeFailed, fmt.Sprintf("trace is a %s trace, job is %s", t.Header.Tier, j.Tier)
		}
		st := backends.Statement{Header: &t.Header, TraceHash: j.TraceHash, JobID: j.JobID, ProverID: a.proverID(j)}
		start = time.Now()
		proof, err = b.Prove(jobCtx, t, st)
	}
	proving = time.Since(start)
	if err != nil {
		return nil, proving, OutcomeFailed, "prove: " + err.Error()
	}
	return proof, proving, "", ""
}

var errHashMismatch = errors.New("trace hash mismatch")

// download fetches the trace blob named by the job and checks its BLAKE3
// against trace_hash itself, whatever the transport checked.
func (a *Agent) download(ctx context.Context, j pouw.ProofJob) ([]byte, error) {
	key, err := traceKey(j)
	if err != nil {
		return nil, err
	}
	limit := a.o.MaxTraceBytes
	if j.TraceBytes > 0 && j.TraceBytes < limit {
		limit = j.TraceBytes
	}
	w := &limitedBuffer{limit: limit}
	if _, err := a.o.Coordinator.DownloadBlob(ctx, key, w); err != nil {
		if errors.Is(err, client.ErrHashMismatch) {
			return nil, fmt.Errorf("%w: blob %s does not hash to its key: %v", errHashMismatch, key, err)
		}
		return nil, err
	}
	if got := pouw.Hash(blake3.Sum256(w.buf.Bytes())); got != j.TraceHash {
		return nil, fmt.Errorf("%w: trace hashes to %s, job says %s", errHashMismatch, got, j.TraceHash)
	}
	return w.buf.Bytes(), nil
}

// traceKey is the blob key of a job's trace: trace_ref when set (hex
// BLAKE3, optionally "blake3:"-prefixed), else trace_hash.
func traceKey(j pouw.ProofJob) (pouw.Hash, error) {
	if j.TraceRef == "" {
		return j.TraceHash, nil
	}
	k, err := pouw.ParseHash(strings.TrimPrefix(j.TraceRef, "blake3:"))
	if err != nil {
		return pouw.Hash{}, fmt.Errorf("trace_ref %q is not a blob hash: %w", j.TraceRef, err)
	}
	return k, nil
}

// errTooLarge marks a blob refused for its size while downloading.
var errTooLarge = errors.New("blob too large")

// limitedBuffer refuses to grow past limit, so a coordinator cannot make
// the farm allocate more than the job's declared trace size.
type limitedBuffer struct {
	buf   bytes.Buffer
	limit int64
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if int64(l.buf.Len()+len(p)) > l.limit {
		return 0, fmt.Errorf("%w: larger than %d bytes", errTooLarge, l.limit)
	}
	return l.buf.Write(p)
}

// renew extends the lease every third of its length until ctx ends. When the
// coordinator says the lease is gone it cancels the proof at once.
func (a *Agent) renew(ctx context.Context, cancel context.CancelCauseFunc, lease pouw.ClaimResponse, log *slog.Logger) {
	every := a.renewInterval(lease.Job)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
		job, err := a.o.Coordinator.Renew(ctx, lease.Job.JobID, lease.LeaseToken)
		switch {
		case err == nil:
			every = a.renewInterval(job)
		case ctx.Err() != nil:
			return
		case errors.Is(err, client.ErrLeaseLost), errors.Is(err, client.ErrNotLeaseHolder), errors.Is(err, client.ErrNotFound):
			log.Warn("lease lost; cancelling the proof", "err", err)
			cancel(errLeaseLost)
			return
		default:
			// Transient: try again sooner; if the lease expires meanwhile
			// the next renew says lease_lost.
			log.Warn("renew failed; retrying", "err", err)
			every = a.o.MinRenew
		}
	}
}

func (a *Agent) renewInterval(j pouw.ProofJob) time.Duration {
	left := time.Duration(j.LeaseExpiresAtMs-a.o.Clock.Now().UnixMilli()) * time.Millisecond
	return max(left/3, a.o.MinRenew)
}

// finish reports the outcome to the coordinator where it needs to know, and
// counts it.
func (a *Agent) finish(j pouw.ProofJob, token string, pl scheduler.Placement, outcome, reason string, proving time.Duration, log *slog.Logger) string {
	switch outcome {
	case OutcomeFailed, OutcomeHashMismatch:
		outcome = a.endLease(j, token, outcome, reason, pl.Kind)
	case OutcomeReleased:
		outcome = a.endLease(j, token, outcome, reason, pl.Kind)
	default:
		a.m.jobs.WithLabelValues(j.Tier.String(), j.Backend, string(pl.Kind), outcome).Inc()
	}
	if a.o.OnDone != nil {
		a.o.OnDone(JobResult{JobID: j.JobID, Tier: j.Tier, Backend: j.Backend, Slot: pl.Slot, Outcome: outcome, Reason: reason, Proving: proving})
	}
	attrs := []any{"outcome", outcome, "proving_seconds", proving.Seconds()}
	if reason != "" {
		attrs = append(attrs, "reason", reason)
	}
	if outcome == OutcomeCompleted || outcome == OutcomeReleased {
		log.Info("job done", attrs...)
	} else {
		log.Warn("job done", attrs...)
	}
	return outcome
}

// endLease tells the coordinator a job failed (fail) or is given back
// (release), counts the outcome and returns it (OutcomeError when the
// coordinator could not be told; the lease then expires on its own).
func (a *Agent) endLease(j pouw.ProofJob, token, outcome, reason string, kind scheduler.Kind) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error
	if outcome == OutcomeReleased {
		_, err = a.o.Coordinator.Release(ctx, j.JobID, token, reason)
	} else {
		_, err = a.o.Coordinator.Fail(ctx, j.JobID, token, reason)
	}
	switch {
	case err == nil:
	case errors.Is(err, client.ErrLeaseLost), errors.Is(err, client.ErrNotLeaseHolder):
		outcome = OutcomeLeaseLost
	default:
		a.log.Warn("could not end the lease; it will expire", "job", j.JobID, "err", err)
		outcome = OutcomeError
	}
	a.m.jobs.WithLabelValues(j.Tier.String(), j.Backend, string(kind), outcome).Inc()
	return outcome
}

// sleep backs off with full jitter: uniformly up to min(IdleMax, IdleMin·2^n).
func (a *Agent) sleep(ctx context.Context, n int) {
	bound := a.o.IdleMin << min(n, 20)
	if bound <= 0 || bound > a.o.IdleMax {
		bound = a.o.IdleMax
	}
	d := time.Duration(rand.Int64N(int64(bound))) + time.Millisecond
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
