// Package backends is the seam between the farm and the proof systems: the
// Backend interface every proof system implements, the Statement a proof is
// bound to, the Resources a job needs (for the scheduler), a Registry of
// backends by name, and the tier → backend Table that the coordinator and
// the farms read from their configuration.
//
// It imports pouw and trace only; proof systems live in subpackages
// (backends/stark, ...) and never import coordinator or scheduler. There is
// no global registry: callers construct one with NewRegistry.
package backends

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/trace"
)

// Errors callers branch on.
var (
	// ErrUnknownBackend: no backend of that name is registered.
	ErrUnknownBackend = errors.New("unknown backend")
	// ErrUnsupportedTier: the backend does not prove jobs of that tier.
	ErrUnsupportedTier = errors.New("backend does not serve this tier")
	// ErrInvalidProof: the proof bytes are not a well-formed proof of this
	// backend (truncated, oversized, bad encoding). The coordinator answers
	// 422 as for a rejected proof.
	ErrInvalidProof = errors.New("invalid proof encoding")
	// ErrProofRejected: a well-formed proof that does not verify for the
	// statement (wrong trace, job, prover, outputs, or too little security).
	// Backends wrap it with the reason.
	ErrProofRejected = errors.New("proof rejected")
	// ErrInvalidTrace: the trace is not a valid execution (trace.Check
	// fails), so there is nothing true to prove.
	ErrInvalidTrace = errors.New("trace is not a valid execution")
	// ErrInvalidTable: a tier → backend table that does not parse or names
	// a backend that cannot serve the tier.
	ErrInvalidTable = errors.New("invalid tier-to-backend table")
)

// Statement is what a proof proves and is bound to. It is derived from the
// trace header alone plus the job it answers: a verifier never needs the
// rows. JobID and ProverID are empty for offline proofs (pouw prove).
type Statement struct {
	Header    *trace.Header
	TraceHash pouw.Hash
	JobID     string
	ProverID  string
}

// StatementOf derives the statement of a whole trace: its header and its
// BLAKE3 trace_hash, bound to jobID and proverID (empty offline).
func StatementOf(t *trace.Trace, jobID, proverID string) (Statement, error) {
	h, err := trace.Hash(t)
	if err != nil {
		return Statement{}, err
	}
	return Statement{Header: &t.Header, TraceHash: h, JobID: jobID, ProverID: proverID}, nil
}

// Resources is what proving one trace needs, for the scheduler's
// feasibility checks and its estimate of when a job finishes.
type Resources struct {
	Cores          int           // CPU cores the prover uses to good effect
	MemoryBytes    int64         // peak host memory
	GPUMemoryBytes int64         // peak GPU memory (0 for CPU-only backends)
	Duration       time.Duration // expected wall time on Cores cores
}

// Backend is a proof system.
type Backend interface {
	// Name is the backend's name in tables, jobs and claims ("stark").
	Name() string
	// Tiers lists the tiers the backend proves.
	Tiers() []pouw.JobTier
	// Prove proves that t is a valid execution with statement st. It
	// honours ctx: a cancelled context stops the work within a second and
	// returns ctx.Err().
	Prove(ctx context.Context, t *trace.Trace, st Statement) ([]byte, error)
	// Verify checks proof against st. It returns nil only for a valid proof;
	// otherwise an error wrapping ErrInvalidProof or ErrProofRejected.
	Verify(ctx context.Context, st Statement, proof []byte) error
	// Estimate says what proving a trace with header h needs.
	Estimate(h *trace.Header) Resources
}

// SecurityReporter is implemented by backends whose proofs carry a
// computable security level (the STARK's conjectured security).
type SecurityReporter interface {
	// SecurityBits decodes proof and returns the security level in bits its
	// options give for the statement. It is a report, not a verification:
	// callers decide validity with Verify and ask SecurityBits only about a
	// proof Verify accepted.
	SecurityBits(st Statement, proof []byte) (int, error)
}

// Aggregator is implemented by backends that prove a batch (an aggregation
// job of the batch DAG): one proof over the proofs of k completed child jobs,
// verified against the children's statements in batch order. A child's
// statement is bound to the prover that completed it. The batch statement
// binds the aggregate proof itself, as every proof is bound to its job: its
// TraceHash is the batch manifest's hash, JobID the aggregation job and
// ProverID the prover that aggregates; it has no Header.
type Aggregator interface {
	Backend
	// Aggregate verifies every child proof against its statement and proves
	// one aggregate proof over them, in order, bound to batch. An invalid
	// child proof is an error wrapping ErrProofRejected.
	Aggregate(ctx context.Context, batch Statement, children []Statement, proofs [][]byte) ([]byte, error)
	// VerifyAggregate checks an aggregate proof against batch and the
	// children's statements in order: nil only for a valid proof, else an
	// error wrapping ErrInvalidProof or ErrProofRejected.
	VerifyAggregate(ctx context.Context, batch Statement, children []Statement, proof []byte) error
}

