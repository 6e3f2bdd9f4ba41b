package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"

	"github.com/redis/go-redis/v9"
	"github.com/zeebo/blake3"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/coordinator/blob"
	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/coordinator/store/redisstore"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/trace"
)

// Invariant names, as they appear in violations and reports.
const (
	InvJobKnown       = "job_known"        // every ingested job is in the store
	InvOneState       = "one_state"        // state valid and matching exactly one index
	InvCompletedOnce  = "completed_once"   // at most one completion per job
	InvPoolBalanced   = "pool_balanced"    // deposited = available + reserved + paid
	InvPoolPaid       = "pool_paid"        // paid = Σ rewards of completed jobs
	InvPoolReserved   = "pool_reserved"    // reserved = Σ rewards of unfinished jobs
	InvProverEarned   = "prover_earned"    // each prover earned Σ rewards of its completions
	InvSeqUnique      = "created_seq_uniq" // created_seq never reused
	InvEventOrder     = "event_ids"        // event ids strictly increase
	InvProofVerifies  = "proof_verifies"   // completed proofs verify again offline
	InvDeadReason     = "dead_reason"      // dead jobs say why
	InvDeadAttempts   = "dead_attempts"    // attempts = failed attempts in history
	InvAckedCompleted = "acked_completed"  // acknowledged completions stay completed
)

// Violation is one broken invariant.
type Violation struct {
	Invariant string `json:"invariant"`
	JobID     string `json:"job_id,omitempty"`
	Detail    string `json:"detail"`
}

func (v Violation) String() string {
	if v.JobID != "" {
		return v.Invariant + " " + v.JobID + ": " + v.Detail
	}
	return v.Invariant + ": " + v.Detail
}

// Snapshot is what the checker reads from a deployment at one moment.
type Snapshot struct {
	// Ingested are the job ids the load generator was told were created
	// (or that a job.created event names).
	Ingested []string
	// Jobs holds every job the store returned; a job of Ingested that is
	// absent was lost.
	Jobs    map[string]pouw.ProofJob
	History map[string][]pouw.Attempt
	// Index membership: how many times each job id appears in the pending
	// lists, the lease index and the dead-letter lists.
	InPending, InLeased, InDead map[string]int
	// Events is the whole retained event stream in the order read.
	Events []pouw.Event
	Pool   pouw.PoolStatus
	// Provers are the prover statistics.
	Provers []pouw.ProverStats
	// ProofErr holds the offline re-verification of each completed job
	// (nil: verified). A completed job missing from it was not checked.
	ProofErr map[string]error
	// AckedCompleted are jobs whose completion was observed before the
	// snapshot (the event read from the primary): they must be completed.
	AckedCompleted []string
}

