package storetest

import (
	"testing"
	"time"

	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/pouw"
)

func init() {
	add("DepositsKeepPoolLedgerBalanced", testDepositsKeepPoolLedgerBalanced)
	add("RegisterProverAndFindByTokenHash", testRegisterProverAndFindByTokenHash)
	add("StatusCountsPerStateAndTier", testStatusCountsPerStateAndTier)
}

func testDepositsKeepPoolLedgerBalanced(t *testing.T, nh Factory) {
	f := newFx(t, nh, testOptions())
	if p := f.pool(); p != (pouw.PoolStatus{}) {
		t.Fatalf("new pool %+v, want zero", p)
	}
	p, err := f.s.Deposit(f.ctx, 70, "admin")
	if err != nil || p.Deposited != 70 || p.Available != 70 {
		t.Fatalf("Deposit: %+v %v", p, err)
	}
	f.deposit(30)
	for _, bad := range []uint64{0, pouw.MaxAmount + 1, pouw.MaxAmount} {
		before := f.snap()
		_, err := f.s.Deposit(f.ctx, bad, "admin")
		wantErr(t, err, store.ErrInvalid, "deposit beyond 2^53-1 or of zero")
		f.unchanged(before, "refused deposit")
	}
	if p := f.pool(); p.Deposited != 100 || p.Available != 100 {
		t.Fatalf("pool %+v", p)
	}
}

func testRegisterProverAndFindByTokenHash(t *testing.T, nh Factory) {
	f := newFx(t, nh, testOptions())
	f.prover("gpu-farm-1")
	f.prover("cpu-farm")
	err := f.s.RegisterProver(f.ctx, store.Prover{ID: "gpu-farm-1", TokenHash: hashOf("another token")})
	wantErr(t, err, store.ErrExists, "register a taken id")
	err = f.s.RegisterProver(f.ctx, store.Prover{ID: "", TokenHash: hashOf("t")})
	wantErr(t, err, store.ErrInvalid, "register an empty id")

	p, err := f.s.ProverByTokenHash(f.ctx, tokenHash("gpu-farm-1"))
	if err != nil || p.ID != "gpu-farm-1" || p.TokenHash != tokenHash("gpu-farm-1") {
		t.Fatalf("ProverByTokenHash: %+v %v", p, err)
	}
	_, err = f.s.ProverByTokenHash(f.ctx, hashOf("nobody's token"))
	wantErr(t, err, store.ErrNotFound, "unknown token hash")

	ps := f.provers()
	if len(ps) != 2 {
		t.Fatalf("provers %+v, want 2", ps)
	}
	if st := ps["cpu-farm"]; st.JobsCompleted != 0 || st.JobsFailed != 0 || st.TotalFeeEarned != 0 {
		t.Fatalf("new prover stats %+v", st)
	}
}

func testStatusCountsPerStateAndTier(t *testing.T, nh Factory) {
	f := newFx(t, nh, testOptions())
	f.ready()
	oldMicro := f.enqueue(tier(pouw.TierMicro))
	f.advance(10 * time.Second)
	f.enqueue(tier(pouw.TierMicro))
	f.enqueue(tier(pouw.TierMacro))
	f.enqueue(tier(pouw.TierMacro), retries(1))
	f.enqueue(tier(pouw.TierFull), dependsOn(oldMicro.JobID))
	f.advance(5 * time.Second)

	f.complete(f.claim("p1", pouw.TierMicro), "p1") // oldMicro completes; the full job becomes pending
	f.claim("p1", pouw.TierMacro)                   // leased
	f.fail(f.claim("p2", pouw.TierMacro), "p2")     // the retries(1) job dies

	st, err := f.s.Status(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[pouw.JobTier]map[pouw.State]uint64{
		pouw.TierMicro: {pouw.StatePending: 1, pouw.StateCompleted: 1},
		pouw.TierMacro: {pouw.StateLeased: 1, pouw.StateDead: 1},
		pouw.TierFull:  {pouw.StatePending: 1},
	}
	if len(st.Tiers) != 3 {
		t.Fatalf("status has %d tiers, want 3", len(st.Tiers))
	}
	for _, ts := range st.Tiers {
		for _, s := range pouw.States {
			if ts.Counts[s] != want[ts.Tier][s] {
				t.Fatalf("tier %s %s count %d, want %d (status %+v)", ts.Tier, s, ts.Counts[s], want[ts.Tier][s], st)
			}
		}
	}
	age := map[pouw.JobTier]int64{pouw.TierMicro: 5000, pouw.TierMacro: 0, pouw.TierFull: 5000}
	for _, ts := range st.Tiers {
		if ts.OldestPendingAgeMs != age[ts.Tier] {
			t.Fatalf("tier %s oldest pending age %d ms, want %d", ts.Tier, ts.OldestPendingAgeMs, age[ts.Tier])
		}
	}
	if st.Provers != 2 || st.NowMs != f.nowMs() || !st.Pool.Balanced() || st.LastSeq == 0 {
		t.Fatalf("status %+v", st)
	}
}
