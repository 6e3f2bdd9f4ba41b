package api_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zeebo/blake3"

	"github.com/pouwfarm/pouwfarm/coordinator/api"
	"github.com/pouwfarm/pouwfarm/coordinator/blob"
	"github.com/pouwfarm/pouwfarm/coordinator/client"
	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/pouw"
)

// BenchmarkAPILease measures claim -> renew -> release cycles per second
// through the HTTP API (auth, JSON, metrics, the event hub following the
// log) on the Redis store, from `workers` concurrent provers, and in the
// same sub-benchmark the same cycle on the store alone, so the HTTP
// overhead shows as a ratio (api_vs_store; the goal is >= 0.5). There are
// 2*workers pending jobs, so a claim always finds one.
func BenchmarkAPILease(b *testing.B) {
	for _, w := range []int{8, 64} {
		b.Run(fmt.Sprintf("redis/workers=%d", w), func(b *testing.B) { benchAPILease(b, w) })
	}
}

func benchAPILease(b *testing.B, workers int) {
	ctx := context.Background()
	prefix := "bench" + strconv.FormatInt(redisPrefixes.Add(1), 10)
	st, _ := redisOn(b, prefix, store.DefaultOptions(), false)
	blobs, err := blob.NewFiles(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	srv, err := api.New(api.Options{Store: st, Blobs: blobs, AdminToken: adminToken, Logger: slog.New(slog.DiscardHandler),
		Tiers: api.TierBackends{"stark", "stark", "stark"}})
	if err != nil {
		b.Fatal(err)
	}
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go srv.Run(hctx)
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()

	if _, err := st.Deposit(ctx, 1<<40, "bench"); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 2*workers; i++ {
		th := pouw.Hash(blake3.Sum256([]byte(prefix + strconv.Itoa(i))))
		if _, _, err := st.Enqueue(ctx, store.EnqueueRequest{Tier: pouw.TierMicro, IntentID: th, TraceHash: th,
			TraceRef: th.String(), TraceBytes: 1, Backend: "stark", FeeBudget: 1, RewardBudget: 1,
			DeadlineMs: time.Now().Add(time.Hour).UnixMilli(), MaxRetries: 3}); err != nil {
			b.Fatal(err)
		}
	}
	ids := make([]string, workers)
	clients := make([]*client.Client, workers)
	for i := range ids {
		ids[i] = prefix + "-p" + strconv.Itoa(i)
		tok := api.NewToken(api.ProverTokenPrefix)
		if err := st.RegisterProver(ctx, store.Prover{ID: ids[i], TokenHash: api.TokenHash(tok), CreatedAtMs: time.Now().UnixMilli()}); err != nil {
			b.Fatal(err)
		}
		if clients[i], err = client.New(hs.URL, client.Options{Token: tok, MaxRetries: -1}); err != nil {
			b.Fatal(err)
		}
	}
	claimReq := pouw.ClaimRequest{Tiers: []pouw.JobTier{pouw.TierMicro}, Backends: []string{"stark"}}

	// run does n cycles split among the workers and returns cycles/s.
	run := func(n int, cycle func(w int) error) float64 {
		var left atomic.Int64
		left.Store(int64(n))
		var wg sync.WaitGroup
		start := time.Now()
		for w := 0; w < workers; w++ {
			wg.Go(func() {
				for left.Add(-1) >= 0 {
					if err := cycle(w); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		return float64(n) / time.Since(start).Seconds()
	}
	viaHTTP := func(w int) error {
		c := clients[w]
		l, err := c.Claim(ctx, claimReq)
		if errors.Is(err, client.ErrNoJob) {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := c.Renew(ctx, l.Job.JobID, l.LeaseToken); err != nil {
			return err
		}
		_, err = c.Release(ctx, l.Job.JobID, l.LeaseToken, "bench")
		return err
	}
	viaStore := func(w int) error {
		l, err := st.Claim(ctx, store.ClaimRequest{ProverID: ids[w], Tiers: claimReq.Tiers, Backends: claimReq.Backends})
		if errors.Is(err, store.ErrNoJob) {
			return nil
		}
		if err != nil {
			return err
		}
		ref := store.LeaseRef{JobID: l.Job.JobID, ProverID: ids[w], Token: l.Token}
		if _, err := st.Renew(ctx, ref); err != nil {
			return err
		}
		_, err = st.Release(ctx, ref, "bench")
		return err
	}
	run(workers, viaHTTP) // warm connections and the token cache
	b.ResetTimer()
	httpRate := run(b.N, viaHTTP)
	b.StopTimer()
	storeRate := run(b.N, viaStore)
	b.ReportMetric(httpRate, "cycles/s")
	b.ReportMetric(storeRate, "store_cycles/s")
	b.ReportMetric(httpRate/storeRate, "api_vs_store")
}
