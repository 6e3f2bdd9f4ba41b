package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/backends/plonkish"
	"github.com/pouwfarm/pouwfarm/backends/stark"
	"github.com/pouwfarm/pouwfarm/coordinator/blob"
	"github.com/pouwfarm/pouwfarm/coordinator/store/redisstore"
	"github.com/pouwfarm/pouwfarm/pouw"
)

var quiet = slog.New(slog.DiscardHandler)

func newRedis(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
}

// Config is one chaos run.
type Config struct {
	// Bin is the pouw binary to run (coordinator and farm subcommands).
	Bin string
	// Dir holds the run's data and process logs.
	Dir string
	// Seed drives the fault schedule (printed, so a run can be replayed).
	Seed int64
	// Baseline is how long the no-fault phase runs; Faults how long the
	// phase with faults runs (the same load in both).
	Baseline, Faults time.Duration
	// FaultEvery is the mean time between faults.
	FaultEvery time.Duration
	// Kinds are the faults to inject (AllFaults when empty). Every kind
	// is injected at least once (failover twice: without and with WAIT)
	// when the phase is long enough.
	Kinds []FaultKind
	// Rate is jobs ingested per second; Steps the size of a Macro intent.
	Rate  float64
	Steps uint64
	// Lease is the lease length of every tier.
	Lease time.Duration
	// Drain bounds the wait for the queue to empty after each phase.
	Drain time.Duration
	// SampleEvery is how often process memory and goroutines are sampled.
	SampleEvery time.Duration
	Logger      *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Baseline <= 0 {
		c.Baseline = 25 * time.Second
	}
	if c.Faults <= 0 {
		c.Faults = 75 * time.Second
	}
	if c.FaultEvery <= 0 {
		c.FaultEvery = 6 * time.Second
	}
	if len(c.Kinds) == 0 {
		c.Kinds = AllFaults
	}
	if c.Rate <= 0 {
		c.Rate = 2
	}
	if c.Steps == 0 {
		c.Steps = 128
	}
	if c.Lease <= 0 {
		c.Lease = 3 * time.Second
	}
	if c.Drain <= 0 {
		c.Drain = 45 * time.Second
	}
	if c.SampleEvery <= 0 {
		c.SampleEvery = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = quiet
	}
	return c
}

// Phase is the figures of one phase.
type Phase struct {
	Name        string  `json:"name"`
	Seconds     float64 `json:"seconds"`
	Ingested    int     `json:"ingested"`
	IngestErrs  int     `json:"ingest_errors"`
	Completions int     `json:"completions"`
	JobsPerSec  float64 `json:"jobs_per_s"`
	// After draining: jobs completed, dead, still unsettled.
	Completed int `json:"completed"`
	Dead      int `json:"dead"`
	Unsettled int `json:"unsettled"`
	// Violations found by the checker at the end of the phase.
	Violations []Violation `json:"violations"`
}

// Sample is one reading of a process.
type Sample struct {
	AtS        float64 `json:"at_s"`
	Proc       string  `json:"proc"`
	Start      int     `json:"start"` // which incarnation (restarts)
	RSSBytes   int64   `json:"rss_bytes"`
	Threads    int     `json:"threads"`
	Goroutines int     `json:"goroutines"` // coordinators only (-1: unknown)
}

// Report is the outcome of a run.
type Report struct {
	Seed        int64                             `json:"seed"`
	Config      string                            `json:"config"`
	Phases      []Phase                           `json:"phases"`
	FaultCounts map[FaultKind]int                 `json:"fault_counts"`
	Faults      []FaultRecord                     `json:"faults"`
	Failovers   []FailoverRecord                  `json:"failovers"`
	Fencing     []FencingRecord                   `json:"fencing"`
	Garbage     struct{ Submitted, Rejected int } `json:"garbage_proofs"`
	ClockJumps  struct{ Jumps, Observed int }     `json:"clock_jumps"`
	// Violations: the checker's at each phase end plus those found during
	// faults (acknowledged completions lost, fencing, garbage accepted).
	Violations []Violation `json:"violations"`
	// Unreadable counts acknowledged completions the harness could not
	// read back after a fault (store errors, not answers).
	Unreadable int      `json:"unreadable"`
	Samples    []Sample `json:"samples,omitempty"`
	Growth     []Growth `json:"growth"`
}

