package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/zeebo/blake3"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/backends/aggregate"
	"github.com/pouwfarm/pouwfarm/backends/stark"
	"github.com/pouwfarm/pouwfarm/backends/stark/air"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/trace"
)

func init() {
	commands = append(commands, newProveCmd, newVerifyCmd)
	backendFactories = append(backendFactories, newStarkBackend)
}

// backendConfig is what the prove and verify flags say about backends.
type backendConfig struct {
	stark       air.Options
	minSecurity int
	// aggregateKeys are the key sets of --aggregate-keys (loaded from
	// aggregateDirs); none: the aggregate backend is not registered.
	aggregateKeys []*aggregate.Keys
	aggregateDirs []string
	// logger, when set, is given to backends that log (aggregate).
	logger *slog.Logger
}

// backendFactories builds the backends this binary offers; each backend's
// file adds its own in an init function (as commands does), so adding a
// proof system never edits a shared list. A factory returns a nil backend
// when its backend is off (aggregate without keys).
var backendFactories []func(backendConfig) (backends.Backend, error)

func newStarkBackend(c backendConfig) (backends.Backend, error) {
	return stark.New(stark.Config{Options: c.stark, MinSecurity: c.minSecurity})
}

// newRegistry constructs the registry of every backend of this binary.
func newRegistry(c backendConfig) (*backends.Registry, error) {
	var bs []backends.Backend
	for _, f := range backendFactories {
		b, err := f(c)
		if err != nil {
			return nil, err
		}
		if b != nil {
			bs = append(bs, b)
		}
	}
	return backends.NewRegistry(bs...)
}

// statementFlags are the flags both commands share.
type statementFlags struct {
	backend, tracePath, jobID, proverID string
	limit                               int64
	cfg                                 backendConfig
	aggKeys                             aggregateKeysFlag
	asJSON                              bool
}

func (s *statementFlags) register(f *pflag.FlagSet) {
	def := air.DefaultOptions()
	f.StringVar(&s.backend, "backend", "stark", "proof system [POUW_BACKEND]")
	f.StringVar(&s.tracePath, "trace", "", "trace file (docs/trace-format.md) (required) [POUW_TRACE]")
	f.StringVar(&s.jobID, "job-id", "", "job the proof answers; empty offline [POUW_JOB_ID]")
	f.StringVar(&s.proverID, "prover-id", "", "prover that makes the proof; empty offline [POUW_PROVER_ID]")
	f.Int64Var(&s.limit, "max-trace-bytes", 8<<30, "refuse trace files larger than this [POUW_MAX_TRACE_BYTES]")
	f.IntVar(&s.cfg.stark.Blowup, "blowup", def.Blowup, "STARK: LDE blowup, 4, 8 or 16 [POUW_BLOWUP]")
	f.IntVar(&s.cfg.stark.Queries, "queries", def.Queries, "STARK: FRI queries, 1..255 [POUW_QUERIES]")
	f.IntVar(&s.cfg.stark.GrindingBits, "grinding", def.GrindingBits, "STARK: proof-of-work bits before queries, 0..32 [POUW_GRINDING]")
	f.IntVar(&s.cfg.stark.Folding, "folding", def.Folding, "STARK: FRI folding factor, 4 or 8 [POUW_FOLDING]")
	f.IntVar(&s.cfg.minSecurity, "min-security", 100, "least conjectured security in bits a proof must have [POUW_MIN_SECURITY]")
	f.BoolVar(&s.asJSON, "json", false, "print JSON")
	s.aggKeys.register(f)
	s.cfg.stark.FieldExtension, s.cfg.stark.MaxRemainder = def.FieldExtension, def.MaxRemainder
}

// checkJobID refuses a --job-id that no job can have: the proof is bound to
// the id, so a typo would yield a proof no coordinator accepts.
func (s *statementFlags) checkJobID() error {
	if s.jobID == "" {
		return nil
	}
	if err := pouw.ValidateJobID(s.jobID); err != nil {
		return fmt.Errorf("--job-id %q: %w", s.jobID, err)
	}
	return nil
}

