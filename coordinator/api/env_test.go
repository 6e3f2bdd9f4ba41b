package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/zeebo/blake3"

	"github.com/pouwfarm/pouwfarm/clock"
	"github.com/pouwfarm/pouwfarm/coordinator/api"
	"github.com/pouwfarm/pouwfarm/coordinator/blob"
	"github.com/pouwfarm/pouwfarm/coordinator/client"
	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/coordinator/store/boltstore"
	"github.com/pouwfarm/pouwfarm/pouw"
)

const adminToken = "test-admin-token-0123456789abcdef"

// backend is one store implementation the API tests run against.
type backend struct {
	name string
	// open returns a fresh store and a function that moves its clock.
	open func(t *testing.T, opts store.Options) (store.Store, func(time.Duration))
}

var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func boltBackend() backend {
	return backend{name: "bolt", open: func(t *testing.T, opts store.Options) (store.Store, func(time.Duration)) {
		clk := clock.NewFake(epoch)
		st, err := boltstore.Open(filepath.Join(t.TempDir(), "pouw.db"), opts, clk, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st, clk.Advance
	}}
}

// backends lists the stores every end-to-end test runs on.
func backends() []backend { return append([]backend{boltBackend()}, extraBackends...) }

// extraBackends is filled by files that need more setup (redis).
var extraBackends []backend

// env is one coordinator API over a real listener.
type env struct {
	t        *testing.T
	url      string
	st       store.Store
	advance  func(time.Duration)
	srv      *api.Server
	registry *prometheus.Registry
	blobs    blob.Store
	spec     *spec
	cancel   context.CancelFunc
	hs       *httptest.Server
}

type envOptions struct {
	publicRead bool
	verifier   api.Verifier
	limits     api.Limits
	storeOpts  store.Options
	maxEvents  int
	eventRing  int
	logger     *slog.Logger
	// configure adjusts the options before api.New (abuse limits, token
	// lifetimes, ...).
	configure func(*api.Options)
}

func newEnv(t *testing.T, b backend, eo envOptions) *env {
	t.Helper()
	so := eo.storeOpts
	if eo.maxEvents > 0 {
		so.MaxEvents = eo.maxEvents
	}
	st, advance := b.open(t, so.WithDefaults())
	return newEnvOn(t, st, advance, eo)
}

// newEnvOn serves the API over an existing store (two coordinators on one
// Redis).
func newEnvOn(t *testing.T, st store.Store, advance func(time.Duration), eo envOptions) *env {
	t.Helper()
	blobs, err := blob.NewFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	logger := eo.logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	opts := api.Options{
		Store: st, Blobs: blobs, Verifier: eo.verifier, Registry: reg,
		AdminToken: adminToken, PublicRead: eo.publicRead, Limits: eo.limits,
		EventRing: eo.eventRing, EventPoll: 20 * time.Millisecond, Heartbeat: 200 * time.Millisecond,
		Logger: logger,
		// The tests claim with the STARK alone; pin the table rather than
		// depend on the default.
		Tiers: api.TierBackends{"stark", "stark", "stark"},
	}
	if eo.configure != nil {
		eo.configure(&opts)
	}
	srv, err := api.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Run(ctx); close(done) }()
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		cancel()
		<-done
		hs.Close()
	})
	return &env{t: t, url: hs.URL, st: st, advance: advance, srv: srv, registry: reg, blobs: blobs,
		spec: loadSpec(t), cancel: cancel, hs: hs}
}

// client returns an API client with token whose every request and response
// is validated against docs/openapi.yaml.
func (e *env) client(token string) *client.Client {
	c, err := client.New(e.url, client.Options{Token: token, MaxRetries: -1,
		HTTPClient: &http.Client{Transport: &validating{t: e.t, spec: e.spec, requests: true, next: http.DefaultTransport}}})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// raw sends a request as is; its response (not the request) is validated
// against the spec. body may be nil.
func (e *env) raw(method, path, token, contentType string, body []byte) (*http.Response, []byte) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	hc := &http.Client{Transport: &validating{t: e.t, spec: e.spec, next: http.DefaultTransport}}
	resp, err := hc.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, data
}

