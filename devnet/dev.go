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
	// BatchBackend, when set, makes every Full turn a batch of the batch
	// DAG (issue 9): BatchSize Macro intents of Steps/BatchSize steps are
	// uploaded and posted to POST /v1/pouw/batches, which makes BatchSize
	// Macro child jobs and one Full aggregation job over their proofs. It
	// must name a backends.Aggregator of Backends (the coordinator proves
	// batches with it). Empty: a Full turn is one Full trace ingested as a
	// job of the Full tier's backend.
	BatchBackend string
	// Workers, when set, proves the backends in Isolate in per-slot worker
	// processes, as pouw farm does (FarmOptions).
	Workers *agent.WorkerPool
	Isolate []string
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

// Summary is what pouw dev --exit-when-done prints. Jobs counts every job
// made, the children and aggregation jobs of batches included.
type Summary struct {
	Jobs      int                `json:"jobs"`
	Completed int                `json:"completed"`
	Dead      int                `json:"dead"`
	Other     int                `json:"other"`
	Elapsed   time.Duration      `json:"elapsed_ns"`
	Tiers     []TierSummary      `json:"tiers"`
	Batches   *BatchSummary      `json:"batches,omitempty"`
	Pool      pouw.PoolStatus    `json:"pool"`
	Provers   []pouw.ProverStats `json:"provers"`
}

// BatchSummary counts the batches of a run with DevOptions.BatchBackend.
// Their jobs are also counted in the tiers: children as Macro, aggregation
// jobs as Full.
type BatchSummary struct {
	Backend string `json:"backend"`
	K       int    `json:"k"`
	Batches int    `json:"batches"`
	// Aggregated counts the batches whose aggregation job completed: its
	// one aggregate proof verified by the coordinator and stored
	// (proof_ref set).
	Aggregated        int `json:"aggregated"`
	Dead              int `json:"dead"`
	Children          int `json:"children"`
	ChildrenCompleted int `json:"children_completed"`
}

