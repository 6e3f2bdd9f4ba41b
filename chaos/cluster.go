package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pouwfarm/pouwfarm/coordinator/client"
	"github.com/pouwfarm/pouwfarm/coordinator/store/redisstore"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/trace"
	"github.com/pouwfarm/pouwfarm/trace/workload"
)

// cluster is the set of real processes under test.
type cluster struct {
	cfg    Config
	log    *slog.Logger
	admin  string
	prefix string
	blobs  string // file blob directory shared by the coordinators

	mu         sync.Mutex
	primary    *redisNode
	replica    *redisNode
	redisGen   int // bumps on every failover (new data dirs)
	waitRepl   int // --redis-wait-replicas the coordinators run with
	coords     []*proc
	coordAddrs []string
	farms      []*proc
	tokens     map[string]string
	clients    map[string]*client.Client
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func (c *cluster) redisURL() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return "redis://" + c.primary.Addr() + "/0"
}

func (c *cluster) primaryClient() *redis.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	return redis.NewClient(&redis.Options{Addr: c.primary.Addr(), MaxRetries: -1, DialTimeout: time.Second})
}

// startRedis starts the primary, with AOF fsynced on every write (the
// setting redisstore's doc asks for), and a replica of it.
func (c *cluster) startRedis() error {
	dir := filepath.Join(c.cfg.Dir, "redis-0")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	p, err := newRedisNode(dir, "")
	if err != nil {
		return err
	}
	c.primary = p
	return c.startReplica()
}

func (c *cluster) startReplica() error {
	c.redisGen++
	dir := filepath.Join(c.cfg.Dir, "redis-"+strconv.Itoa(c.redisGen))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	r, err := newRedisNode(dir, c.primary.Addr())
	if err != nil {
		return err
	}
	c.replica = r
	return waitReplicaUp(r.Addr(), 20*time.Second)
}

