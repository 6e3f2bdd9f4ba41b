package api

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"

	"github.com/zeebo/blake3"

	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/pouw"
)

// access is what a route requires of its caller.
type access int

const (
	accessPublic access = iota // anyone (health checks)
	accessRead                 // any valid token, or anyone with --public-read
	accessProver               // a registered prover's token
	accessAdmin                // the admin token
)

func (a access) String() string {
	return [...]string{"public", "read", "prover", "admin"}[a]
}

type role int

const (
	roleAnonymous role = iota
	roleProver
	roleAdmin
)

// caller is who made a request.
type caller struct {
	role     role
	proverID string
	// prover is the store's record of a prover caller (suspension).
	prover store.Prover
}

// ProverTokenPrefix starts every prover token, so a leaked one is easy to
// recognise (and to scan for).
const ProverTokenPrefix = "pouwp_"

// NewToken returns a fresh random bearer token with the given prefix: 32
// random bytes, base64url.
func NewToken(prefix string) string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// TokenHash is what the store keeps of a prover token.
func TokenHash(token string) pouw.Hash { return pouw.Hash(blake3.Sum256([]byte(token))) }

// authenticator resolves bearer tokens. Prover tokens are looked up by hash
// (the store never sees a token) on every request, with no cache: a revoke,
// an expiry or a suspension takes effect on every coordinator at once,
// because each of them asks the store.
type authenticator struct {
	adminHash pouw.Hash
	store     store.Store
}

func newAuthenticator(adminToken string, st store.Store) *authenticator {
	return &authenticator{adminHash: TokenHash(adminToken), store: st}
}

var errNoToken = errors.New("no bearer token")

// identify returns the caller of r; errNoToken when no token was sent.
func (a *authenticator) identify(ctx context.Context, r *http.Request) (caller, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return caller{}, errNoToken
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" || len(tok) > 256 {
		return caller{}, errorf(http.StatusUnauthorized, pouw.CodeUnauthorized, "Authorization must be \"Bearer <token>\"")
	}
	th := TokenHash(tok)
	// Compare hashes in constant time: the time taken says nothing about
	// how much of the admin token a guess got right.
	if subtle.ConstantTimeCompare(th[:], a.adminHash[:]) == 1 {
		return caller{role: roleAdmin}, nil
	}
	if !strings.HasPrefix(tok, ProverTokenPrefix) {
		return caller{}, errorf(http.StatusUnauthorized, pouw.CodeUnauthorized, "invalid token")
	}
	p, err := a.store.ProverByTokenHash(ctx, th)
	if errors.Is(err, store.ErrNotFound) {
		return caller{}, errorf(http.StatusUnauthorized, pouw.CodeUnauthorized, "invalid, expired or revoked token")
	}
	if err != nil {
		return caller{}, err
	}
	return caller{role: roleProver, proverID: p.ID, prover: p}, nil
}

// authorize checks the caller against what the route requires.
func (s *Server) authorize(r *http.Request, need access) (caller, error) {
	if need == accessPublic {
		return caller{}, nil
	}
	c, err := s.auth.identify(r.Context(), r)
	if errors.Is(err, errNoToken) {
		if need == accessRead && s.opts.PublicRead {
			return caller{}, nil
		}
		return caller{}, errorf(http.StatusUnauthorized, pouw.CodeUnauthorized, "this route needs a bearer token (Authorization: Bearer <token>)")
	}
	if err != nil {
		return caller{}, err
	}
	switch need {
	case accessProver:
		if c.role != roleProver {
			return caller{}, errorf(http.StatusForbidden, pouw.CodeForbidden, "only a registered prover can do this; the admin token holds no leases")
		}
		if s.opts.BindClientCert {
			// mTLS: the verified client certificate must name the prover
			// whose token is presented, so a stolen token is useless
			// without that farm's key.
			if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
				return caller{}, errorf(http.StatusForbidden, CodeCertMismatch, "this coordinator requires a client certificate naming prover %s", c.proverID)
			}
			if !certNamesProver(r.TLS.PeerCertificates[0], c.proverID) {
				return caller{}, errorf(http.StatusForbidden, CodeCertMismatch, "the client certificate does not name prover %s (CN or URI SAN %s<id>)", c.proverID, ProverURIPrefix)
			}
		}
	case accessAdmin:
		if c.role != roleAdmin {
			return caller{}, errorf(http.StatusForbidden, pouw.CodeForbidden, "this route needs the admin token")
		}
	}
	return c, nil
}
