package redistest_test

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/pouwfarm/pouwfarm/internal/redistest"
)

func TestKilledServerRestartsFromItsAOF(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{AppendFsync: "always"})
	if srv.Port() == 6379 {
		t.Fatal("private server on the shared port")
	}
	ctx := context.Background()
	opt, err := redis.ParseURL(srv.URL())
	if err != nil || opt.Addr != srv.Addr() {
		t.Fatalf("URL %q parses to %v, %v", srv.URL(), opt, err)
	}
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1})
	defer c.Close()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	if srv.Running() {
		t.Fatal("Running after Kill")
	}
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("PING answered while the server is killed")
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	got, err := c.Get(ctx, "k").Result()
	if err != nil || got != "v" {
		t.Fatalf("after restart GET k = %q, %v; want v (acknowledged write lost)", got, err)
	}
	if err := srv.Restart(); err == nil {
		t.Fatal("Restart of a running server succeeded")
	}
}

func TestServerRunsWithAOFAndNoEviction(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer c.Close()
	cfg, err := c.ConfigGet(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"appendonly": "yes", "save": "", "maxmemory-policy": "noeviction", "dir": srv.Dir()} {
		if cfg[k] != want {
			t.Errorf("CONFIG %s = %q, want %q", k, cfg[k], want)
		}
	}
}

func TestMissingRedisServerIsAnError(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := redistest.New(redistest.Options{Dir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "redis-server not found") {
		t.Fatalf("New without redis-server in PATH: %v; want an error naming redis-server", err)
	}
}
