package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/pouwfarm/pouwfarm/coordinator/api"
	"github.com/pouwfarm/pouwfarm/pouw"
)

// TestAuthMatrix sends every route with no token, the lease holder's
// token, another prover's token and the admin token, and checks who is let
// in: 401 without a token (read routes too, unless --public-read), 403 for a
// wrong role or another prover's lease, and anything but 401/403 for the
// callers the route is for.
func TestAuthMatrix(t *testing.T) {
	for _, publicRead := range []bool{false, true} {
		t.Run(fmt.Sprintf("public-read=%v", publicRead), func(t *testing.T) {
			e := newEnv(t, boltBackend(), envOptions{publicRead: publicRead})
			ctx := context.Background()
			owner := e.registerProver("owner")
			other := e.registerProver("other")
			e.registerProver("target")
			if _, err := e.client(adminToken).Deposit(ctx, 100, ""); err != nil {
				t.Fatal(err)
			}
			job := e.ingest(pouw.TierMicro, 1, 5, "auth")
			lease, err := e.client(owner).Claim(ctx, pouw.ClaimRequest{Tiers: []pouw.JobTier{pouw.TierMicro}, Backends: []string{"stark"}})
			if err != nil {
				t.Fatal(err)
			}
			id := job.JobID
			tok := lease.LeaseToken
			body := func(v any) []byte { b, _ := json.Marshal(v); return b }
			blobData := []byte("auth blob")
			blobHash := pouwHash(blobData)

			const (
				read   = "read"
				prover = "prover"
				admin  = "admin"
				public = "public"
			)
			routes := []struct {
				method, path, ct string
				body             []byte
				kind             string
				// leased: the route acts on the owner's lease (other prover: 403).
				leased bool
			}{
				{"GET", "/v1/pouw/jobs/pending", "", nil, read, false},
				{"GET", "/v1/pouw/jobs/" + id, "", nil, read, false},
				{"GET", "/v1/pouw/jobs/" + id + "/history", "", nil, read, false},
				{"GET", "/v1/pouw/provers", "", nil, read, false},
				{"GET", "/v1/pouw/system/status", "", nil, read, false},
				{"GET", "/v1/pouw/pool", "", nil, read, false},
				{"GET", "/v1/pouw/dead-letter", "", nil, read, false},
				{"GET", "/v1/pouw/metrics", "", nil, read, false},
				{"GET", "/metrics", "", nil, read, false},
				{"GET", "/v1/pouw/blobs/" + job.TraceHash.String(), "", nil, read, false},
				{"POST", "/v1/pouw/jobs/" + id + "/renew", "application/json", body(pouw.LeaseRequest{LeaseToken: tok}), prover, true},
				{"POST", "/v1/pouw/jobs/" + id + "/release", "application/json", body(pouw.FailRequest{LeaseToken: tok}), prover, true},
				{"POST", "/v1/pouw/jobs/claim", "application/json", body(pouw.ClaimRequest{Tiers: []pouw.JobTier{pouw.TierFull}, Backends: []string{"stark"}}), prover, false},
				{"POST", "/v1/pouw/jobs", "application/json", body(pouw.IngestRequest{Tier: pouw.TierMicro, IntentID: job.IntentID, TraceHash: job.TraceHash, FeeBudget: 2, RewardBudget: 1}), admin, false},
				{"PUT", "/v1/pouw/blobs/" + blobHash.String(), "application/octet-stream", blobData, admin, false},
				{"POST", "/v1/pouw/provers", "application/json", body(pouw.RegisterProverRequest{ProverID: "new-prover"}), admin, false},
				{"POST", "/v1/pouw/dead-letter/" + id + "/requeue", "", nil, admin, false},
				{"POST", "/v1/pouw/pool/deposits", "application/json", body(pouw.DepositRequest{Amount: 1}), admin, false},
				{"POST", "/v1/pouw/provers/target/tokens", "application/json", body(api.RotateTokenRequest{GraceMs: 1000}), admin, false},
				{"POST", "/v1/pouw/provers/target/suspend", "application/json", body(api.SuspendRequest{Reason: "test"}), admin, false},
				{"POST", "/v1/pouw/provers/target/unsuspend", "", nil, admin, false},
				{"POST", "/v1/pouw/provers/target/revoke", "", nil, admin, false},
				{"GET", "/healthz", "", nil, public, false},
				{"GET", "/readyz", "", nil, public, false},
			}
			// submit and fail end the lease, so they go last, after a fresh claim.
			leaseRoutes := []struct{ suffix string }{{"/submit"}, {"/fail"}}

			type who struct {
				name  string
				token string
			}
			callers := []who{{"none", ""}, {"other-prover", other}, {"admin", adminToken}, {"owner", owner}}
			check := func(method, path, ct string, b []byte, kind string, leased bool) {
				t.Helper()
				for _, c := range callers {
					resp, rb := e.raw(method, path, c.token, ct, b)
					want := 0 // 0: any status but 401/403
					switch {
					case kind == public:
					case c.token == "" && kind == read && publicRead:
					case c.token == "":
						want = http.StatusUnauthorized
					case kind == prover && c.token == adminToken:
						want = http.StatusForbidden
					case kind == prover && leased && c.token == other:
						want = http.StatusForbidden
					case kind == admin && c.token != adminToken:
						want = http.StatusForbidden
					}
					if want != 0 && resp.StatusCode != want {
						t.Errorf("%s %s as %s: %d %s, want %d", method, path, c.name, resp.StatusCode, rb, want)
					}
					if want == 0 && (resp.StatusCode == 401 || resp.StatusCode == 403) {
						t.Errorf("%s %s as %s: %d %s, want access", method, path, c.name, resp.StatusCode, rb)
					}
					if resp.StatusCode >= 400 {
						errorCode(t, rb)
					}
				}
			}
			for _, r := range routes {
				check(r.method, r.path, r.ct, r.body, r.kind, r.leased)
			}
			for _, lr := range leaseRoutes {
				l, err := e.client(owner).Claim(ctx, pouw.ClaimRequest{Tiers: []pouw.JobTier{pouw.TierMicro}, Backends: []string{"stark"}})
				if err != nil {
					t.Fatal(err)
				}
				var b []byte
				if lr.suffix == "/submit" {
					b = body(pouw.SubmitRequest{LeaseToken: l.LeaseToken, Proof: []byte{1}})
				} else {
					b = body(pouw.FailRequest{LeaseToken: l.LeaseToken})
				}
				check("POST", "/v1/pouw/jobs/"+id+lr.suffix, "application/json", b, prover, true)
			}

			// The event stream, whose body never ends: check the status only.
			for _, c := range callers {
				want := 200
				if c.token == "" && !publicRead {
					want = 401
				}
				if got := streamStatus(t, e, c.token); got != want {
					t.Errorf("GET /v1/pouw/events as %s: %d, want %d", c.name, got, want)
				}
			}

			// A made-up token and a malformed header are 401 everywhere but
			// the public routes.
			for _, h := range []string{"pouwp_not-a-real-token", "not-even-a-prover-token"} {
				resp, rb := e.raw("GET", "/v1/pouw/pool", h, "", nil)
				if resp.StatusCode != 401 || errorCode(t, rb) != pouw.CodeUnauthorized {
					t.Errorf("invalid token: %d %s", resp.StatusCode, rb)
				}
			}
		})
	}
}

