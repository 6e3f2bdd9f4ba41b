package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pouwfarm/pouwfarm/chaos"
)

func init() { commands = append(commands, newChaosCmd) }

// chaosEnvTwins sets every flag not given on the command line from
// POUW_CHAOS_<FLAG> (--minutes: POUW_CHAOS_MINUTES).
func chaosEnvTwins(cmd *cobra.Command) error {
	var err error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed || f.Name == "help" {
			return
		}
		name := "POUW_CHAOS_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, e)
			}
		}
	})
	return err
}

func newChaosCmd() *cobra.Command {
	var cfg chaos.Config
	var minutes float64
	var kinds, dir, out string
	var asJSON, verbose bool
	cmd := &cobra.Command{
		Use:   "chaos",
		Short: "Run pouwfarm as real processes under injected faults and check that nothing was lost",
		Long: `Start, on loopback, a redis-server with AOF and a replica, two coordinators
(this binary's 'pouw coordinator') on one Redis prefix, three farms ('pouw
farm', one CPU slot each, small STARK jobs) and a load generator that uploads
traces, deposits rewards and ingests jobs of every tier at --rate per second.

It runs a phase without faults, then --minutes with faults injected at random
times drawn from --seed (printed: the same seed replays the same schedule):
SIGKILL a farm holding a lease, SIGSTOP a farm past its lease (while a probe
holds a lease of its own past expiry: its late renew and submit must be
refused), SIGKILL a coordinator, SIGKILL Redis (restarted from its AOF),
promote the replica during a partition and repoint the coordinators
(alternating --redis-wait-replicas 0 and 1), jump the store clock, corrupt
a trace blob, submit a garbage proof under a real lease.

After each phase the load stops, the farms drain the queue and an invariant
checker audits the store: every job in exactly one state, nothing completed
or paid twice, the pool ledger balanced, created_seq unique, event ids
increasing, every completed proof verifying again offline, dead jobs with a
reason and consistent attempts, and every completion acknowledged before a
fault still completed after it. The report gives jobs/s with and without
faults, faults by kind, time to recover after each fault, acknowledged work
lost on failover, and the memory and goroutines of every process.

Exits 0 only when there are no invariant violations. Needs redis-server in
PATH. Keep sizes modest on shared machines.`,
		Example: `  pouw chaos                         # the 2-3 minute scenario
  pouw chaos --minutes 30 --baseline 5m --fault-every 20s --rate 1.5 --seed 42  # the soak, replayable
  POUW_CHAOS_MINUTES=30 pouw chaos --json > soak.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := chaosEnvTwins(cmd); err != nil {
				return err
			}
			bin, err := os.Executable()
			if err != nil {
				return fmt.Errorf("finding this binary: %w", err)
			}
			cfg.Bin = bin
			cfg.Faults = time.Duration(minutes * float64(time.Minute))
			if kinds != "" {
				for _, k := range strings.Split(kinds, ",") {
					k = strings.TrimSpace(k)
					ok := false
					for _, known := range chaos.AllFaults {
						ok = ok || string(known) == k
					}
					if !ok {
						return fmt.Errorf("--faults: unknown fault %q (known: %v)", k, chaos.AllFaults)
					}
					cfg.Kinds = append(cfg.Kinds, chaos.FaultKind(k))
				}
			}
			if cfg.Seed == 0 {
				cfg.Seed = time.Now().UnixNano() % 1_000_000
			}
			if dir == "" {
				if dir, err = os.MkdirTemp("", "pouw-chaos-*"); err != nil {
					return err
				}
				defer os.RemoveAll(dir)
			}
			cfg.Dir = dir
			level := slog.LevelInfo
			if !verbose {
				level = slog.LevelWarn
			}
			cfg.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			fmt.Fprintf(cmd.ErrOrStderr(), "pouw chaos: seed %d (replay with --seed %d); data and logs in %s\n", cfg.Seed, cfg.Seed, dir)

			rep, runErr := chaos.Run(cmd.Context(), cfg)
			if rep != nil {
				if out != "" {
					b, _ := json.MarshalIndent(rep, "", "  ")
					if err := os.WriteFile(out, b, 0o644); err != nil {
						return err
					}
				}
				if asJSON {
					enc := json.NewEncoder(cmd.OutOrStdout())
					enc.SetIndent("", "  ")
					if err := enc.Encode(rep); err != nil {
						return err
					}
				} else {
					rep.WriteText(cmd.OutOrStdout())
				}
			}
			if runErr != nil {
				return runErr
			}
			if n := len(rep.Violations); n > 0 {
				return exitError{code: 1, msg: fmt.Sprintf("%d invariant violations (seed %d)", n, cfg.Seed)}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.Float64Var(&minutes, "minutes", 1.25, "length of the phase with faults (30 for the soak) [POUW_CHAOS_MINUTES]")
	f.DurationVar(&cfg.Baseline, "baseline", 25*time.Second, "length of the phase without faults [POUW_CHAOS_BASELINE]")
	f.Int64Var(&cfg.Seed, "seed", 0, "seed of the fault schedule (0: drawn and printed) [POUW_CHAOS_SEED]")
	f.DurationVar(&cfg.FaultEvery, "fault-every", 6*time.Second, "mean time between faults [POUW_CHAOS_FAULT_EVERY]")
	f.StringVar(&kinds, "faults", "", "comma list of fault kinds to inject (default all) [POUW_CHAOS_FAULTS]")
	f.Float64Var(&cfg.Rate, "rate", 2, "jobs ingested per second [POUW_CHAOS_RATE]")
	f.Uint64Var(&cfg.Steps, "steps", 128, "steps of a Macro intent (Micro: a 16-step window; Full: 4 intents) [POUW_CHAOS_STEPS]")
	f.DurationVar(&cfg.Lease, "lease", 3*time.Second, "lease length of every tier (a stopped farm sleeps past it) [POUW_CHAOS_LEASE]")
	f.DurationVar(&cfg.SampleEvery, "sample-every", 5*time.Second, "how often process memory and goroutines are sampled [POUW_CHAOS_SAMPLE_EVERY]")
	f.StringVar(&dir, "dir", "", "keep data and process logs here (default: a temporary directory, removed) [POUW_CHAOS_DIR]")
	f.StringVar(&out, "out", "", "also write the JSON report to this file [POUW_CHAOS_OUT]")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	f.BoolVar(&verbose, "verbose", false, "log each fault and phase as it happens [POUW_CHAOS_VERBOSE]")
	return cmd
}