func (s *statementFlags) backendFor(tier pouw.JobTier) (backends.Backend, error) {
	if err := s.aggKeys.load(&s.cfg); err != nil {
		return nil, err
	}
	reg, err := newRegistry(s.cfg)
	if err != nil {
		return nil, err
	}
	if err := checkAggregateRegistered(reg, "--backend", s.backend); err != nil {
		return nil, err
	}
	b, err := reg.Get(s.backend)
	if err != nil {
		return nil, err
	}
	if !backends.Serves(b, tier) {
		return nil, fmt.Errorf("%w: %s does not prove %s traces", backends.ErrUnsupportedTier, b.Name(), tier)
	}
	return b, nil
}

// readHeader decodes only a trace file's header and hashes the whole file:
// a verifier needs the statement, never the rows.
func readHeader(path string, limit int64) (*trace.Header, pouw.Hash, error) {
	var th pouw.Hash
	f, err := os.Open(path)
	if err != nil {
		return nil, th, err
	}
	defer f.Close()
	hs := blake3.New()
	r := io.TeeReader(bufio.NewReaderSize(f, 1<<20), hs)
	h, n, err := trace.DecodeHeader(r, limit)
	if err != nil {
		return nil, th, fmt.Errorf("%s: %w", path, err)
	}
	if _, err := io.Copy(io.Discard, io.LimitReader(r, limit-n)); err != nil {
		return nil, th, fmt.Errorf("%s: %w", path, err)
	}
	copy(th[:], hs.Sum(nil))
	return h, th, nil
}

func newProveCmd() *cobra.Command {
	var s statementFlags
	var out string
	var check bool
	cmd := &cobra.Command{
		Use:   "prove",
		Short: "Prove a trace offline with a backend (for profiling)",
		Long: `Prove that a trace file is a valid execution of its programs (docs/vm.md)
and write the proof. The proof is bound to the trace's BLAKE3 hash and to
--job-id and --prover-id (empty offline), so it verifies only with the same
values. Prints the proving time and the proof size.`,
		Example: `  pouw trace gen --workload fib --steps 65536 --tier macro --out f.trace
  pouw prove --backend stark --trace f.trace --out f.proof`,
		Args:    cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error { return applyEnvTwins(cmd, "POUW_") },
		RunE: func(cmd *cobra.Command, _ []string) error {
			if s.tracePath == "" || out == "" {
				return errors.New("--trace and --out are required")
			}
			if err := s.checkJobID(); err != nil {
				return err
			}
			tr, th, err := readTrace(s.tracePath, s.limit)
			if err != nil {
				return err
			}
			b, err := s.backendFor(tr.Header.Tier)
			if err != nil {
				return err
			}
			if check {
				if err := checkWitness(cmd.OutOrStdout(), b, tr); err != nil {
					return err
				}
			}
			st := backends.Statement{Header: &tr.Header, TraceHash: th, JobID: s.jobID, ProverID: s.proverID}
			start := time.Now()
			p, err := b.Prove(cmd.Context(), tr, st)
			if err != nil {
				return err
			}
			elapsed := time.Since(start)
			if err := os.WriteFile(out, p, 0o644); err != nil {
				return err
			}
			res := map[string]any{
				"backend": b.Name(), "trace_hash": th, "tier": tr.Header.Tier, "rows": tr.Header.Rows,
				"steps": tr.Header.Steps(), "prove_ms": elapsed.Milliseconds(), "proof_bytes": len(p), "out": out,
			}
			if sr, ok := b.(backends.SecurityReporter); ok {
				if sec, err := sr.SecurityBits(st, p); err == nil {
					res["security_bits"] = sec
				}
			}
			if s.asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "proved %s trace %s (%d steps, %d rows) with %s in %s\nproof: %s, %d bytes",
				tr.Header.Tier, th, tr.Header.Steps(), tr.Header.Rows, b.Name(), elapsed.Round(time.Millisecond), out, len(p))
			if sec, ok := res["security_bits"]; ok {
				fmt.Fprintf(cmd.OutOrStdout(), ", %d-bit conjectured security", sec)
			}
			fmt.Fprintln(cmd.OutOrStdout())
			return nil
		},
	}
	s.register(cmd.Flags())
	cmd.Flags().StringVar(&out, "out", "", "proof file to write (required) [POUW_OUT]")
	cmd.Flags().BoolVar(&check, "check", false, "first check the witness with the backend's MockProver (plonkish) and print every failing gate and row [POUW_CHECK]")
	return cmd
}

