package devnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/coordinator/api"
	"github.com/pouwfarm/pouwfarm/coordinator/client"
	"github.com/pouwfarm/pouwfarm/gpu"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/scheduler"
	"github.com/pouwfarm/pouwfarm/scheduler/agent"
	"github.com/pouwfarm/pouwfarm/trace"
	"github.com/pouwfarm/pouwfarm/trace/workload"
)

// DevOptions configure pouw dev.
type DevOptions struct {
	// DataDir holds the coordinator's files; a fresh temporary directory,
	// removed at the end, when empty.
	DataDir string
	Addr    string
	// Jobs is how many jobs to generate (0: keep generating every Interval).
	Jobs int
	// ExitWhenDone ends the run once every generated job is completed or dead.
	ExitWhenDone bool
	Interval     time.Duration
	Tiers        []pouw.JobTier
	Workloads    []string
	// Steps is the size of an intent; a Full job batches BatchSize intents
	// of Steps/BatchSize steps each; a Micro job is a Window-step window.
	Steps     uint64
	BatchSize int
	Window    uint64
	Tiers2B   api.TierBackends
	Host      scheduler.HostOptions
	GPUs      gpu.Source
	Logger    *slog.Logger
	// Progress is the period of the progress log line (default 2 s).
	Progress time.Duration
	// Backends proves and verifies (default Backends()).
	Backends *backends.Registry
	// OnProgress, when set, receives the progress every Progress period
	// instead of the progress log line (a live terminal display).
	OnProgress func(Progress)
	// OnReady is told the coordinator's URL and admin token once it serves.
	OnReady func(url, adminToken, tokenFile string)
}

// Progress is the state of a pouw dev run, for a live display.
type Progress struct {
	Elapsed time.Duration
	Tiers   []TierProgress
	// Proved counts the proofs this process's farm finished and had accepted.
	Proved          int
	ProofsPerSecond float64
}

// TierProgress is one tier's jobs per state and its proof times so far.
type TierProgress struct {
	Tier     pouw.JobTier
	Counts   map[pouw.State]uint64
	P50, P95 time.Duration // proving time of this farm's completed jobs
}

// proofTimes collects proving times per tier from the farm's OnDone.
type proofTimes struct {
	mu sync.Mutex
	d  map[pouw.JobTier][]time.Duration
	n  int
}

func (p *proofTimes) add(r agent.JobResult) {
	if r.Outcome != agent.OutcomeCompleted {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.d == nil {
		p.d = map[pouw.JobTier][]time.Duration{}
	}
	p.d[r.Tier] = append(p.d[r.Tier], r.Proving)
	p.n++
}

func (p *proofTimes) progress(st pouw.SystemStatus, elapsed time.Duration) Progress {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := Progress{Elapsed: elapsed, Proved: p.n}
	if elapsed > 0 {
		out.ProofsPerSecond = float64(p.n) / elapsed.Seconds()
	}
	for _, ts := range st.Tiers {
		out.Tiers = append(out.Tiers, TierProgress{Tier: ts.Tier, Counts: ts.Counts,
			P50: percentile(p.d[ts.Tier], 0.5), P95: percentile(p.d[ts.Tier], 0.95)})
	}
	return out
}

// TierSummary is one tier's line of the summary.
type TierSummary struct {
	Tier      pouw.JobTier  `json:"tier"`
	Jobs      int           `json:"jobs"`
	Completed int           `json:"completed"`
	Dead      int           `json:"dead"`
	P50       time.Duration `json:"p50_ns"`
	P95       time.Duration `json:"p95_ns"`
}

// Summary is what pouw dev --exit-when-done prints.
type Summary struct {
	Jobs      int                `json:"jobs"`
	Completed int                `json:"completed"`
	Dead      int                `json:"dead"`
	Other     int                `json:"other"`
	Elapsed   time.Duration      `json:"elapsed_ns"`
	Tiers     []TierSummary      `json:"tiers"`
	Pool      pouw.PoolStatus    `json:"pool"`
	Provers   []pouw.ProverStats `json:"provers"`
}

// OK reports whether every job completed (its proof verified by the
// coordinator) and the fee pool balances.
func (s Summary) OK() bool {
	return s.Jobs > 0 && s.Completed == s.Jobs && s.Pool.Balanced()
}

// ProofsPerSecond is the completed jobs over the run's wall time.
func (s Summary) ProofsPerSecond() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Completed) / s.Elapsed.Seconds()
}

const rewardPerJob = 1000

