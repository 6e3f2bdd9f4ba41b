package chaos

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pouwfarm/pouwfarm/coordinator/client"
	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/coordinator/store/redisstore"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/trace"
	"github.com/pouwfarm/pouwfarm/trace/workload"
)

// FaultKind names a fault the harness injects.
type FaultKind string

// The faults.
const (
	FaultKillFarm        FaultKind = "kill_farm"        // SIGKILL a farm holding a lease, restart it
	FaultStopFarm        FaultKind = "stop_farm"        // SIGSTOP a farm past its lease, SIGCONT it
	FaultKillCoordinator FaultKind = "kill_coordinator" // SIGKILL a coordinator, restart it
	FaultKillRedis       FaultKind = "kill_redis"       // SIGKILL Redis, restart it from its AOF
	FaultFailover        FaultKind = "failover"         // promote the replica, repoint the coordinators
	FaultClockJump       FaultKind = "clock_jump"       // move the store clock forward (test offset key)
	FaultCorruptTrace    FaultKind = "corrupt_trace"    // damage a pending job's trace blob
	FaultGarbageProof    FaultKind = "garbage_proof"    // submit random bytes under a real lease
)

// AllFaults lists every fault kind.
var AllFaults = []FaultKind{FaultKillFarm, FaultStopFarm, FaultKillCoordinator, FaultKillRedis,
	FaultFailover, FaultClockJump, FaultCorruptTrace, FaultGarbageProof}

// FaultRecord is one injected fault.
type FaultRecord struct {
	Kind   FaultKind `json:"kind"`
	AtS    float64   `json:"at_s"` // seconds since the fault phase began
	Target string    `json:"target,omitempty"`
	Detail string    `json:"detail,omitempty"`
	Err    string    `json:"error,omitempty"`
	// RecoverMs is from the end of the fault to the next completed job
	// (-1: none before the next fault or the end).
	RecoverMs int64 `json:"recover_ms"`
	end       time.Time
}

// FailoverRecord measures one promotion of the replica.
type FailoverRecord struct {
	WaitReplicas int `json:"wait_replicas"`
	// Acked completions seen on the old primary before it died, and how
	// many of them the promoted replica did not have (not counting those
	// already lost in an earlier failover).
	Acked int `json:"acked"`
	Lost  int `json:"lost"`
	// Ingests acknowledged by the old primary after the split, and how
	// many of those jobs the new primary does not know.
	Ingested    int `json:"ingested_during_split"`
	LostIngests int `json:"lost_ingests"`
	// LostIDs are the jobs whose acknowledged completion was lost.
	LostIDs []string `json:"lost_ids,omitempty"`
}

// FencingRecord is one stale-lease probe: a lease held past its expiry,
// then renewed and submitted; both must be refused.
type FencingRecord struct {
	RenewCode  string `json:"renew_code"`
	SubmitCode string `json:"submit_code"`
	Refused    bool   `json:"refused"`
}

type injector struct {
	c      *cluster
	rng    *mrand.Rand
	w      *watcher
	gen    *loadgen
	chaos  string // token of the harness's own prover
	start  time.Time
	faults []FaultRecord

	failovers []FailoverRecord
	fencing   []FencingRecord
	garbage   struct{ Submitted, Rejected int }
	jumps     struct{ Jumps, Observed int }
	// lost are acknowledged completions lost on failover (measured, and
	// kept out of the acked-completed invariant that follows).
	lost       map[string]bool
	lostIngest map[string]bool
	corrupted  map[pouw.Hash]bool
	violations []Violation
	unreadable int // acknowledged jobs the store could not be asked about
}

func (in *injector) inject(ctx context.Context, k FaultKind) {
	rec := FaultRecord{Kind: k, AtS: time.Since(in.start).Seconds()}
	ackedBefore := in.w.acked(time.Now())
	var err error
	switch k {
	case FaultKillFarm:
		err = in.killFarm(ctx, &rec)
	case FaultStopFarm:
		err = in.stopFarm(ctx, &rec)
	case FaultKillCoordinator:
		i := in.rng.IntN(len(in.c.coords))
		rec.Target = in.c.coords[i].name
		err = in.c.restartCoordinator(i, false)
	case FaultKillRedis:
		err = in.killRedis(&rec)
	case FaultFailover:
		err = in.failover(ctx, &rec, ackedBefore)
	case FaultClockJump:
		err = in.clockJump(ctx, &rec)
	case FaultCorruptTrace:
		err = in.corruptTrace(ctx, &rec)
	case FaultGarbageProof:
		err = in.garbageProof(ctx, &rec)
	}
	if err != nil {
		rec.Err = err.Error()
		in.c.log.Warn("chaos: fault did not complete", "kind", k, "err", err)
	}
	rec.end = time.Now()
	in.c.log.Info("chaos: fault", "kind", k, "target", rec.Target, "detail", rec.Detail, "err", rec.Err)
	in.faults = append(in.faults, rec)
	in.checkAcked(ctx, ackedBefore, k)
}