// waitReplicaUp waits until the replica's link to its primary is up.
func waitReplicaUp(addr string, within time.Duration) error {
	rc := redis.NewClient(&redis.Options{Addr: addr})
	defer rc.Close()
	deadline := time.Now().Add(within)
	for {
		info, err := rc.Info(context.Background(), "replication").Result()
		if err == nil && strings.Contains(info, "master_link_status:up") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("chaos: replica %s did not sync within %v: %v", addr, within, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *cluster) coordArgs(i int) []string {
	lease := c.cfg.Lease.String()
	return []string{"coordinator",
		"--addr", c.coordAddrs[i],
		"--data-dir", filepath.Join(c.cfg.Dir, "coord-"+strconv.Itoa(i)),
		"--store", c.redisURL(),
		"--blobs", "file://" + c.blobs,
		"--redis-prefix", c.prefix,
		"--redis-wait-replicas", strconv.Itoa(c.waitRepl),
		"--redis-test-clock", // the clock-jump fault moves the store clock through the test keys
		"--lease-micro", lease, "--lease-macro", lease, "--lease-full", lease,
		"--reap-interval", "500ms",
		"--verify-budget", "30s",
		"--shutdown-timeout", "3s",
		"--log-level", "warn",
	}
}

func (c *cluster) startCoordinators(n int) error {
	for i := 0; i < n; i++ {
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		c.coordAddrs = append(c.coordAddrs, addr)
		p := &proc{name: "coordinator-" + strconv.Itoa(i), bin: c.cfg.Bin, args: c.coordArgs(i),
			env: []string{"POUW_ADMIN_TOKEN=" + c.admin}, logPath: filepath.Join(c.cfg.Dir, "coordinator-"+strconv.Itoa(i)+".log")}
		c.coords = append(c.coords, p)
		if err := p.start(); err != nil {
			return err
		}
	}
	for i := range c.coords {
		if err := c.waitReady(i, 30*time.Second); err != nil {
			return err
		}
	}
	return nil
}

// restartCoordinator restarts coordinator i with the current Redis address.
func (c *cluster) restartCoordinator(i int, graceful bool) error {
	p := c.coords[i]
	if graceful {
		p.stop(5 * time.Second)
	} else {
		p.kill()
	}
	p.args = c.coordArgs(i)
	if err := p.start(); err != nil {
		return err
	}
	return c.waitReady(i, 30*time.Second)
}

func (c *cluster) waitReady(i int, within time.Duration) error {
	cl := c.client(i, c.admin)
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := cl.Readyz(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || !c.coords[i].running() {
			return fmt.Errorf("chaos: coordinator %d not ready: %v (log %s)", i, err, c.coords[i].logPath)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *cluster) url(i int) string { return "http://" + c.coordAddrs[i%len(c.coordAddrs)] }

// client returns a cached client of coordinator i (modulo their number),
// so the harness keeps one connection pool per coordinator and token.
func (c *cluster) client(i int, token string) *client.Client {
	key := c.url(i) + " " + token
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.clients[key]; ok {
		return cl
	}
	cl, err := client.New(c.url(i), client.Options{Token: token, MaxRetries: 2})
	if err != nil {
		panic(err) // only for a malformed URL, which we built
	}
	if c.clients == nil {
		c.clients = map[string]*client.Client{}
	}
	c.clients[key] = cl
	return cl
}

// startFarms registers n provers and starts a farm for each, spread over
// the coordinators.
func (c *cluster) startFarms(ctx context.Context, n int) error {
	c.tokens = map[string]string{}
	admin := c.client(0, c.admin)
	for i := 0; i < n; i++ {
		id := "farm-" + strconv.Itoa(i)
		r, err := admin.RegisterProver(ctx, id)
		if err != nil {
			return fmt.Errorf("chaos: register %s: %w", id, err)
		}
		c.tokens[id] = r.Token
		p := &proc{name: id, bin: c.cfg.Bin, logPath: filepath.Join(c.cfg.Dir, id+".log"),
			args: []string{"farm", "--coordinator", c.url(i), "--prover-id", id,
				"--cpu", "1", "--gpus", "none", "--drain-grace", "2s"},
			env: []string{"POUW_TOKEN=" + r.Token}}
		c.farms = append(c.farms, p)
		if err := p.start(); err != nil {
			return err
		}
	}
	return nil
}

// registerProver registers a prover the harness itself drives (garbage
// proofs, fencing probes).
func (c *cluster) registerProver(ctx context.Context, id string) (string, error) {
	r, err := c.client(0, c.admin).RegisterProver(ctx, id)
	if err != nil {
		return "", err
	}
	return r.Token, nil
}

func (c *cluster) shutdown() {
	var wg sync.WaitGroup
	for _, p := range append(append([]*proc{}, c.farms...), c.coords...) {
		wg.Add(1)
		go func() { defer wg.Done(); p.stop(5 * time.Second) }()
	}
	wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.primary != nil {
		_ = c.primary.Close()
	}
	if c.replica != nil {
		_ = c.replica.Close()
	}
}

// loadgen ingests jobs across all tiers at a set rate through the API:
// upload the trace blob, deposit its reward, ingest.
type loadgen struct {
	c     *cluster
	rate  float64
	steps uint64

	// busy is held while one job is being ingested, so pausing waits for
	// the ingest in flight.
	busy     sync.Mutex
	mu       sync.Mutex
	ingested []string
	at       []time.Time // when each ingest was acknowledged
	errors   int
	paused   bool
}

var tierRewards = [3]uint64{10, 100, 1000}

func (g *loadgen) run(ctx context.Context) {
	t := time.NewTicker(time.Duration(float64(time.Second) / g.rate))
	defer t.Stop()
	names := workload.Names()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		g.busy.Lock()
		g.mu.Lock()
		paused := g.paused
		g.mu.Unlock()
		if paused {
			g.busy.Unlock()
			continue
		}
		tier := pouw.Tiers[i%3]
		name := names[(i/3)%len(names)]
		seed := uint64(i) + 1 + uint64(g.c.cfg.Seed)<<20
		id, err := g.ingestOne(ctx, i, tier, name, seed)
		g.mu.Lock()
		if err != nil {
			g.errors++
			g.c.log.Debug("loadgen: ingest failed", "err", err)
		} else {
			g.ingested = append(g.ingested, id)
			g.at = append(g.at, time.Now())
		}
		g.mu.Unlock()
		g.busy.Unlock()
	}
}

func (g *loadgen) makeTrace(tier pouw.JobTier, name string, seed uint64) (*trace.Trace, error) {
	switch tier {
	case pouw.TierMicro:
		m, err := workload.Macro(name, seed, g.steps)
		if err != nil {
			return nil, err
		}
		return trace.Window(m, 16, seed%trace.Windows(m, 16))
	case pouw.TierMacro:
		return workload.Macro(name, seed, g.steps)
	default:
		return workload.Full(name, seed, g.steps, 4)
	}
}

func (g *loadgen) ingestOne(ctx context.Context, i int, tier pouw.JobTier, name string, seed uint64) (string, error) {
	tr, err := g.makeTrace(tier, name, seed)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if err := trace.Encode(&buf, tr); err != nil {
		return "", err
	}
	reward := tierRewards[tier]
	var last error
	// Try each coordinator in turn: one may be down.
	for k := 0; k < len(g.c.coordAddrs); k++ {
		cl := g.c.client(i+k, g.c.admin)
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		id, err := func() (string, error) {
			info, err := cl.UploadBlob(rctx, buf.Bytes())
			if err != nil {
				return "", fmt.Errorf("upload: %w", err)
			}
			if _, err := cl.Deposit(rctx, reward, "chaos loadgen"); err != nil {
				return "", fmt.Errorf("deposit: %w", err)
			}
			r, err := cl.Ingest(rctx, pouw.IngestRequest{Tier: tier, IntentID: tr.Header.IntentID,
				TraceHash: info.Hash, FeeBudget: reward, RewardBudget: reward})
			if err != nil {
				return "", fmt.Errorf("ingest: %w", err)
			}
			return r.Job.JobID, nil
		}()
		cancel()
		if err == nil {
			return id, nil
		}
		last = err
		if ctx.Err() != nil {
			break
		}
	}
	return "", last
}

func (g *loadgen) setPaused(p bool) {
	g.mu.Lock()
	g.paused = p
	g.mu.Unlock()
	g.busy.Lock() // the ingest in flight, if any, has finished
	//lint:ignore SA2001 taking and dropping the lock waits out the ingest in flight
	g.busy.Unlock()
}

// record adds a job the harness ingested itself.
func (g *loadgen) record(id string) {
	g.mu.Lock()
	g.ingested = append(g.ingested, id)
	g.at = append(g.at, time.Now())
	g.mu.Unlock()
}

// since lists the jobs whose ingest was acknowledged after t.
func (g *loadgen) since(t time.Time) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var ids []string
	for i, at := range g.at {
		if at.After(t) {
			ids = append(ids, g.ingested[i])
		}
	}
	return ids
}

func (g *loadgen) snapshot() (ids []string, errs int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.ingested...), g.errors
}

// watcher reads the event stream from the current Redis primary: the
// completions it sees are the acknowledged ones (applied on the primary),
// with the wall time each was first seen.
type watcher struct {
	c *cluster

	mu        sync.Mutex
	after     uint64
	completed map[string]time.Time
	order     []completion
	errors    int
}

type completion struct {
	id string
	at time.Time
}

func (w *watcher) run(ctx context.Context) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.poll(ctx)
	}
}