// Check returns every violated invariant of s, in a stable order.
func Check(s Snapshot) []Violation {
	var out []Violation
	add := func(inv, id, format string, args ...any) {
		out = append(out, Violation{Invariant: inv, JobID: id, Detail: fmt.Sprintf(format, args...)})
	}

	for _, id := range s.Ingested {
		if _, ok := s.Jobs[id]; !ok {
			add(InvJobKnown, id, "ingest was acknowledged but the store does not know the job")
		}
	}

	ids := make([]string, 0, len(s.Jobs))
	for id := range s.Jobs {
		ids = append(ids, id)
	}
	sort.Strings(ids)

	var paid, reserved uint64
	earned := map[string]uint64{}
	done := map[string]uint64{}
	seqs := map[uint64]string{}
	for _, id := range ids {
		j := s.Jobs[id]
		if !j.State.Valid() {
			add(InvOneState, id, "state %q is not a job state", j.State)
		}
		want := map[string]bool{
			"pending": j.State == pouw.StatePending,
			"leased":  j.State == pouw.StateLeased,
			"dead":    j.State == pouw.StateDead,
		}
		got := map[string]int{"pending": s.InPending[id], "leased": s.InLeased[id], "dead": s.InDead[id]}
		for _, idx := range []string{"pending", "leased", "dead"} {
			n := got[idx]
			switch {
			case want[idx] && n != 1:
				add(InvOneState, id, "state %s but listed %d times in the %s index", j.State, n, idx)
			case !want[idx] && n != 0:
				add(InvOneState, id, "state %s but also listed in the %s index", j.State, idx)
			}
		}

		if other, dup := seqs[j.CreatedSeq]; dup {
			add(InvSeqUnique, id, "created_seq %d also belongs to %s", j.CreatedSeq, other)
		} else {
			seqs[j.CreatedSeq] = id
		}

		hist := s.History[id]
		var completions, failures int
		for _, a := range hist {
			if a.Outcome == pouw.OutcomeCompleted {
				completions++
			}
			if a.Outcome.CountsAsFailure() {
				failures++
			}
		}
		if completions > 1 {
			add(InvCompletedOnce, id, "history has %d completed attempts", completions)
		}

		switch j.State {
		case pouw.StateCompleted:
			paid += j.RewardBudget
			earned[j.ProverID] += j.RewardBudget
			done[j.ProverID]++
			if completions != 1 && hist != nil {
				add(InvCompletedOnce, id, "completed but history has %d completed attempts", completions)
			}
			if err, ok := s.ProofErr[id]; !ok {
				add(InvProofVerifies, id, "completed proof was not re-verified")
			} else if err != nil {
				add(InvProofVerifies, id, "%v", err)
			}
		case pouw.StatePending, pouw.StateLeased, pouw.StateWaiting:
			reserved += j.RewardBudget
		case pouw.StateDead:
			if j.DeadReason == "" {
				add(InvDeadReason, id, "dead without a reason")
			}
			if int(j.Attempts) != failures {
				add(InvDeadAttempts, id, "attempts %d but %d failed attempts in history", j.Attempts, failures)
			}
		}
	}

	completedEvents := map[string]int{}
	var last uint64
	for i, e := range s.Events {
		if i > 0 && e.ID <= last {
			add(InvEventOrder, "", "event %d (%s) follows event %d", e.ID, e.Type, last)
		}
		last = e.ID
		if e.Type == pouw.EventJobCompleted {
			completedEvents[e.JobID]++
		}
	}
	for _, id := range sortedKeys(completedEvents) {
		if n := completedEvents[id]; n > 1 {
			add(InvCompletedOnce, id, "%d job.completed events", n)
		}
	}

	p := s.Pool
	if p.Deposited != p.Available+p.Reserved+p.Paid {
		add(InvPoolBalanced, "", "deposited %d != available %d + reserved %d + paid %d",
			p.Deposited, p.Available, p.Reserved, p.Paid)
	}
	if p.Paid != paid {
		add(InvPoolPaid, "", "pool paid %d but completed jobs' rewards sum to %d", p.Paid, paid)
	}
	if p.Reserved != reserved {
		add(InvPoolReserved, "", "pool reserved %d but unfinished jobs' rewards sum to %d", p.Reserved, reserved)
	}
	var earnedAll uint64
	for _, ps := range s.Provers {
		earnedAll += ps.TotalFeeEarned
		if ps.TotalFeeEarned != earned[ps.ProverID] || ps.JobsCompleted != done[ps.ProverID] {
			add(InvProverEarned, "", "prover %s: stats say %d jobs, %d earned; its completed jobs are %d paying %d",
				ps.ProverID, ps.JobsCompleted, ps.TotalFeeEarned, done[ps.ProverID], earned[ps.ProverID])
		}
	}
	if earnedAll != p.Paid {
		add(InvProverEarned, "", "provers earned %d in all but the pool paid %d", earnedAll, p.Paid)
	}

	for _, id := range s.AckedCompleted {
		j, ok := s.Jobs[id]
		switch {
		case !ok:
			add(InvAckedCompleted, id, "completion was observed but the job is gone")
		case j.State != pouw.StateCompleted:
			add(InvAckedCompleted, id, "completion was observed but the job is %s", j.State)
		}
	}
	return out
}

// leaseIndexKey is redisstore's lease index of a tier (tiers are numbered
// in its keys).
func leaseIndexKey(prefix string, t pouw.JobTier) string {
	return "{" + prefix + "}:leases:" + strconv.Itoa(int(t))
}

func sortedKeys[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for id := range m {
		k = append(k, id)
	}
	sort.Strings(k)
	return k
}

// Collector reads Snapshots from a Redis deployment and its file blobs. It
// remembers which completed proofs it already re-verified, so repeated
// checks during a long run verify each proof once.
type Collector struct {
	// Redis is the primary; Prefix the deployment's key prefix.
	Redis  redis.UniversalClient
	Prefix string
	// Blobs holds traces and proofs (the coordinators' file blobs).
	Blobs blob.Store
	// Registry verifies proofs offline.
	Registry *backends.Registry
	// Corrupted are trace hashes the harness damaged on purpose: their
	// blobs no longer hash to trace_hash, so only the header (which the
	// statement comes from) is trusted.
	Corrupted map[pouw.Hash]bool

	verified map[string]string // job id -> proof ref verified
}

// maxHeader bounds the bytes read for a trace header.
const maxHeader = 16 << 20