// Growth summarises memory and goroutines over the longest life of a
// process: the mean of the first and last fifth of its samples.
type Growth struct {
	Proc            string  `json:"proc"`
	Minutes         float64 `json:"minutes"`
	RSSFirstMB      float64 `json:"rss_first_mb"`
	RSSLastMB       float64 `json:"rss_last_mb"`
	GoroutinesFirst float64 `json:"goroutines_first"`
	GoroutinesLast  float64 `json:"goroutines_last"`
	ThreadsFirst    float64 `json:"threads_first"`
	ThreadsLast     float64 `json:"threads_last"`
}

// Flat reports whether memory and goroutines stayed flat: the last fifth
// no more than 50% (and 16 MB, 50 goroutines) above the first.
func (g Growth) Flat() bool {
	return g.RSSLastMB <= max(g.RSSFirstMB*1.5, g.RSSFirstMB+16) &&
		g.GoroutinesLast <= max(g.GoroutinesFirst*1.5, g.GoroutinesFirst+50)
}

// Run starts the processes, runs the no-fault phase then the fault phase,
// checks the invariants after each, and stops everything. It returns the
// report even when it fails part-way.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg = cfg.withDefaults()
	if cfg.Bin == "" || cfg.Dir == "" {
		return nil, errors.New("chaos: Config.Bin and Config.Dir are required")
	}
	rep := &Report{Seed: cfg.Seed, FaultCounts: map[FaultKind]int{},
		Config: fmt.Sprintf("baseline=%v faults=%v every=%v rate=%.1f/s steps=%d lease=%v",
			cfg.Baseline, cfg.Faults, cfg.FaultEvery, cfg.Rate, cfg.Steps, cfg.Lease)}
	cfg.Logger.Info("chaos: starting", "seed", cfg.Seed, "config", rep.Config, "dir", cfg.Dir)

	c := &cluster{cfg: cfg, log: cfg.Logger, admin: "pouwa_chaos_" + strconv.FormatInt(cfg.Seed, 36) + "_admin_token",
		prefix: "chaos", blobs: filepath.Join(cfg.Dir, "blobs")}
	defer c.shutdown()
	if err := os.MkdirAll(c.blobs, 0o755); err != nil {
		return rep, err
	}
	if err := c.startRedis(); err != nil {
		return rep, err
	}
	if err := c.startCoordinators(2); err != nil {
		return rep, err
	}
	if err := c.startFarms(ctx, 3); err != nil {
		return rep, err
	}
	chaosTok, err := c.registerProver(ctx, "chaos-harness")
	if err != nil {
		return rep, err
	}

	reg, err := registry()
	if err != nil {
		return rep, err
	}
	files, err := blob.NewFiles(c.blobs)
	if err != nil {
		return rep, err
	}
	w := &watcher{c: c, completed: map[string]time.Time{}}
	gen := &loadgen{c: c, rate: cfg.Rate, steps: cfg.Steps}
	in := &injector{c: c, rng: mrand.New(mrand.NewPCG(uint64(cfg.Seed), 0x9e3779b97f4a7c15)), w: w, gen: gen,
		chaos: chaosTok, lost: map[string]bool{}, lostIngest: map[string]bool{}, corrupted: map[pouw.Hash]bool{}}
	col := &Collector{Prefix: c.prefix, Blobs: files, Registry: reg, Corrupted: in.corrupted}

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); w.run(runCtx) }()
	go func() { defer wg.Done(); gen.run(runCtx) }()
	t0 := time.Now()
	var samplesMu sync.Mutex
	go func() {
		defer wg.Done()
		sampleLoop(runCtx, c, t0, cfg.SampleEvery, func(s Sample) {
			samplesMu.Lock()
			rep.Samples = append(rep.Samples, s)
			samplesMu.Unlock()
		})
	}()
	defer func() { stop(); wg.Wait() }()

	phase := func(name string, d time.Duration, faults bool) error {
		gen.setPaused(false)
		ids0, errs0 := gen.snapshot()
		start := time.Now()
		in.start = start
		if faults {
			in.schedule(ctx, d, cfg)
		} else {
			sleepCtx(ctx, d)
		}
		end := time.Now()
		gen.setPaused(true)
		ids1, errs1 := gen.snapshot()
		p := Phase{Name: name, Seconds: end.Sub(start).Seconds(), Ingested: len(ids1) - len(ids0),
			IngestErrs: errs1 - errs0, Completions: w.completionsBetween(start, end)}
		p.JobsPerSec = float64(p.Completions) / p.Seconds
		// Drain: the farms finish what is queued, then the checker runs
		// on a quiet store.
		if err := drain(ctx, c, cfg.Drain); err != nil {
			cfg.Logger.Warn("chaos: drain incomplete", "phase", name, "err", err)
		}
		w.poll(ctx)
		col.Redis = c.primaryClient()
		acked := []string{}
		for _, id := range w.acked(time.Now()) {
			if !in.lost[id] {
				acked = append(acked, id)
			}
		}
		var known []string // jobs lost with a failover's split are counted there
		for _, id := range ids1 {
			if !in.lostIngest[id] {
				known = append(known, id)
			}
		}
		snap, err := col.Collect(ctx, known, acked)
		col.Redis.Close()
		if err != nil {
			return fmt.Errorf("chaos: collect after %s: %w", name, err)
		}
		for _, j := range snap.Jobs {
			switch j.State {
			case pouw.StateCompleted:
				p.Completed++
			case pouw.StateDead:
				p.Dead++
			default:
				p.Unsettled++
			}
		}
		p.Violations = Check(snap)
		rep.Violations = append(rep.Violations, p.Violations...)
		rep.Phases = append(rep.Phases, p)
		cfg.Logger.Info("chaos: phase done", "phase", name, "jobs_per_s", fmt.Sprintf("%.2f", p.JobsPerSec),
			"completed", p.Completed, "dead", p.Dead, "unsettled", p.Unsettled, "violations", len(p.Violations))
		return nil
	}
	if err := phase("no-fault", cfg.Baseline, false); err != nil {
		return rep, err
	}
	if err := phase("faults", cfg.Faults, true); err != nil {
		return rep, err
	}

	for i := range in.faults {
		f := &in.faults[i]
		rep.FaultCounts[f.Kind]++
		f.RecoverMs = -1
		if t, ok := w.firstCompletionAfter(f.end); ok {
			f.RecoverMs = t.Sub(f.end).Milliseconds()
		}
	}
	rep.Faults, rep.Failovers, rep.Fencing = in.faults, in.failovers, in.fencing
	rep.Garbage, rep.ClockJumps = in.garbage, in.jumps
	rep.Violations = append(rep.Violations, in.violations...)
	rep.Unreadable = in.unreadable
	stop()
	wg.Wait()
	rep.Growth = growth(rep.Samples)
	return rep, nil
}