// registerProver registers id through the API and returns its token.
func (e *env) registerProver(id string) string {
	e.t.Helper()
	r, err := e.client(adminToken).RegisterProver(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return r.Token
}

// ingest uploads a fresh trace and creates a job for it.
func (e *env) ingest(tier pouw.JobTier, reward uint64, maxRetries uint32, seed string) pouw.ProofJob {
	e.t.Helper()
	ctx := context.Background()
	admin := e.client(adminToken)
	trace := []byte("trace of " + seed)
	info, err := admin.UploadBlob(ctx, trace)
	if err != nil {
		e.t.Fatal(err)
	}
	res, err := admin.Ingest(ctx, pouw.IngestRequest{Tier: tier, IntentID: pouw.Hash(blake3.Sum256([]byte("intent " + seed))),
		TraceHash: info.Hash, FeeBudget: reward * 2, RewardBudget: reward, MaxRetries: maxRetries})
	if err != nil {
		e.t.Fatal(err)
	}
	return res.Job
}

// errorCode decodes an error body, failing the test when it is not one.
func errorCode(t *testing.T, body []byte) string {
	t.Helper()
	var eb pouw.ErrorBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&eb); err != nil || eb.Error.Code == "" || eb.Error.Message == "" {
		t.Fatalf("not an error body: %q (%v)", body, err)
	}
	return eb.Error.Code
}

// spec is docs/openapi.yaml, loaded once.
type spec struct {
	doc    *openapi3.T
	router routers.Router
}

var (
	specOnce sync.Once
	specVal  *spec
	specErr  error
)

func loadSpec(t *testing.T) *spec {
	t.Helper()
	specOnce.Do(func() {
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromFile("../../docs/openapi.yaml")
		if err != nil {
			specErr = err
			return
		}
		if err := doc.Validate(loader.Context); err != nil {
			specErr = err
			return
		}
		// Match on paths only: the test servers listen on random ports.
		doc.Servers = nil
		r, err := legacy.NewRouter(doc)
		if err != nil {
			specErr = err
			return
		}
		specVal = &spec{doc: doc, router: r}
	})
	if specErr != nil {
		t.Fatalf("docs/openapi.yaml: %v", specErr)
	}
	return specVal
}

// validating checks every response (and, when requests is set, every
// request) that passes through it against the spec.
type validating struct {
	t        *testing.T
	spec     *spec
	requests bool
	next     http.RoundTripper
}

func (v *validating) RoundTrip(req *http.Request) (*http.Response, error) {
	route, params, err := v.spec.router.FindRoute(req)
	if err != nil {
		v.t.Errorf("openapi: %s %s is not in the spec: %v", req.Method, req.URL.Path, err)
		return v.next.RoundTrip(req)
	}
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true, MultiError: true}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	if v.requests && req.Body != nil && req.Header.Get("Content-Type") == "application/json" {
		body, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
		check := req.Clone(req.Context())
		check.Body = io.NopCloser(bytes.NewReader(body))
		in.Request = check
		if err := openapi3filter.ValidateRequest(req.Context(), in); err != nil {
			v.t.Errorf("openapi: request %s %s: %v", req.Method, req.URL.Path, err)
		}
		in.Request = req
	}
	resp, err := v.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	ct := resp.Header.Get("Content-Type")
	if strings.HasPrefix(ct, "text/event-stream") || strings.HasPrefix(ct, "application/octet-stream") {
		return resp, nil // streams and blobs: status and headers only
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	rin := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode,
		Header: resp.Header, Options: opts}
	rin.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(req.Context(), rin); err != nil {
		v.t.Errorf("openapi: response %d to %s %s: %v\nbody: %s", resp.StatusCode, req.Method, req.URL.Path, err, body)
	}
	return resp, nil
}

func pouwHash(b []byte) pouw.Hash { return pouw.Hash(blake3.Sum256(b)) }

func contains(b []byte, s string) bool { return bytes.Contains(b, []byte(s)) }

// rawUnchecked is raw without the spec check, for requests the spec does
// not describe (unknown routes, wrong methods).
func (e *env) rawUnchecked(method, path, token, contentType string, body []byte) (*http.Response, []byte) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, data
}
