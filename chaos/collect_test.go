package chaos_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/zeebo/blake3"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/backends/stark"
	"github.com/pouwfarm/pouwfarm/chaos"
	"github.com/pouwfarm/pouwfarm/coordinator/blob"
	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/coordinator/store/redisstore"
	"github.com/pouwfarm/pouwfarm/internal/redistest"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/trace"
	"github.com/pouwfarm/pouwfarm/trace/workload"
)

// deployment is a real Redis store with file blobs holding one completed
// job (a real STARK proof), one pending and one leased job.
type deployment struct {
	rc        *redis.Client
	blobDir   string
	col       func() *chaos.Collector
	ids       []string
	proofHash pouw.Hash
}

func newDeployment(t *testing.T) deployment {
	t.Helper()
	ctx := context.Background()
	srv := redistest.Start(t, redistest.Options{})
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { rc.Close() })
	st, err := redisstore.New(ctx, rc, redisstore.Options{TestClock: true, Prefix: "audit", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files, err := blob.NewFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := stark.New(stark.Config{})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := backends.NewRegistry(sb)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"prover-a", "prover-b"} {
		if err := st.RegisterProver(ctx, store.Prover{ID: p, TokenHash: pouw.Hash(blake3.Sum256([]byte(p)))}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Deposit(ctx, 1000, "test"); err != nil {
		t.Fatal(err)
	}
	now, err := st.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	put := func(b []byte) pouw.Hash {
		h := pouw.Hash(blake3.Sum256(b))
		if _, _, err := files.Put(ctx, h, bytes.NewReader(b), 0); err != nil {
			t.Fatal(err)
		}
		return h
	}
	var d deployment
	var traces []*trace.Trace
	for seed := uint64(1); seed <= 3; seed++ {
		tr, err := workload.Macro(workload.Names()[0], seed, 32)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := trace.Encode(&buf, tr); err != nil {
			t.Fatal(err)
		}
		h := put(buf.Bytes())
		j, _, err := st.Enqueue(ctx, store.EnqueueRequest{Tier: pouw.TierMacro, IntentID: tr.Header.IntentID,
			TraceHash: h, TraceRef: "traces/" + h.String(), TraceBytes: int64(buf.Len()), Backend: "stark",
			FeeBudget: 100, RewardBudget: 100, DeadlineMs: now.Add(time.Hour).UnixMilli(), MaxRetries: 3})
		if err != nil {
			t.Fatal(err)
		}
		traces = append(traces, tr)
		d.ids = append(d.ids, j.JobID)
	}
	claim := func(prover string) store.Lease {
		l, err := st.Claim(ctx, store.ClaimRequest{ProverID: prover, Tiers: []pouw.JobTier{pouw.TierMacro}, Backends: []string{"stark"}})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	// Complete the first job claimed with a real proof; lease another.
	l := claim("prover-a")
	var tr *trace.Trace
	for i, id := range d.ids {
		if id == l.Job.JobID {
			tr = traces[i]
		}
	}
	proof, err := sb.Prove(ctx, tr, backends.Statement{Header: &tr.Header, TraceHash: l.Job.TraceHash, JobID: l.Job.JobID, ProverID: "prover-a"})
	if err != nil {
		t.Fatal(err)
	}
	d.proofHash = put(proof)
	ref := store.LeaseRef{JobID: l.Job.JobID, ProverID: "prover-a", Token: l.Token}
	if _, err := st.BeginVerify(ctx, ref, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Complete(ctx, ref, d.proofHash.String()); err != nil {
		t.Fatal(err)
	}
	claim("prover-b")
	d.rc, d.blobDir = rc, dir
	d.col = func() *chaos.Collector {
		return &chaos.Collector{Redis: rc, Prefix: "audit", Blobs: files, Registry: reg}
	}
	return d
}

func invariants(v []chaos.Violation) map[string]bool {
	m := map[string]bool{}
	for _, x := range v {
		m[x.Invariant] = true
	}
	return m
}

func TestCollectedRedisDeploymentPassesAndTamperingIsCaught(t *testing.T) {
	if testing.Short() {
		t.Skip("proves a STARK and runs a redis-server")
	}
	ctx := context.Background()
	d := newDeployment(t)

	snap, err := d.col().Collect(ctx, d.ids, nil)
	if err != nil {
		t.Fatal(err)
	}
	states := map[pouw.State]int{}
	for _, j := range snap.Jobs {
		states[j.State]++
	}
	if states[pouw.StateCompleted] != 1 || states[pouw.StatePending] != 1 || states[pouw.StateLeased] != 1 {
		t.Fatalf("deployment states %v, want one completed, pending and leased", states)
	}
	if v := chaos.Check(snap); len(v) != 0 {
		t.Fatalf("a consistent deployment has violations: %v", v)
	}

	t.Run("leased job dropped from the lease index", func(t *testing.T) {
		var leased string
		for id, j := range snap.Jobs {
			if j.State == pouw.StateLeased {
				leased = id
			}
		}
		key := "{audit}:leases:1"
		score, err := d.rc.ZScore(ctx, key, leased).Result()
		if err != nil {
			t.Fatalf("lease index %s: %v", key, err)
		}
		d.rc.ZRem(ctx, key, leased)
		defer d.rc.ZAdd(ctx, key, redis.Z{Score: score, Member: leased})
		s, err := d.col().Collect(ctx, d.ids, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !invariants(chaos.Check(s))[chaos.InvOneState] {
			t.Fatal("a leased job missing from the lease index was not reported")
		}
	})

	t.Run("proof blob replaced", func(t *testing.T) {
		h := d.proofHash.String()
		path := filepath.Join(d.blobDir, h[:2], h)
		orig, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		bad := bytes.Clone(orig)
		bad[len(bad)/2] ^= 1
		if err := os.WriteFile(path, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.WriteFile(path, orig, 0o644)
		s, err := d.col().Collect(ctx, d.ids, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !invariants(chaos.Check(s))[chaos.InvProofVerifies] {
			t.Fatal("a damaged proof blob was not reported")
		}
	})

	t.Run("reward paid without a completion", func(t *testing.T) {
		d.rc.HIncrBy(ctx, "{audit}:pool", "paid", 100)
		d.rc.HIncrBy(ctx, "{audit}:pool", "avail", -100)
		defer func() {
			d.rc.HIncrBy(ctx, "{audit}:pool", "paid", -100)
			d.rc.HIncrBy(ctx, "{audit}:pool", "avail", 100)
		}()
		s, err := d.col().Collect(ctx, d.ids, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !invariants(chaos.Check(s))[chaos.InvPoolPaid] {
			t.Fatal("a payment without a completion was not reported")
		}
	})

	t.Run("acknowledged completion gone", func(t *testing.T) {
		s, err := d.col().Collect(ctx, d.ids, d.ids)
		if err != nil {
			t.Fatal(err)
		}
		if !invariants(chaos.Check(s))[chaos.InvAckedCompleted] {
			t.Fatal("jobs acknowledged complete but pending/leased were not reported")
		}
	})
}
