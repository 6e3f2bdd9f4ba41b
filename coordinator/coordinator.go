// Package coordinator assembles a running coordinator from its parts: the
// store (embedded bolt or Redis), the blob store (files or Redis), the HTTP
// API, the HTTP server with its timeouts, the background reaper of expired
// leases, and the proof verifier over the backends registry. `pouw
// coordinator` is a thin flag layer over Config and Run.
//
// It may import every coordinator room and backends (for the verifier); it
// must not import scheduler.
package coordinator

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/clock"
	"github.com/pouwfarm/pouwfarm/coordinator/api"
	"github.com/pouwfarm/pouwfarm/coordinator/blob"
	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/coordinator/store/boltstore"
	"github.com/pouwfarm/pouwfarm/coordinator/store/redisstore"
	"github.com/pouwfarm/pouwfarm/trace"
)

// Config is everything a coordinator needs; zero values take the defaults
// documented on each field, so Config{} runs a working coordinator.
type Config struct {
	// Addr to listen on (default 127.0.0.1:8080; ":0" picks a free port).
	Addr string
	// DataDir holds the bolt file, file blobs and the generated admin token
	// (default ./data).
	DataDir string
	// Store is bolt://PATH or redis://[user:pass@]HOST:PORT/DB (default
	// bolt://<DataDir>/pouw.db).
	Store string
	// Blobs is file://DIR or redis://HOST:PORT/DB (default
	// file://<DataDir>/blobs).
	Blobs string
	// RedisPrefix names the deployment in Redis (default "pouw").
	RedisPrefix string
	// RedisWaitReplicas makes money-moving scripts WAIT for replicas.
	RedisWaitReplicas int
	// RedisTestClock lets the test-only Redis clock keys move the store's
	// clock (tests and the chaos harness; never in production).
	RedisTestClock bool
	// AdminToken is the admin bearer token (POUW_ADMIN_TOKEN). When empty,
	// AdminTokenFile is read; when that is empty too, <DataDir>/admin.token
	// is used, generated (mode 0600) on first start.
	AdminToken     string
	AdminTokenFile string
	// PublicRead serves read-only routes without a token.
	PublicRead bool
	// Tiers is the tier -> backend table (default stark for every tier).
	Tiers api.TierBackends
	// StoreOptions: lease lengths, retention, ... (ARCHITECTURE.md's
	// defaults).
	StoreOptions store.Options
	// Limits on request bodies.
	Limits api.Limits
	// VerifyBudget is how long a lease is held while its proof is verified.
	VerifyBudget time.Duration
	// ReapInterval is how often expired leases are reaped (default 1s).
	ReapInterval time.Duration
	// ShutdownTimeout bounds the graceful shutdown (default 30s).
	ShutdownTimeout time.Duration
	// Backends verify proofs (through BackendVerifier over the blob
	// store) when Verifier is nil. With neither, every proof is rejected
	// (api.NoBackends).
	Backends *backends.Registry
	// Verifier overrides Backends.
	Verifier api.Verifier
	Logger   *slog.Logger
	// Registry receives the metrics; a fresh one (with Go and process
	// collectors) when nil.
	Registry *prometheus.Registry

	// TLSCert and TLSKey (PEM files) make the coordinator serve HTTPS,
	// TLS 1.3 at least.
	TLSCert, TLSKey string
	// ClientCA (PEM) turns on mTLS: client certificates are verified
	// against it, and a prover's requests must carry one naming that
	// prover (CN or URI SAN pouw://prover/<id>). Requires TLSCert.
	ClientCA string
	// Abuse are the per-prover limits (api.DefaultAbuse from the CLI; none
	// when zero).
	Abuse api.Abuse
	// MaxVerifyAttempts bounds unverifiable submits per lease (default 3).
	MaxVerifyAttempts int
	// TokenTTL is how long issued prover tokens work (0: no expiry).
	TokenTTL time.Duration
	// RotateGrace is how long old tokens work after a rotation (default 1h).
	RotateGrace time.Duration
}

// Coordinator is an assembled coordinator, listening but not yet serving
// until Run.
type Coordinator struct {
	cfg      Config
	log      *slog.Logger
	Store    store.Store
	Blobs    blob.Store
	API      *api.Server
	server   *http.Server
	listener net.Listener
	admin    string
	tls      bool
	closers  []func() error
}

