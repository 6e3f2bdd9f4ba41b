// Package api serves the PoUW HTTP API of the coordinator (SPEC.md's routes
// plus ARCHITECTURE.md's): routing, bearer-token auth and roles, strict JSON
// decoding with body limits, the mapping of store errors to status codes,
// proof verification on submit, the Server-Sent Events stream and the
// Prometheus metrics. docs/openapi.yaml describes it, and a test keeps the
// two in step.
//
// It consumes store.Store, blob.Store and a Verifier it declares; it must
// not import a store implementation, scheduler or backends (the adapter
// over the backends registry is coordinator.BackendVerifier).
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pouwfarm/pouwfarm/clock"
	"github.com/pouwfarm/pouwfarm/coordinator/blob"
	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/trace"
)

// Limits bound request bodies (413 beyond).
type Limits struct {
	// MaxTraceBytes bounds a blob upload.
	MaxTraceBytes int64
	// MaxProofBytes bounds a proof (decoded); the submit body may be 4/3 of
	// it plus a little, for base64 and the JSON around it.
	MaxProofBytes int64
	// MaxJSONBytes bounds every other JSON body.
	MaxJSONBytes int64
}

// DefaultLimits are generous for the traces and proofs of this project.
func DefaultLimits() Limits {
	return Limits{MaxTraceBytes: 256 << 20, MaxProofBytes: 16 << 20, MaxJSONBytes: 1 << 20}
}

// TierBackends is the tier -> backend table: the backend fixed on a job at
// ingest. Indexed by pouw.JobTier.
type TierBackends [3]string

// DefaultTierBackends is ARCHITECTURE.md's default table: the Halo2-style
// plonkish backend for Micro windows, the STARK for Macro and Full.
func DefaultTierBackends() TierBackends { return TierBackends{"plonkish", "stark", "stark"} }

// ParseTierBackends parses "micro=stark,macro=stark,full=stark". Tiers not
// named keep their default.
func ParseTierBackends(s string) (TierBackends, error) {
	t := DefaultTierBackends()
	if strings.TrimSpace(s) == "" {
		return t, nil
	}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || v == "" {
			return t, fmt.Errorf("%w: tier table entry %q, want tier=backend", pouw.ErrInvalid, part)
		}
		tier, err := pouw.ParseTier(k)
		if err != nil {
			return t, err
		}
		t[tier] = v
	}
	return t, nil
}

// String formats the table as ParseTierBackends reads it.
func (t TierBackends) String() string {
	return fmt.Sprintf("micro=%s,macro=%s,full=%s", t[0], t[1], t[2])
}

// Options configure a Server. Store, Blobs and AdminToken are required.
type Options struct {
	Store store.Store
	Blobs blob.Store
	// Verifier checks proofs on submit; NoBackends (reject everything) when
	// nil.
	Verifier Verifier
	Logger   *slog.Logger
	// Registry receives the metrics and is served on /metrics; a fresh one
	// when nil.
	Registry *prometheus.Registry
	// Clock supplies "now" for ingest defaults (the store keeps its own).
	Clock clock.Clock
	// AdminToken is the bearer token of the admin role.
	AdminToken string
	// PublicRead lets read-only routes answer without a token.
	PublicRead bool
	Tiers      TierBackends
	Limits     Limits
	// VerifyBudget is how long a lease is extended while its proof is
	// verified (BeginVerify).
	VerifyBudget time.Duration
	// DefaultTTL sets deadline_ms = now + DefaultTTL when ingest omits it.
	DefaultTTL time.Duration
	// DefaultMaxRetries applies when ingest omits max_retries.
	DefaultMaxRetries uint32
	// EventPoll is how often the event log is read for the stream.
	EventPoll time.Duration
	// Heartbeat is the interval of the stream's keep-alive comments.
	Heartbeat time.Duration
	// StreamWriteTimeout drops a stream client that does not read.
	StreamWriteTimeout time.Duration
	// EventRing is how many recent events are kept in memory for streams.
	EventRing int
	// Abuse are the per-prover limits (zero: none).
	Abuse Abuse
	// MaxVerifyAttempts bounds the verifications of one lease that could
	// not be made (503, the lease kept and extended): the next one fails the
	// lease, so a proof that always times out cannot hold its job forever
	// (default 3).
	MaxVerifyAttempts int
	// CheckTraceHeader makes ingest read the uploaded trace's header and
	// refuse (400) a job whose tier or intent differs from it: such a job
	// could never verify. The coordinator always sets it; tests of the
	// HTTP layer with opaque blobs leave it off.
	CheckTraceHeader bool
	// TokenTTL is how long a prover token issued by this coordinator works
	// (0: no expiry).
	TokenTTL time.Duration
	// RotateGrace is how long the old tokens keep working after a rotation
	// that names no grace (default 1h).
	RotateGrace time.Duration
	// BindClientCert requires a prover's requests to carry a verified TLS
	// client certificate naming that prover (CN or URI SAN
	// pouw://prover/<id>): set with mTLS (--client-ca).
	BindClientCert bool
	// BatchBackend is the aggregation backend (a backends.Aggregator the
	// Verifier can check) that proves batches and their children; empty:
	// POST /v1/pouw/batches is refused (409 conflict).
	BatchBackend string
	// BatchCheck, when set, refuses a batch the batch backend cannot prove
	// (no key set for its children's size or its k), given the children's
	// trace headers (read when CheckTraceHeader is on).
	BatchCheck func(children []*trace.Header) error
}

