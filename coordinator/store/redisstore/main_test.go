package redisstore_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/coordinator/store/redisstore"
	"github.com/pouwfarm/pouwfarm/coordinator/store/storetest"
	"github.com/pouwfarm/pouwfarm/internal/redistest"
)

// shared is one private redis-server for the package run; every harness
// gets its own prefix on it, which is also what isolates deployments in
// production.
var shared *redistest.Server

func TestMain(m *testing.M) {
	srv, stop, err := redistest.NewShared("redisstore-test")
	if err != nil {
		// Fail, never skip: a missing redis-server must not pass the suite.
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		os.Exit(1)
	}
	shared = srv
	// go-redis logs every failed dial; the fault tests make thousands.
	redis.SetLogger(quietLogger{})
	code := m.Run()
	stop()
	os.Exit(code)
}

var prefixes atomic.Int64

func uniquePrefix() string { return "t" + strconv.FormatInt(prefixes.Add(1), 10) }

func newClient(t testing.TB, addr string) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr, PoolSize: 128})
	t.Cleanup(func() { c.Close() })
	return c
}

// testClock drives the store clock of one prefix through the test-only keys:
// frozen at the real time when the harness is made, moved only by Advance.
type testClock struct {
	c      *redis.Client
	prefix string
}

func freezeClock(t testing.TB, c *redis.Client, prefix string) testClock {
	t.Helper()
	ctx := context.Background()
	if err := c.Set(ctx, redisstore.ClockFrozenKey(prefix), time.Now().UnixMilli(), 0).Err(); err != nil {
		t.Fatal(err)
	}
	return testClock{c: c, prefix: prefix}
}

func (k testClock) Advance(t testing.TB, d time.Duration) {
	if err := k.c.IncrBy(context.Background(), redisstore.ClockOffsetKey(k.prefix), d.Milliseconds()).Err(); err != nil {
		t.Errorf("advance the store clock: %v", err)
	}
}

func (k testClock) Now(t testing.TB) time.Time {
	vals, err := k.c.MGet(context.Background(), redisstore.ClockFrozenKey(k.prefix), redisstore.ClockOffsetKey(k.prefix)).Result()
	if err != nil {
		t.Errorf("read the store clock: %v", err)
		return time.Time{}
	}
	var ms int64
	for _, v := range vals {
		if s, ok := v.(string); ok {
			n, _ := strconv.ParseInt(s, 10, 64)
			ms += n
		}
	}
	return time.UnixMilli(ms)
}

// newStore makes a store with a fresh prefix on srv.
func newStore(t testing.TB, c *redis.Client, prefix string, opts store.Options) *redisstore.Store {
	t.Helper()
	return newStoreWith(t, c, redisstore.Options{Options: opts, Prefix: prefix, TestClock: true})
}

func newStoreWith(t testing.TB, c *redis.Client, opts redisstore.Options) *redisstore.Store {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s, err := redisstore.New(context.Background(), c, opts)
	if err != nil {
		t.Fatalf("redisstore.New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func harness(t *testing.T, opts store.Options) storetest.Harness {
	prefix := uniquePrefix()
	c := newClient(t, shared.Addr())
	clk := freezeClock(t, c, prefix)
	s := newStore(t, c, prefix, opts)
	return storetest.Harness{
		Store:   s,
		Advance: func(d time.Duration) { clk.Advance(t, d) },
		Now:     func() time.Time { return clk.Now(t) },
	}
}

func TestConformance(t *testing.T) { storetest.Run(t, harness) }

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}