// serverTLS builds the server's TLS configuration from the certificate
// files, or nil for plain HTTP.
func serverTLS(cfg Config) (*tls.Config, error) {
	if cfg.TLSCert == "" && cfg.TLSKey == "" {
		if cfg.ClientCA != "" {
			return nil, errors.New("--client-ca needs --tls-cert and --tls-key")
		}
		return nil, nil
	}
	if cfg.TLSCert == "" || cfg.TLSKey == "" {
		return nil, errors.New("TLS needs both --tls-cert and --tls-key")
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate: %w", err)
	}
	t := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}}
	if cfg.ClientCA != "" {
		pem, err := os.ReadFile(cfg.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client CA %s holds no PEM certificate", cfg.ClientCA)
		}
		// Verified when given: health probes and admins may come without
		// one; the API requires it of provers (BindClientCert).
		t.ClientCAs, t.ClientAuth = pool, tls.VerifyClientCertIfGiven
	}
	return t, nil
}

// New opens the store and blobs, resolves the admin token and binds the
// listener. Close it if Run is never called.
func New(ctx context.Context, cfg Config) (_ *Coordinator, err error) {
	cfg = withDefaults(cfg)
	if err := RegisterBuildInfo(cfg.Registry); err != nil {
		return nil, fmt.Errorf("build info metric: %w", err)
	}
	c := &Coordinator{cfg: cfg, log: cfg.Logger}
	defer func() {
		if err != nil {
			_ = c.Close()
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	clients := map[string]redis.UniversalClient{}
	redisClient := func(raw string) (redis.UniversalClient, error) {
		if rc, ok := clients[raw]; ok {
			return rc, nil
		}
		o, err := redis.ParseURL(raw)
		if err != nil {
			return nil, fmt.Errorf("redis URL %q: %w", redactURL(raw), err)
		}
		o.PoolSize = max(o.PoolSize, 128)
		rc := redis.NewClient(o)
		clients[raw] = rc
		c.closers = append(c.closers, rc.Close)
		return rc, nil
	}

	switch {
	case strings.HasPrefix(cfg.Store, "bolt://"):
		path := strings.TrimPrefix(cfg.Store, "bolt://")
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		bs, err := boltstore.Open(path, cfg.StoreOptions, clock.Real{}, cfg.Logger)
		if err != nil {
			return nil, fmt.Errorf("store %s: %w", cfg.Store, err)
		}
		c.Store = bs
		c.closers = append(c.closers, bs.Close)
		c.log.Info("store: embedded bolt", "path", path)
	case strings.HasPrefix(cfg.Store, "redis://"), strings.HasPrefix(cfg.Store, "rediss://"):
		rc, err := redisClient(cfg.Store)
		if err != nil {
			return nil, err
		}
		rs, err := redisstore.New(ctx, rc, redisstore.Options{Options: cfg.StoreOptions, Prefix: cfg.RedisPrefix,
			WaitReplicas: cfg.RedisWaitReplicas, TestClock: cfg.RedisTestClock, Logger: cfg.Logger})
		if err != nil {
			return nil, fmt.Errorf("store %s: %w", redactURL(cfg.Store), err)
		}
		c.Store = rs
		c.closers = append(c.closers, rs.Close)
		c.log.Info("store: redis", "url", redactURL(cfg.Store), "prefix", cfg.RedisPrefix)
	default:
		return nil, fmt.Errorf("store %q: want bolt://PATH or redis://HOST:PORT/DB", cfg.Store)
	}

	switch {
	case strings.HasPrefix(cfg.Blobs, "file://"):
		dir := strings.TrimPrefix(cfg.Blobs, "file://")
		fs, err := blob.NewFiles(dir)
		if err != nil {
			return nil, err
		}
		c.Blobs = fs
		c.log.Info("blobs: files", "dir", dir)
	case strings.HasPrefix(cfg.Blobs, "redis://"), strings.HasPrefix(cfg.Blobs, "rediss://"):
		rc, err := redisClient(cfg.Blobs)
		if err != nil {
			return nil, err
		}
		c.Blobs = blob.NewRedis(rc, blob.RedisOptions{Prefix: cfg.RedisPrefix})
		c.log.Info("blobs: redis", "url", redactURL(cfg.Blobs), "prefix", cfg.RedisPrefix)
	default:
		return nil, fmt.Errorf("blobs %q: want file://DIR or redis://HOST:PORT/DB", cfg.Blobs)
	}

	if c.admin, err = adminToken(cfg, c.log); err != nil {
		return nil, err
	}
	verifier := cfg.Verifier
	if verifier == nil && cfg.Backends != nil {
		verifier = BackendVerifier{Registry: cfg.Backends, Blobs: c.Blobs, Jobs: c.Store}
	}
	batch, batchCheck := batchBackend(cfg.Backends)
	if batch != "" {
		c.log.Info("batches: aggregation backend configured", "backend", batch)
	}
	if verifier == nil {
		c.log.Warn("no proof backends configured: every submitted proof will be rejected")
	}
	c.API, err = api.New(api.Options{
		Store: c.Store, Blobs: c.Blobs, Verifier: verifier, Logger: cfg.Logger, Registry: cfg.Registry,
		AdminToken: c.admin, PublicRead: cfg.PublicRead, Tiers: cfg.Tiers, Limits: cfg.Limits,
		VerifyBudget: cfg.VerifyBudget, Abuse: cfg.Abuse, MaxVerifyAttempts: cfg.MaxVerifyAttempts,
		TokenTTL: cfg.TokenTTL, RotateGrace: cfg.RotateGrace, CheckTraceHeader: true,
		BindClientCert: cfg.ClientCA != "", BatchBackend: batch, BatchCheck: batchCheck,
	})
	if err != nil {
		return nil, err
	}
	tlsCfg, err := serverTLS(cfg)
	if err != nil {
		return nil, err
	}
	c.listener, err = net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	if tlsCfg != nil {
		c.listener = tls.NewListener(c.listener, tlsCfg)
		c.tls = true
		c.log.Info("TLS on", "min_version", "1.3", "mtls", cfg.ClientCA != "")
	}
	c.server = &http.Server{
		Handler: c.API.Handler(),
		// Slow-header clients cannot hold connections open; bodies
		// (trace uploads, proofs) and responses (event streams, blob
		// downloads) may legitimately take long, so they are bounded by
		// the body limits and per-write deadlines instead.
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	return c, nil
}

// aggregateBackend is the name of the backend that proves batches
// (backends/aggregate.Name; not imported, so the coordinator does not link
// gnark for a name).
const aggregateBackend = "aggregate"

// batchBackend is the backend that proves batches (POST /v1/pouw/batches):
// "aggregate" when the registry has it and it aggregates proofs, else none
// and batches are refused.
func batchBackend(reg *backends.Registry) (string, func([]*trace.Header) error) {
	if reg == nil {
		return "", nil
	}
	b, err := reg.Get(aggregateBackend)
	if err != nil {
		return "", nil
	}
	if _, ok := b.(backends.Aggregator); !ok {
		return "", nil
	}
	if c, ok := b.(backends.BatchChecker); ok {
		return aggregateBackend, c.CheckBatch
	}
	return aggregateBackend, nil
}

func withDefaults(cfg Config) Config {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:8080"
	}
	if cfg.DataDir == "" {
		cfg.DataDir = "data"
	}
	if cfg.Store == "" {
		cfg.Store = "bolt://" + filepath.Join(cfg.DataDir, "pouw.db")
	}
	if cfg.Blobs == "" {
		cfg.Blobs = "file://" + filepath.Join(cfg.DataDir, "blobs")
	}
	if cfg.RedisPrefix == "" {
		cfg.RedisPrefix = "pouw"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
		cfg.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if cfg.ReapInterval <= 0 {
		cfg.ReapInterval = time.Second
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 30 * time.Second
	}
	cfg.StoreOptions = cfg.StoreOptions.WithDefaults()
	return cfg
}

// adminToken resolves the admin token: the configured value, the file
// named, or <DataDir>/admin.token (created on first start). The token is
// never logged; the file's path is.
func adminToken(cfg Config, log *slog.Logger) (string, error) {
	if cfg.AdminToken != "" {
		return cfg.AdminToken, nil
	}
	readFile := func(path string) (string, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", err
		}
		tok := strings.TrimSpace(string(b))
		if len(tok) < 16 {
			return "", fmt.Errorf("admin token in %s is shorter than 16 characters", path)
		}
		return tok, nil
	}
	if cfg.AdminTokenFile != "" {
		tok, err := readFile(cfg.AdminTokenFile)
		if err != nil {
			return "", fmt.Errorf("admin token file: %w", err)
		}
		return tok, nil
	}
	path := filepath.Join(cfg.DataDir, "admin.token")
	tok, err := readFile(path)
	if err == nil {
		log.Info("admin token: using the one in the data dir", "file", path)
		return tok, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("admin token: %w", err)
	}
	tok = api.NewToken("pouwa_")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	if _, err := f.WriteString(tok + "\n"); err != nil {
		f.Close()
		return "", fmt.Errorf("admin token: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	log.Info("admin token: generated a new one (no POUW_ADMIN_TOKEN or --admin-token-file); read it from the file",
		"file", path)
	return tok, nil
}

// URL is the base URL the coordinator serves on.
func (c *Coordinator) URL() string {
	if c.tls {
		return "https://" + c.listener.Addr().String()
	}
	return "http://" + c.listener.Addr().String()
}

// AdminToken is the admin bearer token in force.
func (c *Coordinator) AdminToken() string { return c.admin }

// Run serves until ctx ends, then shuts down gracefully: event streams
// end, in-flight requests finish (up to ShutdownTimeout), the reaper stops
// and the store closes.
func (c *Coordinator) Run(ctx context.Context) error {
	defer c.Close()
	var g run.Group
	hubCtx, stopHub := context.WithCancel(context.Background())
	{ // the API's event follower; streams end when it stops
		done := make(chan struct{})
		g.Add(func() error { c.API.Run(hubCtx); close(done); return nil },
			func(error) { stopHub(); <-done })
	}
	{ // the HTTP server
		g.Add(func() error {
			c.log.Info("coordinator serving", "url", c.URL())
			if err := c.server.Serve(c.listener); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		}, func(error) {
			stopHub() // streams never go idle: end them first
			sctx, cancel := context.WithTimeout(context.Background(), c.cfg.ShutdownTimeout)
			defer cancel()
			if err := c.server.Shutdown(sctx); err != nil {
				c.log.Warn("shutdown: requests still in flight were cut off", "err", err)
				_ = c.server.Close()
			}
		})
	}
	{ // the reaper
		rctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error { c.reap(rctx); return nil }, func(error) { cancel() })
	}
	{ // the signal (ctx)
		rctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { <-rctx.Done(); return nil }, func(error) { cancel() })
	}
	err := g.Run()
	c.log.Info("coordinator stopped")
	return err
}

// reap returns expired leases to the queue (or the dead letter) every
// ReapInterval. Several coordinators may reap one store: each expiry
// happens once.
func (c *Coordinator) reap(ctx context.Context) {
	const batch = 256
	t := time.NewTicker(c.cfg.ReapInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for {
			n, err := c.Store.ReapExpired(ctx, batch)
			if err != nil {
				if ctx.Err() == nil {
					c.log.Warn("reaper: ReapExpired failed", "err", err)
				}
				break
			}
			if n > 0 {
				c.log.Debug("reaper: expired leases returned", "count", n)
			}
			if n < batch {
				break
			}
		}
	}
}

// Close releases the store, the Redis clients and the listener. Run calls
// it; call it only when Run is never called.
func (c *Coordinator) Close() error {
	var errs []error
	if c.listener != nil {
		_ = c.listener.Close()
	}
	for i := len(c.closers) - 1; i >= 0; i-- {
		if err := c.closers[i](); err != nil && !errors.Is(err, redis.ErrClosed) {
			errs = append(errs, err)
		}
	}
	c.closers = nil
	return errors.Join(errs...)
}

// redactURL hides a password in a Redis URL for logs and errors.
func redactURL(raw string) string {
	at := strings.LastIndex(raw, "@")
	scheme := strings.Index(raw, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return raw
	}
	return raw[:scheme+3] + "***" + raw[at:]
}
