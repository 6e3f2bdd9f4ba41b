package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/bits"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	gnarklog "github.com/consensys/gnark/logger"
	"github.com/spf13/cobra"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/backends/aggregate"
	"github.com/pouwfarm/pouwfarm/coordinator/api"
	"github.com/pouwfarm/pouwfarm/devnet"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/scheduler"
)

func init() { commands = append(commands, newDevCmd) }

func newDevCmd() *cobra.Command {
	var host farmHostFlags
	var dataDir, addr, tiers, workloads, tierTable, fullBackend string
	var aggKeys aggregateKeysFlag
	var jobs, batch int
	var exitWhenDone, asJSON, plain bool
	var steps, window uint64
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a coordinator, a local farm and a synthetic intent generator in one process",
		Long: `Run pouwfarm end to end in one process, with no Redis and no GPU needed: a
coordinator on the embedded bolt store (file blobs, a lease reaper), a local
farm proving on this host's slots with the real backends, and a generator of
synthetic intents across all tiers (the trace/workload programs: a Micro
window, a Macro intent, a Full batch, in turn).

On a terminal a live display shows jobs per state and tier, proofs/s and
the p50/p95 proving time per tier; otherwise (or with --plain) progress is
logged every two seconds. With --jobs N --exit-when-done it generates N
jobs, waits until each is completed or dead, prints a summary (jobs per
tier, proofs/s, p50/p95 time from claim to verified proof per tier, the fee
pool) and exits 0 only if every job completed with a verified proof and the
pool balances.

The coordinator's URL and admin token are printed at start; the token is also
written to <data-dir>/admin.token.

--full-backend aggregate makes every Full turn a batch (issue 9's DAG): --batch
Macro intents of about steps/batch steps each are uploaded and posted to
POST /v1/pouw/batches; the farm proves each child with the aggregate backend
(gnark Groth16, in worker processes) and then the aggregation job, one proof
over the children's proofs, which the coordinator verifies. --batch is then a
power of two, 2..16 (default: the k of --aggregate-keys, else 2). It needs
Groth16 keys: --aggregate-keys DIR, else the smallest key set that fits is
set up once (minutes) into $XDG_CACHE_HOME/pouw/aggregate-keys (default
~/.cache/pouw/aggregate-keys) and reused. Those keys come from a single-party
setup: TRUSTED, for development only (docs/aggregate.md). Plain pouw dev
keeps the STARK for Full jobs and needs no keys.`,
		Example: `  pouw dev
  pouw dev --jobs 50 --exit-when-done
  pouw dev --jobs 9 --exit-when-done --steps 1024 --workloads mimc --json
  pouw dev --full-backend aggregate --jobs 3 --exit-when-done`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnvTwins(cmd, "POUW_"); err != nil {
				return err
			}
			if jobs < 0 {
				return fmt.Errorf("--jobs %d: want a number ≥ 0 (0: one every --interval until stopped)", jobs)
			}
			if exitWhenDone && jobs == 0 {
				return errors.New("--exit-when-done needs --jobs N > 0")
			}
			if jobs == 0 && interval <= 0 {
				return fmt.Errorf("--interval %s: want a duration > 0", interval)
			}
			if batch < 1 {
				return fmt.Errorf("--batch %d: want a number ≥ 1", batch)
			}
			batchGiven := cmd.Flags().Changed("batch") || os.Getenv("POUW_BATCH") != ""
			sel, err := scheduler.ParseGPUSelection(host.gpus)
			if err != nil {
				return err
			}
			var ts []pouw.JobTier
			for _, s := range strings.Split(tiers, ",") {
				t, err := pouw.ParseTier(strings.TrimSpace(s))
				if err != nil {
					return fmt.Errorf("--tiers: %w", err)
				}
				ts = append(ts, t)
			}
			table, err := api.ParseTierBackends(tierTable)
			if err != nil {
				return fmt.Errorf("--tier-backends: %w", err)
			}
			var wl []string
			if workloads != "" {
				wl = strings.Split(workloads, ",")
			}
			var bc backendConfig
			if err := aggKeys.load(&bc); err != nil {
				return err
			}
			switch fullBackend {
			case "":
			case aggregate.Name:
				if batch, err = devBatchSize(bc, batch, batchGiven); err != nil {
					return err
				}
				if err := devAggregateKeys(cmd, &bc, steps, batch); err != nil {
					return err
				}
			default:
				return fmt.Errorf("--full-backend %q: only %q (batches); another backend for Full jobs goes in --tier-backends full=NAME", fullBackend, aggregate.Name)
			}
			reg, err := newRegistry(bc)
			if err != nil {
				return err
			}
			var named []string
			for _, n := range table {
				named = append(named, n)
			}
			if err := checkAggregateRegistered(reg, "--tier-backends", named...); err != nil {
				return err
			}
			var onProgress func(devnet.Progress)
			var every time.Duration
			level := slog.LevelInfo
			if !plain && isTerminal(cmd.ErrOrStderr()) {
				// A live display on the terminal; only warnings are logged
				// beside it.
				d := &liveDisplay{w: cmd.ErrOrStderr()}
				onProgress = d.render
				every = 500 * time.Millisecond
				level = slog.LevelWarn
			}
			logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			src := openGPUs(logger, host.gpus)
			if c, ok := src.(interface{ Close() error }); ok {
				defer c.Close()
			}
			do := devnet.DevOptions{
				DataDir: dataDir, Addr: addr, Jobs: jobs, ExitWhenDone: exitWhenDone, Interval: interval,
				Tiers: ts, Workloads: wl, Steps: steps, BatchSize: batch, Window: window, Tiers2B: table,
				Host: host.options(sel), GPUs: src, Logger: logger, Backends: reg, OnProgress: onProgress, Progress: every,
				OnReady: func(url, token, file string) {
					where := ""
					if file != "" {
						where = " (also in " + file + ")"
					}
					fmt.Fprintf(cmd.ErrOrStderr(), "pouw dev: coordinator at %s\npouw dev: admin token %s%s\n", url, token, where)
				},
			}
			if fullBackend == aggregate.Name {
				// As pouw farm does: gnark's Prove cannot be cancelled, so
				// the aggregate backend proves in worker processes.
				do.BatchBackend = aggregate.Name
				do.Workers = workerPool(logger, host.maxTrace, bc.aggregateDirs)
				do.Isolate = []string{aggregate.Name}
			}
			sum, err := devnet.Dev(cmd.Context(), do)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(sum); err != nil {
					return err
				}
			} else {
				printSummary(cmd.OutOrStdout(), sum)
			}
			// Stopped by a signal in the open-ended mode, the summary is
			// information, not a verdict.
			if (exitWhenDone || jobs > 0) && !sum.OK() {
				return exitError{code: 1, msg: fmt.Sprintf("%s: %d of %d completed, %d dead", devnet.ErrNotAllCompleted, sum.Completed, sum.Jobs, sum.Dead)}
			}
			return nil
		},
	}
	f := cmd.Flags()
	host.register(f)
	f.StringVar(&dataDir, "data-dir", "", "coordinator files (bolt store, blobs, admin.token); a temporary directory when empty [POUW_DATA_DIR]")
	f.StringVar(&addr, "addr", "127.0.0.1:0", "coordinator listen address [POUW_ADDR]")
	f.IntVar(&jobs, "jobs", 0, "generate this many jobs (0: one every --interval until stopped) [POUW_JOBS]")
	f.BoolVar(&exitWhenDone, "exit-when-done", false, "with --jobs: print a summary and exit once every job is completed or dead [POUW_EXIT_WHEN_DONE]")
	f.DurationVar(&interval, "interval", time.Second, "without --jobs: time between generated jobs [POUW_INTERVAL]")
	f.StringVar(&tiers, "tiers", "micro,macro,full", "tiers to generate, in turn [POUW_TIERS]")
	f.StringVar(&workloads, "workloads", "", "workloads to cycle through (default: all of trace/workload) [POUW_WORKLOADS]")
	f.Uint64Var(&steps, "steps", 256, "steps of a Macro intent (a Full batch holds --batch intents of about steps/batch each) [POUW_STEPS]")
	f.IntVar(&batch, "batch", 4, "intents per Full batch (with --full-backend aggregate: 2, 4, 8 or 16; default the k of --aggregate-keys, else 2) [POUW_BATCH]")
	f.Uint64Var(&window, "window", 16, "steps of a Micro window (a power of two) [POUW_WINDOW]")
	f.StringVar(&tierTable, "tier-backends", backends.DefaultTable().String(), "tier -> backend table fixed on the generated jobs; tiers left out keep their default [POUW_TIER_BACKENDS]")
	f.BoolVar(&asJSON, "json", false, "print the summary as JSON")
	f.BoolVar(&plain, "plain", false, "log progress lines even on a terminal (no live display)")
	f.StringVar(&fullBackend, "full-backend", "", "aggregate: Full turns are batches of the batch DAG, proved with the aggregate backend (needs keys: --aggregate-keys, else set up once into the user cache); empty: Full jobs go to --tier-backends' full backend [POUW_FULL_BACKEND]")
	aggKeys.register(f)
	return cmd
}

