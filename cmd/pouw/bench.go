package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/bits"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/backends/aggregate"
	"github.com/pouwfarm/pouwfarm/backends/plonkish"
	"github.com/pouwfarm/pouwfarm/backends/stark/air"
	"github.com/pouwfarm/pouwfarm/bench"
	"github.com/pouwfarm/pouwfarm/pouw"
)

func init() { commands = append(commands, newBenchCmd) }

// benchRegistry is this binary's registry (the factories pouw prove uses)
// plus the backends bench knows that no factory supplied: plonkish, and
// aggregate over the key set c needs.
func benchRegistry(cmd *cobra.Command, c bench.Case, cfg backendConfig, keys bench.BackendConfig) (*backends.Registry, error) {
	var bs []backends.Backend
	have := map[string]bool{}
	for _, f := range backendFactories {
		b, err := f(cfg)
		if err != nil {
			return nil, err
		}
		if b == nil {
			continue // off in this configuration (aggregate without keys)
		}
		bs = append(bs, b)
		have[b.Name()] = true
	}
	if !have[plonkish.Name] {
		bs = append(bs, plonkish.New(plonkish.Options{}))
	}
	if c.Backend == aggregate.Name && !have[aggregate.Name] {
		p := bench.AggregateParams(c)
		fmt.Fprintf(cmd.ErrOrStderr(), "loading aggregate keys %+v from %s (set up there first when missing: minutes)\n", p, keys.KeysRoot())
		ks, err := bench.AggregateKeys(cmd.Context(), keys.KeysRoot(), p)
		if err != nil {
			return nil, err
		}
		a, err := aggregate.New(aggregate.Options{Keys: []*aggregate.Keys{ks}})
		if err != nil {
			return nil, err
		}
		bs = append(bs, a)
	}
	return backends.NewRegistry(bs...)
}

