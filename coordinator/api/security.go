package api

import (
	"context"
	"crypto/x509"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/pouwfarm/pouwfarm/clock"
	"github.com/pouwfarm/pouwfarm/pouw"
)

// Error codes of the abuse limits and the token lifecycle.
const (
	CodeRateLimited     = "rate_limited"         // 429: a per-prover limit was hit; see Retry-After
	CodeProverSuspended = "prover_suspended"     // 403: an admin must lift the suspension
	CodeCertMismatch    = "client_cert_mismatch" // 403: the mTLS certificate names another prover
)

// Abuse bounds what one prover may do. Zero values disable a limit, so
// api.New without them limits nothing; `pouw coordinator` sets all of them
// (flags with POUW_ twins). The lease and rate limits are kept per
// coordinator: behind a load balancer of n coordinators a prover may get up
// to n times each.
type Abuse struct {
	// MaxLeases is how many leases one prover may hold at once.
	MaxLeases int
	// ClaimRate and SubmitRate are per-prover requests per second, with
	// bursts of ClaimBurst and SubmitBurst.
	ClaimRate   float64
	ClaimBurst  int
	SubmitRate  float64
	SubmitBurst int
	// A prover is suspended when, among its last SuspendWindow verified
	// proofs (at least SuspendMinProofs of them), the rejected share is at
	// least SuspendRejectRatio. SuspendRejectRatio 0 disables suspension.
	SuspendWindow      int
	SuspendMinProofs   int
	SuspendRejectRatio float64
}

// DefaultAbuse is what `pouw coordinator` uses unless told otherwise:
// generous for honest farms (which claim only what their slots can place
// now), tight enough that one prover cannot take a whole queue.
func DefaultAbuse() Abuse {
	return Abuse{MaxLeases: 256, ClaimRate: 50, ClaimBurst: 100, SubmitRate: 50, SubmitBurst: 100,
		SuspendWindow: 32, SuspendMinProofs: 20, SuspendRejectRatio: 0.9}
}

// limiter holds the per-prover state of the abuse limits on one coordinator.
type limiter struct {
	cfg Abuse
	clk clock.Clock

	mu      sync.Mutex
	claims  map[string]*rate.Limiter
	submits map[string]*rate.Limiter
	// leases: prover -> job id -> lease expiry (ms); entries past their
	// expiry no longer count.
	leases map[string]map[string]int64
	// outcomes: prover -> recent verified proofs (at ms, rejected).
	outcomes map[string][]outcome
	// verifies: job id + lease token hash -> verifications that could not
	// be made on that lease.
	verifies map[string]int
}

type outcome struct {
	atMs     int64
	rejected bool
}

func newLimiter(cfg Abuse, clk clock.Clock) *limiter {
	return &limiter{cfg: cfg, clk: clk, claims: map[string]*rate.Limiter{}, submits: map[string]*rate.Limiter{},
		leases: map[string]map[string]int64{}, outcomes: map[string][]outcome{}, verifies: map[string]int{}}
}

// rateLimited is the 429 answer; Retry-After is set from retry.
type rateLimited struct {
	kind  string // the metric's label
	what  string
	retry time.Duration
}

func (e *rateLimited) Error() string {
	return fmt.Sprintf("%s; retry after %s", e.what, e.retry.Round(time.Millisecond))
}

func (e *rateLimited) retryAfterSeconds() int {
	return max(1, int(math.Ceil(e.retry.Seconds())))
}

// allow takes one token of prover's limiter in m; a *rateLimited when none is
// left.
func (l *limiter) allow(m map[string]*rate.Limiter, r float64, burst int, prover, what, kind string) error {
	if r <= 0 {
		return nil
	}
	now := l.clk.Now()
	l.mu.Lock()
	lim, ok := m[prover]
	if !ok {
		lim = rate.NewLimiter(rate.Limit(r), max(burst, 1))
		m[prover] = lim
	}
	res := lim.ReserveN(now, 1)
	d := res.DelayFrom(now)
	if d > 0 {
		res.CancelAt(now)
	}
	l.mu.Unlock()
	if d > 0 {
		return &rateLimited{kind: kind, what: fmt.Sprintf("prover %s exceeds %g %s per second", prover, r, what), retry: d}
	}
	return nil
}

func (l *limiter) allowClaim(prover string) error {
	if err := l.allow(l.claims, l.cfg.ClaimRate, l.cfg.ClaimBurst, prover, "claims", "claim_rate"); err != nil {
		return err
	}
	if l.cfg.MaxLeases <= 0 {
		return nil
	}
	now := l.clk.Now().UnixMilli()
	l.mu.Lock()
	defer l.mu.Unlock()
	held, first := 0, int64(math.MaxInt64)
	for id, exp := range l.leases[prover] {
		if exp <= now {
			delete(l.leases[prover], id)
			continue
		}
		held++
		first = min(first, exp)
	}
	if held >= l.cfg.MaxLeases {
		return &rateLimited{kind: "max_leases", what: fmt.Sprintf("prover %s holds %d leases, the most allowed", prover, held),
			retry: time.Duration(first-now) * time.Millisecond}
	}
	return nil
}