func printSummary(out io.Writer, s devnet.Summary) {
	fmt.Fprintf(out, "pouw dev: %d jobs, %d completed and verified, %d dead, %d unsettled in %s (%.2f proofs/s)\n",
		s.Jobs, s.Completed, s.Dead, s.Other, s.Elapsed.Round(time.Millisecond), s.ProofsPerSecond())
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TIER\tJOBS\tCOMPLETED\tDEAD\tP50\tP95")
	for _, t := range s.Tiers {
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%s\t%s\n", t.Tier, t.Jobs, t.Completed, t.Dead, t.P50, t.P95)
	}
	_ = w.Flush()
	if b := s.Batches; b != nil {
		fmt.Fprintf(out, "batches: %d of k=%d (%s): %d aggregated into one verified proof, %d dead; children %d of %d completed and verified\n",
			b.Batches, b.K, b.Backend, b.Aggregated, b.Dead, b.ChildrenCompleted, b.Children)
	}
	fmt.Fprintf(out, "pool: deposited %d = available %d + reserved %d + paid %d (balanced: %v)\n",
		s.Pool.Deposited, s.Pool.Available, s.Pool.Reserved, s.Pool.Paid, s.Pool.Balanced())
	for _, p := range s.Provers {
		fmt.Fprintf(out, "prover %s: %d completed, %d failed, %d earned, avg %d ms\n",
			p.ProverID, p.JobsCompleted, p.JobsFailed, p.TotalFeeEarned, p.AvgCompletionTimeMs)
	}
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// liveDisplay redraws a small table in place with ANSI cursor movement.
type liveDisplay struct {
	w     io.Writer
	lines int
}

func (d *liveDisplay) render(p devnet.Progress) {
	var b strings.Builder
	fmt.Fprintf(&b, "pouw dev  %s  proofs %d (%.2f/s)\n", p.Elapsed.Round(time.Second), p.Proved, p.ProofsPerSecond)
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIER\tPENDING\tLEASED\tCOMPLETED\tDEAD\tPROVE P50\tPROVE P95")
	for _, t := range p.Tiers {
		c := t.Counts
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%s\n", t.Tier, c[pouw.StatePending]+c[pouw.StateWaiting], c[pouw.StateLeased],
			c[pouw.StateCompleted], c[pouw.StateDead], t.P50.Round(time.Millisecond), t.P95.Round(time.Millisecond))
	}
	_ = tw.Flush()
	out := b.String()
	if d.lines > 0 {
		fmt.Fprintf(d.w, "\x1b[%dA", d.lines) // back to the top of the last frame
	}
	for _, line := range strings.SplitAfter(out, "\n") {
		if line != "" {
			fmt.Fprint(d.w, "\x1b[2K"+line)
		}
	}
	d.lines = strings.Count(out, "\n")
}

