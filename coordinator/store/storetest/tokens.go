package storetest

import (
	"testing"
	"time"

	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/pouw"
)

func init() {
	add("ExpiredTokenIsNotFound", testExpiredTokenIsNotFound)
	add("RotatedTokenKeepsOldOneForGracePeriod", testRotatedTokenKeepsOldOneForGracePeriod)
	add("RevokedTokensAreNotFound", testRevokedTokensAreNotFound)
	add("SuspensionIsSeenThroughTokenAndCanBeLifted", testSuspensionIsSeenThroughTokenAndCanBeLifted)
	add("AuditAppendsAnEventNamingTheActor", testAuditAppendsAnEventNamingTheActor)
}

func (f *fx) byToken(h pouw.Hash) (store.Prover, error) {
	return f.s.ProverByTokenHash(f.ctx, h)
}

func testExpiredTokenIsNotFound(t *testing.T, nh Factory) {
	f := newFx(t, nh, testOptions())
	exp := f.nowMs() + time.Minute.Milliseconds()
	if err := f.s.RegisterProver(f.ctx, store.Prover{ID: "short", TokenHash: hashOf("short"), TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	p, err := f.byToken(hashOf("short"))
	if err != nil || p.ID != "short" || p.ExpiresAtMs != exp {
		t.Fatalf("before expiry: %+v %v", p, err)
	}
	f.advance(time.Minute)
	_, err = f.byToken(hashOf("short"))
	wantErr(t, err, store.ErrNotFound, "token at its expiry")
}

func testRotatedTokenKeepsOldOneForGracePeriod(t *testing.T, nh Factory) {
	f := newFx(t, nh, testOptions())
	f.prover("farm")
	old, fresh := tokenHash("farm"), hashOf("fresh")
	if err := f.s.AddProverToken(f.ctx, "farm", fresh, 0, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	err := f.s.AddProverToken(f.ctx, "farm", fresh, 0, 0)
	wantErr(t, err, store.ErrExists, "a token hash given twice")
	err = f.s.AddProverToken(f.ctx, "nobody", hashOf("x"), 0, 0)
	wantErr(t, err, store.ErrNotFound, "a token for an unknown prover")
	for _, h := range []pouw.Hash{old, fresh} {
		if p, err := f.byToken(h); err != nil || p.ID != "farm" {
			t.Fatalf("within the grace period: %+v %v", p, err)
		}
	}
	f.advance(10 * time.Second)
	_, err = f.byToken(old)
	wantErr(t, err, store.ErrNotFound, "the old token after the grace period")
	if p, err := f.byToken(fresh); err != nil || p.ID != "farm" || p.ExpiresAtMs != 0 {
		t.Fatalf("the new token after the grace period: %+v %v", p, err)
	}
}

func testRevokedTokensAreNotFound(t *testing.T, nh Factory) {
	f := newFx(t, nh, testOptions())
	f.prover("farm")
	f.prover("other")
	if err := f.s.AddProverToken(f.ctx, "farm", hashOf("second"), 0, 0); err != nil {
		t.Fatal(err)
	}
	n, err := f.s.RevokeProverTokens(f.ctx, "farm")
	if err != nil || n != 2 {
		t.Fatalf("RevokeProverTokens = %d, %v; want 2 tokens", n, err)
	}
	for _, h := range []pouw.Hash{tokenHash("farm"), hashOf("second")} {
		_, err := f.byToken(h)
		wantErr(t, err, store.ErrNotFound, "a revoked token")
	}
	if p, err := f.byToken(tokenHash("other")); err != nil || p.ID != "other" {
		t.Fatalf("another prover's token after a revoke: %+v %v", p, err)
	}
	_, err = f.s.RevokeProverTokens(f.ctx, "nobody")
	wantErr(t, err, store.ErrNotFound, "revoke an unknown prover")
	// A fresh token after a revoke works again.
	if err := f.s.AddProverToken(f.ctx, "farm", hashOf("third"), 0, 0); err != nil {
		t.Fatal(err)
	}
	if p, err := f.byToken(hashOf("third")); err != nil || p.ID != "farm" {
		t.Fatalf("a token issued after the revoke: %+v %v", p, err)
	}
}

func testSuspensionIsSeenThroughTokenAndCanBeLifted(t *testing.T, nh Factory) {
	f := newFx(t, nh, testOptions())
	f.prover("farm")
	if _, err := f.s.SetProverSuspended(f.ctx, "farm", true, "9 of 10 proofs rejected"); err != nil {
		t.Fatal(err)
	}
	p, err := f.byToken(tokenHash("farm"))
	if err != nil || !p.Suspended || p.SuspendReason != "9 of 10 proofs rejected" {
		t.Fatalf("suspended prover: %+v %v", p, err)
	}
	f.advance(time.Second)
	lifted, err := f.s.SetProverSuspended(f.ctx, "farm", false, "")
	if err != nil || lifted.Suspended || lifted.LiftedAtMs != f.nowMs() {
		t.Fatalf("lift: %+v %v (now %d)", lifted, err, f.nowMs())
	}
	p, err = f.byToken(tokenHash("farm"))
	if err != nil || p.Suspended || p.SuspendReason != "" || p.LiftedAtMs != f.nowMs() {
		t.Fatalf("after the lift: %+v %v", p, err)
	}
	_, err = f.s.SetProverSuspended(f.ctx, "nobody", true, "x")
	wantErr(t, err, store.ErrNotFound, "suspend an unknown prover")
}

func testAuditAppendsAnEventNamingTheActor(t *testing.T, nh Factory) {
	f := newFx(t, nh, testOptions())
	before := f.eventsAfter(0)
	ev := pouw.Event{Type: pouw.EventAdminAction, Actor: "admin:0123abcd", Action: pouw.ActionRevokeTokens,
		ProverID: "farm", Reason: "laptop stolen"}
	if err := f.s.Audit(f.ctx, ev); err != nil {
		t.Fatal(err)
	}
	after := f.eventsAfter(0)
	if len(after) != len(before)+1 {
		t.Fatalf("%d events after Audit, want %d", len(after), len(before)+1)
	}
	got := after[len(after)-1]
	if got.Type != ev.Type || got.Actor != ev.Actor || got.Action != ev.Action || got.ProverID != "farm" ||
		got.Reason != ev.Reason || got.AtMs != f.nowMs() {
		t.Fatalf("audit event %+v, want %+v at %d", got, ev, f.nowMs())
	}
	wantErr(t, f.s.Audit(f.ctx, pouw.Event{}), store.ErrInvalid, "an audit event without a type")
}
