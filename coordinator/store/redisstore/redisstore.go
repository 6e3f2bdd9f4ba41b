package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/zeebo/blake3"

	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/pouw"
)

// Options configure a Store.
type Options struct {
	store.Options
	// Prefix names the deployment; every key lives under "{Prefix}:".
	// Independent deployments on one Redis use different prefixes.
	Prefix string
	// WaitReplicas, when > 0, makes every script that moves money WAIT
	// until that many replicas acknowledged it (at most WaitTimeout).
	WaitReplicas int
	// WaitTimeout bounds WAIT (default 1s).
	WaitTimeout time.Duration
	// Logger receives warnings (default slog.Default()).
	Logger *slog.Logger
	// Rand is the source of lease tokens (default crypto/rand.Reader).
	Rand io.Reader
	// TestClock makes the scripts read the test-only clock keys
	// (ClockOffsetKey, ClockFrozenKey), so tests and the chaos harness can
	// move time; without it the store's clock is Redis TIME alone.
	TestClock bool
}

// Store is a store.Store on Redis.
type Store struct {
	c    redis.UniversalClient
	opts Options
	keys []string // "{prefix}:", the only declared key; see scripts.go
	cfg  []any    // ARGV[1..7]
	s    scripts
	log  *slog.Logger
	// seqHint is the last created_seq this store saw: the base of the
	// candidates the next enqueue derives.
	seqHint atomic.Uint64
}

var _ store.Store = (*Store)(nil)

// Limits on what callers pass in, so one request cannot make a huge key or
// script argument.
const (
	maxIDLen     = 128
	maxRefLen    = 1024
	maxReasonLen = 1024
	maxDeps      = 1024
	maxPageLimit = 1000
	defaultLimit = 100
)

