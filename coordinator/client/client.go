// Package client is the typed Go client of the coordinator's PoUW HTTP API,
// used by the farm and the CLI. It retries what is safe to retry (reads,
// idempotent writes, and any request that never left this machine) on 503
// and connection errors with exponential backoff and jitter, and never
// repeats a submit after an ambiguous failure without first reading the
// job's state.
//
// It imports pouw only (the wire types); it must not import the coordinator's
// store, api or blob packages: it talks HTTP.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pouwfarm/pouwfarm/pouw"
)

// Sentinel errors to branch on with errors.Is; an *Error from the server
// matches the one of its code.
var (
	ErrNoJob          = errors.New("no job fits the claim")
	ErrUnauthorized   = errors.New("unauthorized")
	ErrForbidden      = errors.New("forbidden")
	ErrNotFound       = errors.New("not found")
	ErrLeaseLost      = errors.New("lease lost")
	ErrNotLeaseHolder = errors.New("lease held by another prover")
	ErrConflict       = errors.New("conflict")
	ErrProofRejected  = errors.New("proof rejected")
	ErrUnavailable    = errors.New("coordinator unavailable")
	ErrTooLarge       = errors.New("too large")
	// ErrHashMismatch: a downloaded blob does not hash to its key, or an
	// upload was refused for the same reason.
	ErrHashMismatch = errors.New("blob hash mismatch")
	// ErrOutcomeUnknown: a submit failed ambiguously and the job's state
	// does not show whether the proof was accepted.
	ErrOutcomeUnknown = errors.New("submit outcome unknown")
	// ErrRateLimited: a per-prover limit of the coordinator (429); the
	// *Error's RetryAfter says when to come back.
	ErrRateLimited = errors.New("rate limited")
	// ErrSuspended: the prover is suspended until an admin lifts it.
	ErrSuspended = errors.New("prover suspended")
)

// Error is a non-2xx answer of the coordinator.
type Error struct {
	Status  int
	Code    string
	Message string
	// RetryAfter is the server's Retry-After (429, 503), zero when absent.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	return fmt.Sprintf("coordinator: %d %s: %s", e.Status, e.Code, e.Message)
}

// Is matches the sentinel of the error's code.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized
	case ErrForbidden:
		return e.Status == http.StatusForbidden
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrLeaseLost:
		return e.Code == pouw.CodeLeaseLost
	case ErrNotLeaseHolder:
		return e.Code == pouw.CodeNotLeaseHolder
	case ErrConflict:
		return e.Status == http.StatusConflict
	case ErrProofRejected:
		return e.Code == pouw.CodeProofRejected
	case ErrUnavailable:
		return e.Status == http.StatusServiceUnavailable
	case ErrTooLarge:
		return e.Status == http.StatusRequestEntityTooLarge
	case ErrHashMismatch:
		return e.Code == pouw.CodeHashMismatch
	case ErrRateLimited:
		return e.Status == http.StatusTooManyRequests
	case ErrSuspended:
		return e.Code == "prover_suspended"
	}
	return false
}

// Options configure a Client.
type Options struct {
	// Token is the bearer token (admin or prover); empty for public reads.
	Token string
	// HTTPClient defaults to a client with sane timeouts for everything but
	// the event stream and blob transfers (which use the context).
	HTTPClient *http.Client
	// MaxRetries is how many times a retryable request is repeated (default 5;
	// negative: never).
	MaxRetries int
	// MinBackoff and MaxBackoff bound the exponential backoff (defaults
	// 100 ms and 5 s); each wait is drawn uniformly up to the bound (full
	// jitter), so many farms do not retry in step.
	MinBackoff, MaxBackoff time.Duration
	// TLS configures HTTPS (TLSConfig builds one: CA, client certificate)
	// when HTTPClient is nil.
	TLS *tls.Config
}

// Client talks to one coordinator. It is safe for concurrent use.
type Client struct {
	base *url.URL
	opts Options
	hc   *http.Client
}

// New returns a client of the coordinator at baseURL (e.g.
// http://127.0.0.1:8080).
func New(baseURL string, opts Options) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: coordinator URL %q must be http(s)://host[:port]", baseURL)
	}
	if opts.MaxRetries == 0 {
		opts.MaxRetries = 5
	}
	if opts.MaxRetries < 0 {
		opts.MaxRetries = 0
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 100 * time.Millisecond
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(5*time.Second, opts.MinBackoff)
	}
	hc := opts.HTTPClient
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 64
		tr.ResponseHeaderTimeout = 10 * time.Minute // a submit waits for verification
		if opts.TLS != nil {
			tr.TLSClientConfig = opts.TLS.Clone()
		}
		hc = &http.Client{Transport: tr}
	}
	return &Client{base: u, opts: opts, hc: hc}, nil
}