// BatchChecker is implemented by aggregators that can tell, from the
// children's trace headers alone, whether they can prove a batch (a key set
// for its size class and k), so a batch they cannot prove is refused at
// ingest instead of dying at every farm that claims it.
type BatchChecker interface {
	CheckBatch(children []*trace.Header) error
}

// Serves reports whether b proves jobs of tier t.
func Serves(b Backend, t pouw.JobTier) bool { return slices.Contains(b.Tiers(), t) }

// Registry maps backend names to backends. It is immutable once built.
type Registry struct {
	byName map[string]Backend
	names  []string
}

// NewRegistry builds a registry; names must be unique and non-empty.
func NewRegistry(bs ...Backend) (*Registry, error) {
	r := &Registry{byName: make(map[string]Backend, len(bs))}
	for _, b := range bs {
		n := b.Name()
		if n == "" || strings.ContainsAny(n, "=, ") {
			return nil, fmt.Errorf("backends: invalid backend name %q", n)
		}
		if _, dup := r.byName[n]; dup {
			return nil, fmt.Errorf("backends: backend %q registered twice", n)
		}
		r.byName[n] = b
		r.names = append(r.names, n)
	}
	slices.Sort(r.names)
	return r, nil
}

// Get returns the backend called name.
func (r *Registry) Get(name string) (Backend, error) {
	if b, ok := r.byName[name]; ok {
		return b, nil
	}
	return nil, fmt.Errorf("%w: %q (have %s)", ErrUnknownBackend, name, strings.Join(r.names, ", "))
}

// Names lists the registered backends, sorted.
func (r *Registry) Names() []string { return slices.Clone(r.names) }

// Table maps each tier to the name of the backend that proves it, indexed
// by the tier's byte value.
type Table [len(pouw.Tiers)]string

// DefaultTable is ARCHITECTURE.md's default: the Halo2-style plonkish
// backend for Micro windows, the STARK for Macro and Full. aggregate is
// opt-in because it needs keys.
func DefaultTable() Table { return Table{"plonkish", "stark", "stark"} }

// ParseTable parses "micro=stark,macro=stark,full=stark". Every tier must
// be named exactly once.
func ParseTable(s string) (Table, error) {
	var t Table
	var seen [len(pouw.Tiers)]bool
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || v == "" {
			return Table{}, fmt.Errorf("%w: %q is not tier=backend", ErrInvalidTable, part)
		}
		tier, err := pouw.ParseTier(strings.TrimSpace(k))
		if err != nil {
			return Table{}, fmt.Errorf("%w: %w", ErrInvalidTable, err)
		}
		if seen[tier] {
			return Table{}, fmt.Errorf("%w: tier %s named twice", ErrInvalidTable, tier)
		}
		seen[tier] = true
		t[tier] = strings.TrimSpace(v)
	}
	for _, tier := range pouw.Tiers {
		if !seen[tier] {
			return Table{}, fmt.Errorf("%w: no backend for tier %s", ErrInvalidTable, tier)
		}
	}
	return t, nil
}

// String formats the table as ParseTable reads it.
func (t Table) String() string {
	parts := make([]string, len(pouw.Tiers))
	for i, tier := range pouw.Tiers {
		parts[i] = tier.String() + "=" + t[tier]
	}
	return strings.Join(parts, ",")
}

// Backend returns the name of the backend for tier.
func (t Table) Backend(tier pouw.JobTier) string {
	if !tier.Valid() {
		return ""
	}
	return t[tier]
}

// Resolve returns the backend that proves tier, checking it is registered
// and serves that tier.
func (t Table) Resolve(r *Registry, tier pouw.JobTier) (Backend, error) {
	if !tier.Valid() {
		return nil, fmt.Errorf("%w: tier %d", pouw.ErrInvalid, uint8(tier))
	}
	b, err := r.Get(t[tier])
	if err != nil {
		return nil, err
	}
	if !Serves(b, tier) {
		return nil, fmt.Errorf("%w: %s does not prove %s jobs", ErrUnsupportedTier, b.Name(), tier)
	}
	return b, nil
}

// Validate checks every tier resolves in r.
func (t Table) Validate(r *Registry) error {
	for _, tier := range pouw.Tiers {
		if _, err := t.Resolve(r, tier); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidTable, err)
		}
	}
	return nil
}