// New returns a store on client for the deployment opts.Prefix. It checks
// that Redis answers and warns (via opts.Logger) when it is not configured
// as doc.go requires. The caller keeps ownership of client: Close does not
// close it.
func New(ctx context.Context, client redis.UniversalClient, opts Options) (*Store, error) {
	if client == nil {
		return nil, fmt.Errorf("redisstore: %w: nil client", store.ErrInvalid)
	}
	if opts.Prefix == "" || strings.ContainsAny(opts.Prefix, "{} \t\r\n") {
		return nil, fmt.Errorf("redisstore: %w: prefix %q must be non-empty without braces or spaces", store.ErrInvalid, opts.Prefix)
	}
	opts.Options = opts.Options.WithDefaults()
	if opts.WaitTimeout <= 0 {
		opts.WaitTimeout = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	for i, d := range opts.LeaseDuration {
		if d < time.Millisecond {
			return nil, fmt.Errorf("redisstore: %w: lease duration of tier %v is below 1ms", store.ErrInvalid, pouw.JobTier(i))
		}
	}
	s := &Store{
		c:    client,
		opts: opts,
		keys: []string{"{" + opts.Prefix + "}:"},
		s:    newScripts(opts.TestClock),
		log:  opts.Logger.With("component", "redisstore", "prefix", opts.Prefix),
	}
	s.cfg = []any{
		opts.MaxEvents,
		opts.LeaseDuration[0].Milliseconds(), opts.LeaseDuration[1].Milliseconds(), opts.LeaseDuration[2].Milliseconds(),
		max(opts.Retention.Milliseconds(), 1),
		max(opts.DedupWindow.Milliseconds(), 1),
		opts.MaxClaimScan,
	}
	if err := s.Ping(ctx); err != nil {
		return nil, err
	}
	if seq, err := s.c.Get(ctx, s.keys[0]+"seq").Uint64(); err == nil {
		s.seqHint.Store(seq)
	}
	s.checkConfig(ctx)
	return s, nil
}

// checkConfig warns about settings that break the store's guarantees.
func (s *Store) checkConfig(ctx context.Context) {
	// A job hash with a value over hash-max-listpack-value bytes (a trace
	// ref "traces/<64 hex>" is 71) is stored as a hashtable: about 1.4 KB
	// instead of 0.7 KB per job.
	if got, err := s.c.ConfigGet(ctx, "hash-max-listpack-value").Result(); err == nil {
		if n, err := strconv.Atoi(got["hash-max-listpack-value"]); err == nil && n < 128 {
			s.log.Info("hash-max-listpack-value below 128: jobs with long trace refs take twice the memory", "have", n)
		}
	}
	want := map[string]string{"maxmemory-policy": "noeviction", "appendonly": "yes"}
	for k, v := range want {
		got, err := s.c.ConfigGet(ctx, k).Result()
		if err != nil {
			s.log.Warn("cannot read Redis config; make sure it is set as required", "setting", k, "want", v, "err", err)
			continue
		}
		if got[k] != v {
			s.log.Warn("Redis is not configured as the store requires: jobs or payments may be lost",
				"setting", k, "have", got[k], "want", v)
		}
	}
}

// ClockOffsetKey is the test-only key whose integer value (ms) the scripts
// of a store with Options.TestClock add to Redis TIME. Tests INCRBY it to
// move the store's clock forward. Other stores never read it.
func ClockOffsetKey(prefix string) string { return "{" + prefix + "}:test:clock_offset_ms" }

// ClockFrozenKey is the test-only key that, when set, replaces Redis TIME
// as the base of the clock of a store with Options.TestClock (ms), so a
// test reads exactly the time the scripts use.
func ClockFrozenKey(prefix string) string { return "{" + prefix + "}:test:clock_frozen_ms" }

// Now returns the store's clock: Redis TIME (plus the test offset with
// Options.TestClock).
func (s *Store) Now(ctx context.Context) (time.Time, error) {
	v, err := s.run(ctx, "now", s.s.now)
	if err != nil {
		return time.Time{}, err
	}
	ms, err := toInt(v)
	if err != nil {
		return time.Time{}, fmt.Errorf("redisstore: now: %w", err)
	}
	return time.UnixMilli(ms), nil
}

func (s *Store) run(ctx context.Context, op string, sc *redis.Script, args ...any) (any, error) {
	all := make([]any, 0, len(s.cfg)+len(args))
	all = append(all, s.cfg...)
	all = append(all, args...)
	v, err := sc.Run(ctx, s.c, s.keys, all...).Result()
	if err != nil {
		return nil, mapErr(op, err)
	}
	return v, nil
}

// errCodes maps the scripts' error reply codes to sentinel errors.
var errCodes = map[string]error{
	"POUW_NOTFOUND":  store.ErrNotFound,
	"POUW_LEASELOST": store.ErrLeaseLost,
	"POUW_NOTHOLDER": store.ErrNotLeaseHolder,
	"POUW_CONFLICT":  store.ErrConflict,
	"POUW_FUNDS":     store.ErrInsufficientFunds,
	"POUW_NOJOB":     store.ErrNoJob,
	"POUW_INVALID":   store.ErrInvalid,
	"POUW_EXISTS":    store.ErrExists,
	"POUW_TRUNCATED": store.ErrEventsTruncated,
}

// unavailablePrefixes are error replies that mean Redis cannot serve now.
var unavailablePrefixes = []string{"LOADING", "MASTERDOWN", "READONLY", "TRYAGAIN", "CLUSTERDOWN", "BUSY", "OOM", "MISCONF", "NOREPLICAS"}

// mapErr turns a go-redis error into the store's vocabulary: script
// verdicts into their sentinels, anything meaning "Redis cannot answer now"
// (connection refused, timeout, LOADING, ...) into ErrUnavailable.
func mapErr(op string, err error) error {
	var rerr redis.Error
	if errors.As(err, &rerr) {
		msg := rerr.Error()
		code, rest, _ := strings.Cut(msg, " ")
		if sentinel, ok := errCodes[code]; ok {
			return fmt.Errorf("redisstore: %s: %w: %s", op, sentinel, rest)
		}
		for _, p := range unavailablePrefixes {
			if strings.HasPrefix(msg, p) {
				return fmt.Errorf("redisstore: %s: %w: %w", op, store.ErrUnavailable, err)
			}
		}
		return fmt.Errorf("redisstore: %s: %w", op, err)
	}
	if errors.Is(err, redis.Nil) {
		return fmt.Errorf("redisstore: %s: %w", op, store.ErrNotFound)
	}
	return fmt.Errorf("redisstore: %s: %w: %w", op, store.ErrUnavailable, err)
}

// runMoney runs a script that moves money or hands out created_seq. With
// WaitReplicas > 0 it sends WAIT on the same connection right after the
// script (WAIT covers only that connection's writes). The write is applied
// on the primary whatever WAIT says, so a shortfall is logged, not
// returned: an error would invite a retry of something that happened.
func (s *Store) runMoney(ctx context.Context, op string, sc *redis.Script, args ...any) (any, error) {
	if s.opts.WaitReplicas <= 0 {
		return s.run(ctx, op, sc, args...)
	}
	all := make([]any, 0, len(s.cfg)+len(args))
	all = append(all, s.cfg...)
	all = append(all, args...)
	for try := 0; ; try++ {
		var res *redis.Cmd
		var wait *redis.Cmd
		_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			res = p.EvalSha(ctx, sc.Hash(), s.keys, all...)
			wait = p.Do(ctx, "WAIT", s.opts.WaitReplicas, s.opts.WaitTimeout.Milliseconds())
			return nil
		})
		if res == nil {
			return nil, mapErr(op, err)
		}
		v, rerr := res.Result()
		if redis.HasErrorPrefix(rerr, "NOSCRIPT") && try == 0 {
			// Not run: load it and try again.
			if err := sc.Load(ctx, s.c).Err(); err != nil {
				return nil, mapErr(op, err)
			}
			continue
		}
		if rerr != nil {
			return nil, mapErr(op, rerr)
		}
		if n, werr := wait.Int64(); werr != nil || n < int64(s.opts.WaitReplicas) {
			s.log.Warn("write not acknowledged by enough replicas", "op", op, "acked", n, "want", s.opts.WaitReplicas, "err", werr)
			// The script ran on the primary but a failover could still
			// lose it, so it is not acknowledged: the caller retries, and
			// every script but deposit is safe to repeat (an identical
			// Complete answers "completed" and pays once, Enqueue
			// deduplicates, the lease scripts fence). Deposit is not
			// idempotent: a retry would deposit twice, so it reports
			// success as before.
			if op != "deposit" {
				return nil, fmt.Errorf("redisstore: %s: %w: written on the primary but acknowledged by %d of %d replicas; retry",
					op, store.ErrUnavailable, n, s.opts.WaitReplicas)
			}
		}
		return v, nil
	}
}