func newBenchCmd() *cobra.Command {
	var (
		backend, tier, keysDir, cpuProfile, memProfile string
		steps                                          uint64
		count                                          int
		asJSON                                         bool
		cfg                                            backendConfig
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure proving on this machine (the columns of bench/README.md)",
		Long: `Prove and verify a fib trace of the given tier and size with a backend on this
machine, --count times, and print the columns of bench/README.md: prove wall
and CPU time, verify time, proof bytes, the prover's peak Go heap, the
process's peak RSS and executed steps per second. Use it to size a farm on
your own hardware (GPU builds included) and compare with bench/README.md.

--steps is the trace's row count, rounded up to a power of two (Micro
windows are 16 rows by default; the aggregate backend proves intents of at
most 4096 steps and needs Groth16 keys: they are loaded from --keys, and set
up there first when missing, which takes minutes).

One untimed proof runs first: backends make or load keys on first use. The
STARK takes --blowup, --queries, --grinding and --folding as pouw prove does.
--cpuprofile and --memprofile write pprof profiles of the timed proofs
(go tool pprof -top FILE).`,
		Example: `  pouw bench --tier macro --backend stark --steps 65536
  pouw bench --tier micro --backend plonkish --steps 16 --count 10 --json
  pouw bench --tier full --backend aggregate --steps 512 --keys ./keys`,
		Args: cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error {
			// Prefixed: generic twins such as POUW_STEPS would be too
			// easy to set for another command.
			return applyEnvTwins(cmd, "POUW_BENCH_", "json")
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := pouw.ParseTier(tier)
			if err != nil {
				return fmt.Errorf("--tier: %w", err)
			}
			if steps == 0 || steps > 1<<26 {
				return fmt.Errorf("--steps %d: want 1..2^26", steps)
			}
			if count < 1 {
				return fmt.Errorf("--count %d: want at least 1", count)
			}
			rows := uint64(1) << bits.Len64(steps-1)
			c := bench.Case{Backend: backend, Tier: t, Rows: rows}
			reg, err := benchRegistry(cmd, c, cfg, bench.BackendConfig{KeysDir: keysDir})
			if err != nil {
				return err
			}
			be, err := bench.Backend(reg, c)
			if err != nil {
				return err
			}
			tr, err := bench.Trace(c)
			if err != nil {
				return err
			}
			st, err := bench.Statement(tr)
			if err != nil {
				return err
			}
			errw := cmd.ErrOrStderr()
			fmt.Fprintf(errw, "%s: %d rows, %d steps, %d CPUs (GOMAXPROCS %d); one untimed proof first\n",
				c.Name(), rows, tr.Header.Steps(), runtime.NumCPU(), runtime.GOMAXPROCS(0))
			if _, _, err := bench.Measure(cmd.Context(), be, tr, st); err != nil {
				return err
			}
			stop, err := startProfiles(cpuProfile)
			if err != nil {
				return err
			}
			var ss []bench.Sample
			for i := range count {
				s, _, err := bench.Measure(cmd.Context(), be, tr, st)
				if err != nil {
					stop()
					return err
				}
				fmt.Fprintf(errw, "run %d/%d: prove %s (CPU %s), verify %s\n", i+1, count,
					bench.FormatDuration(s.Prove), bench.FormatDuration(s.ProveCPU), bench.FormatDuration(s.Verify))
				ss = append(ss, s)
			}
			stop()
			if memProfile != "" {
				if err := writeHeapProfile(memProfile); err != nil {
					return err
				}
			}
			r := bench.Summarise(c, tr, ss)
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(benchJSON(r))
			}
			return printBenchTable(cmd.OutOrStdout(), r)
		},
	}
	f := cmd.Flags()
	def := air.DefaultOptions()
	f.StringVar(&backend, "backend", "stark", "proof system: stark, plonkish or aggregate [POUW_BENCH_BACKEND]")
	f.StringVar(&tier, "tier", "macro", "micro, macro or full [POUW_BENCH_TIER]")
	f.Uint64Var(&steps, "steps", 1<<16, "trace rows, rounded up to a power of two [POUW_BENCH_STEPS]")
	f.IntVar(&count, "count", 3, "timed proofs [POUW_BENCH_COUNT]")
	f.StringVar(&keysDir, "keys", "", "directory of aggregate key sets (default $"+bench.KeysEnv+", else a cache in the temp directory) [POUW_BENCH_KEYS]")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the timed proofs to this file [POUW_BENCH_CPUPROFILE]")
	f.StringVar(&memProfile, "memprofile", "", "write a heap profile (allocations) after the timed proofs to this file [POUW_BENCH_MEMPROFILE]")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	f.IntVar(&cfg.stark.Blowup, "blowup", def.Blowup, "STARK: LDE blowup, 4, 8 or 16 [POUW_BENCH_BLOWUP]")
	f.IntVar(&cfg.stark.Queries, "queries", def.Queries, "STARK: FRI queries, 1..255 [POUW_BENCH_QUERIES]")
	f.IntVar(&cfg.stark.GrindingBits, "grinding", def.GrindingBits, "STARK: proof-of-work bits before queries, 0..32 [POUW_BENCH_GRINDING]")
	f.IntVar(&cfg.stark.Folding, "folding", def.Folding, "STARK: FRI folding factor, 4 or 8 [POUW_BENCH_FOLDING]")
	f.IntVar(&cfg.minSecurity, "min-security", 100, "least conjectured security in bits a proof must have [POUW_BENCH_MIN_SECURITY]")
	cfg.stark.FieldExtension, cfg.stark.MaxRemainder = def.FieldExtension, def.MaxRemainder
	return cmd
}

func startProfiles(cpuPath string) (stop func(), err error) {
	if cpuPath == "" {
		return func() {}, nil
	}
	f, err := os.Create(cpuPath)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func printBenchTable(w io.Writer, r bench.Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(bench.Columns, "\t"))
	fmt.Fprintln(tw, strings.Join(r.Row(), "\t"))
	return tw.Flush()
}

// benchJSON is the JSON form of a result: the same figures in base units.
func benchJSON(r bench.Result) map[string]any {
	return map[string]any{
		"benchmark":       "BenchmarkProve/" + r.Case.Name(),
		"backend":         r.Case.Backend,
		"tier":            r.Case.Tier,
		"rows":            r.Case.Rows,
		"steps":           r.Steps,
		"runs":            r.N,
		"prove_seconds":   r.Prove.Seconds(),
		"prove_cpu_secs":  r.ProveCPU.Seconds(),
		"verify_seconds":  r.Verify.Seconds(),
		"proof_bytes":     r.ProofSize,
		"peak_heap_bytes": r.PeakHeap,
		"max_rss_bytes":   r.MaxRSS,
		"steps_per_sec":   r.StepsPerSec(),
		"cpus":            runtime.NumCPU(),
		"gomaxprocs":      runtime.GOMAXPROCS(0),
	}
}
