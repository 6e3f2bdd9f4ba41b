package api_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// TestOpenAPIMatchesRouter walks the server's routes and docs/openapi.yaml
// and fails when either has an operation the other lacks; then it sends a
// request for every spec operation to the handler to check the router
// really answers it (not the JSON 404/405 of unknown routes).
func TestOpenAPIMatchesRouter(t *testing.T) {
	e := newEnv(t, boltBackend(), envOptions{})
	sp := loadSpec(t)
	var inSpec, inRouter []string
	for path, item := range sp.doc.Paths.Map() {
		for method := range item.Operations() {
			inSpec = append(inSpec, method+" "+path)
		}
	}
	for _, r := range e.srv.Routes() {
		inRouter = append(inRouter, r.Method+" "+r.Path)
	}
	slices.Sort(inSpec)
	slices.Sort(inRouter)
	for _, op := range inSpec {
		if !slices.Contains(inRouter, op) {
			t.Errorf("%s is in docs/openapi.yaml but not served", op)
		}
	}
	for _, op := range inRouter {
		if !slices.Contains(inSpec, op) {
			t.Errorf("%s is served but not in docs/openapi.yaml", op)
		}
	}
	// SPEC.md's 13 routes are all there, at exactly these paths.
	for _, op := range []string{
		"GET /v1/pouw/jobs/pending", "POST /v1/pouw/jobs/claim", "GET /v1/pouw/jobs/{id}",
		"POST /v1/pouw/jobs/{id}/renew", "POST /v1/pouw/jobs/{id}/submit", "POST /v1/pouw/jobs/{id}/fail",
		"GET /v1/pouw/jobs/{id}/history", "GET /v1/pouw/provers", "GET /v1/pouw/system/status",
		"GET /v1/pouw/pool", "GET /v1/pouw/dead-letter", "GET /v1/pouw/events", "GET /v1/pouw/metrics",
	} {
		if !slices.Contains(inRouter, op) {
			t.Errorf("SPEC.md route %s is not served", op)
		}
	}
	// Every spec operation reaches a real handler: no token gives 401 from
	// the route's auth (or 200 for public routes), never the JSON 404/405.
	for _, op := range inSpec {
		method, path, _ := strings.Cut(op, " ")
		path = strings.ReplaceAll(path, "{id}", strings.Repeat("a", 32))
		path = strings.ReplaceAll(path, "{hash}", strings.Repeat("b", 64))
		rec := httptest.NewRecorder()
		e.srv.Handler().ServeHTTP(rec, httptest.NewRequest(method, path, nil))
		if rec.Code == http.StatusNotFound || rec.Code == http.StatusMethodNotAllowed {
			t.Errorf("%s: %d %s", op, rec.Code, rec.Body)
		}
	}
}
