// Package bench measures what operators size farms from: prove and verify
// time, proof bytes, peak memory and steps per second for every backend ×
// tier (the go test benchmarks of this package and `pouw bench` share
// Measure and the case list here), plus, in its tests, the coordinator's
// claim latency and Redis memory against queue depth. bench/run.sh runs
// them with the store, API and farm benchmarks of their own packages and
// writes bench/README.md.
//
// It owns the benchmark cases and their measurement. It builds backends
// through their public constructors and the backends registry, as
// cmd/pouw does; it must not import cmd/pouw, coordinator/api or
// scheduler (orchestration figures come from those packages' own
// benchmarks, run by run.sh).
package bench

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/backends/aggregate"
	"github.com/pouwfarm/pouwfarm/backends/plonkish"
	"github.com/pouwfarm/pouwfarm/backends/stark"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/trace"
	"github.com/pouwfarm/pouwfarm/trace/workload"
)

// FullEnv is the environment variable that adds the full sizes.
const FullEnv = "POUW_BENCH_FULL"

// KeysEnv names the directory of cached aggregate key sets (one
// subdirectory per size class and k, the layout the aggregate package's
// tests use, so both share one cache).
const KeysEnv = "POUW_BENCH_AGGREGATE_KEYS"

// Workload is the workload every case proves: Fibonacci, whose program is
// small enough for the aggregate backend's default program table.
const Workload = "fib"

// FullIntents is how many intents a Full-tier case batches (aggregate: k).
const FullIntents = 2

// Case is one backend × tier × size. Rows is the trace's row count (a power
// of two); the benchmark's name carries it as steps=<Rows>.
type Case struct {
	Backend string
	Tier    pouw.JobTier
	Rows    uint64
	Full    bool // a full size: only with POUW_BENCH_FULL=1
}

// Name is the sub-benchmark name: <backend>/<tier>/steps=<rows>.
func (c Case) Name() string { return fmt.Sprintf("%s/%s/steps=%d", c.Backend, c.Tier, c.Rows) }

// Cases lists the cases; full adds the full sizes after the default ones.
// Default sizes keep one run of the whole set within a few minutes on a
// loaded 2-core machine.
func Cases(full bool) []Case {
	cs := []Case{
		{Backend: stark.Name, Tier: pouw.TierMicro, Rows: trace.DefaultWindow},
		{Backend: stark.Name, Tier: pouw.TierMacro, Rows: 1 << 12},
		{Backend: stark.Name, Tier: pouw.TierFull, Rows: 1 << 12},
		{Backend: plonkish.Name, Tier: pouw.TierMicro, Rows: trace.DefaultWindow},
		{Backend: plonkish.Name, Tier: pouw.TierMacro, Rows: 1 << 10},
		{Backend: plonkish.Name, Tier: pouw.TierFull, Rows: 1 << 10},
		{Backend: aggregate.Name, Tier: pouw.TierMacro, Rows: 1 << aggregate.MinLogSteps},
		{Backend: aggregate.Name, Tier: pouw.TierFull, Rows: FullIntents << aggregate.MinLogSteps},
	}
	if full {
		cs = append(cs,
			Case{Backend: stark.Name, Tier: pouw.TierMacro, Rows: 1 << 16, Full: true},
			Case{Backend: stark.Name, Tier: pouw.TierMacro, Rows: 1 << 18, Full: true},
			Case{Backend: stark.Name, Tier: pouw.TierFull, Rows: 1 << 16, Full: true},
			Case{Backend: plonkish.Name, Tier: pouw.TierMacro, Rows: 1 << 13, Full: true},
			Case{Backend: plonkish.Name, Tier: pouw.TierFull, Rows: 1 << 13, Full: true},
			Case{Backend: aggregate.Name, Tier: pouw.TierMacro, Rows: 1 << aggregate.MaxLogSteps, Full: true},
		)
	}
	return cs
}

// FullFromEnv reports whether POUW_BENCH_FULL=1.
func FullFromEnv() bool { return os.Getenv(FullEnv) == "1" }

// Trace makes the case's trace: a window of a fib intent (Micro), one fib
// intent (Macro) or FullIntents fib intents back to back (Full), sized a
// little below Rows so HALT and the batch boundaries fit in Rows rows.
func Trace(c Case) (*trace.Trace, error) {
	if c.Rows == 0 || c.Rows&(c.Rows-1) != 0 {
		return nil, fmt.Errorf("bench: rows %d is not a power of two", c.Rows)
	}
	var (
		t   *trace.Trace
		err error
	)
	switch c.Tier {
	case pouw.TierMicro:
		// A window from the middle of an intent, as trace.Slice makes them.
		src, err := workload.Macro(Workload, 1, 4*c.Rows)
		if err != nil {
			return nil, err
		}
		t, err = trace.Window(src, c.Rows, 1)
		if err != nil {
			return nil, err
		}
	case pouw.TierMacro:
		t, err = workload.Macro(Workload, 1, c.Rows-c.Rows/32-8)
	case pouw.TierFull:
		t, err = workload.Full(Workload, 1, c.Rows-c.Rows/16-16*FullIntents, FullIntents)
	default:
		return nil, fmt.Errorf("bench: tier %v", c.Tier)
	}
	if err != nil {
		return nil, err
	}
	if t.Header.Rows != c.Rows {
		return nil, fmt.Errorf("bench: %s: trace has %d rows, want %d", c.Name(), t.Header.Rows, c.Rows)
	}
	return t, nil
}