func (w *watcher) poll(ctx context.Context) {
	rc := w.c.primaryClient()
	defer rc.Close()
	st, err := redisstore.New(ctx, rc, redisstore.Options{TestClock: true, Prefix: w.c.prefix, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		w.mu.Lock()
		w.errors++
		w.mu.Unlock()
		return
	}
	for {
		w.mu.Lock()
		after := w.after
		w.mu.Unlock()
		evs, err := st.Events(ctx, after, 1000)
		if err != nil {
			w.mu.Lock()
			w.errors++
			w.mu.Unlock()
			return
		}
		if len(evs) == 0 {
			return
		}
		now := time.Now()
		w.mu.Lock()
		for _, e := range evs {
			if e.Type == pouw.EventJobCompleted {
				if _, seen := w.completed[e.JobID]; !seen {
					w.completed[e.JobID] = now
					w.order = append(w.order, completion{e.JobID, now})
				}
			}
		}
		w.after = evs[len(evs)-1].ID
		w.mu.Unlock()
	}
}

// resync moves the cursor to the last event of the (new) primary: after a
// failover the event ids the old primary handed out may be given out
// again.
func (w *watcher) resync(ctx context.Context) error {
	rc := w.c.primaryClient()
	defer rc.Close()
	last, err := rc.XRevRangeN(ctx, "{"+w.c.prefix+"}:events", "+", "-", 1).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	var id uint64
	if len(last) == 1 {
		id, _ = strconv.ParseUint(strings.TrimSuffix(last[0].ID, "-0"), 10, 64)
	}
	w.mu.Lock()
	w.after = id
	w.mu.Unlock()
	return nil
}

// acked lists the completions seen before t.
func (w *watcher) acked(before time.Time) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var ids []string
	for _, c := range w.order {
		if c.at.Before(before) {
			ids = append(ids, c.id)
		}
	}
	return ids
}

// completionsBetween counts completions first seen in [from, to).
func (w *watcher) completionsBetween(from, to time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, c := range w.order {
		if !c.at.Before(from) && c.at.Before(to) {
			n++
		}
	}
	return n
}

// firstCompletionAfter is the first completion seen after t.
func (w *watcher) firstCompletionAfter(t time.Time) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.order {
		if c.at.After(t) {
			return c.at, true
		}
	}
	return time.Time{}, false
}