func (o Options) withDefaults() Options {
	if o.Verifier == nil {
		o.Verifier = NoBackends{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	for i := range o.Tiers {
		if o.Tiers[i] == "" {
			o.Tiers[i] = DefaultTierBackends()[i]
		}
	}
	d := DefaultLimits()
	if o.Limits.MaxTraceBytes <= 0 {
		o.Limits.MaxTraceBytes = d.MaxTraceBytes
	}
	if o.Limits.MaxProofBytes <= 0 {
		o.Limits.MaxProofBytes = d.MaxProofBytes
	}
	if o.Limits.MaxJSONBytes <= 0 {
		o.Limits.MaxJSONBytes = d.MaxJSONBytes
	}
	if o.VerifyBudget <= 0 {
		o.VerifyBudget = 5 * time.Minute
	}
	if o.DefaultTTL <= 0 {
		o.DefaultTTL = 24 * time.Hour
	}
	if o.DefaultMaxRetries == 0 {
		o.DefaultMaxRetries = 3
	}
	if o.EventPoll <= 0 {
		o.EventPoll = 250 * time.Millisecond
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = 15 * time.Second
	}
	if o.StreamWriteTimeout <= 0 {
		o.StreamWriteTimeout = 10 * time.Second
	}
	if o.EventRing <= 0 {
		o.EventRing = 4096
	}
	if o.MaxVerifyAttempts <= 0 {
		o.MaxVerifyAttempts = 3
	}
	if o.RotateGrace <= 0 {
		o.RotateGrace = time.Hour
	}
	return o
}

// Server is the HTTP API. Create it with New, serve Handler, and run Run for
// as long as it serves (it follows the event log for the stream and the
// transition metrics).
type Server struct {
	opts    Options
	log     *slog.Logger
	store   store.Store
	blobs   blob.Store
	auth    *authenticator
	metrics *metrics
	hub     *hub
	limits  *limiter
	handler http.Handler
	routes  []Route
	// promHandler serves the registry in the exposition format.
	promHandler http.Handler
}

// New builds a Server.
func New(opts Options) (*Server, error) {
	if opts.Store == nil || opts.Blobs == nil {
		return nil, errors.New("api: Store and Blobs are required")
	}
	if len(opts.AdminToken) < 16 {
		return nil, errors.New("api: the admin token must be at least 16 characters")
	}
	opts = opts.withDefaults()
	s := &Server{opts: opts, log: opts.Logger, store: opts.Store, blobs: opts.Blobs}
	s.auth = newAuthenticator(opts.AdminToken, opts.Store)
	s.metrics = newMetrics(opts.Registry, opts.Store)
	s.metrics.exportLimits(opts)
	s.limits = newLimiter(opts.Abuse, opts.Clock)
	s.hub = newHub(opts.Store, opts.Logger, opts.EventPoll, opts.EventRing, s.metrics.observeEvent)
	s.promHandler = promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn)})
	s.handler = s.buildMux()
	return s, nil
}

// Handler returns the API's http.Handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Run follows the event log until ctx ends; open event streams end then.
func (s *Server) Run(ctx context.Context) { s.hub.run(ctx) }

// Route is one route of the API: what the openapi test compares with
// docs/openapi.yaml.
type Route struct {
	Method string
	Path   string
	Access string
}

// Routes lists every route the server serves.
func (s *Server) Routes() []Route { return append([]Route(nil), s.routes...) }

type handlerFunc func(w http.ResponseWriter, r *http.Request, c caller) error

