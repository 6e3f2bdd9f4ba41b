package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/pouw"
)

func init() {
	add("ModelRandomOperationsKeepInvariants", testModelRandomOperations)
}

// The model test drives a store with random operations and compares it,
// after every step, with a plain in-memory model of the rules: each job's
// state, attempts and lease; the pending list in claim order; the dead
// letter; the pool ledger; the counts per state; the attempt history; event
// ids. A store that puts a job in two places, loses money, counts attempts
// wrongly or dead-letters a job too early disagrees with the model.

var (
	modelProvers  = []string{"p1", "p2", "p3"}
	modelBackends = []string{"stark", "plonkish"}
	modelLease    = [3]time.Duration{10 * time.Second, 20 * time.Second, 30 * time.Second}
)

type mJob struct {
	id         string
	seq        uint64
	tier       pouw.JobTier
	backend    string
	reward     uint64
	traceBytes int64
	deadline   int64
	maxRetries uint32
	deps       []string
	req        store.EnqueueRequest

	state    pouw.State
	attempts uint32
	token    string
	prover   string
	leaseExp int64
	// leases counts attempts in history; base is how many there were at the
	// last requeue (attempts counts failures after it).
	leases, base int
	holders      map[string]bool
}

type model struct {
	s     store.Store
	ctx   context.Context
	advF  func(time.Duration)
	nowF  func() time.Time
	jobs  map[string]*mJob
	order []string
	pool  pouw.PoolStatus
	n     uint64
	// stale are tokens that were once current.
	stale   []store.LeaseRef
	lastEv  uint64
	lastSeq uint64
	// dirty are the jobs whose history the last action changed; check reads
	// their history every step and everyone's every fifth step.
	dirty map[string]bool
	steps int
}

func (m *model) now() int64 { return pouw.Millis(m.nowF()) }

func testModelRandomOperations(t *testing.T, nh Factory) {
	opts := store.DefaultOptions()
	opts.LeaseDuration = modelLease
	opts.MaxEvents = 1 << 30
	rapid.Check(t, func(rt *rapid.T) {
		h := nh(t, opts)
		m := &model{s: h.Store, ctx: context.Background(), advF: h.Advance, nowF: h.Now, jobs: map[string]*mJob{}, dirty: map[string]bool{}}
		for _, p := range modelProvers {
			if err := m.s.RegisterProver(m.ctx, store.Prover{ID: p, TokenHash: tokenHash(p)}); err != nil {
				rt.Fatal(err)
			}
		}
		// Start with enough for a handful of jobs; deposits add more, so
		// both funded and refused enqueues happen.
		if _, err := m.s.Deposit(m.ctx, 200, "model"); err != nil {
			rt.Fatal(err)
		}
		m.pool = pouw.PoolStatus{Deposited: 200, Available: 200}
		for range rapid.IntRange(0, 6).Draw(rt, "initial_jobs") {
			m.enqueue(rt)
		}
		rt.Repeat(map[string]func(*rapid.T){
			"":          m.check,
			"deposit":   m.deposit,
			"enqueue":   m.enqueue,
			"reenqueue": m.reenqueue,
			"enqueue2":  m.enqueue,
			"claim":     m.claim,
			"claim2":    m.claim,
			"claim3":    m.claim,
			"leaseOp":   m.leaseOp,
			"leaseOp2":  m.leaseOp,
			"leaseOp3":  m.leaseOp,
			"staleOp":   m.staleOp,
			"advance":   m.advance,
			"reap":      m.reap,
			"requeue":   m.requeue,
		})
	})
}

func wantIs(rt *rapid.T, what string, err, want error) {
	rt.Helper()
	if want == nil && err != nil || want != nil && !errors.Is(err, want) {
		rt.Fatalf("%s: got %v, want %v", what, err, want)
	}
}

func (m *model) deposit(rt *rapid.T) {
	amount := rapid.Uint64Range(0, 200).Draw(rt, "amount")
	_, err := m.s.Deposit(m.ctx, amount, "model")
	if amount == 0 {
		wantIs(rt, "deposit 0", err, store.ErrInvalid)
		return
	}
	wantIs(rt, "deposit", err, nil)
	m.pool.Deposited += amount
	m.pool.Available += amount
}

func (m *model) ids(states ...pouw.State) []string {
	var out []string
	for _, id := range m.order {
		if slices.Contains(states, m.jobs[id].state) {
			out = append(out, id)
		}
	}
	return out
}