// checkAcked: every completion acknowledged before the fault must still be
// completed after it (failover losses are measured, not judged, here).
func (in *injector) checkAcked(ctx context.Context, acked []string, k FaultKind) {
	rc := in.c.primaryClient()
	defer rc.Close()
	st, err := redisstore.New(ctx, rc, redisstore.Options{TestClock: true, Prefix: in.c.prefix, Logger: quiet})
	if err != nil {
		return
	}
	for _, id := range acked {
		if in.lost[id] {
			continue
		}
		j, err := st.Job(ctx, id)
		// A store still starting (AOF replay) is not an answer: ask again.
		for try := 0; err != nil && !errors.Is(err, store.ErrNotFound) && try < 25; try++ {
			time.Sleep(200 * time.Millisecond)
			j, err = st.Job(ctx, id)
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			in.c.log.Warn("chaos: cannot read an acknowledged job after a fault", "job", id, "err", err)
			in.unreadable++
			continue
		}
		if err != nil || j.State != pouw.StateCompleted {
			state := "missing"
			if err == nil {
				state = string(j.State)
			}
			in.violations = append(in.violations, Violation{Invariant: InvAckedCompleted, JobID: id,
				Detail: fmt.Sprintf("completed before %s, %s after it", k, state)})
		}
	}
}

