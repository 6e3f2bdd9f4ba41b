package main

import (
	"errors"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/pouwfarm/pouwfarm/devnet"
	"github.com/pouwfarm/pouwfarm/scheduler"
)

func init() { commands = append(commands, newFarmCmd) }

func newFarmCmd() *cobra.Command {
	var host farmHostFlags
	var coordURL, token, proverID, metricsAddr string
	var grace time.Duration
	var minReward uint64
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

The prover id must be the one the token was registered under (pouw provers
register); proofs are bound to it.`,
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
			return devnet.RunFarm(cmd.Context(), devnet.FarmOptions{
				Coordinator: coordURL, Token: token, ProverID: proverID, Host: host.options(sel),
				GPUs: src, Backends: reg, Logger: logger, MetricsAddr: metricsAddr,
				DrainGrace: grace, MinReward: minReward,
			})
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
	return cmd
}