func (m *model) enqueue(rt *rapid.T) {
	m.n++
	req := store.EnqueueRequest{
		Tier:         pouw.JobTier(rapid.IntRange(0, 2).Draw(rt, "tier")),
		IntentID:     seqHash(1, m.n),
		TraceHash:    seqHash(2, m.n),
		TraceRef:     fmt.Sprintf("traces/%d", m.n),
		TraceBytes:   rapid.SampledFrom([]int64{100, 5000}).Draw(rt, "trace_bytes"),
		Backend:      rapid.SampledFrom(modelBackends).Draw(rt, "backend"),
		RewardBudget: rapid.Uint64Range(0, 60).Draw(rt, "reward"),
		DeadlineMs:   m.now() + rapid.Int64Range(5, 600).Draw(rt, "deadline_s")*1000,
		MaxRetries:   uint32(rapid.IntRange(1, 3).Draw(rt, "max_retries")),
	}
	req.FeeBudget = req.RewardBudget + 10
	if len(m.order) > 0 {
		req.DependsOn = rapid.SliceOfNDistinct(rapid.SampledFrom(m.order), 0, 2, rapid.ID[string]).Draw(rt, "depends_on")
	}
	job, created, err := m.s.Enqueue(m.ctx, req)

	var want error
	waiting := false
	for _, d := range req.DependsOn {
		switch m.jobs[d].state {
		case pouw.StateDead:
			want = store.ErrConflict
		case pouw.StateCompleted:
		default:
			waiting = true
		}
	}
	if want == nil && req.RewardBudget > m.pool.Available {
		want = store.ErrInsufficientFunds
	}
	wantIs(rt, "enqueue", err, want)
	if want != nil {
		return
	}
	if !created || job.CreatedSeq <= m.lastSeq || job.JobID != pouw.JobID(req.IntentID, req.TraceHash, req.Tier, job.CreatedSeq) {
		rt.Fatalf("enqueue: created=%v seq %d after %d, id %s", created, job.CreatedSeq, m.lastSeq, job.JobID)
	}
	m.lastSeq = job.CreatedSeq
	j := &mJob{
		id: job.JobID, seq: job.CreatedSeq, tier: req.Tier, backend: req.Backend, reward: req.RewardBudget,
		traceBytes: req.TraceBytes, deadline: req.DeadlineMs, maxRetries: req.MaxRetries, deps: req.DependsOn,
		req: req, state: pouw.StatePending, holders: map[string]bool{},
	}
	if waiting {
		j.state = pouw.StateWaiting
	}
	m.jobs[j.id] = j
	m.order = append(m.order, j.id)
	m.pool.Available -= j.reward
	m.pool.Reserved += j.reward
}

// reenqueue sends an existing job's triple again: the same job, nothing
// written.
func (m *model) reenqueue(rt *rapid.T) {
	if len(m.order) == 0 {
		rt.Skip("no jobs")
	}
	j := m.jobs[rapid.SampledFrom(m.order).Draw(rt, "job")]
	req := j.req
	req.DeadlineMs = m.now() + 1000
	req.DependsOn = nil
	got, created, err := m.s.Enqueue(m.ctx, req)
	if err != nil || created || got.JobID != j.id {
		rt.Fatalf("re-enqueue of %s: %s created=%v err=%v", j.id, got.JobID, created, err)
	}
}

