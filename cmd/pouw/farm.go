package main

import (
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pouwfarm/pouwfarm/devnet"
	"github.com/pouwfarm/pouwfarm/scheduler"
	"github.com/pouwfarm/pouwfarm/scheduler/agent"
)

func init() { commands = append(commands, newFarmCmd, newWorkerCmd) }

func newFarmCmd() *cobra.Command {
	var host farmHostFlags
	var coordURL, token, proverID, metricsAddr string
	var grace time.Duration
	var minReward uint64
	var isolate string
	cmd := &cobra.Command{
		Use:   "farm",
		Short: "Prove jobs of a coordinator on this host's CPU cores and GPUs",
		Long: `Run a prover farm: claim jobs that the free slots of this host can take now
(pouw devices lists the slots), download each trace and check its BLAKE3
against trace_hash, prove it with the job's backend, and submit the proof with
the lease token. Leases are renewed at a third of their length; a lost lease
cancels its proof at once. With nothing pending, or the coordinator
unreachable, the farm backs off with jitter.

SIGTERM or Ctrl-C drains: no new claims, running proofs get --drain-grace to
finish, and the leases of the rest are released (no failure counted).

The prover id must be the one the token was registered under (an admin's
POST /v1/pouw/provers returns the token); proofs are bound to it.`,
		Example: `  pouw farm --coordinator http://coord:8080 --token $TOKEN --prover-id farm-a --cpu 16 --gpus all
  POUW_COORDINATOR=http://coord:8080 POUW_TOKEN=... POUW_PROVER_ID=farm-a pouw farm --gpus 0,1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := farmEnvTwins(cmd); err != nil {
				return err
			}
			if coordURL == "" || token == "" || proverID == "" {
				return errors.New("--coordinator, --token and --prover-id are required (or POUW_COORDINATOR, POUW_TOKEN, POUW_PROVER_ID)")
			}
			sel, err := scheduler.ParseGPUSelection(host.gpus)
			if err != nil {
				return err
			}
			logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			reg, err := newRegistry(backendConfig{})
			if err != nil {
				return err
			}
			src := openGPUs(logger, host.gpus)
			if c, ok := src.(interface{ Close() error }); ok {
				defer c.Close()
			}
			o := devnet.FarmOptions{
				Coordinator: coordURL, Token: token, ProverID: proverID, Host: host.options(sel),
				GPUs: src, Backends: reg, Logger: logger, MetricsAddr: metricsAddr,
				DrainGrace: grace, MinReward: minReward,
			}
			if isolate != "" && isolate != "none" {
				o.Workers = workerPool(logger, host.maxTrace)
				if isolate != "all" {
					o.Isolate = strings.Split(isolate, ",")
				}
			}
			return devnet.RunFarm(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	host.register(f)
	f.StringVar(&coordURL, "coordinator", "", "coordinator URL, e.g. http://127.0.0.1:8080 [POUW_COORDINATOR]")
	f.StringVar(&token, "token", "", "this prover's bearer token [POUW_TOKEN]")
	f.StringVar(&proverID, "prover-id", "", "the prover id the token was registered under [POUW_PROVER_ID]")
	f.StringVar(&metricsAddr, "metrics-addr", "", "serve farm and GPU metrics on this address, e.g. :9101 [POUW_METRICS_ADDR]")
	f.DurationVar(&grace, "drain-grace", 30*time.Second, "on shutdown, how long running proofs may finish before their leases are released [POUW_DRAIN_GRACE]")
	f.Uint64Var(&minReward, "min-reward", 0, "only claim jobs paying at least this [POUW_MIN_REWARD]")
	f.StringVar(&isolate, "isolate", "aggregate", "backends proved in per-slot worker processes (killed to cancel; a crash costs only the job): a comma list, all, or none [POUW_ISOLATE]")
	return cmd
}

// workerPool starts `pouw worker` processes, one per busy slot, with the
// slot's cores as GOMAXPROCS.
func workerPool(logger *slog.Logger, maxTrace int64) *agent.WorkerPool {
	return &agent.WorkerPool{
		Logger: logger,
		Command: func(slot scheduler.Slot) *exec.Cmd {
			exe, err := os.Executable()
			if err != nil {
				exe = os.Args[0]
			}
			args := []string{"worker"}
			if maxTrace > 0 {
				args = append(args, "--max-trace-bytes", strconv.FormatInt(maxTrace, 10))
			}
			cmd := exec.Command(exe, args...)
			cmd.Env = append(os.Environ(), "GOMAXPROCS="+strconv.Itoa(max(slot.Capacity.Cores, 1)))
			return cmd
		},
	}
}

func newWorkerCmd() *cobra.Command {
	var maxTrace int64
	cmd := &cobra.Command{
		Use:    "worker",
		Short:  "Prove jobs sent on stdin (started by pouw farm; not for direct use)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			reg, err := newRegistry(backendConfig{})
			if err != nil {
				return err
			}
			return agent.ServeWorker(cmd.Context(), cmd.InOrStdin(), cmd.OutOrStdout(), reg, maxTrace)
		},
	}
	cmd.Flags().Int64Var(&maxTrace, "max-trace-bytes", 1<<30, "largest trace accepted")
	return cmd
}
