package redisstore_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/zeebo/blake3"

	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/coordinator/store/redisstore"
	"github.com/pouwfarm/pouwfarm/internal/redistest"
	"github.com/pouwfarm/pouwfarm/pouw"
)

// fixture helpers for the Redis-specific tests (storetest covers the
// contract itself).

func hashN(label string, n int) pouw.Hash {
	return pouw.Hash(blake3.Sum256([]byte(fmt.Sprintf("%s-%d", label, n))))
}

func jobReq(n int, deadlineMs int64) store.EnqueueRequest {
	return store.EnqueueRequest{
		Tier: pouw.Tiers[n%3], IntentID: hashN("intent", n), TraceHash: hashN("trace", n),
		TraceRef: "traces/" + hashN("trace", n).String(), TraceBytes: 100, Backend: "stark",
		FeeBudget: 10, RewardBudget: 7, DeadlineMs: deadlineMs, MaxRetries: 3,
	}
}

func claimAll(prover string) store.ClaimRequest {
	return store.ClaimRequest{ProverID: prover, Tiers: pouw.Tiers[:], Backends: []string{"stark"}}
}

func setup(t testing.TB, s store.Store, provers ...string) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.Deposit(ctx, 1<<40, "test"); err != nil {
		t.Fatal(err)
	}
	for _, p := range provers {
		if err := s.RegisterProver(ctx, store.Prover{ID: p, TokenHash: pouw.Hash(blake3.Sum256([]byte("token of " + p)))}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestTwoCoordinatorsNeverClaimOneJobTwice(t *testing.T) {
	ctx := context.Background()
	prefix := uniquePrefix()
	c1, c2 := newClient(t, shared.Addr()), newClient(t, shared.Addr())
	clk := freezeClock(t, c1, prefix)
	a := newStore(t, c1, prefix, store.DefaultOptions())
	b := newStore(t, c2, prefix, store.DefaultOptions())
	const jobs, workers = 300, 16
	var provers []string
	for w := range workers {
		provers = append(provers, fmt.Sprintf("w%02d", w))
	}
	setup(t, a, provers...)
	deadline := clk.Now(t).Add(time.Hour).UnixMilli()
	// Both coordinators ingest, concurrently.
	var wg sync.WaitGroup
	for half, s := range []store.Store{a, b} {
		wg.Go(func() {
			for i := half; i < jobs; i += 2 {
				if _, _, err := s.Enqueue(ctx, jobReq(i, deadline)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()

	var mu sync.Mutex
	holder := map[string]string{}
	for w, p := range provers {
		s := []store.Store{a, b}[w%2]
		wg.Go(func() {
			for {
				l, err := s.Claim(ctx, claimAll(p))
				if errors.Is(err, store.ErrNoJob) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if prev, dup := holder[l.Job.JobID]; dup {
					t.Errorf("job %s claimed by %s and %s", l.Job.JobID, prev, p)
				}
				holder[l.Job.JobID] = p
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(holder) != jobs {
		t.Fatalf("%d jobs claimed, want %d", len(holder), jobs)
	}

	// Both reap at once after every lease expired: each expiry happens once.
	clk.Advance(t, time.Hour-time.Minute)
	counts := make([]int, 2)
	for i, s := range []store.Store{a, b} {
		wg.Go(func() {
			for {
				n, err := s.ReapExpired(ctx, 7)
				if err != nil {
					t.Error(err)
					return
				}
				if n == 0 {
					return
				}
				counts[i] += n
			}
		})
	}
	wg.Wait()
	if counts[0]+counts[1] != jobs {
		t.Fatalf("reapers expired %d+%d leases, want %d in all", counts[0], counts[1], jobs)
	}
	page, err := a.Pending(ctx, store.PageQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range page.Jobs {
		if j.Attempts != 1 {
			t.Fatalf("job %s has %d attempts after one expiry", j.JobID, j.Attempts)
		}
	}
	if len(page.Jobs) != jobs {
		t.Fatalf("%d pending after reaping, want %d", len(page.Jobs), jobs)
	}
}

// TestRedisCrashLosesNoCompletedJobAndNoSeq kills redis-server with SIGKILL
// while workers enqueue, claim and complete, then restarts it from its AOF.
func TestRedisCrashLosesNoCompletedJobAndNoSeq(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{AppendFsync: "always"})
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{
		Addr: srv.Addr(), MaxRetries: 1, DialTimeout: 300 * time.Millisecond,
		ReadTimeout: time.Second, WriteTimeout: time.Second, PoolSize: 32,
	})
	t.Cleanup(func() { c.Close() })
	s := newStore(t, c, "crash", store.DefaultOptions())
	const workers = 6
	var provers []string
	for w := range workers {
		provers = append(provers, fmt.Sprintf("w%02d", w))
	}
	setup(t, s, provers...)

	var (
		mu        sync.Mutex
		seqs      = map[uint64]string{} // created_seq -> job id, as acknowledged
		completed = map[string]bool{}   // acknowledged completions
		badErrs   []error
		down      bool
		downErrs  int
	)
	stop := make(chan struct{})
	note := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if down {
			downErrs++
			if !errors.Is(err, store.ErrUnavailable) {
				badErrs = append(badErrs, fmt.Errorf("while Redis is down: %w", err))
			}
			return
		}
		// Around the crash a reply can be lost after the write happened
		// (a lease the worker never learnt of, an enqueue it will retry):
		// those answers are sentinels, never anything else.
		for _, ok := range []error{store.ErrUnavailable, store.ErrNoJob, store.ErrLeaseLost} {
			if errors.Is(err, ok) {
				return
			}
		}
		badErrs = append(badErrs, err)
	}
	deadline := time.Now().Add(time.Hour).UnixMilli()
	var wg sync.WaitGroup
	for w, p := range provers {
		wg.Go(func() {
			for i := w; ; i += workers {
				select {
				case <-stop:
					return
				default:
				}
				job, created, err := s.Enqueue(ctx, jobReq(i, deadline))
				if err != nil {
					note(err)
					time.Sleep(5 * time.Millisecond)
					continue
				}
				if created {
					mu.Lock()
					if prev, dup := seqs[job.CreatedSeq]; dup {
						badErrs = append(badErrs, fmt.Errorf("created_seq %d given to %s and %s", job.CreatedSeq, prev, job.JobID))
					}
					seqs[job.CreatedSeq] = job.JobID
					mu.Unlock()
				}
				l, err := s.Claim(ctx, claimAll(p))
				if err != nil {
					note(err)
					continue
				}
				ref := store.LeaseRef{JobID: l.Job.JobID, ProverID: p, Token: l.Token}
				if _, err := s.BeginVerify(ctx, ref, time.Minute); err != nil {
					note(err)
					continue
				}
				if _, err := s.Complete(ctx, ref, "proofs/"+l.Job.JobID); err != nil {
					note(err)
					continue
				}
				mu.Lock()
				completed[l.Job.JobID] = true
				mu.Unlock()
			}
		})
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for end := time.Now().Add(20 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(end) {
				close(stop)
				wg.Wait()
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	countDone := func() int { mu.Lock(); defer mu.Unlock(); return len(completed) }
	waitFor("completions before the crash", func() bool { return countDone() >= 60 })

	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	down = true
	beforeCrash := map[string]bool{}
	maxSeq := uint64(0)
	for id := range completed {
		beforeCrash[id] = true
	}
	for seq := range seqs {
		maxSeq = max(maxSeq, seq)
	}
	mu.Unlock()
	// While Redis is down every call says so, and nothing panics.
	for name, call := range map[string]func() error{
		"ping":    func() error { return s.Ping(ctx) },
		"claim":   func() error { _, err := s.Claim(ctx, claimAll(provers[0])); return err },
		"enqueue": func() error { _, _, err := s.Enqueue(ctx, jobReq(1<<20, deadline)); return err },
		"status":  func() error { _, err := s.Status(ctx); return err },
		"job":     func() error { _, err := s.Job(ctx, pouw.JobID(pouw.Hash{1}, pouw.Hash{2}, 0, 1)); return err },
	} {
		if err := call(); !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s while Redis is down: %v, want ErrUnavailable", name, err)
		}
	}
	time.Sleep(200 * time.Millisecond) // let the workers hit the outage too

	mu.Lock()
	down = false
	mu.Unlock()
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	waitFor("completions after the restart", func() bool { return countDone() >= len(beforeCrash)+60 })
	close(stop)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	for _, err := range badErrs {
		t.Error(err)
	}
	if downErrs == 0 {
		t.Error("no worker call failed while Redis was down")
	}
	// No acknowledged completion is lost, before or after the crash.
	for id := range completed {
		j, err := s.Job(ctx, id)
		if err != nil || j.State != pouw.StateCompleted {
			t.Errorf("completed job %s after restart: %s, %v", id, j.State, err)
		}
	}
	// Every acknowledged created job survived, and sequence numbers handed
	// out after the restart are above every one handed out before.
	for seq, id := range seqs {
		j, err := s.Job(ctx, id)
		if err != nil || j.CreatedSeq != seq {
			t.Errorf("job %s (created_seq %d) after restart: seq %d, %v", id, seq, j.CreatedSeq, err)
		}
	}
	j, _, err := s.Enqueue(ctx, jobReq(1<<21, deadline))
	if err != nil {
		t.Fatal(err)
	}
	if j.CreatedSeq <= maxSeq {
		t.Errorf("created_seq %d after restart, not above %d handed out before the crash", j.CreatedSeq, maxSeq)
	}
	p, err := s.Pool(ctx)
	if err != nil || !p.Balanced() {
		t.Errorf("pool after restart %+v, %v", p, err)
	}
	t.Logf("%d completions (%d before the crash), %d created jobs, %d calls failed while down",
		len(completed), len(beforeCrash), len(seqs), downErrs)
}

func TestAllKeysShareTheDeploymentHashTag(t *testing.T) {
	ctx := context.Background()
	prefix := uniquePrefix()
	c := newClient(t, shared.Addr())
	clk := freezeClock(t, c, prefix)
	s := newStore(t, c, prefix, store.DefaultOptions())
	setup(t, s, "p1")
	deadline := clk.Now(t).Add(time.Hour).UnixMilli()
	var tokens []string
	for i := range 6 {
		if _, _, err := s.Enqueue(ctx, jobReq(i, deadline)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 4 {
		l, err := s.Claim(ctx, claimAll("p1"))
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, l.Token)
		ref := store.LeaseRef{JobID: l.Job.JobID, ProverID: "p1", Token: l.Token}
		switch i {
		case 0:
			_, err = s.Complete(ctx, ref, "proofs/a")
		case 1:
			_, err = s.Fail(ctx, ref, pouw.OutcomeRejected, "bad")
		case 2:
			_, err = s.Release(ctx, ref, "drain")
		}
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			h, err := s.History(ctx, l.Job.JobID)
			if err != nil {
				t.Fatal(err)
			}
			sum := blake3.Sum256([]byte(l.Token))
			if len(h) != 1 || h[0].LeaseID != hex.EncodeToString(sum[:8]) {
				t.Fatalf("history %+v, want lease_id hex(BLAKE3(token)[:8])", h)
			}
			// Completed detail carries a TTL: Redis frees it after retention.
			if ttl := c.PTTL(ctx, "{"+prefix+"}:job:"+l.Job.JobID).Val(); ttl <= 0 {
				t.Fatalf("completed job key has TTL %v, want one", ttl)
			}
		}
	}
	keys, err := c.Keys(ctx, "*"+prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "{"+prefix+"}:") {
			t.Errorf("key %q outside the deployment's hash tag", k)
		}
		// No lease token is kept in Redis, only hashes of it.
		var vals []string
		switch c.Type(ctx, k).Val() {
		case "string":
			vals = append(vals, c.Get(ctx, k).Val())
		case "hash":
			for _, v := range c.HGetAll(ctx, k).Val() {
				vals = append(vals, v)
			}
		case "list":
			vals = c.LRange(ctx, k, 0, -1).Val()
		}
		for _, v := range vals {
			for _, tok := range tokens {
				if strings.Contains(v, tok) {
					t.Errorf("key %s holds a lease token", k)
				}
			}
		}
	}
	if len(keys) < 10 {
		t.Fatalf("only %d keys under the prefix: %v", len(keys), keys)
	}
}

func TestScriptsReloadAfterScriptFlush(t *testing.T) {
	ctx := context.Background()
	prefix := uniquePrefix()
	srv := redistest.Start(t, redistest.Options{})
	c := newClient(t, srv.Addr())
	s := newStore(t, c, prefix, store.DefaultOptions())
	if _, err := s.Deposit(ctx, 5, "a"); err != nil {
		t.Fatal(err)
	}
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	p, err := s.Deposit(ctx, 5, "a")
	if err != nil || p.Deposited != 10 {
		t.Fatalf("deposit after SCRIPT FLUSH: %+v %v", p, err)
	}
}

func TestAmountsAbove2To53AreRefused(t *testing.T) {
	ctx := context.Background()
	prefix := uniquePrefix()
	c := newClient(t, shared.Addr())
	s := newStore(t, c, prefix, store.DefaultOptions())
	if _, err := s.Deposit(ctx, pouw.MaxAmount+1, "a"); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("deposit of 2^53: %v, want ErrInvalid", err)
	}
	if _, err := s.Deposit(ctx, pouw.MaxAmount, "a"); err != nil {
		t.Fatal(err)
	}
	// The pool itself may not pass 2^53-1 either: Lua could not count it.
	if _, err := s.Deposit(ctx, 1, "a"); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("deposit past 2^53-1 in total: %v, want ErrInvalid", err)
	}
	p, err := s.Pool(ctx)
	if err != nil || p.Deposited != pouw.MaxAmount || p.Available != pouw.MaxAmount {
		t.Fatalf("pool %+v %v, want exactly 2^53-1", p, err)
	}
	if _, err := s.Claim(ctx, store.ClaimRequest{ProverID: "p", Tiers: []pouw.JobTier{0}, Backends: []string{"stark"}, MinReward: pouw.MaxAmount + 1}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("claim with min_reward 2^53: %v, want ErrInvalid", err)
	}
}

func TestClaimScanIsBounded(t *testing.T) {
	ctx := context.Background()
	prefix := uniquePrefix()
	c := newClient(t, shared.Addr())
	clk := freezeClock(t, c, prefix)
	opts := store.DefaultOptions()
	opts.MaxClaimScan = 5
	s := newStore(t, c, prefix, opts)
	setup(t, s, "p1")
	now := clk.Now(t).UnixMilli()
	// Ten cheap jobs ahead of one that pays enough.
	for i := range 10 {
		r := jobReq(3*i, now+int64(i+1)*1000) // tier micro
		r.RewardBudget = 1
		if _, _, err := s.Enqueue(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	rich := jobReq(3*100, now+time.Hour.Milliseconds())
	rich.RewardBudget = 9
	if _, _, err := s.Enqueue(ctx, rich); err != nil {
		t.Fatal(err)
	}
	req := claimAll("p1")
	req.MinReward = 5
	if _, err := s.Claim(ctx, req); !errors.Is(err, store.ErrNoJob) {
		t.Fatalf("claim past the scan bound: %v, want ErrNoJob", err)
	}
	// Without the filter the head is taken at once.
	req.MinReward = 0
	if l, err := s.Claim(ctx, req); err != nil || l.Job.RewardBudget != 1 {
		t.Fatalf("claim of the head: %+v %v", l.Job, err)
	}
}

func TestNewWarnsWithoutNoEvictionOrAOF(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{ExtraArgs: []string{"--maxmemory-policy", "allkeys-lru", "--appendonly", "no"}})
	var buf bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, nil))
	c := newClient(t, srv.Addr())
	if _, err := redisstore.New(context.Background(), c, redisstore.Options{Prefix: "w", Logger: log}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	for _, want := range []string{"maxmemory-policy", "allkeys-lru", "appendonly"} {
		if !strings.Contains(out, want) {
			t.Errorf("no warning naming %q; log:\n%s", want, out)
		}
	}
}

func TestNewFailsUnavailableWhenRedisIsDown(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1})
	defer c.Close()
	_, err := redisstore.New(context.Background(), c, redisstore.Options{Prefix: "x"})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("New with Redis down: %v, want ErrUnavailable", err)
	}
}

func TestNewRejectsBadPrefix(t *testing.T) {
	c := newClient(t, shared.Addr())
	for _, p := range []string{"", "a{b", "a}b", "a b"} {
		if _, err := redisstore.New(context.Background(), c, redisstore.Options{Prefix: p}); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("prefix %q: %v, want ErrInvalid", p, err)
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// go-redis resends a command when the connection drops before the reply; a
// resent Complete must answer completed, not lease lost, and pay once.
func TestRepeatedCompleteIsIdempotentButAnotherProofIsRefused(t *testing.T) {
	ctx := context.Background()
	prefix := uniquePrefix()
	c := newClient(t, shared.Addr())
	clk := freezeClock(t, c, prefix)
	s := newStore(t, c, prefix, store.DefaultOptions())
	setup(t, s, "p1")
	if _, _, err := s.Enqueue(ctx, jobReq(0, clk.Now(t).Add(time.Hour).UnixMilli())); err != nil {
		t.Fatal(err)
	}
	l, err := s.Claim(ctx, claimAll("p1"))
	if err != nil {
		t.Fatal(err)
	}
	ref := store.LeaseRef{JobID: l.Job.JobID, ProverID: "p1", Token: l.Token}
	for i := range 2 {
		j, err := s.Complete(ctx, ref, "proofs/1")
		if err != nil || j.State != pouw.StateCompleted {
			t.Fatalf("Complete #%d: %s %v", i+1, j.State, err)
		}
	}
	if _, err := s.Complete(ctx, ref, "proofs/2"); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("Complete with another proof: %v, want ErrLeaseLost", err)
	}
	other := store.LeaseRef{JobID: l.Job.JobID, ProverID: "p1", Token: "not-the-token"}
	if _, err := s.Complete(ctx, other, "proofs/1"); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("Complete with another token: %v, want ErrLeaseLost", err)
	}
	p, err := s.Pool(ctx)
	if err != nil || p.Paid != 7 {
		t.Fatalf("pool %+v %v, want paid once (7)", p, err)
	}
}

// With WaitReplicas and no replica, money scripts still apply (WAIT cannot
// undo them) and the shortfall is logged; the WAIT rides the script's
// connection, including after NOSCRIPT on a fresh server.
func TestWaitReplicasShortfallIsLoggedNotFatal(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	var buf bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, nil))
	c := newClient(t, srv.Addr())
	s := newStoreWith(t, c, redisstore.Options{Prefix: "w", TestClock: true, WaitReplicas: 1, WaitTimeout: 20 * time.Millisecond, Logger: log})
	p, err := s.Deposit(context.Background(), 9, "a")
	if err != nil || p.Deposited != 9 {
		t.Fatalf("deposit with an absent replica: %+v %v", p, err)
	}
	if _, err := s.Deposit(context.Background(), pouw.MaxAmount, "a"); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("refused deposit through the WAIT path: %v, want ErrInvalid", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(buf.String(), "replicas") {
		t.Fatalf("no replica warning; log:\n%s", buf.String())
	}
}

// A write a failover could still lose is not acknowledged: with too few
// replicas, Enqueue and Complete answer ErrUnavailable, and repeating the
// identical call (what a caller does) neither duplicates the job nor pays
// twice.
func TestWaitReplicasShortfallIsUnavailableAndRetrySafe(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ctx := context.Background()
	c := newClient(t, srv.Addr())
	strict := newStoreWith(t, c, redisstore.Options{Prefix: "ws", TestClock: true, WaitReplicas: 1, WaitTimeout: 10 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)})
	plain := newStoreWith(t, c, redisstore.Options{Prefix: "ws", TestClock: true, Logger: slog.New(slog.DiscardHandler)})
	if _, err := strict.Deposit(ctx, 100, "a"); err != nil {
		t.Fatal(err)
	}
	if err := plain.RegisterProver(ctx, store.Prover{ID: "p", TokenHash: pouw.Hash{1}}); err != nil {
		t.Fatal(err)
	}
	req := store.EnqueueRequest{Tier: pouw.TierMacro, IntentID: pouw.Hash{7}, TraceHash: pouw.Hash{8}, TraceRef: "t",
		TraceBytes: 10, Backend: "stark", FeeBudget: 10, RewardBudget: 10,
		DeadlineMs: time.Now().Add(time.Hour).UnixMilli(), MaxRetries: 3}
	if _, _, err := strict.Enqueue(ctx, req); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("enqueue without a replica: %v, want ErrUnavailable", err)
	}
	job, created, err := plain.Enqueue(ctx, req)
	if err != nil || created {
		t.Fatalf("retried enqueue: created=%v err=%v, want the existing job", created, err)
	}
	l, err := plain.Claim(ctx, store.ClaimRequest{ProverID: "p", Tiers: []pouw.JobTier{pouw.TierMacro}, Backends: []string{"stark"}})
	if err != nil || l.Job.JobID != job.JobID {
		t.Fatalf("claim: %+v %v", l.Job, err)
	}
	ref := store.LeaseRef{JobID: job.JobID, ProverID: "p", Token: l.Token}
	if _, err := strict.Complete(ctx, ref, "proof"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("complete without a replica: %v, want ErrUnavailable", err)
	}
	if j, err := plain.Complete(ctx, ref, "proof"); err != nil || j.State != pouw.StateCompleted {
		t.Fatalf("retried complete: %+v %v", j, err)
	}
	if p, err := plain.Pool(ctx); err != nil || p.Paid != 10 || !p.Balanced() {
		t.Fatalf("pool %+v %v, want paid once", p, err)
	}
}

// The pending cursor comes from API clients: anything that is not a cursor
// this store made is ErrInvalid, never a Redis error or a panic.
func FuzzPendingCursor(f *testing.F) {
	for _, seed := range []string{"", "!!", strings.Repeat("0", 94), strings.Repeat("f", 94) + "g", strings.Repeat("a", 93),
		"(" + strings.Repeat("0", 93), strings.Repeat("0", 94) + "\x00", "+", "-"} {
		f.Add(seed)
	}
	c := redis.NewClient(&redis.Options{Addr: shared.Addr()})
	defer c.Close()
	s, err := redisstore.New(context.Background(), c, redisstore.Options{Prefix: uniquePrefix(), TestClock: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, cursor string) {
		for _, list := range []func(context.Context, store.PageQuery) (store.JobPage, error){s.Pending, s.DeadLetter} {
			_, err := list(context.Background(), store.PageQuery{Cursor: cursor, Limit: 3})
			if err != nil && !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("cursor %q: %v, want ErrInvalid or a page", cursor, err)
			}
		}
	})
}

// TestCompletedAttemptIsBuiltFromTheJob checks the history layout the hot
// path relies on: a claim and a completion write no history line (the
// current attempt is in the job's fields), yet History lists every attempt
// exactly as before, and the list, when earlier attempts made one, expires
// with the job.
func TestCompletedAttemptIsBuiltFromTheJob(t *testing.T) {
	ctx := context.Background()
	prefix := uniquePrefix()
	c := newClient(t, shared.Addr())
	clk := freezeClock(t, c, prefix)
	opts := store.DefaultOptions()
	s := newStore(t, c, prefix, opts)
	setup(t, s, "p1", "p2")
	deadline := clk.Now(t).Add(time.Hour).UnixMilli()
	histKey := func(id string) string { return "{" + prefix + "}:hist:" + id }

	for _, tc := range []struct {
		name     string
		releases int
	}{{"first attempt completes", 0}, {"third attempt completes", 2}} {
		t.Run(tc.name, func(t *testing.T) {
			job, _, err := s.Enqueue(ctx, jobReq(100+tc.releases, deadline))
			if err != nil {
				t.Fatal(err)
			}
			var claims []int64
			var l store.Lease
			for i := 0; i <= tc.releases; i++ {
				l, err = s.Claim(ctx, store.ClaimRequest{ProverID: []string{"p1", "p2"}[i%2], Tiers: pouw.Tiers[:], Backends: []string{"stark"}})
				if err != nil {
					t.Fatal(err)
				}
				if l.Job.JobID != job.JobID {
					t.Fatalf("claimed %s, want %s", l.Job.JobID, job.JobID)
				}
				claims = append(claims, clk.Now(t).UnixMilli())
				clk.Advance(t, time.Second)
				if i < tc.releases {
					if _, err := s.Release(ctx, store.LeaseRef{JobID: job.JobID, ProverID: l.Job.ProverID, Token: l.Token}, "later"); err != nil {
						t.Fatal(err)
					}
				}
			}
			ref := store.LeaseRef{JobID: job.JobID, ProverID: l.Job.ProverID, Token: l.Token}
			if _, err := s.BeginVerify(ctx, ref, time.Minute); err != nil {
				t.Fatal(err)
			}
			done, err := s.Complete(ctx, ref, "proofs/x")
			if err != nil {
				t.Fatal(err)
			}
			h, err := s.History(ctx, job.JobID)
			if err != nil {
				t.Fatal(err)
			}
			if len(h) != tc.releases+1 {
				t.Fatalf("history has %d attempts, want %d", len(h), tc.releases+1)
			}
			for i, a := range h[:tc.releases] {
				if a.Outcome != pouw.OutcomeReleased || a.Number != uint32(i+1) || a.EndedAtMs != claims[i]+1000 || a.Reason != "later" {
					t.Fatalf("attempt %d: %+v", i+1, a)
				}
			}
			last := h[tc.releases]
			sum := blake3.Sum256([]byte(l.Token))
			if last.Outcome != pouw.OutcomeCompleted || last.Number != uint32(tc.releases+1) ||
				last.ProverID != l.Job.ProverID || last.LeaseID != hex.EncodeToString(sum[:8]) ||
				last.ClaimedAtMs != claims[tc.releases] || last.EndedAtMs != done.CompletedAtMs || last.Reason != "" {
				t.Fatalf("completed attempt %+v (job completed at %d)", last, done.CompletedAtMs)
			}
			ttl, err := c.PTTL(ctx, histKey(job.JobID)).Result()
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.releases == 0 && ttl != -2*time.Nanosecond:
				t.Fatalf("a job completed at its first attempt has a history list (PTTL %v)", ttl)
			case tc.releases > 0 && (ttl <= 0 || ttl > opts.Retention):
				t.Fatalf("history list PTTL %v, want it to expire within Retention %v", ttl, opts.Retention)
			}
		})
	}
}

