package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pouwfarm/pouwfarm/coordinator/client"
	"github.com/pouwfarm/pouwfarm/pouw"
)

// TestRateLimitedRequestWaitsRetryAfterOrReportsIt: a 429 with a short
// Retry-After is waited out and the request repeated (the server did
// nothing); a long one is returned at once as ErrRateLimited carrying the
// wait, for the caller to schedule.
func TestRateLimitedRequestWaitsRetryAfterOrReportsIt(t *testing.T) {
	var calls atomic.Int32
	var retryAfter atomic.Value
	retryAfter.Store("0")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ra := retryAfter.Load().(string)
		if calls.Add(1) == 1 || ra != "0" {
			w.Header().Set("Retry-After", ra)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"error":{"code":"rate_limited","message":"slow down"}}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"deposited":1,"available":1,"reserved":0,"paid":0}`))
	}))
	defer srv.Close()
	c, err := client.New(srv.URL, client.Options{Token: "t", MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Pool(context.Background()); err != nil {
		t.Fatalf("after a 429 with Retry-After 0: %v", err)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d calls, want 2", n)
	}

	retryAfter.Store("3600")
	calls.Store(0)
	start := time.Now()
	_, err = c.Claim(context.Background(), pouw.ClaimRequest{Tiers: []pouw.JobTier{pouw.TierMicro}, Backends: []string{"stark"}})
	var ae *client.Error
	if !errors.Is(err, client.ErrRateLimited) || !errors.As(err, &ae) || ae.RetryAfter != time.Hour {
		t.Fatalf("a 429 with Retry-After 3600: %v, want ErrRateLimited with RetryAfter 1h", err)
	}
	if calls.Load() != 1 || time.Since(start) > time.Second {
		t.Fatalf("a long Retry-After was waited for or repeated: %d calls in %s", calls.Load(), time.Since(start))
	}
}