// retryMode says when a request may be repeated.
type retryMode int

const (
	// retrySafe: reads and idempotent writes — repeat on 503 and on any
	// connection error.
	retrySafe retryMode = iota
	// retryUnsent: repeat only when the request cannot have reached the
	// server's handler (a failed dial) or the server said 503.
	retryUnsent
	// retryNotSentOnly: repeat only after a failed dial (money: deposits).
	retryNotSentOnly
)

type request struct {
	method      string
	path        string
	query       url.Values
	body        []byte
	bodyFrom    io.ReadSeeker // streamed body (blob upload); rewound per try
	bodySize    int64
	contentType string
	header      http.Header
	mode        retryMode
}

// ambiguousError wraps a failure after which the server may or may not have
// acted on the request.
type ambiguousError struct{ err error }

func (e *ambiguousError) Error() string { return e.err.Error() }
func (e *ambiguousError) Unwrap() error { return e.err }

// notSent reports whether err is a failure to connect, so the request never
// reached the server.
func notSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

// send performs the request with retries and returns the response of the
// last try; its body must be closed. Non-2xx answers become *Error.
func (c *Client) send(ctx context.Context, rq request) (*http.Response, error) {
	var lastErr error
	for try := 0; ; try++ {
		if try > 0 {
			if err := c.sleep(ctx, try); err != nil {
				return nil, errors.Join(lastErr, err)
			}
		}
		resp, err := c.once(ctx, rq)
		if err == nil && resp.StatusCode < 300 {
			return resp, nil
		}
		retryable := false
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			switch {
			case notSent(err):
				retryable = true
			case rq.mode == retrySafe:
				retryable = true
			}
			if !notSent(err) {
				err = &ambiguousError{err}
			}
			lastErr = err
		} else {
			apiErr := readError(resp)
			lastErr = apiErr
			if resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusGatewayTimeout {
				retryable = rq.mode != retryNotSentOnly
				lastErr = &ambiguousError{apiErr}
			}
			// 429: the server did nothing. Wait as told when that is short;
			// a longer wait is the caller's to schedule.
			if resp.StatusCode == http.StatusTooManyRequests && apiErr.RetryAfter <= c.opts.MaxBackoff && try < c.opts.MaxRetries {
				if err := sleepFor(ctx, apiErr.RetryAfter); err != nil {
					return nil, errors.Join(apiErr, err)
				}
				retryable = true
			}
		}
		if !retryable || try >= c.opts.MaxRetries {
			return nil, lastErr
		}
	}
}

func (c *Client) once(ctx context.Context, rq request) (*http.Response, error) {
	u := *c.base
	u.Path = c.base.Path + rq.path
	if rq.query != nil {
		u.RawQuery = rq.query.Encode()
	}
	var body io.Reader
	if rq.body != nil {
		body = bytes.NewReader(rq.body)
	}
	if rq.bodyFrom != nil {
		if _, err := rq.bodyFrom.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		body = io.NopCloser(rq.bodyFrom)
	}
	req, err := http.NewRequestWithContext(ctx, rq.method, u.String(), body)
	if err != nil {
		return nil, err
	}
	if rq.bodyFrom != nil {
		req.ContentLength = rq.bodySize
	}
	for k, vs := range rq.header {
		req.Header[k] = vs
	}
	if rq.contentType != "" {
		req.Header.Set("Content-Type", rq.contentType)
	}
	if c.opts.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.opts.Token)
	}
	req.Header.Set("User-Agent", "pouwfarm-client/1")
	return c.hc.Do(req)
}

func readError(resp *http.Response) *Error {
	defer resp.Body.Close()
	e := &Error{Status: resp.StatusCode}
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && ra >= 0 {
		e.RetryAfter = time.Duration(ra) * time.Second
	}
	var body pouw.ErrorBody
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(data, &body) == nil && body.Error.Code != "" {
		e.Code, e.Message = body.Error.Code, body.Error.Message
	} else {
		e.Code = strings.ReplaceAll(strings.ToLower(http.StatusText(resp.StatusCode)), " ", "_")
		e.Message = strings.TrimSpace(string(data))
	}
	return e
}

