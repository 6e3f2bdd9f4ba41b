// Package boltstore is the embedded default store.Store: one bbolt file, one
// process. It owns the on-disk layout of that file (buckets, index keys) and
// nothing else; every method is one bbolt read-write transaction, so a
// transition is atomic and an error rolls everything back.
//
// Pending jobs are indexed per tier and per (tier, backend) with keys that sort
// in claim order (deadline, then reward descending, then created_seq), so a
// claim seeks to the front of a few indexes instead of scanning the queue.
// Leases, waiting jobs, completed jobs and dead jobs each have a time-ordered
// index that the reaper walks from the front.
//
// It imports store, pouw and clock; it must not import api, blob, scheduler or
// backends.
package boltstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/zeebo/blake3"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/pouwfarm/pouwfarm/clock"
	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/pouw"
)

// Bucket names. Keys are fixed-width big-endian so byte order is numeric order.
var (
	bktJobs      = []byte("jobs")      // job id -> record JSON; its sequence is created_seq
	bktHist      = []byte("hist")      // job id || attempt number -> Attempt JSON
	bktPendAll   = []byte("pend_all")  // claimKey -> pendVal (every tier)
	bktPendTier  = []byte("pend_tier") // tier || claimKey -> pendVal
	bktPendTB    = []byte("pend_tb")   // sub-bucket tier||backend: claimKey -> pendVal
	bktPendAge   = []byte("pend_age")  // tier || created_seq -> created_at_ms
	bktWaiting   = []byte("waiting")   // deadline || seq -> job id
	bktWaiters   = []byte("waiters")   // dependency id || dependent id -> nil
	bktLeased    = []byte("leased")    // lease expiry || seq -> job id
	bktCompleted = []byte("completed") // completed_at || seq -> job id
	bktDead      = []byte("dead")      // dead_at || seq -> job id
	bktDedup     = []byte("dedup")     // intent || tier || trace -> dedupEntry JSON
	bktDedupTime = []byte("dedup_t")   // created_at || seq -> dedup key
	bktProvers   = []byte("provers")   // prover id -> proverRec JSON
	bktProverTok = []byte("prover_tok")
	bktEvents    = []byte("events") // event id -> Event JSON; its sequence is the event id
	bktMeta      = []byte("meta")   // pool ledger, counts per tier and state

	allBuckets = [][]byte{bktJobs, bktHist, bktPendAll, bktPendTier, bktPendTB, bktPendAge, bktWaiting,
		bktWaiters, bktLeased, bktCompleted, bktDead, bktDedup, bktDedupTime, bktProvers, bktProverTok,
		bktEvents, bktMeta}

	keyPool = []byte("pool")
)

// Store is the bbolt implementation of store.Store.
type Store struct {
	db     *bolt.DB
	opts   store.Options
	clk    clock.Clock
	logger *slog.Logger
	// writers counts transitions in flight: alone, a transition commits on
	// its own; with company, it joins a bbolt batch so several share one
	// fsync.
	writers atomic.Int32
}

var _ store.Store = (*Store)(nil)