// checkWitness runs the backend's MockProver over the trace and prints every
// failing gate, lookup or copy constraint with its row.
func checkWitness(w io.Writer, b backends.Backend, tr *trace.Trace) error {
	c, ok := b.(interface {
		CheckWitness(*trace.Trace) ([]string, error)
	})
	if !ok {
		return fmt.Errorf("--check: backend %s has no MockProver", b.Name())
	}
	fails, err := c.CheckWitness(tr)
	if err != nil {
		return err
	}
	for _, f := range fails {
		fmt.Fprintln(w, f)
	}
	if len(fails) > 0 {
		return exitError{code: 1, msg: fmt.Sprintf("witness fails %d constraints", len(fails))}
	}
	fmt.Fprintln(w, "witness satisfies every gate, lookup and copy constraint")
	return nil
}

func newVerifyCmd() *cobra.Command {
	var s statementFlags
	var proofPath string
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Verify a proof of a trace; exit 0 only when it is valid",
		Long: `Verify a proof against the statement of a trace file: the statement comes
from the trace's header alone (programs, public inputs and outputs, step
count), its BLAKE3 hash, and --job-id/--prover-id (empty offline). The rows
are hashed but never decoded. Exits 0 only when the proof is valid and has at
least --min-security bits of conjectured security, which it prints.`,
		Example: `  pouw verify --backend stark --trace f.trace --proof f.proof`,
		Args:    cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error { return applyEnvTwins(cmd, "POUW_") },
		RunE: func(cmd *cobra.Command, _ []string) error {
			if s.tracePath == "" || proofPath == "" {
				return errors.New("--trace and --proof are required")
			}
			if err := s.checkJobID(); err != nil {
				return err
			}
			h, th, err := readHeader(s.tracePath, s.limit)
			if err != nil {
				return err
			}
			b, err := s.backendFor(h.Tier)
			if err != nil {
				return err
			}
			p, err := readLimited(proofPath, 64<<20)
			if err != nil {
				return err
			}
			st := backends.Statement{Header: h, TraceHash: th, JobID: s.jobID, ProverID: s.proverID}
			start := time.Now()
			// Verify decides; SecurityBits only reports the number for a
			// proof Verify accepted (it is not a verification).
			err = b.Verify(cmd.Context(), st, p)
			elapsed := time.Since(start)
			if err != nil {
				return exitError{code: 1, msg: "proof is NOT valid: " + err.Error()}
			}
			sec := -1
			if sr, ok := b.(backends.SecurityReporter); ok {
				if sec, err = sr.SecurityBits(st, p); err != nil {
					return exitError{code: 1, msg: "proof is NOT valid: " + err.Error()}
				}
			}
			if s.asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]any{
					"valid": true, "backend": b.Name(), "trace_hash": th, "security_bits": sec, "verify_ms": elapsed.Milliseconds(),
				})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "valid %s proof of trace %s (%d steps): %d-bit conjectured security, verified in %s\n",
				b.Name(), th, h.Steps(), sec, elapsed.Round(time.Microsecond))
			return nil
		},
	}
	s.register(cmd.Flags())
	cmd.Flags().StringVar(&proofPath, "proof", "", "proof file (required) [POUW_PROOF]")
	return cmd
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return b, nil
}
