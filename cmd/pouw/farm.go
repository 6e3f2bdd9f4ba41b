package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pouwfarm/pouwfarm/backends/aggregate"
	"github.com/pouwfarm/pouwfarm/coordinator/client"
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
	var caFile, clientCert, clientKey string
	var pprof bool
	var aggKeys aggregateKeysFlag
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

Proofs are bound to the prover the token belongs to (an admin's
POST /v1/pouw/provers returns the token); the coordinator names it in every
claim. --prover-id is optional: when given and the token belongs to another
prover, the first claim's lease is released untouched and the farm stops with
an error (no attempt spent, nothing charged).

A slot whose job failed or was rejected rests 1-2 s before it claims again,
doubling while failures continue (up to 30 s), so a transient fault does not
spend every attempt of a job in milliseconds.

HTTPS: an https:// coordinator is verified against --ca (else the system's
roots), TLS 1.3 minimum; for mTLS, --client-cert/--client-key present a
certificate whose CN (or URI SAN pouw://prover/<id>) is the prover id.
--pprof serves /debug/pprof on --metrics-addr (off by default: it exposes
goroutine stacks and heap contents to whoever reaches that address).

The aggregate backend (batches: intent proofs and their aggregation) runs
only with --aggregate-keys DIR, the same key sets as the coordinator's
(pouw keys setup); its proofs run in worker processes (--isolate). Keys from
'pouw keys setup' are single-party: TRUSTED, development only; production
keys come from 'pouw keys ceremony' (docs/aggregate.md).`,
		Example: `  pouw farm --coordinator http://coord:8080 --token $TOKEN --prover-id farm-a --cpu 16 --gpus all
  POUW_COORDINATOR=http://coord:8080 POUW_TOKEN=... POUW_PROVER_ID=farm-a pouw farm --gpus 0,1
  pouw farm --coordinator https://coord:8443 --ca ca.pem --client-cert farm-a.pem --client-key farm-a.key --prover-id farm-a --token $TOKEN`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnvTwins(cmd, "POUW_"); err != nil {
				return err
			}
			if coordURL == "" || token == "" {
				return errors.New("--coordinator and --token are required (or POUW_COORDINATOR, POUW_TOKEN)")
			}
			if err := host.validate(); err != nil {
				return err
			}
			if grace < 0 {
				return errors.New("--drain-grace must be ≥ 0")
			}
			if pprof && metricsAddr == "" {
				return errors.New("--pprof serves on --metrics-addr: give one")
			}
			var tlsCfg *tls.Config
			if caFile != "" || clientCert != "" || clientKey != "" {
				var err error
				if tlsCfg, err = client.TLSConfig(caFile, clientCert, clientKey); err != nil {
					return err
				}
			}
			sel, err := scheduler.ParseGPUSelection(host.gpus)
			if err != nil {
				return err
			}
			logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			bc := backendConfig{logger: logger}
			if err := aggKeys.load(&bc); err != nil {
				return err
			}
			reg, err := newRegistry(bc)
			if err != nil {
				return err
			}
			logAggregateKeys(logger, bc)
			// aggregate is a known backend even where this build's farm
			// does not run it (the default names it).
			known := reg.Names()
			if !slices.Contains(known, aggregate.Name) {
				known = append(known, aggregate.Name)
			}
			isolated, err := parseIsolate(isolate, known)
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
				DrainGrace: grace, MinReward: minReward, TLS: tlsCfg, Pprof: pprof,
			}
			if isolate != "" && isolate != "none" {
				o.Workers = workerPool(logger, host.maxTrace, bc.aggregateDirs)
				o.Isolate = isolated
			}
			return devnet.RunFarm(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	host.register(f)
	f.StringVar(&coordURL, "coordinator", "", "coordinator URL, e.g. http://127.0.0.1:8080 [POUW_COORDINATOR]")
	f.StringVar(&token, "token", "", "this prover's bearer token [POUW_TOKEN]")
	f.StringVar(&proverID, "prover-id", "", "the prover the token belongs to; optional (taken from the coordinator's claims), checked when given [POUW_PROVER_ID]")
	f.StringVar(&metricsAddr, "metrics-addr", "", "serve farm and GPU metrics (/metrics), liveness (/healthz) and readiness (/readyz) on this address, e.g. :9101 [POUW_METRICS_ADDR]")
	f.DurationVar(&grace, "drain-grace", 30*time.Second, "on shutdown, how long running proofs may finish before their leases are released [POUW_DRAIN_GRACE]")
	f.Uint64Var(&minReward, "min-reward", 0, "only claim jobs paying at least this [POUW_MIN_REWARD]")
	f.StringVar(&caFile, "ca", "", "PEM CA that verifies an https:// coordinator (default: the system's roots) [POUW_CA]")
	f.StringVar(&clientCert, "client-cert", "", "PEM client certificate for mTLS; its CN or URI SAN pouw://prover/<id> must be the prover id [POUW_CLIENT_CERT]")
	f.StringVar(&clientKey, "client-key", "", "PEM private key of --client-cert [POUW_CLIENT_KEY]")
	f.BoolVar(&pprof, "pprof", false, "serve /debug/pprof on --metrics-addr (off by default) [POUW_PPROF]")
	aggKeys.register(f)
	f.StringVar(&isolate, "isolate", "aggregate", "backends proved in per-slot worker processes (killed to cancel; a crash costs only the job): a comma list, all, or none [POUW_ISOLATE]")
	return cmd
}