// OK reports whether every job completed (its proof verified by the
// coordinator), every batch ended as one verified aggregate proof, and the
// fee pool balances.
func (s Summary) OK() bool {
	if s.Batches != nil && (s.Batches.Aggregated != s.Batches.Batches || s.Batches.ChildrenCompleted != s.Batches.Children) {
		return false
	}
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
	if o.BatchBackend != "" {
		if err := checkBatchBackend(reg, o.BatchBackend, o.BatchSize); err != nil {
			return Summary{}, err
		}
	}
	for _, t := range o.Tiers {
		if t == pouw.TierFull && o.BatchBackend != "" {
			continue // batches: proved by the batch backend
		}
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
			Workers: o.Workers, Isolate: o.Isolate,
		})
	}()
	stop := func() error {
		stopFarm()
		return <-farmDone
	}

	start := time.Now()
	gen := &generator{o: o, admin: admin}
	var ids []string // every job made
	turns := 0       // jobs generated, a batch counting as one
	progress := time.NewTicker(o.Progress)
	defer progress.Stop()
	settle := time.NewTicker(250 * time.Millisecond)
	defer settle.Stop()
	next := time.After(0)
	for {
		select {
		case <-ctx.Done():
			_ = stop()
			return summarize(context.WithoutCancel(ctx), admin, ids, gen.batches, time.Since(start))
		case err := <-farmDone:
			return Summary{}, fmt.Errorf("devnet: the farm stopped: %w", err)
		case <-next:
			if o.Jobs > 0 {
				for turns < o.Jobs && ctx.Err() == nil {
					made, err := gen.ingest(ctx, turns)
					if err != nil {
						_ = stop()
						return Summary{}, err
					}
					ids = append(ids, made...)
					turns++
				}
				o.Logger.Info("generated jobs", "jobs", len(ids), "batches", len(gen.batches))
				next = nil
			} else {
				made, err := gen.ingest(ctx, turns)
				if err != nil {
					_ = stop()
					return Summary{}, err
				}
				ids = append(ids, made...)
				turns++
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
			if o.ExitWhenDone && o.Jobs > 0 && turns == o.Jobs && settledAll(ctx, admin, ids) {
				if err := stop(); err != nil {
					return Summary{}, err
				}
				return summarize(ctx, admin, ids, gen.batches, time.Since(start))
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

// checkBatchBackend refuses a batch backend the farm and coordinator do
// not run, one that does not aggregate, or a batch size no batch can have.
func checkBatchBackend(reg *backends.Registry, name string, k int) error {
	b, err := reg.Get(name)
	if err != nil {
		return fmt.Errorf("devnet: batches would be proved by backend %q, which this binary does not run: %w", name, err)
	}
	if _, ok := b.(backends.Aggregator); !ok {
		return fmt.Errorf("devnet: backend %q does not aggregate proofs, so it cannot prove batches", name)
	}
	if !pouw.ValidBatchSize(k) {
		return fmt.Errorf("devnet: batch size %d: a batch has a power of two in [%d, %d] intents", k, pouw.MinBatch, pouw.MaxBatch)
	}
	return nil
}

// generator makes synthetic intents: tier i%len(tiers), workload cycling,
// seed i.
type generator struct {
	o       DevOptions
	admin   *client.Client
	batches []batchJobs // with BatchBackend: the batches made
}

// batchJobs are the jobs of one batch.
type batchJobs struct {
	aggregation string
	children    []string
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

// ingest makes turn i's work and returns the ids of the jobs it made: one,
// or a batch's children and its aggregation job.
func (g *generator) ingest(ctx context.Context, i int) ([]string, error) {
	if g.o.BatchBackend != "" && g.o.Tiers[i%len(g.o.Tiers)] == pouw.TierFull {
		return g.batch(ctx, i)
	}
	tr, err := g.trace(i)
	if err != nil {
		return nil, fmt.Errorf("devnet: generating intent %d: %w", i, err)
	}
	info, err := g.upload(ctx, tr)
	if err != nil {
		return nil, err
	}
	if _, err := g.admin.Deposit(ctx, rewardPerJob, "pouw dev"); err != nil {
		return nil, fmt.Errorf("devnet: deposit: %w", err)
	}
	resp, err := g.admin.Ingest(ctx, pouw.IngestRequest{
		Tier: tr.Header.Tier, IntentID: tr.Header.IntentID, TraceHash: info.Hash,
		FeeBudget: rewardPerJob, RewardBudget: rewardPerJob,
	})
	if err != nil {
		return nil, fmt.Errorf("devnet: ingest: %w", err)
	}
	return []string{resp.Job.JobID}, nil
}

func (g *generator) upload(ctx context.Context, tr *trace.Trace) (pouw.BlobInfo, error) {
	var buf bytes.Buffer
	if err := trace.Encode(&buf, tr); err != nil {
		return pouw.BlobInfo{}, err
	}
	info, err := g.admin.UploadBlob(ctx, buf.Bytes())
	if err != nil {
		return info, fmt.Errorf("devnet: upload: %w", err)
	}
	return info, nil
}

// BatchTraces makes the k Macro intent traces of batch seed: workload
// name, about steps steps each, distinct seeds (a batch refuses two equal
// statements).
func BatchTraces(name string, seed, steps uint64, k int) ([]*trace.Trace, error) {
	out := make([]*trace.Trace, k)
	for j := range out {
		var err error
		if out[j], err = workload.Macro(name, seed*uint64(pouw.MaxBatch)+uint64(j), steps); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// batch makes turn i a batch: BatchSize Macro intents of Steps/BatchSize
// steps, uploaded and posted to the batch route.
func (g *generator) batch(ctx context.Context, i int) ([]string, error) {
	k := g.o.BatchSize
	name := g.o.Workloads[(i/len(g.o.Tiers))%len(g.o.Workloads)]
	trs, err := BatchTraces(name, uint64(i)+1, max(g.o.Steps/uint64(k), 1), k)
	if err != nil {
		return nil, fmt.Errorf("devnet: generating batch %d: %w", i, err)
	}
	req := pouw.BatchRequest{FeeBudget: rewardPerJob, RewardBudget: rewardPerJob}
	for _, tr := range trs {
		info, err := g.upload(ctx, tr)
		if err != nil {
			return nil, err
		}
		req.Intents = append(req.Intents, pouw.BatchIntent{IntentID: tr.Header.IntentID, TraceHash: info.Hash,
			FeeBudget: rewardPerJob, RewardBudget: rewardPerJob})
	}
	if _, err := g.admin.Deposit(ctx, uint64(k+1)*rewardPerJob, "pouw dev batch"); err != nil {
		return nil, fmt.Errorf("devnet: deposit: %w", err)
	}
	resp, err := g.admin.CreateBatch(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("devnet: batch: %w", err)
	}
	b := batchJobs{aggregation: resp.Aggregation.JobID}
	for _, c := range resp.Children {
		b.children = append(b.children, c.JobID)
	}
	g.batches = append(g.batches, b)
	return append(slices.Clone(b.children), b.aggregation), nil
}

// summarize reads every job and its history.
func summarize(ctx context.Context, admin *client.Client, ids []string, batches []batchJobs, elapsed time.Duration) (Summary, error) {
	s := Summary{Jobs: len(ids), Elapsed: elapsed}
	states := map[string]pouw.ProofJob{}
	per := map[pouw.JobTier]*TierSummary{}
	times := map[pouw.JobTier][]time.Duration{}
	for _, id := range ids {
		j, err := admin.Job(ctx, id)
		if err != nil {
			return s, fmt.Errorf("devnet: summary: %w", err)
		}
		states[id] = j
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
	if len(batches) > 0 {
		s.Batches = summarizeBatches(batches, states)
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

// summarizeBatches counts the batches whose aggregation job completed with
// a stored proof, and their children.
func summarizeBatches(batches []batchJobs, jobs map[string]pouw.ProofJob) *BatchSummary {
	bs := &BatchSummary{Batches: len(batches)}
	for _, b := range batches {
		agg := jobs[b.aggregation]
		bs.Backend, bs.K = agg.Backend, len(b.children)
		switch {
		case agg.State == pouw.StateCompleted && agg.ProofRef != "":
			bs.Aggregated++
		case agg.State == pouw.StateDead:
			bs.Dead++
		}
		for _, c := range b.children {
			bs.Children++
			if jobs[c].State == pouw.StateCompleted {
				bs.ChildrenCompleted++
			}
		}
	}
	return bs
}
