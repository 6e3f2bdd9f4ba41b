// Package stark is the Winterfell-style STARK backend: it proves that a trace
// is a valid execution of the pouw VM (docs/vm.md) over the Goldilocks field
// with a degree-2 extension for randomness, BLAKE3 Merkle commitments and
// Fiat–Shamir, DEEP composition and FRI. Its subpackages follow Winterfell's
// split: air (the AIR interface, options, security), vmair (the VM's AIR),
// prover, verifier, fri, merkle, field, transcript, proof (the byte format
// of docs/proof-formats.md).
//
// It imports backends, pouw and trace of this module, never coordinator or
// scheduler.
package stark

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/backends/stark/air"
	"github.com/pouwfarm/pouwfarm/backends/stark/proof"
	"github.com/pouwfarm/pouwfarm/backends/stark/prover"
	"github.com/pouwfarm/pouwfarm/backends/stark/verifier"
	"github.com/pouwfarm/pouwfarm/backends/stark/vmair"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/trace"
)

// Name is the backend's name in tables, jobs and claims.
const Name = "stark"

// StatementDomain separates the statement seed from every other BLAKE3 input.
const StatementDomain = "pouwfarm-stark-statement-v1"

// Config configures the backend.
type Config struct {
	// Options are the proof options of proofs this backend makes; zero
	// means air.DefaultOptions().
	Options air.Options
	// MinSecurity is the least conjectured security (bits) Verify accepts;
	// zero means verifier.DefaultMinSecurity (100).
	MinSecurity int
	// SkipCheck skips the trace.Check oracle before proving (benchmarks
	// only: a bad trace then fails verification instead of being refused).
	SkipCheck bool
}

// Backend is the STARK backend. It is safe for concurrent use.
type Backend struct {
	opts   air.Options
	minSec int
	skip   bool
}

var _ backends.Backend = (*Backend)(nil)
var _ backends.SecurityReporter = (*Backend)(nil)

// New validates cfg and returns the backend.
func New(cfg Config) (*Backend, error) {
	b := &Backend{opts: cfg.Options, minSec: cfg.MinSecurity, skip: cfg.SkipCheck}
	if b.opts == (air.Options{}) {
		b.opts = air.DefaultOptions()
	}
	if b.minSec == 0 {
		b.minSec = verifier.DefaultMinSecurity
	}
	if err := b.opts.Validate(); err != nil {
		return nil, err
	}
	if b.minSec < 0 || b.minSec > air.CollisionResistance {
		return nil, fmt.Errorf("stark: minimum security %d bits out of range", b.minSec)
	}
	return b, nil
}

// Name implements backends.Backend.
func (b *Backend) Name() string { return Name }

// Tiers implements backends.Backend: the same AIR proves micro windows,
// macro intents and full batches.
func (b *Backend) Tiers() []pouw.JobTier {
	return []pouw.JobTier{pouw.TierMicro, pouw.TierMacro, pouw.TierFull}
}

// Options returns the proof options this backend proves with.
func (b *Backend) Options() air.Options { return b.opts }

// Seed is the statement's encoding hashed first into the transcript:
//
//	"pouwfarm-stark-statement-v1" ‖ trace_hash (32) ‖ u16le(len job_id) ‖ job_id
//	‖ u16le(len prover_id) ‖ prover_id ‖ StatementDigest(header) (32)
//
// The header digest covers the programs and their hashes, multiplicities,
// every segment's public inputs, outputs and step count, tier and intent.
func Seed(st backends.Statement) ([]byte, error) {
	if st.Header == nil {
		return nil, errors.New("stark: statement has no header")
	}
	if len(st.JobID) > 1024 || len(st.ProverID) > 1024 {
		return nil, errors.New("stark: job or prover id too long")
	}
	b := []byte(StatementDomain)
	b = append(b, st.TraceHash[:]...)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(st.JobID)))
	b = append(b, st.JobID...)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(st.ProverID)))
	b = append(b, st.ProverID...)
	d := trace.StatementDigest(st.Header)
	return append(b, d[:]...), nil
}