// Enqueue implements store.Store.
func (s *Store) Enqueue(ctx context.Context, req store.EnqueueRequest) (pouw.ProofJob, bool, error) {
	if err := validateEnqueue(req); err != nil {
		return pouw.ProofJob{}, false, fmt.Errorf("redisstore: enqueue: %w", err)
	}
	args := []any{
		dedupKey(req), int(req.Tier), req.IntentID.String(), req.TraceHash.String(),
		req.TraceRef, req.TraceBytes, req.Backend, req.FeeBudget, req.RewardBudget,
		req.DeadlineMs, req.MaxRetries,
		fmt.Sprintf("%016x", req.DeadlineMs), fmt.Sprintf("%014x", pouw.MaxAmount-req.RewardBudget),
		fmt.Sprintf("%016x", req.TraceBytes), len(req.DependsOn),
	}
	for _, d := range req.DependsOn {
		args = append(args, d)
	}
	fixed := len(args)
	// The script picks the id of the next created_seq from candidates
	// derived here (Lua has no BLAKE3); when other enqueuers moved the
	// counter past them it answers with the counter and we derive again.
	base := s.seqHint.Load()
	for try := 0; try < maxEnqueueTries; try++ {
		// The window doubles after each miss (up to maxSeqCandidates): under
		// many concurrent enqueuers a fixed window can keep falling behind
		// the counter for one unlucky caller until it gives up.
		n := min(uint64(seqCandidates)<<min(try, 8), maxSeqCandidates)
		args = append(args[:fixed], base, n)
		for i := uint64(1); i <= n; i++ {
			args = append(args, pouw.JobID(req.IntentID, req.TraceHash, req.Tier, base+i))
		}
		v, err := s.runMoney(ctx, "enqueue", s.s.enqueue, args...)
		if err != nil {
			return pouw.ProofJob{}, false, err
		}
		arr, ok := v.([]any)
		if ok && len(arr) == 2 && arr[0] == int64(2) {
			cur, err := toInt(arr[1])
			if err != nil || cur < 0 || uint64(cur) >= pouw.MaxAmount-seqCandidates {
				return pouw.ProofJob{}, false, fmt.Errorf("redisstore: enqueue: created_seq counter %v out of range", arr[1])
			}
			base = uint64(cur)
			continue
		}
		if !ok || len(arr) != 3 {
			return pouw.ProofJob{}, false, fmt.Errorf("redisstore: enqueue: unexpected reply %v", v)
		}
		created := arr[0] == int64(1)
		m, err := toJob(arr[2])
		if err != nil {
			return pouw.ProofJob{}, false, fmt.Errorf("redisstore: enqueue: %w", err)
		}
		if len(m) == 0 {
			// The dedup entry outlives the job: it completed and its
			// detail expired by retention. Answer with what the entry
			// proves.
			existing, _ := arr[1].(string)
			return pouw.ProofJob{JobID: existing, Tier: req.Tier, IntentID: req.IntentID, TraceHash: req.TraceHash,
				State: pouw.StateCompleted}, false, nil
		}
		job, err := decodeJob(m)
		if err != nil {
			return pouw.ProofJob{}, false, fmt.Errorf("redisstore: enqueue: %w", err)
		}
		if created {
			for {
				h := s.seqHint.Load()
				if job.CreatedSeq <= h || s.seqHint.CompareAndSwap(h, job.CreatedSeq) {
					break
				}
			}
		}
		return job, created, nil
	}
	return pouw.ProofJob{}, false, fmt.Errorf("redisstore: enqueue: %w: created_seq kept moving under %d tries", store.ErrUnavailable, maxEnqueueTries)
}

const (
	// seqCandidates job ids are derived for a first enqueue attempt, and
	// twice as many after each miss, up to maxSeqCandidates.
	seqCandidates    = 8
	maxSeqCandidates = 256
	// maxEnqueueTries bounds the retries when other enqueuers keep moving
	// the counter.
	maxEnqueueTries = 64
)

func validateEnqueue(req store.EnqueueRequest) error {
	switch {
	case !req.Tier.Valid():
		return fmt.Errorf("%w: tier %d", store.ErrInvalid, uint8(req.Tier))
	case req.IntentID.IsZero():
		return fmt.Errorf("%w: intent_id is zero", store.ErrInvalid)
	case req.TraceHash.IsZero():
		return fmt.Errorf("%w: trace_hash is zero", store.ErrInvalid)
	case req.TraceRef == "" || len(req.TraceRef) > maxRefLen:
		return fmt.Errorf("%w: trace_ref must be 1..%d bytes", store.ErrInvalid, maxRefLen)
	case req.TraceBytes < 0 || uint64(req.TraceBytes) > pouw.MaxAmount:
		return fmt.Errorf("%w: trace_bytes %d out of range", store.ErrInvalid, req.TraceBytes)
	case req.FeeBudget > pouw.MaxAmount:
		return fmt.Errorf("%w: fee_budget %d exceeds 2^53-1", store.ErrInvalid, req.FeeBudget)
	case req.RewardBudget > req.FeeBudget:
		return fmt.Errorf("%w: reward_budget %d exceeds fee_budget %d", store.ErrInvalid, req.RewardBudget, req.FeeBudget)
	case req.MaxRetries == 0:
		return fmt.Errorf("%w: max_retries must be at least 1", store.ErrInvalid)
	case req.DeadlineMs <= 0 || uint64(req.DeadlineMs) > pouw.MaxAmount:
		return fmt.Errorf("%w: deadline_ms %d out of range", store.ErrInvalid, req.DeadlineMs)
	case len(req.DependsOn) > maxDeps:
		return fmt.Errorf("%w: more than %d dependencies", store.ErrInvalid, maxDeps)
	}
	if err := validateName("backend", req.Backend); err != nil {
		return err
	}
	seen := make(map[string]bool, len(req.DependsOn))
	for _, d := range req.DependsOn {
		if err := pouw.ValidateJobID(d); err != nil {
			return fmt.Errorf("dependency: %w", err)
		}
		if seen[d] {
			return fmt.Errorf("%w: dependency %s listed twice", store.ErrInvalid, d)
		}
		seen[d] = true
	}
	return nil
}

// validateName checks a prover id or backend name, which become parts of
// keys and events.
func validateName(what, v string) error {
	if v == "" || len(v) > maxIDLen {
		return fmt.Errorf("%w: %s must be 1..%d bytes", store.ErrInvalid, what, maxIDLen)
	}
	for _, c := range v {
		if c <= ' ' || c == 0x7f || c == ',' {
			return fmt.Errorf("%w: %s %q contains a space, comma or control character", store.ErrInvalid, what, v)
		}
	}
	return nil
}