func (m *model) claim(rt *rapid.T) {
	req := store.ClaimRequest{
		ProverID:      rapid.SampledFrom(modelProvers).Draw(rt, "prover"),
		Tiers:         rapid.SliceOfNDistinct(rapid.SampledFrom(pouw.Tiers[:]), 1, 3, rapid.ID[pouw.JobTier]).Draw(rt, "tiers"),
		Backends:      rapid.SampledFrom([][]string{modelBackends, modelBackends, {"stark"}, {"plonkish"}, {"plonkish", "stark"}}).Draw(rt, "backends"),
		MaxTraceBytes: rapid.SampledFrom([]int64{0, 0, 1000}).Draw(rt, "max_trace"),
		MinReward:     rapid.SampledFrom([]uint64{0, 0, 0, 20, 40}).Draw(rt, "min_reward"),
	}
	now := m.now()
	var best *mJob
	rank := func(j *mJob) int { return slices.Index(req.Tiers, j.tier) }
	for _, id := range m.ids(pouw.StatePending) {
		j := m.jobs[id]
		if rank(j) < 0 || !slices.Contains(req.Backends, j.backend) || j.deadline <= now ||
			req.MaxTraceBytes > 0 && j.traceBytes > req.MaxTraceBytes || j.reward < req.MinReward {
			continue
		}
		if best == nil || rank(j) < rank(best) || rank(j) == rank(best) && m.before(j, best) {
			best = j
		}
	}
	l, err := m.s.Claim(m.ctx, req)
	if best == nil {
		wantIs(rt, "claim", err, store.ErrNoJob)
		return
	}
	wantIs(rt, "claim", err, nil)
	if l.Job.JobID != best.id {
		rt.Fatalf("claim %+v got %s, want %s", req, l.Job.JobID, best.id)
	}
	m.dirty[best.id] = true
	best.state = pouw.StateLeased
	best.token = l.Token
	best.prover = req.ProverID
	best.leaseExp = now + modelLease[best.tier].Milliseconds()
	best.leases++
	best.holders[req.ProverID] = true
	if l.Job.LeaseExpiresAtMs != best.leaseExp {
		rt.Fatalf("lease expires %d, want %d", l.Job.LeaseExpiresAtMs, best.leaseExp)
	}
}

// before is claim order.
func (m *model) before(a, b *mJob) bool {
	if a.deadline != b.deadline {
		return a.deadline < b.deadline
	}
	if a.reward != b.reward {
		return a.reward > b.reward
	}
	return a.seq < b.seq
}

func (m *model) leaseOp(rt *rapid.T) {
	leased := m.ids(pouw.StateLeased)
	if len(leased) == 0 {
		rt.Skip("nothing leased")
	}
	j := m.jobs[rapid.SampledFrom(leased).Draw(rt, "job")]
	ref := store.LeaseRef{JobID: j.id, ProverID: j.prover, Token: j.token}
	other := rapid.IntRange(0, 4).Draw(rt, "other") == 0
	if other {
		ref.ProverID = rapid.SampledFrom(modelProvers).Filter(func(p string) bool { return p != j.prover }).Draw(rt, "other_prover")
		ref.Token = "not-the-token-" + ref.ProverID
	}
	op := rapid.SampledFrom([]string{"renew", "verify", "complete", "reject", "fail", "release"}).Draw(rt, "op")
	now := m.now()
	live := now < j.leaseExp
	var want error
	switch {
	case other && live && !j.holders[ref.ProverID]:
		want = store.ErrNotLeaseHolder
	case other || !live:
		want = store.ErrLeaseLost
	}
	var err error
	switch op {
	case "renew":
		_, err = m.s.Renew(m.ctx, ref)
	case "verify":
		_, err = m.s.BeginVerify(m.ctx, ref, 15*time.Second)
	case "complete":
		_, err = m.s.Complete(m.ctx, ref, "proofs/"+j.id)
	case "reject":
		_, err = m.s.Fail(m.ctx, ref, pouw.OutcomeRejected, "bad proof")
	case "fail":
		_, err = m.s.Fail(m.ctx, ref, pouw.OutcomeFailed, "crash")
	case "release":
		_, err = m.s.Release(m.ctx, ref, "drain")
	}
	wantIs(rt, op, err, want)
	if want != nil {
		return
	}
	m.dirty[j.id] = true
	switch op {
	case "renew":
		j.leaseExp = now + modelLease[j.tier].Milliseconds()
	case "verify":
		j.leaseExp = max(j.leaseExp, now+15_000)
	case "complete":
		m.stale = append(m.stale, ref)
		j.state, j.token = pouw.StateCompleted, ""
		m.pool.Reserved -= j.reward
		m.pool.Paid += j.reward
		for _, id := range m.ids(pouw.StateWaiting) {
			w := m.jobs[id]
			if slices.Contains(w.deps, j.id) && !slices.ContainsFunc(w.deps, func(d string) bool {
				return m.jobs[d].state != pouw.StateCompleted
			}) {
				w.state = pouw.StatePending
			}
		}
	case "reject", "fail":
		m.endLease(j, true)
	case "release":
		m.endLease(j, false)
	}
}

