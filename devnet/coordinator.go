package devnet

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/coordinator"
	"github.com/pouwfarm/pouwfarm/coordinator/api"
	"github.com/pouwfarm/pouwfarm/coordinator/store"
)

// CoordinatorOptions configure the embedded coordinator of pouw dev.
type CoordinatorOptions struct {
	// DataDir holds pouw.db, blobs/ and admin.token.
	DataDir string
	// Addr is the listen address ("127.0.0.1:0" picks a free port).
	Addr string
	// AdminToken; generated and written to DataDir/admin.token when empty.
	AdminToken string
	Backends   *backends.Registry
	Tiers      api.TierBackends
	// Store overrides the lease lengths and the rest (defaults when zero).
	Store    store.Options
	Logger   *slog.Logger
	Registry *prometheus.Registry
	// ReapEvery is the reaper's period (default 500 ms).
	ReapEvery time.Duration
	// StoreURL, when set, replaces the bolt file under DataDir
	// (redis://HOST:PORT/DB, say); RedisPrefix names the deployment.
	StoreURL    string
	RedisPrefix string
}

// Coordinator is a running embedded coordinator: coordinator.Coordinator
// served in the background until Close.
type Coordinator struct {
	URL        string
	AdminToken string
	// TokenFile is where the generated admin token was written ("" when
	// AdminToken was given).
	TokenFile string
	Store     store.Store

	cancel context.CancelFunc
	done   chan error
}

// StartCoordinator assembles a coordinator (bolt store and file blobs under
// DataDir unless StoreURL says otherwise, public reads) and serves it until
// Close.
func StartCoordinator(o CoordinatorOptions) (*Coordinator, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ReapEvery <= 0 {
		o.ReapEvery = 500 * time.Millisecond
	}
	ctx, cancel := context.WithCancel(context.Background())
	co, err := coordinator.New(ctx, coordinator.Config{
		Addr: o.Addr, DataDir: o.DataDir, Store: o.StoreURL, RedisPrefix: o.RedisPrefix,
		AdminToken: o.AdminToken, PublicRead: true, Tiers: o.Tiers, StoreOptions: o.Store,
		ReapInterval: o.ReapEvery, ShutdownTimeout: 5 * time.Second,
		Backends: o.Backends, Logger: o.Logger, Registry: o.Registry,
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("devnet: %w", err)
	}
	c := &Coordinator{URL: co.URL(), AdminToken: co.AdminToken(), Store: co.Store, cancel: cancel, done: make(chan error, 1)}
	if o.AdminToken == "" {
		c.TokenFile = filepath.Join(o.DataDir, "admin.token")
	}
	go func() { c.done <- co.Run(ctx) }()
	return c, nil
}

// Close stops serving (gracefully) and closes the store.
func (c *Coordinator) Close() error {
	c.cancel()
	return <-c.done
}
