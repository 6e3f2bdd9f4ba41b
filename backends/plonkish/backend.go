package plonkish

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/backends/plonkish/circuit"
	"github.com/pouwfarm/pouwfarm/backends/plonkish/ipa"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/trace"
)

// Name is the backend's name in tier tables, jobs and claims.
const Name = "plonkish"

// DefaultMaxK bounds the circuit size (2^16 rows, about 1.5 GiB of prover
// memory); bigger statements are refused rather than swapping.
const DefaultMaxK = 16

// ErrTooLarge: the statement needs a circuit larger than MaxK.
var ErrTooLarge = errors.New("plonkish: statement exceeds the maximum circuit size")

// Options configure a Backend.
type Options struct {
	MaxK int // 0: DefaultMaxK
}

// Backend proves traces with the VM circuit. Keys depend on the circuit
// size only and are cached per k (as are the IPA generators), so the
// first proof or verification at a size pays for keygen.
type Backend struct {
	maxK int
	gens ipa.Generators
	mu   sync.Mutex
	keys map[int]*keyEntry
}

type keyEntry struct {
	once sync.Once
	pk   *circuit.ProvingKey
	err  error
}

// New returns a Backend.
func New(opts Options) *Backend {
	if opts.MaxK == 0 {
		opts.MaxK = DefaultMaxK
	}
	return &Backend{maxK: min(opts.MaxK, ipa.MaxK), keys: map[int]*keyEntry{}}
}

var _ backends.Backend = (*Backend)(nil)

func (b *Backend) Name() string { return Name }

// Tiers: the circuit proves any segment layout; Micro is its default role.
func (b *Backend) Tiers() []pouw.JobTier {
	return []pouw.JobTier{pouw.TierMicro, pouw.TierMacro, pouw.TierFull}
}

// Keys returns the (cached) proving key for circuit size k.
func (b *Backend) Keys(k int) (*circuit.ProvingKey, error) {
	if k > b.maxK {
		return nil, fmt.Errorf("%w: k=%d > %d", ErrTooLarge, k, b.maxK)
	}
	b.mu.Lock()
	e, ok := b.keys[k]
	if !ok {
		e = &keyEntry{}
		b.keys[k] = e
	}
	b.mu.Unlock()
	e.once.Do(func() {
		params, err := b.gens.Params(k)
		if err != nil {
			e.err = err
			return
		}
		e.pk, e.err = circuit.Keygen(params, &vmCircuit{})
	})
	return e.pk, e.err
}

// WarmProver makes the keys of size k and the prover's Lagrange-basis
// generators now (a farm calls it at start for the sizes it expects, so
// the first job does not pay ~0.3 ms of CPU per row for them).
func (b *Backend) WarmProver(k int) error {
	pk, err := b.Keys(k)
	if err != nil {
		return err
	}
	pk.WarmProver()
	return nil
}

// transcript seeds Fiat–Shamir with the whole statement (ARCHITECTURE.md,
// Proof statement): trace_hash, job_id, prover_id, the header's statement
// digest (programs, segments, public values) and the circuit size.
func transcript(st backends.Statement, k int) *ipa.Transcript {
	tr := ipa.NewTranscript("pouwfarm/plonkish/vm/v1")
	tr.AppendBytes("trace_hash", st.TraceHash[:])
	tr.AppendBytes("job_id", []byte(st.JobID))
	tr.AppendBytes("prover_id", []byte(st.ProverID))
	d := trace.StatementDigest(st.Header)
	tr.AppendBytes("statement", d[:])
	tr.AppendUint64("k", uint64(k))
	return tr
}

// Prove proves t. An invalid trace (trace.Check fails) is refused with
// ErrInvalidTrace; ctx is checked between the prover's rounds.
func (b *Backend) Prove(ctx context.Context, t *trace.Trace, st backends.Statement) ([]byte, error) {
	if st.Header == nil {
		st.Header = &t.Header
	}
	if trace.StatementDigest(st.Header) != trace.StatementDigest(&t.Header) {
		return nil, fmt.Errorf("plonkish: statement header is not the trace's")
	}
	if err := trace.Check(t); err != nil {
		return nil, fmt.Errorf("%w: %w", backends.ErrInvalidTrace, err)
	}
	k := circuitK(&t.Header)
	pk, err := b.Keys(k)
	if err != nil {
		return nil, err
	}
	c := &vmCircuit{t: t}
	c.Configure(&circuit.ConstraintSystem{})
	inst, err := c.instance(&t.Header, 1<<k)
	if err != nil {
		return nil, err
	}
	proof, err := circuit.Prove(ctx, pk, c, inst, transcript(st, k))
	if err != nil {
		return nil, err
	}
	return proof.Encode(k), nil
}