// Open opens (creating when absent) the store file at path. Only one process
// may hold it: a second Open waits a second for the file lock and then fails
// with store.ErrUnavailable.
func Open(path string, opts store.Options, clk clock.Clock, logger *slog.Logger) (*Store, error) {
	if clk == nil {
		clk = clock.Real{}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("%w: open bolt store %s: %v", store.ErrUnavailable, path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("%w: init bolt store %s: %v", store.ErrUnavailable, path, err)
	}
	// A batch waits this long for company before it commits.
	db.MaxBatchDelay = 2 * time.Millisecond
	logger.Info("bolt store opened", "path", path)
	return &Store{db: db, opts: opts.WithDefaults(), clk: clk, logger: logger}, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

// Ping checks that the file is open.
func (s *Store) Ping(ctx context.Context) error {
	return s.view(ctx, func(*txn) error { return nil })
}

// record is a job as stored: the wire job plus what only the store sees.
type record struct {
	pouw.ProofJob
	// Token is the current lease token (leased only).
	Token string `json:"token,omitempty"`
	// Leases counts the leases granted, i.e. the number of the last attempt.
	Leases uint32 `json:"leases,omitempty"`
	// ClaimedAtMs is when the current lease was granted.
	ClaimedAtMs int64 `json:"claimed_at_ms_internal,omitempty"`
	// WaitingOn counts dependencies that have not completed (waiting only).
	WaitingOn int `json:"waiting_on,omitempty"`
	// DeadAtMs is when the job entered the dead-letter queue.
	DeadAtMs int64 `json:"dead_at_ms,omitempty"`
}

type dedupEntry struct {
	JobID       string `json:"job_id"`
	CreatedSeq  uint64 `json:"created_seq"`
	CreatedAtMs int64  `json:"created_at_ms"`
}

type proverRec struct {
	ID                string    `json:"id"`
	TokenHash         pouw.Hash `json:"token_hash"`
	CreatedAtMs       int64     `json:"created_at_ms"`
	Stats             pouw.ProverStats
	TotalCompletionMs int64 `json:"total_completion_ms"`
	// Tokens maps every live token hash (hex) to its expiry (0: never).
	// Records written before token rotation have none: their TokenHash
	// never expires.
	Tokens        map[string]int64 `json:"tokens,omitempty"`
	Suspended     bool             `json:"suspended,omitempty"`
	SuspendReason string           `json:"suspend_reason,omitempty"`
	LiftedAtMs    int64            `json:"lifted_at_ms,omitempty"`
}

// tokens returns the live token map, filling it for old records.
func (p *proverRec) tokens() map[string]int64 {
	if p.Tokens == nil {
		p.Tokens = map[string]int64{p.TokenHash.String(): 0}
	}
	return p.Tokens
}

// txn is one transaction with the time it runs at.
type txn struct {
	tx  *bolt.Tx
	now int64
	s   *Store
}

func (s *Store) update(ctx context.Context, fn func(t *txn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	run := s.db.Update
	if s.writers.Add(1) > 1 {
		// Batch may run fn more than once (a batch is retried without the
		// member that failed): every fn re-reads what it needs and resets
		// its results at its start.
		run = s.db.Batch
	}
	defer s.writers.Add(-1)
	err := run(func(tx *bolt.Tx) error {
		t := &txn{tx: tx, now: pouw.Millis(s.clk.Now()), s: s}
		if err := fn(t); err != nil {
			return err
		}
		return t.pruneEvents()
	})
	return wrapDBErr(err)
}

func (s *Store) view(ctx context.Context, fn func(t *txn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		return fn(&txn{tx: tx, now: pouw.Millis(s.clk.Now()), s: s})
	})
	return wrapDBErr(err)
}

func wrapDBErr(err error) error {
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) || errors.Is(err, bolterrors.ErrTimeout) {
		return fmt.Errorf("%w: %v", store.ErrUnavailable, err)
	}
	return err
}

func (t *txn) b(name []byte) *bolt.Bucket { return t.tx.Bucket(name) }

func u64(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

func cat(parts ...[]byte) []byte {
	return bytes.Join(parts, nil)
}

// timeKey orders by a millisecond time, then by created_seq.
func timeKey(ms int64, seq uint64) []byte { return cat(u64(uint64(ms)), u64(seq)) }

// claimKey orders pending jobs in claim order: earliest deadline, then highest
// reward, then lowest created_seq.
func claimKey(j *pouw.ProofJob) []byte {
	return cat(u64(uint64(j.DeadlineMs)), u64(pouw.MaxAmount-j.RewardBudget), u64(j.CreatedSeq))
}

func claimKeyDeadline(k []byte) int64 { return int64(binary.BigEndian.Uint64(k[:8])) }
func claimKeyReward(k []byte) uint64  { return pouw.MaxAmount - binary.BigEndian.Uint64(k[8:16]) }

// pendVal is the value of a pending index entry: the job id and its trace size,
// so a claim filters without loading the job.
func pendVal(j *pouw.ProofJob) []byte { return cat([]byte(j.JobID), u64(uint64(j.TraceBytes))) }

func parsePendVal(v []byte) (id string, traceBytes int64) {
	return string(v[:pouw.JobIDLen]), int64(binary.BigEndian.Uint64(v[pouw.JobIDLen:]))
}

func tbBucketName(tier pouw.JobTier, backend string) []byte {
	return cat([]byte{byte(tier)}, []byte(backend))
}

func countKey(tier pouw.JobTier, st pouw.State) []byte {
	return []byte(fmt.Sprintf("count/%d/%s", tier, st))
}

func (t *txn) getJSON(bucket, key []byte, v any) (bool, error) {
	raw := t.b(bucket).Get(key)
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("decode %s/%x: %w", bucket, key, err)
	}
	return true, nil
}

func (t *txn) putJSON(bucket, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return t.b(bucket).Put(key, raw)
}

func (t *txn) addCount(tier pouw.JobTier, st pouw.State, delta int64) error {
	m := t.b(bktMeta)
	k := countKey(tier, st)
	var n uint64
	if v := m.Get(k); v != nil {
		n = binary.BigEndian.Uint64(v)
	}
	n = uint64(int64(n) + delta)
	return m.Put(k, u64(n))
}

func (t *txn) count(tier pouw.JobTier, st pouw.State) uint64 {
	if v := t.b(bktMeta).Get(countKey(tier, st)); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// loadJob returns the record of id, or ErrNotFound (also for a completed job
// whose retention has run out but that the reaper has not purged yet).
func (t *txn) loadJob(id string) (*record, error) {
	if err := pouw.ValidateJobID(id); err != nil {
		return nil, err
	}
	var r record
	ok, err := t.getJSON(bktJobs, []byte(id), &r)
	if err != nil {
		return nil, err
	}
	if !ok || t.retentionOver(&r) {
		return nil, fmt.Errorf("%w: job %s", store.ErrNotFound, id)
	}
	return &r, nil
}

func (t *txn) retentionOver(r *record) bool {
	return r.State == pouw.StateCompleted && r.CompletedAtMs+t.s.opts.Retention.Milliseconds() <= t.now
}

// unindex removes r from the indexes of its current state; count says
// whether to count it out of its state too.
func (t *txn) unindex(r *record, count bool) error {
	var err error
	j := &r.ProofJob
	switch r.State {
	case pouw.StatePending:
		ck := claimKey(j)
		err = errors.Join(
			t.b(bktPendAll).Delete(ck),
			t.b(bktPendTier).Delete(cat([]byte{byte(j.Tier)}, ck)),
			t.b(bktPendAge).Delete(cat([]byte{byte(j.Tier)}, u64(j.CreatedSeq))),
		)
		if tb := t.b(bktPendTB).Bucket(tbBucketName(j.Tier, j.Backend)); tb != nil {
			err = errors.Join(err, tb.Delete(ck))
		}
	case pouw.StateWaiting:
		err = t.b(bktWaiting).Delete(timeKey(j.DeadlineMs, j.CreatedSeq))
	case pouw.StateLeased:
		err = t.b(bktLeased).Delete(timeKey(j.LeaseExpiresAtMs, j.CreatedSeq))
	case pouw.StateCompleted:
		err = t.b(bktCompleted).Delete(timeKey(j.CompletedAtMs, j.CreatedSeq))
	case pouw.StateDead:
		err = t.b(bktDead).Delete(timeKey(r.DeadAtMs, j.CreatedSeq))
	}
	if err != nil || !count {
		return err
	}
	return t.addCount(j.Tier, r.State, -1)
}

// index adds r to the indexes of its state; count says whether to count it
// into its state too.
func (t *txn) index(r *record, count bool) error {
	var err error
	j := &r.ProofJob
	id := []byte(j.JobID)
	switch r.State {
	case pouw.StatePending:
		ck := claimKey(j)
		pv := pendVal(j)
		tb, e := t.b(bktPendTB).CreateBucketIfNotExists(tbBucketName(j.Tier, j.Backend))
		if e != nil {
			return e
		}
		err = errors.Join(
			t.b(bktPendAll).Put(ck, pv),
			t.b(bktPendTier).Put(cat([]byte{byte(j.Tier)}, ck), pv),
			t.b(bktPendAge).Put(cat([]byte{byte(j.Tier)}, u64(j.CreatedSeq)), u64(uint64(j.CreatedAtMs))),
			tb.Put(ck, pv),
		)
	case pouw.StateWaiting:
		err = t.b(bktWaiting).Put(timeKey(j.DeadlineMs, j.CreatedSeq), id)
	case pouw.StateLeased:
		err = t.b(bktLeased).Put(timeKey(j.LeaseExpiresAtMs, j.CreatedSeq), id)
	case pouw.StateCompleted:
		err = t.b(bktCompleted).Put(timeKey(j.CompletedAtMs, j.CreatedSeq), id)
	case pouw.StateDead:
		err = t.b(bktDead).Put(timeKey(r.DeadAtMs, j.CreatedSeq), id)
	}
	if err != nil || !count {
		return err
	}
	return t.addCount(j.Tier, r.State, 1)
}

// save re-indexes and writes a record: old is the record as loaded (nil for a
// new job), r the record to store.
func (t *txn) save(old, r *record) error {
	// A transition within one state (renew, verify) leaves the counts alone,
	// which spares a page write.
	count := old == nil || old.State != r.State
	if old != nil {
		if err := t.unindex(old, count); err != nil {
			return err
		}
	}
	if err := t.index(r, count); err != nil {
		return err
	}
	return t.putJSON(bktJobs, []byte(r.JobID), r)
}

func (t *txn) pool() (pouw.PoolStatus, error) {
	var p pouw.PoolStatus
	_, err := t.getJSON(bktMeta, keyPool, &p)
	return p, err
}

func (t *txn) putPool(p pouw.PoolStatus) error {
	if !p.Balanced() {
		return fmt.Errorf("pool ledger unbalanced: %+v", p)
	}
	return t.putJSON(bktMeta, keyPool, p)
}

func (t *txn) loadProver(id string) (*proverRec, error) {
	var p proverRec
	ok, err := t.getJSON(bktProvers, []byte(id), &p)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: prover %q", store.ErrNotFound, id)
	}
	return &p, nil
}

func (t *txn) saveProver(p *proverRec) error { return t.putJSON(bktProvers, []byte(p.ID), p) }

// event appends one event with the next id.
func (t *txn) event(ev pouw.Event) error {
	b := t.b(bktEvents)
	id, err := b.NextSequence()
	if err != nil {
		return err
	}
	ev.ID = id
	ev.AtMs = t.now
	return t.putJSON(bktEvents, u64(id), ev)
}

func (t *txn) jobEvent(typ pouw.EventType, r *record, reason string) error {
	tier := r.Tier
	return t.event(pouw.Event{
		Type: typ, JobID: r.JobID, Tier: &tier, State: r.State, ProverID: r.ProverID,
		Attempts: r.Attempts, Reason: reason,
	})
}

// pruneEvents drops the oldest events beyond MaxEvents. Event ids are
// contiguous, so the count is last - first + 1.
func (t *txn) pruneEvents() error {
	b := t.b(bktEvents)
	c := b.Cursor()
	k, _ := c.First()
	if k == nil {
		return nil
	}
	first := binary.BigEndian.Uint64(k)
	last := b.Sequence()
	excess := int64(last-first+1) - int64(t.s.opts.MaxEvents)
	for ; excess > 0 && k != nil; excess-- {
		if err := c.Delete(); err != nil {
			return err
		}
		k, _ = c.First()
	}
	return nil
}

// newToken returns a fresh random lease token.
func newToken() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("lease token: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// leaseID is what history keeps of a token (docs/decisions.md 3).
func leaseID(token string) string {
	sum := blake3.Sum256([]byte(token))
	return hex.EncodeToString(sum[:8])
}

func histKey(id string, n uint32) []byte {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], n)
	return cat([]byte(id), b[:])
}

func be64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

func jsonUnmarshal(raw []byte, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decode stored value: %w", err)
	}
	return nil
}