// endLease puts a lease's job back, or to the dead letter.
func (m *model) endLease(j *mJob, failure bool) {
	m.dirty[j.id] = true
	m.stale = append(m.stale, store.LeaseRef{JobID: j.id, ProverID: j.prover, Token: j.token})
	j.token, j.prover = "", ""
	j.state = pouw.StatePending
	if failure {
		j.attempts++
	}
	if j.attempts >= j.maxRetries || j.deadline <= m.now() {
		m.kill(j)
	}
}

func (m *model) kill(j *mJob) {
	j.state = pouw.StateDead
	m.pool.Reserved -= j.reward
	m.pool.Available += j.reward
	for _, id := range m.ids(pouw.StateWaiting) {
		if w := m.jobs[id]; w.state == pouw.StateWaiting && slices.Contains(w.deps, j.id) {
			m.kill(w)
		}
	}
}

// staleOp uses a token that is no longer current: always lease lost.
func (m *model) staleOp(rt *rapid.T) {
	if len(m.stale) == 0 {
		rt.Skip("no stale tokens")
	}
	ref := rapid.SampledFrom(m.stale).Draw(rt, "stale")
	if j := m.jobs[ref.JobID]; j.state == pouw.StateLeased && j.token == ref.Token {
		rt.Skip("token is current again")
	}
	_, err := m.s.Renew(m.ctx, ref)
	wantIs(rt, "renew with a stale token", err, store.ErrLeaseLost)
	_, err = m.s.Complete(m.ctx, ref, "proofs/stale")
	wantIs(rt, "complete with a stale token", err, store.ErrLeaseLost)
}

func (m *model) advance(rt *rapid.T) {
	m.advF(time.Duration(rapid.Int64Range(0, 25_000).Draw(rt, "advance_ms")) * time.Millisecond)
}

func (m *model) reap(rt *rapid.T) {
	if _, err := m.s.ReapExpired(m.ctx, 10_000); err != nil {
		rt.Fatal(err)
	}
	now := m.now()
	leased := m.ids(pouw.StateLeased)
	slices.SortStableFunc(leased, func(a, b string) int { return cmpInt(m.jobs[a].leaseExp, m.jobs[b].leaseExp) })
	for _, id := range leased {
		if j := m.jobs[id]; j.leaseExp <= now {
			m.endLease(j, true)
		}
	}
	for _, id := range m.ids(pouw.StatePending, pouw.StateWaiting) {
		if j := m.jobs[id]; j.state != pouw.StateDead && j.deadline <= now {
			m.kill(j)
		}
	}
}

func (m *model) requeue(rt *rapid.T) {
	if len(m.order) == 0 {
		rt.Skip("no jobs")
	}
	dead := m.ids(pouw.StateDead)
	pick := m.order
	if len(dead) > 0 && rapid.IntRange(0, 4).Draw(rt, "dead") > 0 {
		pick = dead
	}
	j := m.jobs[rapid.SampledFrom(pick).Draw(rt, "job")]
	_, err := m.s.Requeue(m.ctx, j.id)
	var want error
	waiting := false
	switch {
	case j.state != pouw.StateDead || j.deadline <= m.now():
		want = store.ErrConflict
	default:
		for _, d := range j.deps {
			switch m.jobs[d].state {
			case pouw.StateDead:
				want = store.ErrConflict
			case pouw.StateCompleted:
			default:
				waiting = true
			}
		}
		if want == nil && j.reward > m.pool.Available {
			want = store.ErrInsufficientFunds
		}
	}
	wantIs(rt, "requeue", err, want)
	if want != nil {
		return
	}
	j.state, j.attempts, j.base = pouw.StatePending, 0, j.leases
	if waiting {
		j.state = pouw.StateWaiting
	}
	m.pool.Available -= j.reward
	m.pool.Reserved += j.reward
}

