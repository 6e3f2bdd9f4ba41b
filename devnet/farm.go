package devnet

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/backends/plonkish"
	"github.com/pouwfarm/pouwfarm/backends/stark"
	"github.com/pouwfarm/pouwfarm/coordinator"
	"github.com/pouwfarm/pouwfarm/coordinator/client"
	"github.com/pouwfarm/pouwfarm/gpu"
	"github.com/pouwfarm/pouwfarm/scheduler"
	"github.com/pouwfarm/pouwfarm/scheduler/agent"
)

// Backends returns the registry of every backend a farm runs and a
// coordinator verifies with: the STARK and the PLONKish prover.
func Backends() (*backends.Registry, error) {
	s, err := stark.New(stark.Config{})
	if err != nil {
		return nil, fmt.Errorf("devnet: stark backend: %w", err)
	}
	return backends.NewRegistry(s, plonkish.New(plonkish.Options{}))
}

// FarmOptions configure a farm: one agent over this host's slots.
type FarmOptions struct {
	Coordinator string // URL
	Token       string
	// ProverID, when set, is checked against the prover the coordinator
	// leases to (agent.ErrProverMismatch); empty takes it from the claims.
	ProverID string
	Host     scheduler.HostOptions
	// GPUs is the GPU source (gpu.Open, or gpu.Null for --gpus none).
	GPUs     gpu.Source
	Backends *backends.Registry
	Logger   *slog.Logger
	// MetricsAddr, when set, serves /metrics (GPU and farm metrics),
	// /healthz (the process is up) and /readyz (the agent has its slots
	// and the coordinator has answered a claim) there.
	MetricsAddr string
	// MetricsListener, when set, is served as MetricsAddr would be (a
	// caller that must know the port listens on :0 itself).
	MetricsListener net.Listener
	// Registry receives the metrics (a fresh one with the Go and process
	// collectors when nil).
	Registry   *prometheus.Registry
	DrainGrace time.Duration
	MinReward  uint64
	// IdleMin/IdleMax bound the backoff when there is nothing to do.
	IdleMin, IdleMax time.Duration
	// FailBackoffMin/FailBackoffMax bound a slot's rest after a failed or
	// rejected job (agent.Options; defaults 1 s and 30 s).
	FailBackoffMin, FailBackoffMax time.Duration
	// Workers, when set, proves the backends in Isolate (all when empty)
	// in per-slot worker processes.
	Workers *agent.WorkerPool
	Isolate []string
	// OnDone is told of every finished job (agent.Options.OnDone).
	OnDone func(agent.JobResult)
	// TLS configures HTTPS to the coordinator (client.TLSConfig: CA and
	// the mTLS client certificate); nil for the system defaults.
	TLS *tls.Config
	// Pprof serves /debug/pprof beside /metrics on MetricsAddr.
	Pprof bool
}

// RunFarm builds the slots, starts the GPU health loop and the metrics
// endpoint, and runs the agent until ctx ends and the drain is over.
func RunFarm(ctx context.Context, o FarmOptions) error {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.GPUs == nil {
		o.GPUs = gpu.Null{Reason: "no GPU source given"}
	}
	cl, err := client.New(o.Coordinator, client.Options{Token: o.Token, TLS: o.TLS})
	if err != nil {
		return err
	}
	slots, excl, err := scheduler.DeviceModel(o.Host, o.GPUs.Devices(), o.GPUs.Unavailable())
	if err != nil {
		return err
	}
	for _, e := range excl {
		o.Logger.Info("device excluded", "device", e.Device, "reason", e.Reason)
	}
	if len(slots) == 0 {
		return errors.New("devnet: this farm has no slots to prove on (see pouw devices)")
	}
	alloc, err := scheduler.NewAllocator(slots, agent.SchedulerBackends(o.Backends))
	if err != nil {
		return err
	}
	reg := o.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if err := coordinator.RegisterBuildInfo(reg); err != nil {
		return err
	}
	if err := gpu.RegisterMetrics(reg, o.GPUs); err != nil {
		return err
	}
	a, err := agent.New(agent.Options{
		Coordinator: cl, ProverID: o.ProverID, Pool: scheduler.NewPool(alloc), Backends: o.Backends,
		GPUs: o.GPUs, Logger: o.Logger, Registerer: reg, DrainGrace: o.DrainGrace, MinReward: o.MinReward,
		IdleMin: o.IdleMin, IdleMax: o.IdleMax, FailBackoffMin: o.FailBackoffMin, FailBackoffMax: o.FailBackoffMax, Workers: o.Workers, Isolate: o.Isolate, OnDone: o.OnDone,
	})
	if err != nil {
		return err
	}
	if o.Workers != nil && (len(o.Isolate) == 0 || slices.Contains(o.Isolate, plonkish.Name)) {
		// Worker processes make their own keys; warming here would not
		// reach them.
		o.Logger.Debug("plonkish proves in worker processes; not warmed in the farm")
	} else {
		warmPlonkish(o.Backends, o.Logger)
	}
	if w, ok := o.GPUs.(interface{ WatchHealth(context.Context) error }); ok {
		go func() { _ = w.WatchHealth(ctx) }()
	}
	if ln := o.MetricsListener; ln != nil || o.MetricsAddr != "" {
		if ln == nil {
			if ln, err = net.Listen("tcp", o.MetricsAddr); err != nil {
				return fmt.Errorf("devnet: metrics listener: %w", err)
			}
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "ok\n")
		})
		mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
			if !a.Ready() {
				http.Error(w, "not ready: the coordinator has not answered a claim yet", http.StatusServiceUnavailable)
				return
			}
			_, _ = io.WriteString(w, "ready\n")
		})
		if o.Pprof {
			// Registered on this mux only (not http.DefaultServeMux):
			// profiles are served only where asked for.
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
			o.Logger.Info("farm pprof", "url", "http://"+ln.Addr().String()+"/debug/pprof/")
		}
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = hs.Serve(ln) }()
		defer hs.Close()
		o.Logger.Info("farm metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	}
	if o.Workers != nil {
		defer o.Workers.Close()
	}
	prover := o.ProverID
	if prover == "" {
		prover = "(the token's)"
	}
	o.Logger.Info("farm started", "coordinator", o.Coordinator, "prover", prover, "slots", len(slots), "backends", o.Backends.Names())
	return a.Run(ctx)
}

// plonkishMicroK is the PLONKish circuit size of a Micro window (the
// smallest circuit, 2^9 rows, that holds the range table).
const plonkishMicroK = 9

// warmPlonkish makes the PLONKish keys and Lagrange generators of a Micro
// window in the background when the farm runs that backend, so the first
// Micro job does not pay for key generation. A failure is only logged: the
// first job makes the keys itself (and reports the error with the job).
func warmPlonkish(reg *backends.Registry, log *slog.Logger) {
	b, err := reg.Get(plonkish.Name)
	if err != nil {
		return
	}
	w, ok := b.(interface{ WarmProver(k int) error })
	if !ok {
		return
	}
	go func() {
		start := time.Now()
		if err := w.WarmProver(plonkishMicroK); err != nil {
			log.Warn("plonkish prover warm-up failed", "k", plonkishMicroK, "err", err)
			return
		}
		log.Info("plonkish prover warmed", "k", plonkishMicroK, "seconds", time.Since(start).Seconds())
	}()
}
