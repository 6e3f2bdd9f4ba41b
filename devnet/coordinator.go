package devnet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/clock"
	"github.com/pouwfarm/pouwfarm/coordinator/api"
	"github.com/pouwfarm/pouwfarm/coordinator/blob"
	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/coordinator/store/boltstore"
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
	// OpenStore, when set, opens the store instead of DataDir/pouw.db (a
	// Redis store, say); the coordinator closes it.
	OpenStore func() (store.Store, error)
}

// Coordinator is a running embedded coordinator.
type Coordinator struct {
	URL        string
	AdminToken string
	TokenFile  string
	Store      store.Store

	stop func()
	wg   sync.WaitGroup
}

// StartCoordinator opens the bolt store and file blobs under DataDir and
// serves the API until Close.
func StartCoordinator(o CoordinatorOptions) (*Coordinator, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ReapEvery <= 0 {
		o.ReapEvery = 500 * time.Millisecond
	}
	if err := os.MkdirAll(o.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("devnet: data dir: %w", err)
	}
	c := &Coordinator{AdminToken: o.AdminToken}
	if c.AdminToken == "" {
		c.AdminToken = api.NewToken("pouw-admin-")
		c.TokenFile = filepath.Join(o.DataDir, "admin.token")
		if err := os.WriteFile(c.TokenFile, []byte(c.AdminToken+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("devnet: admin token: %w", err)
		}
	}
	var st store.Store
	var err error
	if o.OpenStore != nil {
		st, err = o.OpenStore()
	} else {
		st, err = boltstore.Open(filepath.Join(o.DataDir, "pouw.db"), o.Store.WithDefaults(), clock.Real{}, o.Logger)
	}
	if err != nil {
		return nil, err
	}
	blobs, err := blob.NewFiles(filepath.Join(o.DataDir, "blobs"))
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	srv, err := api.New(api.Options{
		Store: st, Blobs: blobs, Verifier: Verifier{Blobs: blobs, Backends: o.Backends},
		Logger: o.Logger, Registry: o.Registry, AdminToken: c.AdminToken, PublicRead: true, Tiers: o.Tiers,
	})
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		_ = st.Close()
		return nil, fmt.Errorf("devnet: listen: %w", err)
	}
	c.URL = "http://" + ln.Addr().String()
	c.Store = st
	ctx, cancel := context.WithCancel(context.Background())
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	c.wg.Add(3)
	go func() { defer c.wg.Done(); srv.Run(ctx) }()
	go func() {
		defer c.wg.Done()
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			o.Logger.Error("coordinator stopped serving", "err", err)
		}
	}()
	go func() { // the reaper: expired leases back to pending, late jobs to dead letter
		defer c.wg.Done()
		t := time.NewTicker(o.ReapEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if n, err := st.ReapExpired(ctx, 1000); err != nil && ctx.Err() == nil {
					o.Logger.Warn("reaper", "err", err)
				} else if n > 0 {
					o.Logger.Info("reaped expired leases", "jobs", n)
				}
			}
		}
	}()
	c.stop = func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		cancel() // ends the event streams first, so Shutdown does not wait on them
		_ = hs.Shutdown(sctx)
	}
	return c, nil
}

// Close stops serving and closes the store.
func (c *Coordinator) Close() error {
	c.stop()
	c.wg.Wait()
	return c.Store.Close()
}