// check compares the store with the model.
func (m *model) check(rt *rapid.T) {
	defer func() { m.steps++; clear(m.dirty) }()
	now := m.now()
	// A claim may move pending jobs past their deadline to the dead letter
	// on its way; adopt that, and only that, before comparing.
	for _, id := range m.ids(pouw.StatePending) {
		j := m.jobs[id]
		if j.deadline > now {
			continue
		}
		got, err := m.s.Job(m.ctx, id)
		if err != nil {
			rt.Fatal(err)
		}
		if got.State == pouw.StateDead {
			m.kill(j)
		}
	}

	counts := map[pouw.JobTier]map[pouw.State]uint64{}
	for _, tr := range pouw.Tiers {
		counts[tr] = map[pouw.State]uint64{}
	}
	for _, id := range m.order {
		j := m.jobs[id]
		counts[j.tier][j.state]++
		got, err := m.s.Job(m.ctx, id)
		if err != nil {
			rt.Fatalf("Job(%s): %v", id, err)
		}
		if got.State != j.state || got.Attempts != j.attempts {
			rt.Fatalf("job %s: store %s attempts %d, model %s attempts %d", id, got.State, got.Attempts, j.state, j.attempts)
		}
		if j.state == pouw.StateLeased && (got.LeaseExpiresAtMs != j.leaseExp || got.ProverID != j.prover) {
			rt.Fatalf("job %s lease: store until %d by %s, model until %d by %s", id, got.LeaseExpiresAtMs, got.ProverID, j.leaseExp, j.prover)
		}
		if j.state == pouw.StateDead && got.DeadReason == "" {
			rt.Fatalf("dead job %s has no reason", id)
		}
		if !m.dirty[id] && m.steps%5 != 0 {
			continue
		}
		h, err := m.s.History(m.ctx, id)
		if err != nil {
			rt.Fatal(err)
		}
		if len(h) != j.leases {
			rt.Fatalf("job %s history has %d attempts, model %d", id, len(h), j.leases)
		}
		failed := uint32(0)
		for i, a := range h {
			if a.Number != uint32(i+1) {
				rt.Fatalf("job %s attempt %d numbered %d", id, i+1, a.Number)
			}
			if a.Outcome.CountsAsFailure() && i >= j.base {
				failed++
			}
			active := a.Outcome == pouw.OutcomeActive
			if active != (j.state == pouw.StateLeased && i == len(h)-1) {
				rt.Fatalf("job %s (%s) attempt %d outcome %s", id, j.state, i+1, a.Outcome)
			}
		}
		if failed != j.attempts {
			rt.Fatalf("job %s attempts %d but %d failed attempts in history since requeue", id, j.attempts, failed)
		}
	}

	pending := m.ids(pouw.StatePending)
	slices.SortFunc(pending, func(a, b string) int {
		if m.before(m.jobs[a], m.jobs[b]) {
			return -1
		}
		return 1
	})
	var listed []string
	q := store.PageQuery{Limit: 7}
	for {
		page, err := m.s.Pending(m.ctx, q)
		if err != nil {
			rt.Fatal(err)
		}
		listed = append(listed, ids(page.Jobs)...)
		if q.Cursor = page.NextCursor; q.Cursor == "" {
			break
		}
	}
	if !slices.Equal(listed, pending) {
		rt.Fatalf("pending list %v, model %v", listed, pending)
	}

	var deadListed []string
	q = store.PageQuery{Limit: 7}
	for {
		page, err := m.s.DeadLetter(m.ctx, q)
		if err != nil {
			rt.Fatal(err)
		}
		deadListed = append(deadListed, ids(page.Jobs)...)
		if q.Cursor = page.NextCursor; q.Cursor == "" {
			break
		}
	}
	slices.Sort(deadListed)
	dead := m.ids(pouw.StateDead)
	slices.Sort(dead)
	if !slices.Equal(deadListed, dead) {
		rt.Fatalf("dead letter %v, model %v", deadListed, dead)
	}

	p, err := m.s.Pool(m.ctx)
	if err != nil {
		rt.Fatal(err)
	}
	if p != m.pool || !p.Balanced() {
		rt.Fatalf("pool %+v, model %+v", p, m.pool)
	}
	st, err := m.s.Status(m.ctx)
	if err != nil {
		rt.Fatal(err)
	}
	for _, ts := range st.Tiers {
		for _, s := range pouw.States {
			if ts.Counts[s] != counts[ts.Tier][s] {
				rt.Fatalf("status %s %s = %d, model %d", ts.Tier, s, ts.Counts[s], counts[ts.Tier][s])
			}
		}
	}

	evs, err := m.s.Events(m.ctx, m.lastEv, 1000)
	if err != nil {
		rt.Fatal(err)
	}
	for _, e := range evs {
		if e.ID <= m.lastEv {
			rt.Fatalf("event id %d after %d", e.ID, m.lastEv)
		}
		m.lastEv = e.ID
	}
}