// busyFarm finds a farm holding a lease (waiting up to within), so that a
// kill or stop lands mid-proof; without one it picks a farm at random.
func (in *injector) busyFarm(ctx context.Context, within time.Duration) (int, string) {
	rc := in.c.primaryClient()
	defer rc.Close()
	idx := map[string]int{}
	for i, f := range in.c.farms {
		idx[f.name] = i
	}
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		for _, t := range pouw.Tiers {
			ids, _ := rc.ZRange(ctx, leaseIndexKey(in.c.prefix, t), 0, -1).Result()
			for _, id := range ids {
				p, _ := rc.HGet(ctx, "{"+in.c.prefix+"}:job:"+id, "prover").Result()
				if i, ok := idx[p]; ok {
					return i, id
				}
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return in.rng.IntN(len(in.c.farms)), ""
}

func (in *injector) killFarm(ctx context.Context, rec *FaultRecord) error {
	i, job := in.busyFarm(ctx, 5*time.Second)
	f := in.c.farms[i]
	rec.Target = f.name
	f.kill()
	if job != "" {
		rec.Detail = "killed holding " + job
	} else {
		rec.Detail = "killed idle (no farm held a lease within 5s)"
	}
	time.Sleep(time.Duration(500+in.rng.IntN(1500)) * time.Millisecond)
	return f.start()
}

// stopFarm freezes a farm past its lease while the harness runs its own
// fencing probe: a lease of its own held past expiry, then renewed and
// submitted late.
func (in *injector) stopFarm(ctx context.Context, rec *FaultRecord) error {
	i, job := in.busyFarm(ctx, 5*time.Second)
	f := in.c.farms[i]
	rec.Target = f.name
	if err := f.signal(syscall.SIGSTOP); err != nil {
		return err
	}
	probe := make(chan FencingRecord, 1)
	go func() { probe <- in.fencingProbe(ctx) }()
	time.Sleep(in.c.cfg.Lease + 2*time.Second)
	var logFrom int64
	if fi, err := os.Stat(f.logPath); err == nil {
		logFrom = fi.Size()
	}
	err := f.signal(syscall.SIGCONT)
	fr := <-probe
	// The farm's own late calls: its log says when the coordinator
	// refused them (409 lease_lost).
	time.Sleep(time.Second)
	refusedLate := 0
	if b, rerr := os.ReadFile(f.logPath); rerr == nil && int64(len(b)) >= logFrom {
		refusedLate = strings.Count(string(b[logFrom:]), "409 lease_lost")
	}
	if fr.RenewCode != "" {
		in.fencing = append(in.fencing, fr)
		if !fr.Refused {
			in.violations = append(in.violations, Violation{Invariant: "fencing",
				Detail: fmt.Sprintf("late renew answered %s, late submit %s", fr.RenewCode, fr.SubmitCode)})
		}
	}
	rec.Detail = fmt.Sprintf("stopped %v holding %q; its late calls refused with lease_lost: %d; probe: late renew %s, late submit %s",
		in.c.cfg.Lease+2*time.Second, job, refusedLate, fr.RenewCode, fr.SubmitCode)
	return err
}

func code(err error) string {
	if err == nil {
		return "accepted"
	}
	var e *client.Error
	if errors.As(err, &e) {
		return strconv.Itoa(e.Status) + " " + e.Code
	}
	return "error: " + err.Error()
}

// claim claims a job for the harness's own prover, racing the farms for
// the next one ingested (up to within).
func (in *injector) claim(ctx context.Context, cl *client.Client, within time.Duration) (pouw.ClaimResponse, error) {
	deadline := time.Now().Add(within)
	for {
		lease, err := cl.Claim(ctx, pouw.ClaimRequest{Tiers: pouw.Tiers[:], Backends: []string{"stark"}})
		if err == nil || time.Now().After(deadline) {
			return lease, err
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func (in *injector) fencingProbe(ctx context.Context) FencingRecord {
	cl := in.c.client(in.rng.IntN(len(in.c.coords)), in.chaos)
	lease, err := in.claim(ctx, cl, 5*time.Second)
	if err != nil {
		return FencingRecord{}
	}
	// Past the lease and at least one reap.
	time.Sleep(in.c.cfg.Lease + 1500*time.Millisecond)
	_, rerr := cl.Renew(ctx, lease.Job.JobID, lease.LeaseToken)
	_, serr := cl.Submit(ctx, lease.Job.JobID, lease.LeaseToken, garbage(512))
	fr := FencingRecord{RenewCode: code(rerr), SubmitCode: code(serr)}
	fr.Refused = rerr != nil && serr != nil && isRefusal(rerr) && isRefusal(serr)
	return fr
}

// isRefusal: the coordinator answered and said no (a transport error proves
// nothing either way).
func isRefusal(err error) bool {
	var e *client.Error
	return errors.As(err, &e) && e.Status >= 400 && e.Status < 500
}

func garbage(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func (in *injector) killRedis(rec *FaultRecord) error {
	in.c.mu.Lock()
	p := in.c.primary
	in.c.mu.Unlock()
	rec.Target = "redis " + p.Addr()
	if err := p.Kill(); err != nil {
		return err
	}
	down := time.Duration(300+in.rng.IntN(1700)) * time.Millisecond
	time.Sleep(down)
	rec.Detail = "down " + down.String()
	return p.Restart()
}

// failover is a failover in the middle of a network partition, the case
// asynchronous replication cannot cover: the replica is promoted (it stops
// following) while the coordinators still write to the old primary for a
// moment; then the old primary dies and the coordinators restart pointed
// at the promoted replica. Completions and ingests acknowledged by the old
// primary in that moment and missing from the new one are counted as lost
// (measured, not judged: the checker then audits the surviving store). A
// fresh replica of the new primary follows, and the coordinators' WAIT
// setting alternates between 0 and 1 so both are measured.
func (in *injector) failover(ctx context.Context, rec *FaultRecord, _ []string) error {
	in.c.mu.Lock()
	old, repl := in.c.primary, in.c.replica
	in.c.mu.Unlock()
	wait := in.c.waitRepl
	rec.Target = fmt.Sprintf("%s -> %s (wait_replicas=%d)", old.Addr(), repl.Addr(), wait)
	if err := waitReplicaUp(repl.Addr(), 10*time.Second); err != nil {
		return err
	}
	rc := newRedis(repl.Addr())
	defer rc.Close()
	split := time.Now()
	if err := rc.Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		return fmt.Errorf("promote: %w", err)
	}
	time.Sleep(1500 * time.Millisecond)
	in.w.poll(ctx)
	acked := in.w.acked(time.Now())
	ingested := in.gen.since(split)
	if err := old.Kill(); err != nil {
		return err
	}
	st, err := redisstore.New(ctx, rc, redisstore.Options{TestClock: true, Prefix: in.c.prefix, Logger: quiet})
	if err != nil {
		return err
	}
	lost, lostIngests := 0, 0
	var lostIDs []string
	for _, id := range acked {
		if in.lost[id] {
			continue // lost in an earlier failover (a job whose ingest was lost stays lost)
		}
		if j, err := st.Job(ctx, id); err != nil || j.State != pouw.StateCompleted {
			lost++
			in.lost[id] = true
			lostIDs = append(lostIDs, id)
		}
	}
	for _, id := range ingested {
		if _, err := st.Job(ctx, id); err != nil {
			lostIngests++
			in.lostIngest[id] = true
		}
	}
	in.failovers = append(in.failovers, FailoverRecord{WaitReplicas: wait, Acked: len(acked), Lost: lost,
		Ingested: len(ingested), LostIngests: lostIngests, LostIDs: lostIDs})
	rec.Detail = fmt.Sprintf("completions acked %d, lost %d; ingests during the split %d, lost %d",
		len(acked), lost, len(ingested), lostIngests)

	in.c.mu.Lock()
	repl.replicaOf = "" // promoted: a crash brings it back as a primary
	in.c.primary = repl
	in.c.waitRepl = 1 - wait
	in.c.mu.Unlock()
	_ = old.Close()
	if err := in.w.resync(ctx); err != nil {
		return err
	}
	errs := make([]error, len(in.c.coords))
	var wg sync.WaitGroup
	for i := range in.c.coords {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = in.c.restartCoordinator(i, true) }()
	}
	wg.Wait()
	if err := in.c.startReplica(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// clockJump moves the store clock forward by one lease through the
// test-only offset key, and reports whether the coordinators' clock moved
// (they only read the key when their store runs with TestClock).
func (in *injector) clockJump(ctx context.Context, rec *FaultRecord) error {
	rc := in.c.primaryClient()
	defer rc.Close()
	jump := in.c.cfg.Lease.Milliseconds()
	cl := in.c.client(0, in.c.admin)
	before, err := cl.Status(ctx)
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := rc.IncrBy(ctx, redisstore.ClockOffsetKey(in.c.prefix), jump).Err(); err != nil {
		return err
	}
	after, err := cl.Status(ctx)
	if err != nil {
		return err
	}
	moved := after.NowMs-before.NowMs-time.Since(t0).Milliseconds() >= jump/2
	in.jumps.Jumps++
	if moved {
		in.jumps.Observed++
	}
	rec.Detail = fmt.Sprintf("+%dms; coordinator clock moved: %v", jump, moved)
	return nil
}

// corruptTrace damages the trace blob of a pending job. The farms claim
// new jobs within milliseconds, so the harness makes its own: it uploads a
// trace, damages the stored file, then ingests the job (the coordinator
// checked the hash at upload, not at ingest), which the farms must refuse
// to prove (the BLAKE3 no longer matches) until it is dead.
func (in *injector) corruptTrace(ctx context.Context, rec *FaultRecord) error {
	cl := in.c.client(in.rng.IntN(len(in.c.coords)), in.c.admin)
	seed := in.rng.Uint64()
	tier := pouw.Tiers[in.rng.IntN(3)]
	tr, err := in.gen.makeTrace(tier, workload.Names()[0], seed)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := trace.Encode(&buf, tr); err != nil {
		return err
	}
	info, err := cl.UploadBlob(ctx, buf.Bytes())
	if err != nil {
		return err
	}
	h := info.Hash.String()
	path := filepath.Join(in.c.blobs, h[:2], h)
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	b[len(b)-1] ^= 0xff // a row byte, not the header
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return err
	}
	in.corrupted[info.Hash] = true
	reward := tierRewards[tier]
	if _, err := cl.Deposit(ctx, reward, "chaos corrupt trace"); err != nil {
		return err
	}
	r, err := cl.Ingest(ctx, pouw.IngestRequest{Tier: tier, IntentID: tr.Header.IntentID, TraceHash: info.Hash,
		FeeBudget: reward, RewardBudget: reward})
	if err != nil {
		return err
	}
	in.gen.record(r.Job.JobID)
	rec.Target, rec.Detail = r.Job.JobID, "trace "+h[:16]+"… last byte flipped after upload"
	return nil
}

func (in *injector) garbageProof(ctx context.Context, rec *FaultRecord) error {
	cl := in.c.client(in.rng.IntN(len(in.c.coords)), in.chaos)
	lease, err := in.claim(ctx, cl, 5*time.Second)
	if err != nil {
		rec.Detail = "nothing claimed: " + code(err)
		return nil
	}
	_, serr := cl.Submit(ctx, lease.Job.JobID, lease.LeaseToken, garbage(256+in.rng.IntN(4096)))
	in.garbage.Submitted++
	var e *client.Error
	if errors.As(serr, &e) && e.Code == pouw.CodeProofRejected {
		in.garbage.Rejected++
	} else {
		in.violations = append(in.violations, Violation{Invariant: "garbage_rejected", JobID: lease.Job.JobID,
			Detail: "garbage proof answered " + code(serr)})
	}
	rec.Target, rec.Detail = lease.Job.JobID, "submit answered "+code(serr)
	return nil
}
