package api_test

import (
	"errors"
	"sync"

	"context"
	"fmt"
	"github.com/pouwfarm/pouwfarm/coordinator/client"
	"github.com/pouwfarm/pouwfarm/pouw"
	"log/slog"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/coordinator/store/redisstore"
	"github.com/pouwfarm/pouwfarm/internal/redistest"
)

// sharedRedis is one private redis-server for the package; every env gets
// its own deployment prefix on it.
var sharedRedis *redistest.Server

func TestMain(m *testing.M) {
	srv, stop, err := redistest.NewShared("api-test-redis")
	if err != nil {
		// Fail, never skip: a missing redis-server must not pass the suite.
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		os.Exit(1)
	}
	sharedRedis = srv
	extraBackends = append(extraBackends, redisBackend())
	code := m.Run()
	stop()
	os.Exit(code)
}

var redisPrefixes atomic.Int64

// redisOn opens a redisstore for prefix on the shared server; the store
// clock is frozen and moved by the returned function (the test-only keys).
func redisOn(t testing.TB, prefix string, opts store.Options, freeze bool) (*redisstore.Store, func(time.Duration)) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: sharedRedis.Addr(), PoolSize: 128})
	t.Cleanup(func() { c.Close() })
	ctx := context.Background()
	if freeze {
		if err := c.Set(ctx, redisstore.ClockFrozenKey(prefix), time.Now().UnixMilli(), 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	st, err := redisstore.New(ctx, c, redisstore.Options{Options: opts, Prefix: prefix, TestClock: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, func(d time.Duration) {
		if err := c.IncrBy(ctx, redisstore.ClockOffsetKey(prefix), d.Milliseconds()).Err(); err != nil {
			t.Errorf("advance the store clock: %v", err)
		}
	}
}

func redisBackend() backend {
	return backend{name: "redis", open: func(t *testing.T, opts store.Options) (store.Store, func(time.Duration)) {
		return redisOn(t, "api"+strconv.FormatInt(redisPrefixes.Add(1), 10), opts, true)
	}}
}

// TestTwoCoordinatorsOnOneRedisNeverDoubleClaim: two coordinators (each its
// own store client, API and listener) serve one deployment; provers claim
// through both at once and every job is leased exactly once.
func TestTwoCoordinatorsOnOneRedisNeverDoubleClaim(t *testing.T) {
	prefix := "two" + strconv.FormatInt(redisPrefixes.Add(1), 10)
	opts := store.DefaultOptions()
	stA, advance := redisOn(t, prefix, opts, true)
	stB, _ := redisOn(t, prefix, opts, false)
	a := newEnvOn(t, stA, advance, envOptions{})
	b := newEnvOn(t, stB, advance, envOptions{})
	ctx := context.Background()
	if _, err := a.client(adminToken).Deposit(ctx, 1_000_000, ""); err != nil {
		t.Fatal(err)
	}
	const jobs = 60
	for i := 0; i < jobs; i++ {
		// Traces must be on the coordinator that ingests (file blobs are
		// per env here; production shares a volume or uses Redis blobs).
		a.ingest(pouw.TierMicro, 1, 3, "two-"+strconv.Itoa(i))
	}
	const provers = 8
	tokens := make([]string, provers)
	for i := range tokens {
		tokens[i] = a.registerProver("p" + strconv.Itoa(i))
	}
	var mu sync.Mutex
	claimed := map[string]string{}
	var wg sync.WaitGroup
	for i := 0; i < provers; i++ {
		env := a
		if i%2 == 1 {
			env = b
		}
		c := env.client(tokens[i])
		wg.Go(func() {
			for {
				l, err := c.Claim(ctx, pouw.ClaimRequest{Tiers: []pouw.JobTier{pouw.TierMicro}, Backends: []string{"stark"}})
				if errors.Is(err, client.ErrNoJob) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if prev, dup := claimed[l.Job.JobID]; dup {
					t.Errorf("job %s claimed twice (first by %s)", l.Job.JobID, prev)
				}
				claimed[l.Job.JobID] = l.Job.ProverID
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(claimed) != jobs {
		t.Fatalf("%d jobs claimed, want %d", len(claimed), jobs)
	}
	// Both coordinators see the same state.
	for _, e := range []*env{a, b} {
		st, err := e.client(adminToken).Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, ts := range st.Tiers {
			if ts.Tier == pouw.TierMicro && ts.Counts[pouw.StateLeased] != jobs {
				t.Fatalf("leased micro jobs = %d, want %d", ts.Counts[pouw.StateLeased], jobs)
			}
		}
	}
}
