package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/pouwfarm/pouwfarm/coordinator/blob"
	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/pouw"
)

// httpError is an error that already knows its status and code: handlers
// return it for what only the API can judge (a missing token, a malformed
// body). Everything else is mapped from sentinel errors by classify.
type httpError struct {
	status int
	code   string
	msg    string
	err    error
}

func (e *httpError) Error() string { return e.msg }
func (e *httpError) Unwrap() error { return e.err }

func errorf(status int, code, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return &httpError{status: status, code: code, msg: err.Error(), err: errors.Unwrap(err)}
}

// classify maps an error to its HTTP status and error code. It is the one
// place where the store's, the blob store's and the verifier's sentinel errors
// become status codes (ARCHITECTURE.md, Errors).
func classify(err error) (int, string) {
	var he *httpError
	var mbe *http.MaxBytesError
	var rl *rateLimited
	switch {
	case errors.As(err, &rl):
		return http.StatusTooManyRequests, CodeRateLimited
	case errors.As(err, &he):
		return he.status, he.code
	case errors.As(err, &mbe), errors.Is(err, blob.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, pouw.CodeTooLarge
	case errors.Is(err, ErrProofRejected):
		return http.StatusUnprocessableEntity, pouw.CodeProofRejected
	case errors.Is(err, blob.ErrHashMismatch):
		return http.StatusUnprocessableEntity, pouw.CodeHashMismatch
	case errors.Is(err, ErrVerifierUnavailable), errors.Is(err, store.ErrUnavailable):
		return http.StatusServiceUnavailable, pouw.CodeUnavailable
	case errors.Is(err, store.ErrInvalid):
		return http.StatusBadRequest, pouw.CodeInvalid
	case errors.Is(err, store.ErrNotFound), errors.Is(err, blob.ErrNotFound):
		return http.StatusNotFound, pouw.CodeNotFound
	case errors.Is(err, store.ErrLeaseLost):
		return http.StatusConflict, pouw.CodeLeaseLost
	case errors.Is(err, store.ErrNotLeaseHolder):
		return http.StatusForbidden, pouw.CodeNotLeaseHolder
	case errors.Is(err, store.ErrInsufficientFunds):
		return http.StatusConflict, pouw.CodeInsufficientFund
	case errors.Is(err, store.ErrExists):
		return http.StatusConflict, pouw.CodeExists
	case errors.Is(err, store.ErrConflict):
		return http.StatusConflict, pouw.CodeConflict
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, pouw.CodeUnavailable
	}
	return http.StatusInternalServerError, pouw.CodeInternal
}

// writeError writes the error body. Messages of 5xx errors other than 503 are
// replaced by a generic sentence (the detail goes to the log), so internals
// never leak to callers.
func writeError(w http.ResponseWriter, log *slog.Logger, r *http.Request, err error) int {
	status, code := classify(err)
	msg := err.Error()
	var rl *rateLimited
	if errors.As(err, &rl) {
		writeRetryAfter(w, rl)
	}
	if status >= 500 {
		log.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
		if status != http.StatusServiceUnavailable {
			msg = "internal error; see the coordinator's log"
		}
	}
	writeJSON(w, status, pouw.ErrorBody{Error: pouw.ErrorDetail{Code: code, Message: msg}})
	return status
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
