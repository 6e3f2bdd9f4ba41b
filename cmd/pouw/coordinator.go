package main

import (
	"fmt"
	"log/slog"
	"math"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/coordinator"
	"github.com/pouwfarm/pouwfarm/coordinator/api"
	"github.com/pouwfarm/pouwfarm/coordinator/store"
)

func init() { commands = append(commands, newCoordinatorCmd) }

func newCoordinatorCmd() *cobra.Command {
	var cfg coordinator.Config
	var tiers, logLevel string
	var leases [3]time.Duration
	var retention time.Duration
	var maxEvents int
	var aggKeys aggregateKeysFlag
	cmd := &cobra.Command{
		Use:   "coordinator",
		Short: "Serve the PoUW API: proof jobs from a bolt or Redis store",
		Long: `Serve the PoUW HTTP API (docs/openapi.yaml): ingest traces as proof jobs,
lease them to provers, verify submitted proofs with the registered backends
and pay rewards from the fee pool.

With no flags it starts on 127.0.0.1:8080 with the embedded bolt store in
./data/pouw.db and trace/proof blobs under ./data/blobs. For several
coordinators behind a load balancer, point them all at one Redis
(--store redis://HOST:6379/0) and one blob store (a shared volume with
--blobs file://DIR, or --blobs redis://...).

The admin token comes from POUW_ADMIN_TOKEN, else --admin-token-file, else
<data-dir>/admin.token, which is generated (mode 0600) on first start; the
log says which file. Register provers with 'pouw tokens create NAME'.

HTTPS: --tls-cert/--tls-key (TLS 1.3 minimum); with --client-ca, farms
present client certificates and a prover's requests are refused unless its
certificate names its prover id. Per-prover limits (claim and submit rates,
concurrent leases) answer 429 with Retry-After; a prover whose recent proofs
are mostly rejected is suspended until 'pouw provers unsuspend ID'.
docs/security.md has the threat model.

Batches (POST /v1/pouw/batches, pouw ingest --batch): --aggregate-keys DIR
registers the aggregate backend (gnark Groth16) with the key sets of
'pouw keys setup'; the batch's k Macro children and its aggregation job are
proved with it. Without it the backend is off and batches are refused.
Keys from 'pouw keys setup' come from a single-party setup: whoever ran it
can forge proofs, so they are TRUSTED and for development only; production
keys come from the multi-party ceremony, pouw keys ceremony (docs/aggregate.md).

Every flag has an environment twin: POUW_<FLAG> (POUW_STORE, POUW_ADDR, ...).
SIGINT/SIGTERM stop it gracefully: event streams end, requests in flight
finish.`,
		Example: `  pouw coordinator
  pouw coordinator --addr :8080 --store redis://10.0.0.5:6379/0 --blobs file:///mnt/pouw-blobs
  POUW_ADMIN_TOKEN=... pouw coordinator --public-read --lease-macro 5m
  pouw coordinator --addr :8443 --tls-cert server.pem --tls-key server.key --client-ca farms-ca.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnvTwins(cmd, "POUW_"); err != nil {
				return err
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			if err := checkCoordinatorFlags(cfg, leases, retention, maxEvents); err != nil {
				return err
			}
			logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			bc := backendConfig{logger: logger}
			if err := aggKeys.load(&bc); err != nil {
				return err
			}
			reg, err := newRegistry(bc)
			if err != nil {
				return err
			}
			table, err := backends.ParseTable(tiers)
			if err != nil {
				return fmt.Errorf("--tiers: %w", err)
			}
			if err := checkAggregateRegistered(reg, "--tiers", table[:]...); err != nil {
				return err
			}
			if err := table.Validate(reg); err != nil {
				return fmt.Errorf("--tiers: %w (backends of this binary: %s)", err, strings.Join(reg.Names(), ", "))
			}
			cfg.Tiers = api.TierBackends(table)
			cfg.Backends = reg
			cfg.AdminToken = os.Getenv("POUW_ADMIN_TOKEN")
			cfg.StoreOptions = store.Options{LeaseDuration: leases, Retention: retention, MaxEvents: maxEvents}
			cfg.Logger = logger
			c, err := coordinator.New(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			logger.Info("tier table", "tiers", table.String(), "backends", strings.Join(reg.Names(), ","),
				"public_read", cfg.PublicRead)
			logAggregateKeys(logger, bc)
			return c.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Addr, "addr", "127.0.0.1:8080", "address to listen on")
	f.StringVar(&cfg.DataDir, "data-dir", "data", "directory of the bolt store, file blobs and the generated admin token")
	f.StringVar(&cfg.Store, "store", "", "bolt://PATH or redis://[user:pass@]HOST:PORT/DB (default bolt://<data-dir>/pouw.db)")
	f.StringVar(&cfg.Blobs, "blobs", "", "file://DIR or redis://HOST:PORT/DB (default file://<data-dir>/blobs)")
	f.StringVar(&cfg.RedisPrefix, "redis-prefix", "pouw", "deployment prefix of every Redis key")
	f.IntVar(&cfg.RedisWaitReplicas, "redis-wait-replicas", 0, "WAIT for this many replicas after every script that moves money")
	f.BoolVar(&cfg.RedisTestClock, "redis-test-clock", false, "let the test-only Redis clock keys move the store's clock (chaos harness only)")
	_ = f.MarkHidden("redis-test-clock")
	f.StringVar(&cfg.AdminTokenFile, "admin-token-file", "", "file holding the admin token (when POUW_ADMIN_TOKEN is unset)")
	f.BoolVar(&cfg.PublicRead, "public-read", false, "serve read-only routes without a token")
	f.StringVar(&tiers, "tiers", backends.DefaultTable().String(), "tier -> backend table fixed on jobs at ingest")
	d := store.DefaultOptions()
	f.DurationVar(&leases[0], "lease-micro", d.LeaseDuration[0], "lease length of micro jobs")
	f.DurationVar(&leases[1], "lease-macro", d.LeaseDuration[1], "lease length of macro jobs")
	f.DurationVar(&leases[2], "lease-full", d.LeaseDuration[2], "lease length of full jobs")
	f.DurationVar(&retention, "retention", d.Retention, "how long completed jobs are kept")
	f.IntVar(&maxEvents, "max-events", d.MaxEvents, "events kept for the stream (older ones: reset)")
	l := api.DefaultLimits()
	f.Int64Var(&cfg.Limits.MaxTraceBytes, "max-trace-bytes", l.MaxTraceBytes, "largest blob upload (413 beyond)")
	f.Int64Var(&cfg.Limits.MaxProofBytes, "max-proof-bytes", l.MaxProofBytes, "largest proof (413 beyond)")
	f.DurationVar(&cfg.VerifyBudget, "verify-budget", 5*time.Minute, "how long a lease is held while its proof is verified")
	f.DurationVar(&cfg.ReapInterval, "reap-interval", time.Second, "how often expired leases are reaped")
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long a graceful shutdown waits for requests in flight")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	// Issue 13: TLS, token lifecycle, abuse limits (docs/security.md).
	f.StringVar(&cfg.TLSCert, "tls-cert", "", "PEM certificate (chain): serve HTTPS, TLS 1.3 minimum")
	f.StringVar(&cfg.TLSKey, "tls-key", "", "PEM private key of --tls-cert")
	f.StringVar(&cfg.ClientCA, "client-ca", "", "PEM CA of farm client certificates: mTLS, and a prover's certificate must name its prover id (CN or URI SAN pouw://prover/<id>)")
	f.DurationVar(&cfg.TokenTTL, "token-ttl", 90*24*time.Hour, "how long a newly issued prover token works (0: forever)")
	f.DurationVar(&cfg.RotateGrace, "rotate-grace", time.Hour, "how long old tokens keep working after 'pouw tokens rotate'")
	ab := api.DefaultAbuse()
	f.IntVar(&cfg.Abuse.MaxLeases, "max-leases-per-prover", ab.MaxLeases, "leases one prover may hold at once, per coordinator (429 beyond; 0: no limit)")
	f.Float64Var(&cfg.Abuse.ClaimRate, "claim-rate", ab.ClaimRate, "claims per second per prover (429 beyond the burst; 0: no limit)")
	f.IntVar(&cfg.Abuse.ClaimBurst, "claim-burst", ab.ClaimBurst, "claim burst per prover")
	f.Float64Var(&cfg.Abuse.SubmitRate, "submit-rate", ab.SubmitRate, "submits per second per prover (429 beyond the burst; 0: no limit)")
	f.IntVar(&cfg.Abuse.SubmitBurst, "submit-burst", ab.SubmitBurst, "submit burst per prover")
	f.IntVar(&cfg.Abuse.SuspendWindow, "suspend-window", ab.SuspendWindow, "recent verified proofs per prover the suspension rule looks at")
	f.IntVar(&cfg.Abuse.SuspendMinProofs, "suspend-min-proofs", ab.SuspendMinProofs, "proofs in the window before a prover can be suspended")
	f.Float64Var(&cfg.Abuse.SuspendRejectRatio, "suspend-reject-ratio", ab.SuspendRejectRatio, "suspend a prover when this share of its recent proofs was rejected (0: never)")
	f.IntVar(&cfg.MaxVerifyAttempts, "max-verify-attempts", 3, "verifications of one lease that may run out of --verify-budget before the lease fails")
	aggKeys.register(f)
	return annotateEnvTwins(cmd)
}

// checkCoordinatorFlags refuses durations and counts that make no sense
// (a negative lease, a zero event log): the packages below would otherwise
// take them silently, replace them with defaults, or misbehave much later.
func checkCoordinatorFlags(cfg coordinator.Config, leases [3]time.Duration, retention time.Duration, maxEvents int) error {
	positive := []struct {
		flag string
		d    time.Duration
	}{
		{"--lease-micro", leases[0]}, {"--lease-macro", leases[1]}, {"--lease-full", leases[2]},
		{"--retention", retention}, {"--verify-budget", cfg.VerifyBudget}, {"--reap-interval", cfg.ReapInterval},
	}
	for _, p := range positive {
		if p.d <= 0 {
			return fmt.Errorf("%s %s: want a duration > 0", p.flag, p.d)
		}
	}
	for _, p := range []struct {
		flag string
		d    time.Duration
	}{{"--shutdown-timeout", cfg.ShutdownTimeout}, {"--token-ttl", cfg.TokenTTL}, {"--rotate-grace", cfg.RotateGrace}} {
		if p.d < 0 {
			return fmt.Errorf("%s %s: want a duration ≥ 0", p.flag, p.d)
		}
	}
	for _, p := range []struct {
		flag string
		n    int64
		min  int64
	}{
		{"--max-events", int64(maxEvents), 1},
		{"--max-trace-bytes", cfg.Limits.MaxTraceBytes, 1},
		{"--max-proof-bytes", cfg.Limits.MaxProofBytes, 1},
		{"--max-verify-attempts", int64(cfg.MaxVerifyAttempts), 1},
		{"--redis-wait-replicas", int64(cfg.RedisWaitReplicas), 0},
		{"--max-leases-per-prover", int64(cfg.Abuse.MaxLeases), 0},
		{"--claim-burst", int64(cfg.Abuse.ClaimBurst), 0},
		{"--submit-burst", int64(cfg.Abuse.SubmitBurst), 0},
		{"--suspend-window", int64(cfg.Abuse.SuspendWindow), 0},
		{"--suspend-min-proofs", int64(cfg.Abuse.SuspendMinProofs), 0},
	} {
		if p.n < p.min {
			return fmt.Errorf("%s %d: want a number ≥ %d", p.flag, p.n, p.min)
		}
	}
	for _, p := range []struct {
		flag      string
		rate      float64
		burstFlag string
		burst     int
	}{{"--claim-rate", cfg.Abuse.ClaimRate, "--claim-burst", cfg.Abuse.ClaimBurst}, {"--submit-rate", cfg.Abuse.SubmitRate, "--submit-burst", cfg.Abuse.SubmitBurst}} {
		if p.rate < 0 || math.IsNaN(p.rate) {
			return fmt.Errorf("%s %v: want a rate ≥ 0 (0: no limit)", p.flag, p.rate)
		}
		if p.rate > 0 && p.burst < 1 {
			return fmt.Errorf("%s %d: a %s above 0 needs a burst ≥ 1", p.burstFlag, p.burst, p.flag)
		}
	}
	if r := cfg.Abuse.SuspendRejectRatio; r < 0 || r > 1 || math.IsNaN(r) {
		return fmt.Errorf("--suspend-reject-ratio %v: want a share between 0 and 1", r)
	}
	return nil
}