func (l *limiter) allowSubmit(prover string) error {
	return l.allow(l.submits, l.cfg.SubmitRate, l.cfg.SubmitBurst, prover, "submits", "submit_rate")
}

// leased records (or renews) a lease held by prover until expMs.
func (l *limiter) leased(prover, job string, expMs int64) {
	if l.cfg.MaxLeases <= 0 {
		return // nothing to count; keep no state
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	m := l.leases[prover]
	if m == nil {
		m = map[string]int64{}
		l.leases[prover] = m
	}
	m[job] = expMs
}

// ended forgets a lease and its verification count.
func (l *limiter) ended(prover, job, token string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.leases[prover], job)
	if len(l.leases[prover]) == 0 {
		delete(l.leases, prover)
	}
	delete(l.verifies, verifyKey(job, token))
}

func verifyKey(job, token string) string {
	h := TokenHash(token)
	return job + "/" + h.String()[:16]
}

// maxVerifyKeys bounds the verification counts kept; the oldest lease's count
// is lost first only in the unlikely case of that many stuck verifications.
const maxVerifyKeys = 100_000

// verifyUnavailable counts a verification of the lease that could not be
// made and returns the count so far.
func (l *limiter) verifyUnavailable(job, token string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.verifies) >= maxVerifyKeys {
		clear(l.verifies)
	}
	k := verifyKey(job, token)
	l.verifies[k]++
	return l.verifies[k]
}

// verified records the outcome of a verified proof of prover and reports
// whether the prover should now be suspended (and why). Outcomes from before
// liftedAtMs (the last lifted suspension) do not count.
func (l *limiter) verified(prover string, rejected bool, liftedAtMs int64) (bool, string) {
	c := l.cfg
	if c.SuspendRejectRatio <= 0 || c.SuspendWindow <= 0 {
		return false, ""
	}
	now := l.clk.Now().UnixMilli()
	l.mu.Lock()
	defer l.mu.Unlock()
	hist := l.outcomes[prover]
	kept := hist[:0]
	for _, o := range hist {
		if o.atMs >= liftedAtMs {
			kept = append(kept, o)
		}
	}
	kept = append(kept, outcome{atMs: now, rejected: rejected})
	if len(kept) > c.SuspendWindow {
		kept = kept[len(kept)-c.SuspendWindow:]
	}
	l.outcomes[prover] = kept
	bad := 0
	for _, o := range kept {
		if o.rejected {
			bad++
		}
	}
	if len(kept) < max(c.SuspendMinProofs, 1) || float64(bad)/float64(len(kept)) < c.SuspendRejectRatio {
		return false, ""
	}
	delete(l.outcomes, prover)
	return true, fmt.Sprintf("%d of its last %d proofs were rejected", bad, len(kept))
}

// writeRetryAfter sets Retry-After for a rate-limit error.
func writeRetryAfter(w http.ResponseWriter, e *rateLimited) {
	w.Header().Set("Retry-After", strconv.Itoa(e.retryAfterSeconds()))
}

// ProverURIPrefix starts the URI SAN that names a prover in an mTLS client
// certificate: pouw://prover/<prover id>.
const ProverURIPrefix = "pouw://prover/"

// certNamesProver reports whether cert names prover: its subject CN, or a URI
// SAN pouw://prover/<id>.
func certNamesProver(cert *x509.Certificate, prover string) bool {
	if cert.Subject.CommonName == prover {
		return true
	}
	for _, u := range cert.URIs {
		if strings.TrimPrefix(u.String(), ProverURIPrefix) == prover && strings.HasPrefix(u.String(), ProverURIPrefix) {
			return true
		}
	}
	return false
}

// actor names who made an admin request for the audit log: the admin key's
// id (the first 8 hex digits of its BLAKE3; never the token), and the
// client certificate's CN when mTLS gave one.
func (s *Server) actor(r *http.Request) string {
	a := "admin:" + s.auth.adminHash.String()[:8]
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		a += "/cn=" + r.TLS.PeerCertificates[0].Subject.CommonName
	}
	return a
}

// audit appends an admin.action event naming the actor. The action has
// happened already; a failure to record it is logged loudly, not undone.
func (s *Server) audit(ctx context.Context, r *http.Request, ev pouw.Event) {
	ev.Type, ev.Actor = pouw.EventAdminAction, s.actor(r)
	if err := s.store.Audit(context.WithoutCancel(ctx), ev); err != nil {
		s.log.Error("audit: recording an admin action failed", "action", ev.Action, "actor", ev.Actor, "err", err)
		return
	}
	s.hub.poke()
}