// devBatchSize is --batch with --full-backend aggregate: a valid batch
// size; when not given, the k of the first --aggregate-keys set, else 2
// (the smallest key set, the quickest to set up).
func devBatchSize(bc backendConfig, batch int, given bool) (int, error) {
	if !given {
		batch = pouw.MinBatch
		if len(bc.aggregateKeys) > 0 {
			batch = bc.aggregateKeys[0].Params.K
		}
	}
	if !pouw.ValidBatchSize(batch) {
		return 0, fmt.Errorf("--batch %d: a batch of the aggregate backend has 2, 4, 8 or 16 intents", batch)
	}
	return batch, nil
}

// devAggregateKeys makes sure bc has a key set for batches of k intents of
// steps/k steps: one of --aggregate-keys, else the smallest that fits from
// the user's cache, set up there first when missing (minutes).
func devAggregateKeys(cmd *cobra.Command, bc *backendConfig, steps uint64, k int) error {
	child := max(steps/uint64(k), 1)
	if len(bc.aggregateKeys) > 0 {
		var have []string
		for _, ks := range bc.aggregateKeys {
			if ks.Params.K == k && uint64(ks.Params.Steps()) >= child {
				return nil
			}
			have = append(have, ks.Params.String())
		}
		return fmt.Errorf("--aggregate-keys: no key set takes batches of %d intents of %d steps (--steps/--batch); have %s",
			k, child, strings.Join(have, "; "))
	}
	logSteps := max(bits.Len64(child-1), aggregate.MinLogSteps)
	if logSteps > aggregate.MaxLogSteps {
		return fmt.Errorf("--steps %d --batch %d: intents of %d steps exceed the aggregate backend's largest size class, %d steps", steps, k, child, 1<<aggregate.MaxLogSteps)
	}
	p := aggregate.Params{LogSteps: logSteps, ProgLen: aggregate.DefaultProgLen, K: k}
	cache, err := os.UserCacheDir()
	if err != nil {
		return fmt.Errorf("--full-backend aggregate: no user cache directory for the keys (%w); give --aggregate-keys DIR", err)
	}
	root := filepath.Join(cache, "pouw", "aggregate-keys")
	dir := aggregate.CacheDir(root, p)
	errw := cmd.ErrOrStderr()
	fmt.Fprintf(errw, "pouw dev: aggregate keys (%v) from %s; a missing or stale set is set up there once first, which takes minutes\n", p, dir)
	fmt.Fprintln(errw, "pouw dev: these keys come from a single-party Groth16 setup: TRUSTED, for development only (production: pouw keys ceremony, docs/aggregate.md)")
	gnarklog.Disable()
	t0 := time.Now()
	// A setup step cannot be interrupted and takes minutes: on SIGINT or
	// SIGTERM return at once (the process exits, which drops the cache
	// lock; the unfinished set is never renamed into place).
	type loaded struct {
		ks    *aggregate.Keys
		setup bool
		err   error
	}
	ch := make(chan loaded, 1)
	go func() {
		ks, setup, err := aggregate.LoadOrSetup(cmd.Context(), p, root, slog.New(slog.NewTextHandler(errw, nil)))
		ch <- loaded{ks, setup, err}
	}()
	var l loaded
	select {
	case l = <-ch:
	case <-cmd.Context().Done():
		return fmt.Errorf("--full-backend aggregate: key setup interrupted: %w", cmd.Context().Err())
	}
	if l.err != nil {
		return fmt.Errorf("--full-backend aggregate: keys %v in %s: %w", p, root, l.err)
	}
	if l.setup {
		fmt.Fprintf(errw, "pouw dev: aggregate keys set up in %s\n", time.Since(t0).Round(time.Second))
	}
	bc.aggregateKeys, bc.aggregateDirs = []*aggregate.Keys{l.ks}, []string{dir}
	return nil
}