// validate refuses host flags that would build a nonsensical farm, with a
// one-line error rather than the scheduler's.
func (h *farmHostFlags) validate() error {
	switch {
	case h.cpu < 0:
		return errors.New("--cpu must be ≥ 0")
	case h.coresPerSlot < 1:
		return errors.New("--cores-per-slot must be ≥ 1")
	case h.jobsPerGPU < 1:
		return errors.New("--jobs-per-gpu must be ≥ 1")
	case h.memory < 0:
		return errors.New("--memory must be ≥ 0")
	case h.maxTrace < 0:
		return errors.New("--max-trace-bytes must be ≥ 0")
	}
	return nil
}

// parseIsolate turns --isolate into the backends proved in worker
// processes: nil for all (or none: the caller checks), else the named ones,
// each of which must be a backend this farm runs.
func parseIsolate(v string, known []string) ([]string, error) {
	if v == "" || v == "none" || v == "all" {
		return nil, nil
	}
	names := strings.Split(v, ",")
	for i, n := range names {
		n = strings.TrimSpace(n)
		if !slices.Contains(known, n) {
			return nil, fmt.Errorf("--isolate: unknown backend %q (want all, none, or a comma list of %s)", n, strings.Join(known, ", "))
		}
		names[i] = n
	}
	return names, nil
}

// workerPool starts `pouw worker` processes, one per busy slot, with the
// slot's cores as GOMAXPROCS and the farm's aggregate key directories.
func workerPool(logger *slog.Logger, maxTrace int64, aggregateDirs []string) *agent.WorkerPool {
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
			if len(aggregateDirs) > 0 {
				args = append(args, "--aggregate-keys", strings.Join(aggregateDirs, ","))
			}
			cmd := exec.Command(exe, args...)
			cmd.Env = append(os.Environ(), workerEnv(slot)...)
			return cmd
		},
	}
}

// workerEnv is what a slot's worker process adds to the environment: its
// cores as GOMAXPROCS, and only its own GPU visible to CUDA (none on a CPU
// slot). An icicle build proves on CUDA device 0 of what it can see, and
// NVML's indices (the slot's) follow the PCI bus order, which CUDA's order
// only does when asked to.
func workerEnv(slot scheduler.Slot) []string {
	env := []string{"GOMAXPROCS=" + strconv.Itoa(max(slot.Capacity.Cores, 1)), "CUDA_DEVICE_ORDER=PCI_BUS_ID"}
	if slot.Kind == scheduler.GPU && slot.GPUIndex >= 0 {
		return append(env, "CUDA_VISIBLE_DEVICES="+strconv.Itoa(slot.GPUIndex))
	}
	return append(env, "CUDA_VISIBLE_DEVICES=")
}

func newWorkerCmd() *cobra.Command {
	var maxTrace int64
	var aggKeys aggregateKeysFlag
	cmd := &cobra.Command{
		Use:    "worker",
		Short:  "Prove jobs sent on stdin (started by pouw farm; not for direct use)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var bc backendConfig
			if err := aggKeys.load(&bc); err != nil {
				return err
			}
			reg, err := newRegistry(bc)
			if err != nil {
				return err
			}
			return agent.ServeWorker(cmd.Context(), cmd.InOrStdin(), cmd.OutOrStdout(), reg, maxTrace)
		},
	}
	cmd.Flags().Int64Var(&maxTrace, "max-trace-bytes", 1<<30, "largest trace accepted")
	aggKeys.register(cmd.Flags())
	return cmd
}