func TestProverTokenIsShownOnceAndStoredOnlyAsHash(t *testing.T) {
	e := newEnv(t, boltBackend(), envOptions{})
	tok := e.registerProver("hash-only")
	p, err := e.st.ProverByTokenHash(context.Background(), pouwHash([]byte(tok)))
	if err != nil || p.ID != "hash-only" {
		t.Fatalf("prover by token hash: %+v, %v", p, err)
	}
	// Registering the same id again is a conflict, and yields no token.
	resp, body := e.raw("POST", "/v1/pouw/provers", adminToken, "application/json", []byte(`{"prover_id":"hash-only"}`))
	if resp.StatusCode != 409 || errorCode(t, body) != pouw.CodeExists {
		t.Fatalf("re-register: %d %s", resp.StatusCode, body)
	}
	// Nothing a reader can fetch contains the token.
	for _, path := range []string{"/v1/pouw/provers", "/v1/pouw/system/status", "/metrics"} {
		_, b := e.raw("GET", path, adminToken, "", nil)
		if contains(b, tok) {
			t.Errorf("%s shows a prover token", path)
		}
	}
}

// streamStatus opens the event stream with token and returns the status,
// closing the stream at once.
func streamStatus(t *testing.T, e *env, token string) int {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.url+"/v1/pouw/events", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp.StatusCode
}

// TestTokensNeverAppearInLogs runs requests that succeed and fail (bad
// tokens, lost leases, rejected proofs) with debug logging on, and checks no
// admin, prover or lease token reached the log.
func TestTokensNeverAppearInLogs(t *testing.T) {
	var buf syncBuffer
	e := newEnv(t, boltBackend(), envOptions{logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	ctx := context.Background()
	tok := e.registerProver("logged")
	if _, err := e.client(adminToken).Deposit(ctx, 10, ""); err != nil {
		t.Fatal(err)
	}
	job := e.ingest(pouw.TierMicro, 1, 3, "logs")
	p := e.client(tok)
	l, err := p.Claim(ctx, pouw.ClaimRequest{Tiers: []pouw.JobTier{pouw.TierMicro}, Backends: []string{"stark"}})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = p.Submit(ctx, job.JobID, l.LeaseToken, []byte("p"))
	_, _ = p.Renew(ctx, job.JobID, l.LeaseToken)
	e.raw("GET", "/v1/pouw/pool", tok+"x", "", nil)
	e.raw("GET", "/v1/pouw/pool", "pouwp_guess", "", nil)
	e.cancel() // the hub logs on shutdown paths too
	if !strings.Contains(buf.String(), "status=422") || !strings.Contains(buf.String(), "status=401") {
		t.Fatalf("the debug log lacks the requests it should show:\n%s", buf.String())
	}
	for name, secret := range map[string]string{"admin": adminToken, "prover": tok, "lease": l.LeaseToken} {
		if strings.Contains(buf.String(), secret) {
			t.Errorf("the %s token is in the log", name)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