// schedule injects faults for d: every kind once (failover twice, so it
// is measured without and with WAIT) in an order drawn from the seed,
// then kinds drawn at random, at intervals drawn around FaultEvery.
func (in *injector) schedule(ctx context.Context, d time.Duration, cfg Config) {
	var plan []FaultKind
	for _, k := range cfg.Kinds {
		plan = append(plan, k)
		if k == FaultFailover {
			plan = append(plan, k)
		}
	}
	in.rng.Shuffle(len(plan), func(i, j int) { plan[i], plan[j] = plan[j], plan[i] })
	deadline := in.start.Add(d)
	for i := 0; ; i++ {
		gap := time.Duration(float64(cfg.FaultEvery) * (0.5 + in.rng.Float64()))
		// The plan runs to its end even past d (it is bounded), so
		// every kind is injected; random extra faults fill the rest.
		if i >= len(plan) && (!sleepCtx(ctx, min(gap, time.Until(deadline))) || !time.Now().Before(deadline)) {
			return
		}
		if i < len(plan) && !sleepCtx(ctx, gap) {
			return
		}
		k := cfg.Kinds[in.rng.IntN(len(cfg.Kinds))]
		if i < len(plan) {
			k = plan[i]
		}
		in.inject(ctx, k)
		if i+1 >= len(plan) && !time.Now().Before(deadline) {
			return
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// drain waits until no job is pending, leased or waiting.
func drain(ctx context.Context, c *cluster, within time.Duration) error {
	deadline := time.Now().Add(within)
	var last string
	for {
		rc := c.primaryClient()
		st, err := redisstore.New(ctx, rc, redisstore.Options{TestClock: true, Prefix: c.prefix, Logger: quiet})
		if err == nil {
			var s pouw.SystemStatus
			s, err = st.Status(ctx)
			if err == nil {
				var open uint64
				for _, t := range s.Tiers {
					open += t.Counts[pouw.StatePending] + t.Counts[pouw.StateLeased] + t.Counts[pouw.StateWaiting]
				}
				if open == 0 {
					rc.Close()
					return nil
				}
				last = fmt.Sprintf("%d jobs still open", open)
			}
		}
		rc.Close()
		if err != nil {
			last = err.Error()
		}
		if time.Now().After(deadline) || !sleepCtx(ctx, 300*time.Millisecond) {
			return errors.New(last)
		}
	}
}

// registry is every backend the farms prove with, for offline checks.
func registry() (*backends.Registry, error) {
	s, err := stark.New(stark.Config{})
	if err != nil {
		return nil, err
	}
	return backends.NewRegistry(s, plonkish.New(plonkish.Options{}))
}

var goroutinesRE = regexp.MustCompile(`(?m)^go_goroutines (\d+)`)

func sampleLoop(ctx context.Context, c *cluster, t0 time.Time, every time.Duration, add func(Sample)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for i, p := range c.coords {
			s := sampleProc(p, t0)
			s.Goroutines = -1
			mctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			if m, err := c.client(i, c.admin).Metrics(mctx); err == nil {
				if g := goroutinesRE.FindStringSubmatch(m); g != nil {
					s.Goroutines, _ = strconv.Atoi(g[1])
				}
			}
			cancel()
			if s.RSSBytes > 0 {
				add(s)
			}
		}
		for _, p := range c.farms {
			s := sampleProc(p, t0)
			s.Goroutines = -1
			if s.RSSBytes > 0 {
				add(s)
			}
		}
	}
}

func sampleProc(p *proc, t0 time.Time) Sample {
	p.mu.Lock()
	start := p.restarts
	p.mu.Unlock()
	s := Sample{AtS: time.Since(t0).Seconds(), Proc: p.name, Start: start}
	if pid := p.pid(); pid > 0 && p.running() {
		s.RSSBytes, s.Threads, _ = procStat(pid)
	}
	return s
}

func growth(samples []Sample) []Growth {
	type key struct {
		proc  string
		start int
	}
	lives := map[key][]Sample{}
	for _, s := range samples {
		k := key{s.Proc, s.Start}
		lives[k] = append(lives[k], s)
	}
	// Two views per process: its longest life, and all its samples
	// across restarts (a process restarted often shows no growth in one
	// life; its level across the whole run still must not climb).
	best := map[string][]Sample{}
	for k, l := range lives {
		if len(l) > len(best[k.proc+" (longest life)"]) {
			best[k.proc+" (longest life)"] = l
		}
	}
	for _, s := range samples {
		best[s.Proc+" (all)"] = append(best[s.Proc+" (all)"], s)
	}
	var out []Growth
	for _, name := range sortedKeys(best) {
		l := best[name]
		if len(l) < 5 {
			continue
		}
		n := max(1, len(l)/5)
		mean := func(ss []Sample, f func(Sample) float64) float64 {
			var t float64
			for _, s := range ss {
				t += f(s)
			}
			return t / float64(len(ss))
		}
		rss := func(s Sample) float64 { return float64(s.RSSBytes) / (1 << 20) }
		gor := func(s Sample) float64 { return float64(s.Goroutines) }
		thr := func(s Sample) float64 { return float64(s.Threads) }
		first, last := l[:n], l[len(l)-n:]
		out = append(out, Growth{Proc: name, Minutes: (l[len(l)-1].AtS - l[0].AtS) / 60,
			RSSFirstMB: mean(first, rss), RSSLastMB: mean(last, rss),
			GoroutinesFirst: mean(first, gor), GoroutinesLast: mean(last, gor),
			ThreadsFirst: mean(first, thr), ThreadsLast: mean(last, thr)})
	}
	return out
}

// WriteText renders the report for people.
func (r *Report) WriteText(w io.Writer) {
	fmt.Fprintf(w, "chaos run, seed %d (%s)\n\n", r.Seed, r.Config)
	fmt.Fprintf(w, "%-9s %8s %9s %8s %8s %9s %5s %9s %10s\n", "PHASE", "SECONDS", "INGESTED", "ERRORS", "JOBS/S", "COMPLETED", "DEAD", "UNSETTLED", "VIOLATIONS")
	for _, p := range r.Phases {
		fmt.Fprintf(w, "%-9s %8.1f %9d %8d %8.2f %9d %5d %9d %10d\n", p.Name, p.Seconds, p.Ingested, p.IngestErrs,
			p.JobsPerSec, p.Completed, p.Dead, p.Unsettled, len(p.Violations))
	}
	if len(r.Phases) == 2 && r.Phases[0].JobsPerSec > 0 {
		fmt.Fprintf(w, "throughput under faults: %.0f%% of the no-fault run\n", 100*r.Phases[1].JobsPerSec/r.Phases[0].JobsPerSec)
	}
	fmt.Fprintf(w, "\nfaults by kind:")
	for _, k := range AllFaults {
		fmt.Fprintf(w, " %s=%d", k, r.FaultCounts[k])
	}
	fmt.Fprintf(w, "\n\n%-7s %-17s %10s  %s\n", "AT_S", "KIND", "RECOVER_MS", "TARGET / DETAIL")
	for _, f := range r.Faults {
		d := f.Target
		if f.Detail != "" {
			d += " — " + f.Detail
		}
		if f.Err != "" {
			d += " — ERROR " + f.Err
		}
		fmt.Fprintf(w, "%7.1f %-17s %10d  %s\n", f.AtS, f.Kind, f.RecoverMs, d)
	}
	fmt.Fprintln(w)
	for _, f := range r.Failovers {
		fmt.Fprintf(w, "failover with --redis-wait-replicas=%d: %d acknowledged completions, %d lost; %d ingests during the split, %d lost\n",
			f.WaitReplicas, f.Acked, f.Lost, f.Ingested, f.LostIngests)
	}
	refused := 0
	for _, f := range r.Fencing {
		if f.Refused {
			refused++
		}
	}
	fmt.Fprintf(w, "stale-lease probes: %d, late renew and submit refused in %d\n", len(r.Fencing), refused)
	fmt.Fprintf(w, "garbage proofs: %d submitted, %d rejected\n", r.Garbage.Submitted, r.Garbage.Rejected)
	fmt.Fprintf(w, "store clock jumps: %d, seen by the coordinators: %d\n", r.ClockJumps.Jumps, r.ClockJumps.Observed)
	if len(r.Growth) > 0 {
		fmt.Fprintf(w, "\n%-30s %7s %12s %11s %13s %12s %6s\n", "PROCESS", "MINUTES", "RSS_FIRST_MB", "RSS_LAST_MB", "GOROUT_FIRST", "GOROUT_LAST", "FLAT")
		for _, g := range r.Growth {
			fmt.Fprintf(w, "%-30s %7.1f %12.1f %11.1f %13.0f %12.0f %6v\n", g.Proc, g.Minutes, g.RSSFirstMB, g.RSSLastMB, g.GoroutinesFirst, g.GoroutinesLast, g.Flat())
		}
	}
	if r.Unreadable > 0 {
		fmt.Fprintf(w, "\nacknowledged completions the store could not be asked about after a fault: %d\n", r.Unreadable)
	}
	fmt.Fprintf(w, "\ninvariant violations: %d\n", len(r.Violations))
	vs := append([]Violation(nil), r.Violations...)
	sort.SliceStable(vs, func(i, j int) bool { return vs[i].Invariant < vs[j].Invariant })
	for i, v := range vs {
		if i == 50 {
			fmt.Fprintf(w, "  ... %d more\n", len(vs)-50)
			break
		}
		fmt.Fprintf(w, "  %s\n", v)
	}
}