// Verify checks proof against the statement; it never panics on bad input.
func (b *Backend) Verify(ctx context.Context, st backends.Statement, proof []byte) error {
	if st.Header == nil {
		return fmt.Errorf("%w: statement without header", backends.ErrProofRejected)
	}
	if err := st.Header.Validate(); err != nil {
		return fmt.Errorf("%w: %w", backends.ErrProofRejected, err)
	}
	k := circuitK(st.Header)
	pk, err := b.Keys(k)
	if err != nil {
		return fmt.Errorf("%w: %w", backends.ErrProofRejected, err)
	}
	vk := pk.VK
	p, err := vk.DecodeProof(proof)
	if err != nil {
		return fmt.Errorf("%w: %w", backends.ErrInvalidProof, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	c := &vmCircuit{}
	c.Configure(&circuit.ConstraintSystem{})
	inst, err := c.instance(st.Header, 1<<k)
	if err != nil {
		return fmt.Errorf("%w: %w", backends.ErrProofRejected, err)
	}
	if err := circuit.Verify(vk, inst, p, transcript(st, k)); err != nil {
		return fmt.Errorf("%w: %w", backends.ErrProofRejected, err)
	}
	return nil
}

// Estimate models the prover from the circuit size: memory is dominated
// by ~150 columns held on H and on the 4n extended domain; CPU time is
// ~0.35 ms per circuit row (bench/plonkish.md: 0.36 cpu-s at k=10, 2.6 at
// k=13, linear in n), spread over the cores.
func (b *Backend) Estimate(h *trace.Header) backends.Resources {
	k := circuitK(h)
	n := int64(1) << k
	const columns = 150
	mem := columns*5*n*32 + 64<<20
	cores := runtime.GOMAXPROCS(0)
	cpu := time.Duration(n) * 350 * time.Microsecond
	return backends.Resources{Cores: cores, MemoryBytes: mem, Duration: cpu / time.Duration(max(cores, 1))}
}

// MockProve checks t against the circuit without cryptography and lists
// the failing gates, lookups and rows (pouw prove --check).
func MockProve(t *trace.Trace) ([]circuit.Failure, error) {
	k := circuitK(&t.Header)
	c := &vmCircuit{t: t}
	c.Configure(&circuit.ConstraintSystem{})
	inst, err := c.instance(&t.Header, 1<<k)
	if err != nil {
		return nil, err
	}
	return circuit.MockProve(k, c, inst)
}

// Stats describes the VM circuit's shape (docs/plonkish.md cites it).
type Stats struct {
	Advice, Fixed, Instance int
	GatePolys               int // polynomial identities of the custom gates, each checked on every row
	ArgumentPolys           int // identities of the lookup arguments, per row
	LookupInputs            int // looked-up tuples per row (16 limbs + the program tuple)
	HelperColumns           int // committed lookup helper columns (h_g, m, phi)
	Degree                  int
}

// CircuitStats returns the shape of the VM circuit (any k).
func CircuitStats() Stats {
	cs := &circuit.ConstraintSystem{}
	(&vmCircuit{}).Configure(cs)
	st := Stats{Advice: cs.NumAdvice, Fixed: cs.NumFixed, Instance: cs.NumInstance}
	if err := cs.Finalize(); err != nil {
		panic(err) // the circuit is static: a bad one fails every test
	}
	st.GatePolys, st.ArgumentPolys = cs.NumConstraints()
	for _, l := range cs.Lookups {
		st.LookupInputs += len(l.Inputs)
	}
	st.HelperColumns = cs.NumLookupHelpers() + 2*len(cs.Lookups)
	st.Degree = cs.Degree()
	return st
}

// Floor runs the MSM/FFT work of proving t without the rest of the prover
// (circuit.ProvingKey.Floor), for the prove/floor benchmark.
func (b *Backend) Floor(t *trace.Trace) error {
	k := circuitK(&t.Header)
	pk, err := b.Keys(k)
	if err != nil {
		return err
	}
	c := &vmCircuit{t: t}
	c.Configure(&circuit.ConstraintSystem{})
	inst, err := c.instance(&t.Header, 1<<k)
	if err != nil {
		return err
	}
	return pk.Floor(c, inst)
}

// SecurityBits implements backends.SecurityReporter: it verifies the proof
// against the statement (as the STARK's does; `pouw verify` relies on
// that) and returns its security level: the least of the commitment's
// binding (discrete log in BN254 G1: about 100 bits after the exTNFS
// attacks on BN curves' pairing groups, conservatively applied to G1 as
// well) and the arguments' soundness (Schwartz–Zippel over r ≈ 2^254 for
// the quotient, logUp and multiopen checks, 2k/2^128 for the IPA's 128-bit
// round challenges: above 120 bits for every k ≤ 22). No option changes it.
func (b *Backend) SecurityBits(st backends.Statement, proof []byte) (int, error) {
	if err := b.Verify(context.Background(), st, proof); err != nil {
		return 0, err
	}
	return SecurityBits, nil
}

// SecurityBits is the security level of every plonkish proof (see
// (*Backend).SecurityBits).
const SecurityBits = 100

var _ backends.SecurityReporter = (*Backend)(nil)

// CheckWitness runs the MockProver on t and returns its failures as text
// ("gate \"op_mul\" #0 fails at row 3", ...), nil when the trace satisfies
// the circuit: what `pouw prove --backend plonkish --check` prints. The
// CLI can reach it through a one-method interface without importing this
// package.
func (b *Backend) CheckWitness(t *trace.Trace) ([]string, error) {
	fails, err := MockProve(t)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, f := range fails {
		out = append(out, f.String())
	}
	return out, nil
}