// Many coordinators, each with many concurrent ingest requests, all enqueue
// successfully with distinct created_seq: an enqueue whose candidate ids
// fall behind the counter retries with a wider window instead of giving up
// with "created_seq kept moving" (seen filling a 1M queue with 16 workers on
// a loaded machine).
func TestConcurrentEnqueuesAllSucceedWithDistinctSeqs(t *testing.T) {
	ctx := context.Background()
	prefix := uniquePrefix()
	const coordinators, workers, each = 4, 16, 15
	var stores []store.Store
	for range coordinators {
		stores = append(stores, newStore(t, newClient(t, shared.Addr()), prefix, store.DefaultOptions()))
	}
	clk := freezeClock(t, newClient(t, shared.Addr()), prefix)
	setup(t, stores[0])
	deadline := clk.Now(t).Add(time.Hour).UnixMilli()
	var (
		mu   sync.Mutex
		seqs = map[uint64]string{}
		wg   sync.WaitGroup
	)
	for ci, s := range stores {
		for w := range workers {
			wg.Go(func() {
				for i := range each {
					j, created, err := s.Enqueue(ctx, jobReq((ci*workers+w)*each+i, deadline))
					if err != nil || !created {
						t.Errorf("enqueue: created %t, %v", created, err)
						return
					}
					mu.Lock()
					if other, dup := seqs[j.CreatedSeq]; dup {
						t.Errorf("created_seq %d given to %s and %s", j.CreatedSeq, other, j.JobID)
					}
					seqs[j.CreatedSeq] = j.JobID
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if want := coordinators * workers * each; len(seqs) != want {
		t.Fatalf("%d distinct created_seq, want %d", len(seqs), want)
	}
}

// Without TestClock (production) the test-only clock keys move nothing:
// the store's clock is Redis TIME, whoever writes those keys.
func TestProductionStoreIgnoresTheTestClockKeys(t *testing.T) {
	ctx := context.Background()
	prefix := uniquePrefix()
	c := newClient(t, shared.Addr())
	prod := newStoreWith(t, c, redisstore.Options{Prefix: prefix})
	test := newStoreWith(t, c, redisstore.Options{Prefix: prefix, TestClock: true})
	if err := c.IncrBy(ctx, redisstore.ClockOffsetKey(prefix), int64(24*time.Hour/time.Millisecond)).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, redisstore.ClockFrozenKey(prefix), 1, 0).Err(); err != nil {
		t.Fatal(err)
	}
	p, err := prod.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(p); d < -time.Minute || d > time.Minute {
		t.Fatalf("production clock %v is %v from now: it read the test keys", p, d)
	}
	tt, err := test.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.UnixMilli(1 + int64(24*time.Hour/time.Millisecond)); !tt.Equal(want) {
		t.Fatalf("test clock %v, want %v (frozen base + offset)", tt, want)
	}
}