// BackendConfig is what building a case's backend needs.
type BackendConfig struct {
	// Stark configures the STARK (zero: default options, 100-bit minimum).
	Stark stark.Config
	// KeysDir holds aggregate key sets (s<logsteps>-l<proglen>-k<k>);
	// missing ones are set up there first (minutes). Empty: KeysEnv, else
	// the aggregate tests' cache (aggregate.DefaultTestKeysRoot).
	KeysDir string
}

// KeysRoot is the aggregate key cache directory cfg names.
func (cfg BackendConfig) KeysRoot() string {
	if cfg.KeysDir != "" {
		return cfg.KeysDir
	}
	if d := os.Getenv(KeysEnv); d != "" {
		return d
	}
	return aggregate.DefaultTestKeysRoot()
}

// AggregateParams are the key parameters a case needs: the size class of
// its (largest) intent and k = FullIntents.
func AggregateParams(c Case) aggregate.Params {
	per := c.Rows
	if c.Tier == pouw.TierFull {
		per = c.Rows / FullIntents
	}
	ls := bits.Len64(per) - 1
	return aggregate.Params{LogSteps: max(ls, aggregate.MinLogSteps), ProgLen: aggregate.DefaultProgLen, K: FullIntents}
}

// AggregateKeys loads the key set for p from root, setting it up (and
// writing it there) when it is missing or does not match the circuits.
func AggregateKeys(ctx context.Context, root string, p aggregate.Params) (*aggregate.Keys, error) {
	k, _, err := aggregate.LoadOrSetup(ctx, p, root, nil)
	if err != nil {
		return nil, fmt.Errorf("bench: aggregate keys %+v in %s: %w", p, aggregate.CacheDir(root, p), err)
	}
	return k, nil
}

// Registry builds the backends registry for case c: the STARK, the
// plonkish backend and, when c needs it, the aggregate backend over c's
// key set (setting it up is minutes, so other cases never pay for it).
func Registry(ctx context.Context, c Case, cfg BackendConfig) (*backends.Registry, error) {
	s, err := stark.New(cfg.Stark)
	if err != nil {
		return nil, err
	}
	bs := []backends.Backend{s, plonkish.New(plonkish.Options{})}
	if c.Backend == aggregate.Name {
		ks, err := AggregateKeys(ctx, cfg.KeysRoot(), AggregateParams(c))
		if err != nil {
			return nil, err
		}
		a, err := aggregate.New(aggregate.Options{Keys: []*aggregate.Keys{ks}})
		if err != nil {
			return nil, err
		}
		bs = append(bs, a)
	}
	return backends.NewRegistry(bs...)
}

// Backend returns the registry's backend for c, refusing a tier it does not
// serve (as pouw prove does).
func Backend(reg *backends.Registry, c Case) (backends.Backend, error) {
	b, err := reg.Get(c.Backend)
	if err != nil {
		return nil, err
	}
	if !backends.Serves(b, c.Tier) {
		return nil, fmt.Errorf("%w: %s does not prove %s traces", backends.ErrUnsupportedTier, b.Name(), c.Tier)
	}
	return b, nil
}

// Statement is the statement benchmarks prove: the trace bound to a fixed
// job and prover id, as a farm's proofs are.
func Statement(t *trace.Trace) (backends.Statement, error) {
	return backends.StatementOf(t, "0123456789abcdef0123456789abcdef", "bench")
}

// Sample is one measured proof.
type Sample struct {
	Prove      time.Duration // wall time of Prove
	ProveCPU   time.Duration // process CPU time (user+system) during Prove
	Verify     time.Duration // wall time of Verify of the same proof
	ProofBytes int
	// PeakHeap is the highest Go heap (live and not yet collected objects)
	// seen during Prove, above the heap before it: the prover's working
	// memory, sampled every millisecond.
	PeakHeap uint64
}

// Measure proves t once with b and verifies the proof, returning the
// figures and the proof.
func Measure(ctx context.Context, b backends.Backend, t *trace.Trace, st backends.Statement) (Sample, []byte, error) {
	runtime.GC()
	peak := startPeakHeap()
	c0, t0 := CPUTime(), time.Now()
	proof, err := b.Prove(ctx, t, st)
	s := Sample{Prove: time.Since(t0), ProveCPU: CPUTime() - c0, PeakHeap: peak.stop()}
	if err != nil {
		return s, nil, fmt.Errorf("bench: prove: %w", err)
	}
	s.ProofBytes = len(proof)
	t0 = time.Now()
	if err := b.Verify(ctx, st, proof); err != nil {
		return s, proof, fmt.Errorf("bench: verify: %w", err)
	}
	s.Verify = time.Since(t0)
	return s, proof, nil
}