// Collect reads a Snapshot: the jobs named by ingested and by job.created
// events, their histories, the indexes, the event stream, pool and provers,
// and re-verifies completed proofs.
func (c *Collector) Collect(ctx context.Context, ingested, acked []string) (Snapshot, error) {
	st, err := redisstore.New(ctx, c.Redis, redisstore.Options{TestClock: true, Prefix: c.Prefix, Logger: quiet})
	if err != nil {
		return Snapshot{}, err
	}
	s := Snapshot{
		Ingested: ingested, AckedCompleted: acked,
		Jobs: map[string]pouw.ProofJob{}, History: map[string][]pouw.Attempt{},
		InPending: map[string]int{}, InLeased: map[string]int{}, InDead: map[string]int{},
		ProofErr: map[string]error{},
	}
	if s.Events, err = readEvents(ctx, st); err != nil {
		return s, err
	}
	want := map[string]bool{}
	for _, id := range ingested {
		want[id] = true
	}
	for _, e := range s.Events {
		if e.Type == pouw.EventJobCreated && e.JobID != "" {
			want[e.JobID] = true
		}
	}
	for id := range want {
		j, err := st.Job(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return s, fmt.Errorf("chaos: job %s: %w", id, err)
		}
		s.Jobs[id] = j
		h, err := st.History(ctx, id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return s, fmt.Errorf("chaos: history %s: %w", id, err)
		}
		s.History[id] = h
	}
	for _, tier := range pouw.Tiers {
		t := tier
		for _, list := range []struct {
			into map[string]int
			page func(context.Context, store.PageQuery) (store.JobPage, error)
		}{{s.InPending, st.Pending}, {s.InDead, st.DeadLetter}} {
			q := store.PageQuery{Tier: &t, Limit: 1000}
			for {
				p, err := list.page(ctx, q)
				if err != nil {
					return s, fmt.Errorf("chaos: listing %s: %w", t, err)
				}
				for _, j := range p.Jobs {
					list.into[j.JobID]++
				}
				if p.NextCursor == "" {
					break
				}
				q.Cursor = p.NextCursor
			}
		}
		leased, err := c.Redis.ZRange(ctx, leaseIndexKey(c.Prefix, t), 0, -1).Result()
		if err != nil {
			return s, fmt.Errorf("chaos: lease index: %w", err)
		}
		for _, id := range leased {
			s.InLeased[id]++
		}
	}
	if s.Pool, err = st.Pool(ctx); err != nil {
		return s, err
	}
	if s.Provers, err = st.Provers(ctx); err != nil {
		return s, err
	}
	if c.verified == nil {
		c.verified = map[string]string{}
	}
	for id, j := range s.Jobs {
		if j.State != pouw.StateCompleted {
			continue
		}
		if c.verified[id] == j.ProofRef {
			s.ProofErr[id] = nil
			continue
		}
		err := c.verify(ctx, j)
		s.ProofErr[id] = err
		if err == nil {
			c.verified[id] = j.ProofRef
		}
	}
	return s, nil
}

func readEvents(ctx context.Context, st *redisstore.Store) ([]pouw.Event, error) {
	var all []pouw.Event
	var after uint64
	for {
		evs, err := st.Events(ctx, after, 1000)
		if errors.Is(err, store.ErrEventsTruncated) && after == 0 {
			// The oldest events were dropped by the cap: start at the
			// oldest kept one.
			err = nil
		}
		if err != nil {
			return all, fmt.Errorf("chaos: events: %w", err)
		}
		if len(evs) == 0 {
			return all, nil
		}
		all = append(all, evs...)
		after = evs[len(evs)-1].ID
	}
}

// verify re-verifies a completed job's proof from the blobs, as an auditor
// would: the trace must hash to trace_hash, its header must be the job's,
// and the job's backend must accept the proof for (job id, prover id).
func (c *Collector) verify(ctx context.Context, j pouw.ProofJob) error {
	ph, err := pouw.ParseHash(j.ProofRef)
	if err != nil {
		return fmt.Errorf("proof_ref %q: %w", j.ProofRef, err)
	}
	proof, err := readBlob(ctx, c.Blobs, ph)
	if err != nil {
		return fmt.Errorf("proof blob: %w", err)
	}
	if blake3.Sum256(proof) != ph {
		return errors.New("proof blob does not hash to proof_ref")
	}
	tr, err := readBlob(ctx, c.Blobs, j.TraceHash)
	if err != nil {
		return fmt.Errorf("trace blob: %w", err)
	}
	if pouw.Hash(blake3.Sum256(tr)) != j.TraceHash && !c.Corrupted[j.TraceHash] {
		return errors.New("trace blob does not hash to trace_hash")
	}
	h, _, err := trace.DecodeHeader(bytes.NewReader(tr), maxHeader)
	if err != nil {
		return fmt.Errorf("trace header: %w", err)
	}
	if h.Tier != j.Tier || h.IntentID != j.IntentID {
		return errors.New("trace header does not match the job")
	}
	b, err := c.Registry.Get(j.Backend)
	if err != nil {
		return err
	}
	st := backends.Statement{Header: h, TraceHash: j.TraceHash, JobID: j.JobID, ProverID: j.ProverID}
	if err := b.Verify(ctx, st, proof); err != nil {
		return fmt.Errorf("offline verification failed: %w", err)
	}
	return nil
}

func readBlob(ctx context.Context, bs blob.Store, h pouw.Hash) ([]byte, error) {
	r, _, err := bs.Open(ctx, h)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}