func (c *Client) sleep(ctx context.Context, try int) error {
	bound := c.opts.MinBackoff << min(try-1, 20)
	if bound > c.opts.MaxBackoff || bound <= 0 {
		bound = c.opts.MaxBackoff
	}
	return sleepFor(ctx, time.Duration(rand.Int64N(int64(bound))+1))
}

func sleepFor(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// call sends a JSON request (in may be nil) and decodes a JSON answer into
// out (may be nil). It returns the status code.
func (c *Client) call(ctx context.Context, method, path string, query url.Values, in, out any, mode retryMode) (int, error) {
	rq := request{method: method, path: path, query: query, mode: mode}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		rq.body, rq.contentType = b, "application/json"
	}
	resp, err := c.send(ctx, rq)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode != http.StatusNoContent {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp.StatusCode, fmt.Errorf("client: decoding the answer of %s %s: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

const v1 = "/v1/pouw"

func jobPath(id, suffix string) string { return v1 + "/jobs/" + url.PathEscape(id) + suffix }

// ListOptions page through a list.
type ListOptions struct {
	Tier   *pouw.JobTier
	Limit  int
	Cursor string
}

func (o ListOptions) query() url.Values {
	q := url.Values{}
	if o.Tier != nil {
		q.Set("tier", o.Tier.String())
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Cursor != "" {
		q.Set("cursor", o.Cursor)
	}
	return q
}

// Pending lists pending jobs in claim order (GET /v1/pouw/jobs/pending).
func (c *Client) Pending(ctx context.Context, o ListOptions) (pouw.JobList, error) {
	var out pouw.JobList
	_, err := c.call(ctx, "GET", v1+"/jobs/pending", o.query(), nil, &out, retrySafe)
	return out, err
}

// DeadLetter lists dead jobs, most recent first (GET /v1/pouw/dead-letter).
func (c *Client) DeadLetter(ctx context.Context, o ListOptions) (pouw.JobList, error) {
	var out pouw.JobList
	_, err := c.call(ctx, "GET", v1+"/dead-letter", o.query(), nil, &out, retrySafe)
	return out, err
}

// Claim asks for the next job that fits; ErrNoJob when none does (the
// caller should back off). A claim whose answer was lost is not repeated:
// the orphaned lease would expire and cost the job an attempt.
func (c *Client) Claim(ctx context.Context, req pouw.ClaimRequest) (pouw.ClaimResponse, error) {
	var out pouw.ClaimResponse
	status, err := c.call(ctx, "POST", v1+"/jobs/claim", nil, req, &out, retryUnsent)
	if err == nil && status == http.StatusNoContent {
		return out, ErrNoJob
	}
	return out, err
}

// Job returns a job's detail, with its trace_ref.
func (c *Client) Job(ctx context.Context, id string) (pouw.ProofJob, error) {
	var out pouw.ProofJob
	_, err := c.call(ctx, "GET", jobPath(id, ""), nil, nil, &out, retrySafe)
	return out, err
}

// Renew extends a lease. Renewing twice is harmless, so it is retried.
func (c *Client) Renew(ctx context.Context, id, leaseToken string) (pouw.ProofJob, error) {
	var out pouw.ProofJob
	_, err := c.call(ctx, "POST", jobPath(id, "/renew"), nil, pouw.LeaseRequest{LeaseToken: leaseToken}, &out, retrySafe)
	return out, err
}

// Submit sends a proof. When the answer is lost (a broken connection, a
// 503), it reads the job: completed with this very proof (proof_ref is its
// BLAKE3) is success; still leased means the submit did not land, and it is
// sent again (the lease token fences it); anything else is ErrOutcomeUnknown
// wrapping what was seen.
func (c *Client) Submit(ctx context.Context, id, leaseToken string, proof []byte) (pouw.ProofJob, error) {
	body := pouw.SubmitRequest{LeaseToken: leaseToken, Proof: proof}
	proofRef := blobHash(proof).String()
	var lastErr error
	for try := 0; try <= c.opts.MaxRetries; try++ {
		if try > 0 {
			if err := c.sleep(ctx, try); err != nil {
				return pouw.ProofJob{}, errors.Join(lastErr, err)
			}
		}
		var out pouw.ProofJob
		_, err := c.call(ctx, "POST", jobPath(id, "/submit"), nil, body, &out, retryNotSentOnly)
		var amb *ambiguousError
		if err == nil || !errors.As(err, &amb) {
			if err != nil && errors.Is(err, ErrLeaseLost) && try > 0 {
				// An earlier try may have landed after all.
				if job, jerr := c.Job(ctx, id); jerr == nil && job.State == pouw.StateCompleted && job.ProofRef == proofRef {
					return job, nil
				}
			}
			return out, err
		}
		lastErr = err
		job, jerr := c.Job(ctx, id)
		if jerr != nil {
			return pouw.ProofJob{}, fmt.Errorf("%w: %v; then reading the job: %v", ErrOutcomeUnknown, err, jerr)
		}
		switch {
		case job.State == pouw.StateCompleted && job.ProofRef == proofRef:
			return job, nil
		case job.State == pouw.StateLeased:
			continue // not landed (or still verifying): the token fences a resend
		default:
			return job, fmt.Errorf("%w: %v; the job is now %s", ErrOutcomeUnknown, err, job.State)
		}
	}
	return pouw.ProofJob{}, lastErr
}

// Fail reports that the prover could not prove the job (attempts+1).
func (c *Client) Fail(ctx context.Context, id, leaseToken, reason string) (pouw.ProofJob, error) {
	return c.endLease(ctx, id, "/fail", leaseToken, reason)
}

// Release gives the lease back without penalty (a farm draining).
func (c *Client) Release(ctx context.Context, id, leaseToken, reason string) (pouw.ProofJob, error) {
	return c.endLease(ctx, id, "/release", leaseToken, reason)
}

// endLease retries after ambiguous failures; if a retry finds the lease
// already gone, the earlier try ended it (or it expired): either way the
// caller's aim — not to hold the lease — is met, and the job is returned.
func (c *Client) endLease(ctx context.Context, id, suffix, token, reason string) (pouw.ProofJob, error) {
	body := pouw.FailRequest{LeaseToken: token, Reason: reason}
	var out pouw.ProofJob
	_, err := c.call(ctx, "POST", jobPath(id, suffix), nil, body, &out, retryNotSentOnly)
	var amb *ambiguousError
	if err == nil || !errors.As(err, &amb) {
		return out, err
	}
	for try := 1; try <= c.opts.MaxRetries; try++ {
		if serr := c.sleep(ctx, try); serr != nil {
			return out, errors.Join(err, serr)
		}
		_, err2 := c.call(ctx, "POST", jobPath(id, suffix), nil, body, &out, retryNotSentOnly)
		if err2 == nil {
			return out, nil
		}
		if errors.Is(err2, ErrLeaseLost) {
			return c.Job(ctx, id)
		}
		if !errors.As(err2, &amb) {
			return out, err2
		}
		err = err2
	}
	return out, err
}

// History returns every attempt of a job, oldest first.
func (c *Client) History(ctx context.Context, id string) ([]pouw.Attempt, error) {
	var out pouw.HistoryResponse
	_, err := c.call(ctx, "GET", jobPath(id, "/history"), nil, nil, &out, retrySafe)
	return out.Attempts, err
}

// Provers lists registered provers with their statistics.
func (c *Client) Provers(ctx context.Context) ([]pouw.ProverStats, error) {
	var out pouw.ProverList
	_, err := c.call(ctx, "GET", v1+"/provers", nil, nil, &out, retrySafe)
	return out.Provers, err
}

// RegisterProver registers a prover (admin) and returns its token, which is
// shown only this once.
func (c *Client) RegisterProver(ctx context.Context, proverID string) (pouw.RegisterProverResponse, error) {
	var out pouw.RegisterProverResponse
	_, err := c.call(ctx, "POST", v1+"/provers", nil, pouw.RegisterProverRequest{ProverID: proverID}, &out, retryUnsent)
	return out, err
}

// RotateTokenResponse carries a prover's new token (shown once).
type RotateTokenResponse struct {
	ProverID        string `json:"prover_id"`
	Token           string `json:"token"`
	ExpiresAtMs     int64  `json:"expires_at_ms"`
	OldValidUntilMs int64  `json:"old_valid_until_ms"`
}

// RotateToken issues a new token for a prover (admin); its other tokens keep
// working for grace (0: the coordinator's default).
func (c *Client) RotateToken(ctx context.Context, proverID string, grace time.Duration) (RotateTokenResponse, error) {
	var out RotateTokenResponse
	in := struct {
		GraceMs int64 `json:"grace_ms,omitempty"`
	}{grace.Milliseconds()}
	_, err := c.call(ctx, "POST", v1+"/provers/"+url.PathEscape(proverID)+"/tokens", nil, in, &out, retryNotSentOnly)
	return out, err
}

// RevokeTokens revokes every token of a prover (admin) and returns how many.
func (c *Client) RevokeTokens(ctx context.Context, proverID string) (int, error) {
	var out struct {
		Revoked int `json:"revoked"`
	}
	_, err := c.call(ctx, "POST", v1+"/provers/"+url.PathEscape(proverID)+"/revoke", nil, nil, &out, retryUnsent)
	return out.Revoked, err
}

// Suspension is a prover's suspension state.
type Suspension struct {
	ProverID   string `json:"prover_id"`
	Suspended  bool   `json:"suspended"`
	Reason     string `json:"reason,omitempty"`
	LiftedAtMs int64  `json:"lifted_at_ms,omitempty"`
}

// Suspend suspends a prover (admin).
func (c *Client) Suspend(ctx context.Context, proverID, reason string) (Suspension, error) {
	var out Suspension
	in := struct {
		Reason string `json:"reason"`
	}{reason}
	_, err := c.call(ctx, "POST", v1+"/provers/"+url.PathEscape(proverID)+"/suspend", nil, in, &out, retryUnsent)
	return out, err
}

// Unsuspend lifts a prover's suspension (admin).
func (c *Client) Unsuspend(ctx context.Context, proverID string) (Suspension, error) {
	var out Suspension
	_, err := c.call(ctx, "POST", v1+"/provers/"+url.PathEscape(proverID)+"/unsuspend", nil, nil, &out, retryUnsent)
	return out, err
}

// Status returns the system status.
func (c *Client) Status(ctx context.Context) (pouw.SystemStatus, error) {
	var out pouw.SystemStatus
	_, err := c.call(ctx, "GET", v1+"/system/status", nil, nil, &out, retrySafe)
	return out, err
}

// Pool returns the fee pool ledger.
func (c *Client) Pool(ctx context.Context) (pouw.PoolStatus, error) {
	var out pouw.PoolStatus
	_, err := c.call(ctx, "GET", v1+"/pool", nil, nil, &out, retrySafe)
	return out, err
}

// Deposit adds funds to the pool (admin). It is never repeated after an
// ambiguous failure: a deposit is not idempotent; check Pool instead.
func (c *Client) Deposit(ctx context.Context, amount uint64, memo string) (pouw.PoolStatus, error) {
	var out pouw.PoolStatus
	_, err := c.call(ctx, "POST", v1+"/pool/deposits", nil, pouw.DepositRequest{Amount: amount, Memo: memo}, &out, retryNotSentOnly)
	return out, err
}

// Requeue brings a dead job back to pending (admin).
func (c *Client) Requeue(ctx context.Context, id string) (pouw.ProofJob, error) {
	var out pouw.ProofJob
	_, err := c.call(ctx, "POST", v1+"/dead-letter/"+url.PathEscape(id)+"/requeue", nil, nil, &out, retryUnsent)
	return out, err
}

// Ingest creates a job from an uploaded trace (admin). Ingest is idempotent
// (the same intent, tier and trace returns the same job), so it is retried.
func (c *Client) Ingest(ctx context.Context, req pouw.IngestRequest) (pouw.IngestResponse, error) {
	var out pouw.IngestResponse
	_, err := c.call(ctx, "POST", v1+"/jobs", nil, req, &out, retrySafe)
	return out, err
}

// CreateBatch creates a batch (admin, POST /v1/pouw/batches): one Macro job
// per intent and one Full aggregation job that depends on them, all proved
// by the coordinator's aggregation backend. Like Ingest it is idempotent (a
// repeated batch answers with the same jobs, Created false), so it is
// retried.
func (c *Client) CreateBatch(ctx context.Context, req pouw.BatchRequest) (pouw.BatchResponse, error) {
	var out pouw.BatchResponse
	_, err := c.call(ctx, "POST", v1+"/batches", nil, req, &out, retrySafe)
	return out, err
}

// Healthz checks liveness.
func (c *Client) Healthz(ctx context.Context) error {
	_, err := c.call(ctx, "GET", "/healthz", nil, nil, nil, retryNotSentOnly)
	return err
}

// Readyz checks readiness (the store is reachable).
func (c *Client) Readyz(ctx context.Context) error {
	_, err := c.call(ctx, "GET", "/readyz", nil, nil, nil, retryNotSentOnly)
	return err
}

// Metrics returns the Prometheus text exposition of /v1/pouw/metrics.
func (c *Client) Metrics(ctx context.Context) (string, error) {
	resp, err := c.send(ctx, request{method: "GET", path: v1 + "/metrics", mode: retrySafe})
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
