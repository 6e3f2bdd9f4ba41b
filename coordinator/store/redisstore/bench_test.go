package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/pouw"
)

var benchWorkers = []int{1, 8, 64}

// BenchmarkRedisClaimSubmit measures full claim -> BeginVerify -> Complete
// cycles (three scripts) against the package's private redis-server, with
// b.N jobs pending when the clock starts. Beside cycles/s it reports the
// rate of a trivial EVALSHA from the same number of clients measured in the
// same sub-benchmark (vs_trivial = cycles/s / evals/s; script_ratio counts
// the three scripts of a cycle), and the bytes of Redis memory each
// completed job keeps (job, history, dedup entry; events are capped).
func BenchmarkRedisClaimSubmit(b *testing.B) {
	for _, w := range benchWorkers {
		b.Run(fmt.Sprintf("workers=%d", w), func(b *testing.B) { benchClaimSubmit(b, w) })
	}
}

// BenchmarkRedisTrivialEvalSHA is the baseline: EVALSHA of `return 1`.
func BenchmarkRedisTrivialEvalSHA(b *testing.B) {
	for _, w := range benchWorkers {
		b.Run(fmt.Sprintf("workers=%d", w), func(b *testing.B) {
			c := benchClient(b, w)
			b.ResetTimer()
			us0 := evalshaUsec(b, c)
			rate := trivialRate(b, c, w, b.N)
			b.StopTimer()
			b.ReportMetric(rate, "evals/s")
			b.ReportMetric(float64(evalshaUsec(b, c)-us0)/float64(b.N), "redis_us/eval")
		})
	}
}

func benchClient(b *testing.B, workers int) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: shared.Addr(), PoolSize: workers + 4})
	b.Cleanup(func() { c.Close() })
	return c
}

var trivial = redis.NewScript("return 1")

// trivialRate runs n EVALSHAs of a trivial script from workers clients and
// returns their rate per second.
func trivialRate(b *testing.B, c *redis.Client, workers, n int) float64 {
	ctx := context.Background()
	if err := trivial.Load(ctx, c).Err(); err != nil {
		b.Fatal(err)
	}
	var left atomic.Int64
	left.Store(int64(n))
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				if err := c.EvalSha(ctx, trivial.Hash(), nil).Err(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds()
}

// evalshaUsec is the total time Redis spent in EVALSHA (INFO commandstats):
// the server's side of a script call, without the network and the client.
func evalshaUsec(b *testing.B, c *redis.Client) int64 {
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_evalsha:"); ok {
			for _, kv := range strings.Split(rest, ",") {
				if v, ok := strings.CutPrefix(kv, "usec="); ok {
					n, _ := strconv.ParseInt(v, 10, 64)
					return n
				}
			}
		}
	}
	return 0
}

// cmdStats is INFO commandstats: calls and usec per command. Commands a
// script runs through redis.call are counted under their own names too.
type cmdStats map[string][2]int64

func commandStats(b *testing.B, c *redis.Client) cmdStats {
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	st := cmdStats{}
	for _, line := range strings.Split(info, "\r\n") {
		name, rest, ok := strings.Cut(line, ":")
		name, found := strings.CutPrefix(name, "cmdstat_")
		if !ok || !found {
			continue
		}
		var v [2]int64
		for _, kv := range strings.Split(rest, ",") {
			if n, ok := strings.CutPrefix(kv, "calls="); ok {
				v[0], _ = strconv.ParseInt(n, 10, 64)
			}
			if n, ok := strings.CutPrefix(kv, "usec="); ok {
				v[1], _ = strconv.ParseInt(n, 10, 64)
			}
		}
		st[name] = v
	}
	return st
}

// scriptCalls is the number of redis.calls per script between two
// snapshots taken around n calls of one script, and a line per command
// (calls and Redis µs per script) for -v.
func scriptCalls(before, after cmdStats, n int) (float64, string) {
	var total int64
	var parts []string
	for name, a := range after {
		if name == "evalsha" || name == "evalsha_ro" || name == "info" {
			continue
		}
		d := a[0] - before[name][0]
		if d <= 0 {
			continue
		}
		total += d
		parts = append(parts, fmt.Sprintf("%s %.2f×/%.1fµs", name, float64(d)/float64(n), float64(a[1]-before[name][1])/float64(n)))
	}
	slices.Sort(parts)
	return float64(total) / float64(n), strings.Join(parts, ", ")
}

func usedMemory(b *testing.B, c *redis.Client) int64 {
	info, err := c.Info(context.Background(), "memory").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatal("INFO memory has no used_memory")
	return 0
}