// Dev runs pouw dev until ctx ends or, with ExitWhenDone, every job is
// settled; it returns the summary of the jobs it generated.
func Dev(ctx context.Context, o DevOptions) (Summary, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if len(o.Tiers) == 0 {
		o.Tiers = pouw.Tiers[:]
	}
	if len(o.Workloads) == 0 {
		o.Workloads = workload.Names()
	}
	if o.Steps == 0 {
		o.Steps = 256
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 4
	}
	if o.Window == 0 {
		o.Window = 16
	}
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.Progress <= 0 {
		o.Progress = 2 * time.Second
	}
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if o.DataDir == "" {
		dir, err := os.MkdirTemp("", "pouw-dev-")
		if err != nil {
			return Summary{}, err
		}
		defer os.RemoveAll(dir)
		o.DataDir = dir
	}
	reg := o.Backends
	if reg == nil {
		var err error
		if reg, err = Backends(); err != nil {
			return Summary{}, err
		}
	}
	for _, t := range o.Tiers {
		name := o.Tiers2B[t]
		if name == "" {
			name = api.DefaultTierBackends()[t]
		}
		if _, err := reg.Get(name); err != nil {
			return Summary{}, fmt.Errorf("devnet: %s jobs would go to backend %q, which this binary does not run: %w", t, name, err)
		}
	}
	coord, err := StartCoordinator(CoordinatorOptions{DataDir: o.DataDir, Addr: o.Addr, Backends: reg, Tiers: o.Tiers2B, Logger: o.Logger.With("component", "coordinator")})
	if err != nil {
		return Summary{}, err
	}
	defer coord.Close()
	if o.OnReady != nil {
		o.OnReady(coord.URL, coord.AdminToken, coord.TokenFile)
	}
	admin, err := client.New(coord.URL, client.Options{Token: coord.AdminToken})
	if err != nil {
		return Summary{}, err
	}
	const proverID = "dev-farm"
	pr, err := admin.RegisterProver(ctx, proverID)
	if err != nil {
		return Summary{}, fmt.Errorf("devnet: register the local farm: %w", err)
	}

	times := &proofTimes{}
	farmCtx, stopFarm := context.WithCancel(context.WithoutCancel(ctx))
	farmDone := make(chan error, 1)
	go func() {
		farmDone <- RunFarm(farmCtx, FarmOptions{
			Coordinator: coord.URL, Token: pr.Token, ProverID: proverID, Host: o.Host, GPUs: o.GPUs,
			Backends: reg, Logger: o.Logger.With("component", "farm"), DrainGrace: 10 * time.Second,
			IdleMin: 20 * time.Millisecond, IdleMax: 500 * time.Millisecond, OnDone: times.add,
		})
	}()
	stop := func() error {
		stopFarm()
		return <-farmDone
	}

	start := time.Now()
	gen := &generator{o: o, admin: admin}
	var ids []string
	progress := time.NewTicker(o.Progress)
	defer progress.Stop()
	settle := time.NewTicker(250 * time.Millisecond)
	defer settle.Stop()
	next := time.After(0)
	for {
		select {
		case <-ctx.Done():
			_ = stop()
			return summarize(context.WithoutCancel(ctx), admin, ids, time.Since(start))
		case err := <-farmDone:
			return Summary{}, fmt.Errorf("devnet: the farm stopped: %w", err)
		case <-next:
			if o.Jobs > 0 {
				for len(ids) < o.Jobs && ctx.Err() == nil {
					id, err := gen.ingest(ctx, len(ids))
					if err != nil {
						_ = stop()
						return Summary{}, err
					}
					ids = append(ids, id)
				}
				o.Logger.Info("generated jobs", "jobs", len(ids))
				next = nil
			} else {
				id, err := gen.ingest(ctx, len(ids))
				if err != nil {
					_ = stop()
					return Summary{}, err
				}
				ids = append(ids, id)
				next = time.After(o.Interval)
			}
		case <-progress.C:
			st, err := admin.Status(ctx)
			if err != nil {
				o.Logger.Warn("status", "err", err)
				continue
			}
			if o.OnProgress != nil {
				o.OnProgress(times.progress(st, time.Since(start)))
			} else {
				logProgress(o.Logger, st, time.Since(start))
			}
		case <-settle.C:
			if o.ExitWhenDone && o.Jobs > 0 && len(ids) == o.Jobs && settledAll(ctx, admin, ids) {
				if err := stop(); err != nil {
					return Summary{}, err
				}
				return summarize(ctx, admin, ids, time.Since(start))
			}
		}
	}
}

// settledAll reports whether every job of ids is completed or dead (a
// reused data dir may hold other jobs, so the status counts will not do).
func settledAll(ctx context.Context, admin *client.Client, ids []string) bool {
	for _, id := range ids {
		j, err := admin.Job(ctx, id)
		if err != nil || (j.State != pouw.StateCompleted && j.State != pouw.StateDead) {
			return false
		}
	}
	return true
}