func (s *Server) buildMux() http.Handler {
	mux := http.NewServeMux()
	add := func(method, path string, need access, h handlerFunc) {
		pattern := method + " " + path
		s.routes = append(s.routes, Route{Method: method, Path: path, Access: need.String()})
		stream := path == "/v1/pouw/events"
		mux.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			sw := &statusWriter{ResponseWriter: w}
			c, err := s.authorize(r, need)
			if err == nil {
				err = h(sw, r, c)
			}
			if err != nil {
				if sw.status != 0 {
					// Headers are out (a stream or a download broke
					// off): too late for an error body.
					s.log.Warn("request failed after the response started", "route", pattern, "err", err)
				} else {
					writeError(sw, s.log, r, err)
				}
			}
			if sw.status == 0 {
				sw.status = http.StatusOK
			}
			// Debug access log: the route and who, never a header or body
			// (tokens travel in both).
			if s.log.Enabled(r.Context(), slog.LevelDebug) {
				s.log.Debug("request", "route", pattern, "path", r.URL.Path, "status", sw.status,
					"prover", c.proverID, "admin", c.role == roleAdmin, "duration", time.Since(start))
			}
			s.metrics.requests.WithLabelValues(pattern, strconv.Itoa(sw.status)).Inc()
			if !stream {
				s.metrics.duration.WithLabelValues(pattern).Observe(time.Since(start).Seconds())
			}
		}))
	}
	const v = "/v1/pouw"
	// SPEC.md's 13 routes.
	add("GET", v+"/jobs/pending", accessRead, s.handlePending)
	add("POST", v+"/jobs/claim", accessProver, s.handleClaim)
	add("GET", v+"/jobs/{id}", accessRead, s.handleJob)
	add("POST", v+"/jobs/{id}/renew", accessProver, s.handleRenew)
	add("POST", v+"/jobs/{id}/submit", accessProver, s.handleSubmit)
	add("POST", v+"/jobs/{id}/fail", accessProver, s.handleFail)
	add("GET", v+"/jobs/{id}/history", accessRead, s.handleHistory)
	add("GET", v+"/provers", accessRead, s.handleProvers)
	add("GET", v+"/system/status", accessRead, s.handleStatus)
	add("GET", v+"/pool", accessRead, s.handlePool)
	add("GET", v+"/dead-letter", accessRead, s.handleDeadLetter)
	add("GET", v+"/events", accessRead, s.handleEvents)
	add("GET", v+"/metrics", accessRead, s.handleMetrics)
	// ARCHITECTURE.md's extra routes.
	add("POST", v+"/jobs", accessAdmin, s.handleIngest)
	add("PUT", v+"/blobs/{hash}", accessAdmin, s.handlePutBlob)
	add("GET", v+"/blobs/{hash}", accessRead, s.handleGetBlob)
	add("POST", v+"/jobs/{id}/release", accessProver, s.handleRelease)
	add("POST", v+"/provers", accessAdmin, s.handleRegisterProver)
	add("POST", v+"/dead-letter/{id}/requeue", accessAdmin, s.handleRequeue)
	add("POST", v+"/pool/deposits", accessAdmin, s.handleDeposit)
	// Issue 9: the batch DAG.
	add("POST", v+"/batches", accessAdmin, s.handleBatch)
	// Issue 13: token lifecycle and suspension.
	add("POST", v+"/provers/{id}/tokens", accessAdmin, s.handleRotateToken)
	add("POST", v+"/provers/{id}/revoke", accessAdmin, s.handleRevokeTokens)
	add("POST", v+"/provers/{id}/suspend", accessAdmin, s.handleSuspend)
	add("POST", v+"/provers/{id}/unsuspend", accessAdmin, s.handleUnsuspend)
	add("GET", "/healthz", accessPublic, s.handleHealthz)
	add("GET", "/readyz", accessPublic, s.handleReadyz)
	add("GET", "/metrics", accessRead, s.handleMetrics)

	// Everything else: a JSON 404, or 405 with Allow when the path exists
	// under another method (ServeMux's own answers are plain text).
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		var allow []string
		for _, m := range []string{"GET", "POST", "PUT", "DELETE", "PATCH"} {
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, p := mux.Handler(probe); p != "" && p != "/" {
				allow = append(allow, m)
			}
		}
		status := http.StatusNotFound
		if len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeError(w, s.log, r, errorf(http.StatusMethodNotAllowed, pouw.CodeMethodNotAllowed, "%s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, strings.Join(allow, ", ")))
			status = http.StatusMethodNotAllowed
		} else {
			writeError(w, s.log, r, errorf(http.StatusNotFound, pouw.CodeNotFound, "no route %s %s", r.Method, r.URL.Path))
		}
		s.metrics.requests.WithLabelValues("unmatched", strconv.Itoa(status)).Inc()
	})
	return mux
}

// statusWriter remembers the status code for the metrics and for knowing
// whether an error body can still be written. It keeps Flush and the
// ResponseController's deadlines reachable through Unwrap.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request, _ caller) error {
	s.promHandler.ServeHTTP(w, r)
	return nil
}

func (s *Server) handleHealthz(w http.ResponseWriter, _ *http.Request, _ caller) error {
	writeJSON(w, http.StatusOK, pouw.Health{Status: "ok"})
	return nil
}

func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request, _ caller) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.log.Warn("readiness: store unreachable", "err", err)
		return errorf(http.StatusServiceUnavailable, pouw.CodeUnavailable, "the store is unreachable")
	}
	writeJSON(w, http.StatusOK, pouw.Health{Status: "ready"})
	return nil
}