// dedupKey is hex(BLAKE3(intent_id | tier | trace_hash)[:16]): short keys
// for an index that lives as long as the dedup window.
func dedupKey(req store.EnqueueRequest) string {
	h := blake3.New()
	_, _ = h.Write(req.IntentID[:])
	_, _ = h.Write([]byte{byte(req.Tier)})
	_, _ = h.Write(req.TraceHash[:])
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// A job's member in its pend zset (built by the enqueue script) is
// fixed-width hex, so that byte order is claim order (earliest deadline,
// highest reward, lowest created_seq) and the claim filters compare
// substrings: deadline(16) reward'(14) created_seq(16) trace_bytes(16) id.
const pendingMemberLen = 16 + 14 + 16 + 16 + pouw.JobIDLen

// Job implements store.Store.
func (s *Store) Job(ctx context.Context, id string) (pouw.ProofJob, error) {
	if err := pouw.ValidateJobID(id); err != nil {
		return pouw.ProofJob{}, fmt.Errorf("redisstore: job: %w", err)
	}
	v, err := s.run(ctx, "job", s.s.job, id)
	if err != nil {
		return pouw.ProofJob{}, err
	}
	m, err := toJob(v)
	if err != nil {
		return pouw.ProofJob{}, fmt.Errorf("redisstore: job: %w", err)
	}
	if len(m) == 0 {
		return pouw.ProofJob{}, fmt.Errorf("redisstore: job: %w: job %s", store.ErrNotFound, id)
	}
	return decodeJob(m)
}

func pageArgs(q store.PageQuery) (tier string, limit int, err error) {
	if q.Tier != nil {
		if !q.Tier.Valid() {
			return "", 0, fmt.Errorf("%w: tier %d", store.ErrInvalid, uint8(*q.Tier))
		}
		tier = strconv.Itoa(int(*q.Tier))
	}
	limit = q.Limit
	if limit < 0 {
		return "", 0, fmt.Errorf("%w: negative limit", store.ErrInvalid)
	}
	if limit == 0 {
		limit = defaultLimit
	}
	return tier, min(limit, maxPageLimit), nil
}

// Pending implements store.Store. The cursor is the last job's pend member.
func (s *Store) Pending(ctx context.Context, q store.PageQuery) (store.JobPage, error) {
	tier, limit, err := pageArgs(q)
	if err != nil {
		return store.JobPage{}, fmt.Errorf("redisstore: pending: %w", err)
	}
	if q.Cursor != "" && (len(q.Cursor) != pendingMemberLen || !isLowerHex(q.Cursor)) {
		return store.JobPage{}, fmt.Errorf("redisstore: pending: %w: malformed cursor", store.ErrInvalid)
	}
	v, err := s.run(ctx, "pending", s.s.pending, tier, q.Cursor, limit)
	if err != nil {
		return store.JobPage{}, err
	}
	return decodePage("pending", v)
}

// DeadLetter implements store.Store. The cursor is the last job's dead score.
func (s *Store) DeadLetter(ctx context.Context, q store.PageQuery) (store.JobPage, error) {
	tier, limit, err := pageArgs(q)
	if err != nil {
		return store.JobPage{}, fmt.Errorf("redisstore: dead letter: %w", err)
	}
	if q.Cursor != "" {
		if _, err := strconv.ParseUint(q.Cursor, 10, 53); err != nil {
			return store.JobPage{}, fmt.Errorf("redisstore: dead letter: %w: malformed cursor", store.ErrInvalid)
		}
	}
	v, err := s.run(ctx, "dead letter", s.s.deadLetter, tier, q.Cursor, limit)
	if err != nil {
		return store.JobPage{}, err
	}
	return decodePage("dead letter", v)
}

// decodePage reads {more, cursor1, job1, cursor2, job2, ...}.
func decodePage(op string, v any) (store.JobPage, error) {
	arr, ok := v.([]any)
	if !ok || len(arr)%2 != 1 {
		return store.JobPage{}, fmt.Errorf("redisstore: %s: unexpected reply", op)
	}
	var page store.JobPage
	last := ""
	for i := 1; i < len(arr); i += 2 {
		last, _ = arr[i].(string)
		m, err := toJob(arr[i+1])
		if err != nil {
			return store.JobPage{}, fmt.Errorf("redisstore: %s: %w", op, err)
		}
		j, err := decodeJob(m)
		if err != nil {
			return store.JobPage{}, fmt.Errorf("redisstore: %s: %w", op, err)
		}
		page.Jobs = append(page.Jobs, j)
	}
	if arr[0] == int64(1) {
		page.NextCursor = last
	}
	return page, nil
}

// Claim implements store.Store.
func (s *Store) Claim(ctx context.Context, req store.ClaimRequest) (store.Lease, error) {
	if err := validateClaim(req); err != nil {
		return store.Lease{}, fmt.Errorf("redisstore: claim: %w", err)
	}
	token, err := s.newToken()
	if err != nil {
		return store.Lease{}, err
	}
	rthr, tbthr := "", ""
	if req.MinReward > 0 {
		rthr = fmt.Sprintf("%014x", pouw.MaxAmount-req.MinReward)
	}
	if req.MaxTraceBytes > 0 {
		tbthr = fmt.Sprintf("%016x", req.MaxTraceBytes)
	}
	sum := blake3.Sum256([]byte(token))
	args := []any{req.ProverID, hex.EncodeToString(sum[:]), rthr, tbthr, len(req.Tiers)}
	for _, t := range req.Tiers {
		args = append(args, int(t))
	}
	args = append(args, len(req.Backends))
	for _, b := range req.Backends {
		args = append(args, b)
	}
	v, err := s.run(ctx, "claim", s.s.claim, args...)
	if err != nil {
		return store.Lease{}, err
	}
	job, err := replyJob("claim", v)
	if err != nil {
		return store.Lease{}, err
	}
	return store.Lease{Job: job, Token: token}, nil
}

func validateClaim(req store.ClaimRequest) error {
	if err := validateName("prover_id", req.ProverID); err != nil {
		return err
	}
	if len(req.Tiers) == 0 || len(req.Tiers) > len(pouw.Tiers) {
		return fmt.Errorf("%w: a claim names 1..3 tiers, got %d", store.ErrInvalid, len(req.Tiers))
	}
	var seen [3]bool
	for _, t := range req.Tiers {
		if !t.Valid() {
			return fmt.Errorf("%w: tier %d", store.ErrInvalid, uint8(t))
		}
		if seen[t] {
			return fmt.Errorf("%w: tier %v listed twice", store.ErrInvalid, t)
		}
		seen[t] = true
	}
	if len(req.Backends) == 0 || len(req.Backends) > 64 {
		return fmt.Errorf("%w: a claim names 1..64 backends, got %d", store.ErrInvalid, len(req.Backends))
	}
	for _, b := range req.Backends {
		if err := validateName("backend", b); err != nil {
			return err
		}
	}
	if req.MaxTraceBytes < 0 || uint64(req.MaxTraceBytes) > pouw.MaxAmount {
		return fmt.Errorf("%w: max_trace_bytes %d out of range", store.ErrInvalid, req.MaxTraceBytes)
	}
	if req.MinReward > pouw.MaxAmount {
		return fmt.Errorf("%w: min_reward %d exceeds 2^53-1", store.ErrInvalid, req.MinReward)
	}
	return nil
}

func (s *Store) newToken() (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(s.opts.Rand, b[:]); err != nil {
		return "", fmt.Errorf("redisstore: lease token: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

func leaseArgs(ref store.LeaseRef) ([]any, error) {
	if err := pouw.ValidateJobID(ref.JobID); err != nil {
		return nil, err
	}
	if err := validateName("prover_id", ref.ProverID); err != nil {
		return nil, err
	}
	if ref.Token == "" || len(ref.Token) > maxIDLen {
		return nil, fmt.Errorf("%w: lease token must be 1..%d bytes", store.ErrInvalid, maxIDLen)
	}
	sum := blake3.Sum256([]byte(ref.Token))
	return []any{ref.JobID, ref.ProverID, hex.EncodeToString(sum[:])}, nil
}

func (s *Store) leaseOp(ctx context.Context, op string, sc *redis.Script, money bool, ref store.LeaseRef, extra ...any) (pouw.ProofJob, error) {
	args, err := leaseArgs(ref)
	if err != nil {
		return pouw.ProofJob{}, fmt.Errorf("redisstore: %s: %w", op, err)
	}
	run := s.run
	if money {
		run = s.runMoney
	}
	v, err := run(ctx, op, sc, append(args, extra...)...)
	if err != nil {
		return pouw.ProofJob{}, err
	}
	return replyJob(op, v)
}

// Renew implements store.Store.
func (s *Store) Renew(ctx context.Context, ref store.LeaseRef) (pouw.ProofJob, error) {
	return s.leaseOp(ctx, "renew", s.s.renew, false, ref)
}

// BeginVerify implements store.Store.
func (s *Store) BeginVerify(ctx context.Context, ref store.LeaseRef, budget time.Duration) (pouw.ProofJob, error) {
	if budget <= 0 || budget > 24*time.Hour {
		return pouw.ProofJob{}, fmt.Errorf("redisstore: begin verify: %w: budget %v out of range", store.ErrInvalid, budget)
	}
	return s.leaseOp(ctx, "begin verify", s.s.beginVerify, false, ref, budget.Milliseconds())
}

// Complete implements store.Store.
func (s *Store) Complete(ctx context.Context, ref store.LeaseRef, proofRef string) (pouw.ProofJob, error) {
	if proofRef == "" || len(proofRef) > maxRefLen {
		return pouw.ProofJob{}, fmt.Errorf("redisstore: complete: %w: proof_ref must be 1..%d bytes", store.ErrInvalid, maxRefLen)
	}
	return s.leaseOp(ctx, "complete", s.s.complete, true, ref, proofRef)
}

// Fail implements store.Store.
func (s *Store) Fail(ctx context.Context, ref store.LeaseRef, outcome pouw.Outcome, reason string) (pouw.ProofJob, error) {
	if outcome != pouw.OutcomeRejected && outcome != pouw.OutcomeFailed {
		return pouw.ProofJob{}, fmt.Errorf("redisstore: fail: %w: outcome %q (want rejected or failed)", store.ErrInvalid, outcome)
	}
	if len(reason) > maxReasonLen {
		return pouw.ProofJob{}, fmt.Errorf("redisstore: fail: %w: reason longer than %d bytes", store.ErrInvalid, maxReasonLen)
	}
	return s.leaseOp(ctx, "fail", s.s.fail, true, ref, string(outcome), reason)
}

// Release implements store.Store.
func (s *Store) Release(ctx context.Context, ref store.LeaseRef, reason string) (pouw.ProofJob, error) {
	if len(reason) > maxReasonLen {
		return pouw.ProofJob{}, fmt.Errorf("redisstore: release: %w: reason longer than %d bytes", store.ErrInvalid, maxReasonLen)
	}
	return s.leaseOp(ctx, "release", s.s.release, false, ref, reason)
}

// ReapExpired implements store.Store.
func (s *Store) ReapExpired(ctx context.Context, limit int) (int, error) {
	if limit <= 0 {
		return 0, fmt.Errorf("redisstore: reap: %w: limit must be positive", store.ErrInvalid)
	}
	v, err := s.runMoney(ctx, "reap", s.s.reap, limit)
	if err != nil {
		return 0, err
	}
	n, err := toInt(v)
	return int(n), err
}

// Requeue implements store.Store.
func (s *Store) Requeue(ctx context.Context, id string) (pouw.ProofJob, error) {
	if err := pouw.ValidateJobID(id); err != nil {
		return pouw.ProofJob{}, fmt.Errorf("redisstore: requeue: %w", err)
	}
	v, err := s.runMoney(ctx, "requeue", s.s.requeue, id)
	if err != nil {
		return pouw.ProofJob{}, err
	}
	return replyJob("requeue", v)
}

// History implements store.Store.
func (s *Store) History(ctx context.Context, id string) ([]pouw.Attempt, error) {
	if err := pouw.ValidateJobID(id); err != nil {
		return nil, fmt.Errorf("redisstore: history: %w", err)
	}
	v, err := s.run(ctx, "history", s.s.history, id)
	if err != nil {
		return nil, err
	}
	arr, _ := v.([]any)
	out := make([]pouw.Attempt, 0, len(arr))
	for _, e := range arr {
		raw, _ := e.(string)
		a, err := decodeAttempt(raw)
		if err != nil {
			return nil, fmt.Errorf("redisstore: history: %w", err)
		}
		out = append(out, a)
	}
	return out, nil
}

// decodeAttempt reads a history line (scripts.go, attempt): number, prover,
// lease id, claimed, ended, outcome and reason, tab-separated, reason last.
func decodeAttempt(raw string) (pouw.Attempt, error) {
	f := strings.SplitN(raw, "\t", 7)
	if len(f) != 7 {
		return pouw.Attempt{}, fmt.Errorf("attempt %q: %d fields, want 7", raw, len(f))
	}
	n, err1 := strconv.ParseUint(f[0], 10, 32)
	c, err2 := atoi64(f[3])
	end, err3 := atoi64(f[4])
	if err := errors.Join(err1, err2, err3); err != nil {
		return pouw.Attempt{}, fmt.Errorf("attempt %q: %w", raw, err)
	}
	return pouw.Attempt{Number: uint32(n), ProverID: f[1], LeaseID: f[2], ClaimedAtMs: c,
		EndedAtMs: end, Outcome: pouw.Outcome(f[5]), Reason: f[6]}, nil
}

// RegisterProver implements store.Store.
func (s *Store) RegisterProver(ctx context.Context, p store.Prover) error {
	if err := validateName("prover_id", p.ID); err != nil {
		return fmt.Errorf("redisstore: register prover: %w", err)
	}
	if p.TokenHash.IsZero() {
		return fmt.Errorf("redisstore: register prover: %w: token hash is zero", store.ErrInvalid)
	}
	if p.CreatedAtMs < 0 {
		return fmt.Errorf("redisstore: register prover: %w: negative created_at_ms", store.ErrInvalid)
	}
	if p.TTL < 0 {
		return fmt.Errorf("redisstore: register prover: %w: negative TTL", store.ErrInvalid)
	}
	_, err := s.run(ctx, "register prover", s.s.register, p.ID, p.TokenHash.String(), p.CreatedAtMs, p.TTL.Milliseconds())
	return err
}

// ProverByTokenHash implements store.Store.
func (s *Store) ProverByTokenHash(ctx context.Context, h pouw.Hash) (store.Prover, error) {
	v, err := s.run(ctx, "prover by token", s.s.proverByToken, h.String())
	if err != nil {
		return store.Prover{}, err
	}
	arr, ok := v.([]any)
	if !ok || len(arr) != 3 {
		return store.Prover{}, fmt.Errorf("redisstore: prover by token: unexpected reply")
	}
	id, _ := arr[0].(string)
	p, err := decodeProver(id, arr[1])
	if err != nil {
		return store.Prover{}, fmt.Errorf("redisstore: prover by token: %w", err)
	}
	es, _ := arr[2].(string)
	if p.ExpiresAtMs, err = atoi64(es); err != nil {
		return store.Prover{}, fmt.Errorf("redisstore: prover by token: %w", err)
	}
	p.TokenHash = h
	return p, nil
}

// decodeProver reads a prover:<id> hash.
func decodeProver(id string, v any) (store.Prover, error) {
	m, err := toMap(v)
	if err != nil {
		return store.Prover{}, err
	}
	th, err := pouw.ParseHash(m["th"])
	if err != nil {
		return store.Prover{}, err
	}
	cat, err1 := atoi64(m["cat"])
	lift, err2 := atoi64(m["lift"])
	if err := errors.Join(err1, err2); err != nil {
		return store.Prover{}, err
	}
	return store.Prover{ID: id, TokenHash: th, CreatedAtMs: cat, Suspended: m["sus"] == "1",
		SuspendReason: m["sr"], LiftedAtMs: lift}, nil
}

// AddProverToken implements store.Store.
func (s *Store) AddProverToken(ctx context.Context, id string, h pouw.Hash, ttl, grace time.Duration) error {
	if h.IsZero() || ttl < 0 || grace < 0 {
		return fmt.Errorf("redisstore: add token: %w: zero hash or negative duration", store.ErrInvalid)
	}
	_, err := s.run(ctx, "add token", s.s.addToken, id, h.String(), ttl.Milliseconds(), grace.Milliseconds())
	return err
}

// RevokeProverTokens implements store.Store.
func (s *Store) RevokeProverTokens(ctx context.Context, id string) (int, error) {
	v, err := s.run(ctx, "revoke tokens", s.s.revokeTokens, id)
	if err != nil {
		return 0, err
	}
	n, _ := v.(int64)
	return int(n), nil
}

// SetProverSuspended implements store.Store.
func (s *Store) SetProverSuspended(ctx context.Context, id string, suspended bool, reason string) (store.Prover, error) {
	flag := "0"
	if suspended {
		flag = "1"
	}
	v, err := s.run(ctx, "suspend", s.s.suspend, id, flag, reason)
	if err != nil {
		return store.Prover{}, err
	}
	p, err := decodeProver(id, v)
	if err != nil {
		return store.Prover{}, fmt.Errorf("redisstore: suspend: %w", err)
	}
	return p, nil
}

// Audit implements store.Store.
func (s *Store) Audit(ctx context.Context, ev pouw.Event) error {
	if ev.Type == "" {
		return fmt.Errorf("redisstore: audit: %w: no event type", store.ErrInvalid)
	}
	_, err := s.run(ctx, "audit", s.s.audit, string(ev.Type), ev.Actor, ev.Action, ev.JobID, ev.ProverID,
		strconv.FormatUint(ev.Amount, 10), ev.Reason)
	return err
}

// Provers implements store.Store.
func (s *Store) Provers(ctx context.Context) ([]pouw.ProverStats, error) {
	v, err := s.run(ctx, "provers", s.s.provers)
	if err != nil {
		return nil, err
	}
	arr, _ := v.([]any)
	out := make([]pouw.ProverStats, 0, len(arr)/2)
	for i := 0; i+1 < len(arr); i += 2 {
		id, _ := arr[i].(string)
		m, err := toMap(arr[i+1])
		if err != nil {
			return nil, fmt.Errorf("redisstore: provers: %w", err)
		}
		ps, err := decodeStats(id, m)
		if err != nil {
			return nil, fmt.Errorf("redisstore: provers: %w", err)
		}
		out = append(out, ps)
	}
	return out, nil
}

func decodeStats(id string, m map[string]string) (pouw.ProverStats, error) {
	done, e1 := atou64(m["done"])
	failed, e2 := atou64(m["failed"])
	earned, e3 := atou64(m["earned"])
	ctime, e4 := atoi64(m["ctime"])
	seen, e5 := atoi64(m["seen"])
	if err := errors.Join(e1, e2, e3, e4, e5); err != nil {
		return pouw.ProverStats{}, err
	}
	ps := pouw.ProverStats{ProverID: id, JobsCompleted: done, JobsFailed: failed, TotalFeeEarned: earned, LastSeenMs: seen}
	if done > 0 {
		ps.AvgCompletionTimeMs = ctime / int64(done)
	}
	return ps, nil
}

// Deposit implements store.Store.
func (s *Store) Deposit(ctx context.Context, amount uint64, by string) (pouw.PoolStatus, error) {
	if amount == 0 || amount > pouw.MaxAmount {
		return pouw.PoolStatus{}, fmt.Errorf("redisstore: deposit: %w: amount %d must be 1..2^53-1", store.ErrInvalid, amount)
	}
	if len(by) > maxIDLen {
		return pouw.PoolStatus{}, fmt.Errorf("redisstore: deposit: %w: depositor name longer than %d bytes", store.ErrInvalid, maxIDLen)
	}
	v, err := s.runMoney(ctx, "deposit", s.s.deposit, amount, by)
	if err != nil {
		return pouw.PoolStatus{}, err
	}
	m, err := toMap(v)
	if err != nil {
		return pouw.PoolStatus{}, fmt.Errorf("redisstore: deposit: %w", err)
	}
	return decodePool(m)
}

// Pool implements store.Store.
func (s *Store) Pool(ctx context.Context) (pouw.PoolStatus, error) {
	m, err := s.c.HGetAll(ctx, s.keys[0]+"pool").Result()
	if err != nil {
		return pouw.PoolStatus{}, mapErr("pool", err)
	}
	return decodePool(m)
}

func decodePool(m map[string]string) (pouw.PoolStatus, error) {
	dep, e1 := atou64(m["dep"])
	avail, e2 := atou64(m["avail"])
	res, e3 := atou64(m["res"])
	paid, e4 := atou64(m["paid"])
	if err := errors.Join(e1, e2, e3, e4); err != nil {
		return pouw.PoolStatus{}, fmt.Errorf("redisstore: pool: %w", err)
	}
	return pouw.PoolStatus{Deposited: dep, Available: avail, Reserved: res, Paid: paid}, nil
}

// Status implements store.Store.
func (s *Store) Status(ctx context.Context) (pouw.SystemStatus, error) {
	v, err := s.run(ctx, "status", s.s.status)
	if err != nil {
		return pouw.SystemStatus{}, err
	}
	arr, ok := v.([]any)
	if !ok || len(arr) != 4+6*len(pouw.Tiers) {
		return pouw.SystemStatus{}, fmt.Errorf("redisstore: status: unexpected reply")
	}
	now, e1 := toInt(arr[0])
	poolm, e2 := toMap(arr[1])
	nprov, e3 := toInt(arr[2])
	last, e4 := toInt(arr[3])
	if err := errors.Join(e1, e2, e3, e4); err != nil {
		return pouw.SystemStatus{}, fmt.Errorf("redisstore: status: %w", err)
	}
	pool, err := decodePool(poolm)
	if err != nil {
		return pouw.SystemStatus{}, err
	}
	st := pouw.SystemStatus{NowMs: now, Pool: pool, Provers: uint64(nprov), LastSeq: uint64(last)}
	order := [...]pouw.State{pouw.StateWaiting, pouw.StatePending, pouw.StateLeased, pouw.StateCompleted, pouw.StateDead}
	for i, t := range pouw.Tiers {
		part := arr[4+6*i : 4+6*(i+1)]
		ts := pouw.TierStatus{Tier: t, Counts: make(map[pouw.State]uint64, len(order))}
		for k, state := range order {
			n, err := toInt(part[k])
			if err != nil {
				return pouw.SystemStatus{}, fmt.Errorf("redisstore: status: %w", err)
			}
			ts.Counts[state] = uint64(max(n, 0))
		}
		if cat, _ := part[5].(string); cat != "" {
			c, err := atoi64(cat)
			if err != nil {
				return pouw.SystemStatus{}, fmt.Errorf("redisstore: status: %w", err)
			}
			ts.OldestPendingAgeMs = max(now-c, 0)
		}
		st.Tiers = append(st.Tiers, ts)
	}
	return st, nil
}

// Events implements store.Store.
func (s *Store) Events(ctx context.Context, after uint64, limit int) ([]pouw.Event, error) {
	if after > pouw.MaxAmount {
		return nil, fmt.Errorf("redisstore: events: %w: event id %d out of range", store.ErrInvalid, after)
	}
	if limit <= 0 {
		limit = defaultLimit
	}
	limit = min(limit, maxPageLimit*10)
	v, err := s.run(ctx, "events", s.s.events, after, limit)
	if err != nil {
		return nil, err
	}
	arr, _ := v.([]any)
	out := make([]pouw.Event, 0, len(arr))
	for _, e := range arr {
		ev, err := decodeEvent(e)
		if err != nil {
			return nil, fmt.Errorf("redisstore: events: %w", err)
		}
		out = append(out, ev)
	}
	return out, nil
}

func decodeEvent(v any) (pouw.Event, error) {
	entry, ok := v.([]any)
	if !ok || len(entry) != 2 {
		return pouw.Event{}, errors.New("malformed stream entry")
	}
	sid, _ := entry[0].(string)
	ms, _, _ := strings.Cut(sid, "-")
	id, err := strconv.ParseUint(ms, 10, 64)
	if err != nil {
		return pouw.Event{}, fmt.Errorf("stream id %q: %w", sid, err)
	}
	m, err := toMap(entry[1])
	if err != nil {
		return pouw.Event{}, err
	}
	ev := pouw.Event{ID: id, Type: pouw.EventType(m["t"]), JobID: m["j"], State: pouw.State(m["s"]),
		ProverID: m["p"], Reason: m["r"], Actor: m["c"], Action: m["x"]}
	at, e1 := atoi64(m["a"])
	n, e2 := atou64(m["n"])
	amt, e3 := atou64(m["m"])
	if err := errors.Join(e1, e2, e3); err != nil {
		return pouw.Event{}, fmt.Errorf("event %d: %w", id, err)
	}
	ev.AtMs, ev.Attempts, ev.Amount = at, uint32(n), amt
	if ti, ok := m["ti"]; ok {
		t, err := parseTier(ti)
		if err != nil {
			return pouw.Event{}, fmt.Errorf("event %d: %w", id, err)
		}
		ev.Tier = &t
	}
	return ev, nil
}

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.c.Ping(ctx).Err(); err != nil {
		return mapErr("ping", err)
	}
	return nil
}

// Close implements store.Store. The client belongs to the caller, who
// closes it; the store holds nothing else.
func (s *Store) Close() error { return nil }

// jobFields are the job hash fields a reply carries, in order (the
// scripts' getjob reads them with one HMGET).
var jobFields = []string{"id", "tier", "intent", "trace", "tref", "tb", "backend", "fee", "reward", "cat",
	"seq", "lexp", "dl", "maxr", "att", "state", "deps", "prover", "proof", "cmpl", "dreason"}

func luaJobFields() string {
	q := make([]string, len(jobFields))
	for i, f := range jobFields {
		q[i] = "'" + f + "'"
	}
	return strings.Join(q, ", ")
}

// jobPlaceholders are the replacements that let scripts index a getjob
// reply by name: JOBFIELDS (the quoted field list), NJOB (its length) and
// JF_<field> (the Lua, 1-based, index of <field>). Scripts that read a job
// HMGET JOBFIELDS followed by the extra fields they need, at NJOB+1 on.
func jobPlaceholders() []string {
	r := []string{"JOBFIELDS", luaJobFields(), "NJOB", strconv.Itoa(len(jobFields))}
	// Longest names first: no JF_ name is then cut short by a shorter one
	// that is its prefix.
	names := slices.Clone(jobFields)
	slices.SortFunc(names, func(a, b string) int { return len(b) - len(a) })
	for _, f := range names {
		r = append(r, "JF_"+f, strconv.Itoa(slices.Index(jobFields, f)+1))
	}
	return r
}

// toJob reads a getjob reply into a field map; a job that does not exist
// gives an empty map.
func toJob(v any) (map[string]string, error) {
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("job reply is %T, not an array", v)
	}
	if len(arr) == 0 {
		return map[string]string{}, nil
	}
	if len(arr) != len(jobFields) {
		return nil, fmt.Errorf("job reply has %d fields, want %d", len(arr), len(jobFields))
	}
	m := make(map[string]string, len(arr))
	for i, x := range arr {
		if str, ok := x.(string); ok {
			m[jobFields[i]] = str
		}
	}
	if m["id"] == "" {
		return map[string]string{}, nil
	}
	return m, nil
}

// replyJob decodes a script's getjob reply.
func replyJob(op string, v any) (pouw.ProofJob, error) {
	m, err := toJob(v)
	if err != nil {
		return pouw.ProofJob{}, fmt.Errorf("redisstore: %s: %w", op, err)
	}
	j, err := decodeJob(m)
	if err != nil {
		return pouw.ProofJob{}, fmt.Errorf("redisstore: %s: %w", op, err)
	}
	return j, nil
}

// decodeJob reads a job hash (field names in scripts.go's Enqueue).
func decodeJob(m map[string]string) (pouw.ProofJob, error) {
	if len(m) == 0 {
		return pouw.ProofJob{}, fmt.Errorf("%w: job vanished", store.ErrNotFound)
	}
	tier, err := parseTier(m["tier"])
	if err != nil {
		return pouw.ProofJob{}, err
	}
	intent, e1 := pouw.ParseHash(m["intent"])
	trace, e2 := pouw.ParseHash(m["trace"])
	fee, e3 := atou64(m["fee"])
	reward, e4 := atou64(m["reward"])
	cat, e5 := atoi64(m["cat"])
	seq, e6 := atou64(m["seq"])
	lexp, e7 := atoi64(m["lexp"])
	dl, e8 := atoi64(m["dl"])
	maxr, e9 := atou64(m["maxr"])
	att, e10 := atou64(m["att"])
	tb, e11 := atoi64(m["tb"])
	cmpl, e12 := atoi64(m["cmpl"])
	if err := errors.Join(e1, e2, e3, e4, e5, e6, e7, e8, e9, e10, e11, e12); err != nil {
		return pouw.ProofJob{}, fmt.Errorf("job %s: corrupt field: %w", m["id"], err)
	}
	j := pouw.ProofJob{
		JobID: m["id"], Tier: tier, IntentID: intent, TraceHash: trace, TraceRef: m["tref"],
		FeeBudget: fee, RewardBudget: reward, CreatedAtMs: cat, CreatedSeq: seq,
		LeaseExpiresAtMs: lexp, DeadlineMs: dl, MaxRetries: uint32(maxr), Attempts: uint32(att),
		Backend: m["backend"], State: pouw.State(m["state"]), TraceBytes: tb,
		ProverID: m["prover"], ProofRef: m["proof"], CompletedAtMs: cmpl, DeadReason: m["dreason"],
	}
	if d := m["deps"]; d != "" {
		j.DependsOn = strings.Split(d, ",")
	}
	return j, nil
}

func parseTier(s string) (pouw.JobTier, error) {
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil || !pouw.JobTier(n).Valid() {
		return 0, fmt.Errorf("corrupt tier %q", s)
	}
	return pouw.JobTier(n), nil
}

// toMap reads a flat [k1, v1, k2, v2, ...] reply.
func toMap(v any) (map[string]string, error) {
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("reply is %T, not an array", v)
	}
	if len(arr)%2 != 0 {
		return nil, errors.New("odd-length hash reply")
	}
	m := make(map[string]string, len(arr)/2)
	for i := 0; i < len(arr); i += 2 {
		k, _ := arr[i].(string)
		val, _ := arr[i+1].(string)
		m[k] = val
	}
	return m, nil
}

func toInt(v any) (int64, error) {
	switch x := v.(type) {
	case int64:
		return x, nil
	case string:
		return atoi64(x)
	}
	return 0, fmt.Errorf("reply is %T, not an integer", v)
}

// atoi64 and atou64 read integer fields; a missing field is 0.
func atoi64(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	return strconv.ParseInt(s, 10, 64)
}

func atou64(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	return strconv.ParseUint(s, 10, 64)
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