// Prove implements backends.Backend. It refuses a trace that is not the
// statement's (hash mismatch) or not a valid execution (trace.Check).
func (b *Backend) Prove(ctx context.Context, t *trace.Trace, st backends.Statement) ([]byte, error) {
	if st.Header == nil {
		st.Header = &t.Header
	}
	if trace.StatementDigest(st.Header) != trace.StatementDigest(&t.Header) {
		return nil, fmt.Errorf("%w: statement header differs from the trace's", backends.ErrInvalidTrace)
	}
	// The hash and the oracle are single passes that do not watch ctx; they
	// run aside so a lost lease still returns at once (they finish on their
	// own within about a second per 2^20 rows).
	err := runCtx(ctx, func() error {
		h, err := trace.Hash(t)
		if err != nil {
			return fmt.Errorf("%w: %w", backends.ErrInvalidTrace, err)
		}
		if h != st.TraceHash {
			return fmt.Errorf("%w: trace hash %s is not the statement's %s", backends.ErrInvalidTrace, h, st.TraceHash)
		}
		if b.skip {
			return nil
		}
		if err := trace.Check(t); err != nil {
			return fmt.Errorf("%w: %w", backends.ErrInvalidTrace, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	a, err := vmair.New(&t.Header)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", backends.ErrInvalidTrace, err)
	}
	seed, err := Seed(st)
	if err != nil {
		return nil, err
	}
	cols, err := vmair.Columns(ctx, t)
	if err != nil {
		return nil, err
	}
	p, err := prover.Prove(ctx, a, cols, seed, b.opts)
	if err != nil {
		if errors.Is(err, prover.ErrUnsatisfied) {
			return nil, fmt.Errorf("%w: %w", backends.ErrInvalidTrace, err)
		}
		return nil, err
	}
	return p.Encode(), nil
}

// runCtx runs fn and returns its error, or ctx.Err() as soon as ctx ends.
func runCtx(ctx context.Context, fn func() error) error {
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Verify implements backends.Backend.
func (b *Backend) Verify(ctx context.Context, st backends.Statement, proofBytes []byte) error {
	_, err := b.verify(ctx, st, proofBytes)
	return err
}

// SecurityBits implements backends.SecurityReporter: it verifies the proof
// and returns its conjectured security.
func (b *Backend) SecurityBits(st backends.Statement, proofBytes []byte) (int, error) {
	return b.verify(context.Background(), st, proofBytes)
}

func (b *Backend) verify(ctx context.Context, st backends.Statement, proofBytes []byte) (int, error) {
	if st.Header == nil {
		return 0, fmt.Errorf("%w: statement has no header", backends.ErrProofRejected)
	}
	if err := st.Header.Validate(); err != nil {
		return 0, fmt.Errorf("%w: %w", backends.ErrProofRejected, err)
	}
	p, err := proof.Decode(proofBytes)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", backends.ErrInvalidProof, err)
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	a, err := vmair.New(st.Header)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", backends.ErrProofRejected, err)
	}
	seed, err := Seed(st)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", backends.ErrProofRejected, err)
	}
	sec, err := verifier.Verify(a, seed, p, b.minSec)
	if err != nil {
		return sec, fmt.Errorf("%w: %w", backends.ErrProofRejected, err)
	}
	return sec, nil
}

// nsPerRowCore is the prover's CPU time per trace row at the default
// options, measured on the benchmark machine (2-core AMD EPYC,
// bench/stark.md: 4.5 CPU-seconds for 2^16 rows, 18.5 for 2^18) and
// rounded up.
const nsPerRowCore = 75000

// Estimate implements backends.Backend: memory from the sizes of the
// buffers the prover keeps (docs/proof-formats.md, Memory), time from the
// measured per-row cost spread over the cores.
func (b *Backend) Estimate(h *trace.Header) backends.Resources {
	n := int64(h.Rows)
	cores := runtime.GOMAXPROCS(0)
	return backends.Resources{
		Cores:       cores,
		MemoryBytes: MemoryBytes(n, b.opts),
		Duration:    time.Duration(n*nsPerRowCore/int64(cores)) + 10*time.Millisecond,
	}
}

// MemoryBytes is the prover's peak memory for a trace of n rows: the trace
// (twice: row-major input and columns), column coefficients, every
// segment's LDE (59 main, 2 aux and 2k composition base columns at blowup
// b), three row Merkle trees (b·n digests each: leaf hashes are not kept),
// the DEEP evaluations and the FRI layers with their trees.
func MemoryBytes(n int64, o air.Options) int64 {
	const w = trace.Width
	bl := int64(o.Blowup)
	k := int64(3) // composition width: 2, or 3 for windows and batches
	trace := 3 * n * w * 8
	lde := bl * n * (w + 2 + 2*k) * 8
	trees := 3 * bl * n * 32
	deep := bl*n*16*2 + bl*n*16/2 + bl*n*32/2
	// Headroom for the Go heap above the live set (measured peak RSS
	// 0.52 GB at 2^16 rows; this gives 0.52 GB).
	return (trace + lde + trees + deep) * 115 / 100
}