// logProgress logs one line of job counts per state and tier.
func logProgress(log *slog.Logger, st pouw.SystemStatus, elapsed time.Duration) {
	attrs := []any{"elapsed", elapsed.Round(time.Second).String()}
	for _, ts := range st.Tiers {
		c := ts.Counts
		attrs = append(attrs, ts.Tier.String(), fmt.Sprintf("pending=%d leased=%d completed=%d dead=%d",
			c[pouw.StatePending]+c[pouw.StateWaiting], c[pouw.StateLeased], c[pouw.StateCompleted], c[pouw.StateDead]))
	}
	log.Info("progress", attrs...)
}

// generator makes synthetic intents: tier i%len(tiers), workload cycling,
// seed i.
type generator struct {
	o     DevOptions
	admin *client.Client
}

func (g *generator) trace(i int) (*trace.Trace, error) {
	tier := g.o.Tiers[i%len(g.o.Tiers)]
	name := g.o.Workloads[(i/len(g.o.Tiers))%len(g.o.Workloads)]
	seed := uint64(i) + 1
	switch tier {
	case pouw.TierMicro:
		m, err := workload.Macro(name, seed, g.o.Steps)
		if err != nil {
			return nil, err
		}
		return trace.Window(m, g.o.Window, seed%trace.Windows(m, g.o.Window))
	case pouw.TierMacro:
		return workload.Macro(name, seed, g.o.Steps)
	default:
		return workload.Full(name, seed, g.o.Steps, g.o.BatchSize)
	}
}

func (g *generator) ingest(ctx context.Context, i int) (string, error) {
	tr, err := g.trace(i)
	if err != nil {
		return "", fmt.Errorf("devnet: generating intent %d: %w", i, err)
	}
	var buf bytes.Buffer
	if err := trace.Encode(&buf, tr); err != nil {
		return "", err
	}
	info, err := g.admin.UploadBlob(ctx, buf.Bytes())
	if err != nil {
		return "", fmt.Errorf("devnet: upload: %w", err)
	}
	if _, err := g.admin.Deposit(ctx, rewardPerJob, "pouw dev"); err != nil {
		return "", fmt.Errorf("devnet: deposit: %w", err)
	}
	resp, err := g.admin.Ingest(ctx, pouw.IngestRequest{
		Tier: tr.Header.Tier, IntentID: tr.Header.IntentID, TraceHash: info.Hash,
		FeeBudget: rewardPerJob, RewardBudget: rewardPerJob,
	})
	if err != nil {
		return "", fmt.Errorf("devnet: ingest: %w", err)
	}
	return resp.Job.JobID, nil
}

// summarize reads every job and its history.
func summarize(ctx context.Context, admin *client.Client, ids []string, elapsed time.Duration) (Summary, error) {
	s := Summary{Jobs: len(ids), Elapsed: elapsed}
	per := map[pouw.JobTier]*TierSummary{}
	times := map[pouw.JobTier][]time.Duration{}
	for _, id := range ids {
		j, err := admin.Job(ctx, id)
		if err != nil {
			return s, fmt.Errorf("devnet: summary: %w", err)
		}
		ts := per[j.Tier]
		if ts == nil {
			ts = &TierSummary{Tier: j.Tier}
			per[j.Tier] = ts
		}
		ts.Jobs++
		switch j.State {
		case pouw.StateCompleted:
			s.Completed++
			ts.Completed++
			hist, err := admin.History(ctx, id)
			if err != nil {
				return s, err
			}
			for _, a := range hist {
				if a.Outcome == pouw.OutcomeCompleted && a.EndedAtMs >= a.ClaimedAtMs {
					times[j.Tier] = append(times[j.Tier], time.Duration(a.EndedAtMs-a.ClaimedAtMs)*time.Millisecond)
				}
			}
		case pouw.StateDead:
			s.Dead++
			ts.Dead++
		default:
			s.Other++
		}
	}
	for _, t := range pouw.Tiers {
		if ts := per[t]; ts != nil {
			ts.P50, ts.P95 = percentile(times[t], 0.50), percentile(times[t], 0.95)
			s.Tiers = append(s.Tiers, *ts)
		}
	}
	var err error
	if s.Pool, err = admin.Pool(ctx); err != nil {
		return s, err
	}
	if s.Provers, err = admin.Provers(ctx); err != nil {
		return s, err
	}
	return s, nil
}

func percentile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	d = slices.Clone(d)
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	i := int(q*float64(len(d))+0.5) - 1
	return d[max(0, min(i, len(d)-1))]
}

// ErrNotAllCompleted is returned by callers that need every job verified.
var ErrNotAllCompleted = errors.New("not every job completed and verified")