// CPUTime is the process's user+system CPU time. On a shared machine it says
// what work costs however much of the cores the process got.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// MaxRSS is the process's peak resident set size so far (bytes).
func MaxRSS() uint64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return uint64(ru.Maxrss) * 1024 // Linux reports KiB
}

const heapMetric = "/memory/classes/heap/objects:bytes"

type peakHeap struct {
	base uint64
	max  uint64
	done chan struct{}
	wg   sync.WaitGroup
}

func readHeap() uint64 {
	s := []metrics.Sample{{Name: heapMetric}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// startPeakHeap samples the heap until stop; runtime/metrics reads do not
// stop the world (runtime.ReadMemStats would, distorting the prover).
func startPeakHeap() *peakHeap {
	p := &peakHeap{base: readHeap(), done: make(chan struct{})}
	p.max = p.base
	p.wg.Go(func() {
		tk := time.NewTicker(time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-p.done:
				return
			case <-tk.C:
				p.max = max(p.max, readHeap())
			}
		}
	})
	return p
}

func (p *peakHeap) stop() uint64 {
	close(p.done)
	p.wg.Wait()
	p.max = max(p.max, readHeap())
	return p.max - p.base
}

// Result summarises n samples of one case: means, and the proof size.
type Result struct {
	Case      Case
	Steps     uint64 // executed VM steps in the trace (≤ Rows)
	N         int
	Prove     time.Duration
	ProveCPU  time.Duration
	Verify    time.Duration
	ProofSize int
	PeakHeap  uint64 // the largest of the samples
	MaxRSS    uint64 // the process's peak RSS after the samples
}

// StepsPerSec is executed steps per second of proving wall time.
func (r Result) StepsPerSec() float64 {
	if r.Prove <= 0 {
		return 0
	}
	return float64(r.Steps) / r.Prove.Seconds()
}

// Summarise folds samples into a Result.
func Summarise(c Case, t *trace.Trace, ss []Sample) Result {
	r := Result{Case: c, Steps: t.Header.Steps(), N: len(ss), MaxRSS: MaxRSS()}
	if len(ss) == 0 {
		return r
	}
	for _, s := range ss {
		r.Prove += s.Prove
		r.ProveCPU += s.ProveCPU
		r.Verify += s.Verify
		r.PeakHeap = max(r.PeakHeap, s.PeakHeap)
		r.ProofSize = s.ProofBytes
	}
	n := time.Duration(len(ss))
	r.Prove, r.ProveCPU, r.Verify = r.Prove/n, r.ProveCPU/n, r.Verify/n
	return r
}

// Columns are the table's columns, shared by README.md and pouw bench.
var Columns = []string{"BENCHMARK", "STEPS", "PROVE", "CPU", "VERIFY", "PROOF", "PEAK HEAP", "MAX RSS", "STEPS/S"}

// Row formats r in Columns' order.
func (r Result) Row() []string {
	return []string{
		"BenchmarkProve/" + r.Case.Name(),
		strconv.FormatUint(r.Steps, 10),
		FormatDuration(r.Prove),
		FormatDuration(r.ProveCPU),
		FormatDuration(r.Verify),
		FormatBytes(uint64(r.ProofSize)),
		FormatBytes(r.PeakHeap),
		FormatBytes(r.MaxRSS),
		strconv.FormatFloat(r.StepsPerSec(), 'f', 0, 64),
	}
}

// FormatDuration prints d with three significant digits.
func FormatDuration(d time.Duration) string {
	switch {
	case d >= time.Second:
		return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + " s"
	case d >= time.Millisecond:
		return strconv.FormatFloat(float64(d)/1e6, 'f', 1, 64) + " ms"
	default:
		return strconv.FormatFloat(float64(d)/1e3, 'f', 0, 64) + " µs"
	}
}

// FormatBytes prints n in B, KiB, MiB or GiB.
func FormatBytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return strconv.FormatFloat(float64(n)/(1<<30), 'f', 2, 64) + " GiB"
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
	case n >= 1<<10:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 1, 64) + " KiB"
	default:
		return strconv.FormatUint(n, 10) + " B"
	}
}

// ErrNoCase: no case of the given backend, tier and size.
var ErrNoCase = errors.New("bench: no such case")

// ParseName parses "<backend>/<tier>/steps=<n>" back into a Case.
func ParseName(s string) (Case, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 || !strings.HasPrefix(parts[2], "steps=") {
		return Case{}, fmt.Errorf("%w: %q is not <backend>/<tier>/steps=<n>", ErrNoCase, s)
	}
	tier, err := pouw.ParseTier(parts[1])
	if err != nil {
		return Case{}, fmt.Errorf("%w: %q: %w", ErrNoCase, s, err)
	}
	n, err := strconv.ParseUint(strings.TrimPrefix(parts[2], "steps="), 10, 64)
	if err != nil {
		return Case{}, fmt.Errorf("%w: %q: %w", ErrNoCase, s, err)
	}
	return Case{Backend: parts[0], Tier: tier, Rows: n}, nil
}