func benchClaimSubmit(b *testing.B, workers int) {
	ctx := context.Background()
	c := benchClient(b, max(workers, 16))
	opts := store.DefaultOptions()
	opts.MaxEvents = 1000 // events are capped by count; keep them out of the per-job figure
	prefix := uniquePrefix()
	s := newStore(b, c, prefix, opts)
	var provers []string
	for w := range workers {
		provers = append(provers, fmt.Sprintf("w%02d", w))
	}
	setup(b, s, provers...)
	mem0 := usedMemory(b, c)

	// b.N jobs pending, enqueued in parallel.
	deadline := time.Now().Add(time.Hour).UnixMilli()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(b.N); i = next.Add(1) - 1 {
				if _, _, err := s.Enqueue(ctx, jobReq(int(i), deadline)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()

	var done atomic.Int64
	us0 := evalshaUsec(b, c)
	b.ResetTimer()
	start := time.Now()
	for _, p := range provers {
		wg.Go(func() {
			for {
				l, err := s.Claim(ctx, claimAll(p))
				if errors.Is(err, store.ErrNoJob) {
					return
				}
				if err != nil {
					b.Error(err)
					return
				}
				ref := store.LeaseRef{JobID: l.Job.JobID, ProverID: p, Token: l.Token}
				if _, err := s.BeginVerify(ctx, ref, time.Minute); err != nil {
					b.Error(err)
					return
				}
				if _, err := s.Complete(ctx, ref, "proofs/"+l.Job.JobID); err != nil {
					b.Error(err)
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	us1 := evalshaUsec(b, c)
	if got := done.Load(); got != int64(b.N) {
		b.Fatalf("%d cycles completed, want %d", got, b.N)
	}
	mem1 := usedMemory(b, c)
	st, err := s.Status(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if n := st.Tiers[0].Counts[pouw.StateCompleted] + st.Tiers[1].Counts[pouw.StateCompleted] + st.Tiers[2].Counts[pouw.StateCompleted]; n != uint64(b.N) {
		b.Fatalf("status counts %d completed, want %d", n, b.N)
	}
	cycles := float64(b.N) / elapsed.Seconds()
	nTrivial := max(b.N, 2000)
	evals := trivialRate(b, c, workers, nTrivial)
	us2 := evalshaUsec(b, c)
	b.ReportMetric(float64(us1-us0)/float64(b.N), "redis_us/cycle")
	b.ReportMetric(float64(us2-us1)/float64(nTrivial), "redis_us/trivial")
	b.ReportMetric(cycles, "cycles/s")
	b.ReportMetric(evals, "trivial_evals/s")
	b.ReportMetric(cycles/evals, "vs_trivial")
	b.ReportMetric(3*cycles/evals, "script_ratio")
	b.ReportMetric(float64(mem1-mem0)/float64(b.N), "B/job")
}

// BenchmarkRedisScriptServerTime runs b.N enqueues, then b.N claims, b.N
// BeginVerify and b.N Complete calls from one client, and reports the time
// Redis itself spent in each script (INFO commandstats), per call: the cost
// the single Redis thread pays, apart from network and client, and how many
// redis.calls each script makes (<script>_calls; with -v, per command).
func BenchmarkRedisScriptServerTime(b *testing.B) {
	ctx := context.Background()
	c := benchClient(b, 4)
	s := newStore(b, c, uniquePrefix(), store.DefaultOptions())
	setup(b, s, "w00")
	deadline := time.Now().Add(time.Hour).UnixMilli()
	u0 := evalshaUsec(b, c)
	c0 := commandStats(b, c)
	for i := range b.N {
		if _, _, err := s.Enqueue(ctx, jobReq(i, deadline)); err != nil {
			b.Fatal(err)
		}
	}
	u1 := evalshaUsec(b, c)
	c1 := commandStats(b, c)
	refs := make([]store.LeaseRef, 0, b.N)
	for range b.N {
		l, err := s.Claim(ctx, claimAll("w00"))
		if err != nil {
			b.Fatal(err)
		}
		refs = append(refs, store.LeaseRef{JobID: l.Job.JobID, ProverID: "w00", Token: l.Token})
	}
	u2 := evalshaUsec(b, c)
	c2 := commandStats(b, c)
	for _, r := range refs {
		if _, err := s.BeginVerify(ctx, r, time.Minute); err != nil {
			b.Fatal(err)
		}
	}
	u3 := evalshaUsec(b, c)
	c3 := commandStats(b, c)
	for _, r := range refs {
		if _, err := s.Complete(ctx, r, "proofs/x"); err != nil {
			b.Fatal(err)
		}
	}
	u4 := evalshaUsec(b, c)
	c4 := commandStats(b, c)
	n := float64(b.N)
	b.ReportMetric(float64(u1-u0)/n, "enqueue_us")
	b.ReportMetric(float64(u2-u1)/n, "claim_us")
	b.ReportMetric(float64(u3-u2)/n, "verify_us")
	b.ReportMetric(float64(u4-u3)/n, "complete_us")
	for _, p := range []struct {
		name          string
		before, after cmdStats
	}{{"enqueue", c0, c1}, {"claim", c1, c2}, {"verify", c2, c3}, {"complete", c3, c4}} {
		calls, detail := scriptCalls(p.before, p.after, b.N)
		b.ReportMetric(calls, p.name+"_calls")
		b.Logf("%s: %.2f redis.calls per script: %s", p.name, calls, detail)
	}
}

// BenchmarkRedisClaimDepth shows that a claim's cost does not grow with the
// queue: b.N claims (and releases, so the depth stays put) with depth jobs
// pending, reporting Redis-side µs per claim+release.
func BenchmarkRedisClaimDepth(b *testing.B) {
	for _, depth := range []int{100, 10_000} {
		b.Run(fmt.Sprintf("depth=%d", depth), func(b *testing.B) {
			ctx := context.Background()
			c := benchClient(b, 16)
			s := newStore(b, c, uniquePrefix(), store.DefaultOptions())
			setup(b, s, "w00")
			deadline := time.Now().Add(time.Hour).UnixMilli()
			var next atomic.Int64
			var wg sync.WaitGroup
			for range 16 {
				wg.Go(func() {
					for i := next.Add(1) - 1; i < int64(depth); i = next.Add(1) - 1 {
						r := jobReq(int(i), deadline)
						r.Tier = pouw.TierMacro
						if _, _, err := s.Enqueue(ctx, r); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			u0 := evalshaUsec(b, c)
			b.ResetTimer()
			for range b.N {
				l, err := s.Claim(ctx, claimAll("w00"))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := s.Release(ctx, store.LeaseRef{JobID: l.Job.JobID, ProverID: "w00", Token: l.Token}, "bench"); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(evalshaUsec(b, c)-u0)/float64(b.N), "redis_us/claim+release")
		})
	}
}
