package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/pouwfarm/pouwfarm/coordinator/api"
	"github.com/pouwfarm/pouwfarm/pouw"
)

func TestMalformedBodiesAreRejected(t *testing.T) {
	e := newEnv(t, boltBackend(), envOptions{limits: api.Limits{MaxJSONBytes: 4096, MaxTraceBytes: 1000, MaxProofBytes: 300}})
	ctx := context.Background()
	prover := e.registerProver("bodies")
	if _, err := e.client(adminToken).Deposit(ctx, 100, ""); err != nil {
		t.Fatal(err)
	}
	job := e.ingest(pouw.TierMicro, 1, 5, "bodies")
	lease, err := e.client(prover).Claim(ctx, pouw.ClaimRequest{Tiers: []pouw.JobTier{pouw.TierMicro}, Backends: []string{"stark"}})
	if err != nil {
		t.Fatal(err)
	}
	claimPath := "/v1/pouw/jobs/claim"
	renewPath := "/v1/pouw/jobs/" + job.JobID + "/renew"
	submitPath := "/v1/pouw/jobs/" + job.JobID + "/submit"
	const js = "application/json"
	goodClaim := `{"tiers":["full"],"backends":["stark"]}`
	for _, tc := range []struct {
		name         string
		method, path string
		token, ct    string
		body         string
		status       int
		code         string
	}{
		{"syntax error", "POST", claimPath, prover, js, `{"tiers":[`, 400, pouw.CodeBadRequest},
		{"unknown field", "POST", claimPath, prover, js, `{"tiers":["full"],"backends":["stark"],"gpu":true}`, 400, pouw.CodeBadRequest},
		{"trailing data", "POST", claimPath, prover, js, goodClaim + `{}`, 400, pouw.CodeBadRequest},
		{"trailing garbage", "POST", claimPath, prover, js, goodClaim + ` x`, 400, pouw.CodeBadRequest},
		{"empty body", "POST", claimPath, prover, js, ``, 400, pouw.CodeBadRequest},
		{"not an object", "POST", claimPath, prover, js, `[1,2]`, 400, pouw.CodeBadRequest},
		{"wrong type", "POST", claimPath, prover, js, `{"tiers":"full","backends":["stark"]}`, 400, pouw.CodeInvalid},
		{"unknown tier", "POST", claimPath, prover, js, `{"tiers":["huge"],"backends":["stark"]}`, 400, pouw.CodeInvalid},
		{"no tiers", "POST", claimPath, prover, js, `{"tiers":[],"backends":["stark"]}`, 400, pouw.CodeInvalid},
		{"negative size", "POST", claimPath, prover, js, `{"tiers":["full"],"backends":["stark"],"max_trace_bytes":-1}`, 400, pouw.CodeInvalid},
		{"text/plain", "POST", claimPath, prover, "text/plain", goodClaim, 415, pouw.CodeUnsupportedMedia},
		{"no content type", "POST", claimPath, prover, "", goodClaim, 415, pouw.CodeUnsupportedMedia},
		{"json with charset is fine", "POST", claimPath, prover, "application/json; charset=utf-8", goodClaim, 204, ""},
		{"oversize JSON", "POST", claimPath, prover, js, `{"tiers":["full"],"backends":["` + strings.Repeat("s", 5000) + `"]}`, 413, pouw.CodeTooLarge},
		{"missing lease token", "POST", renewPath, prover, js, `{}`, 400, pouw.CodeInvalid},
		{"proof not base64", "POST", submitPath, prover, js, `{"lease_token":"` + lease.LeaseToken + `","proof":"!!"}`, 400, pouw.CodeBadRequest},
		{"empty proof", "POST", submitPath, prover, js, `{"lease_token":"` + lease.LeaseToken + `","proof":""}`, 400, pouw.CodeInvalid},
		{"oversize proof", "POST", submitPath, prover, js, string(mustJSON(pouw.SubmitRequest{LeaseToken: lease.LeaseToken, Proof: bytes.Repeat([]byte{7}, 301)})), 413, pouw.CodeTooLarge},
		{"bad amount", "POST", "/v1/pouw/pool/deposits", adminToken, js, `{"amount":0}`, 400, pouw.CodeInvalid},
		{"amount over 2^53", "POST", "/v1/pouw/pool/deposits", adminToken, js, `{"amount":9007199254740992}`, 400, pouw.CodeInvalid},
		{"bad prover id", "POST", "/v1/pouw/provers", adminToken, js, `{"prover_id":"Bad Name"}`, 400, pouw.CodeInvalid},
		{"short hash", "POST", "/v1/pouw/jobs", adminToken, js, `{"tier":"micro","intent_id":"00","trace_hash":"00","fee_budget":1,"reward_budget":1}`, 400, pouw.CodeInvalid},
		{"bad limit", "GET", "/v1/pouw/jobs/pending?limit=0", prover, "", "", 400, pouw.CodeInvalid},
		{"limit too big", "GET", "/v1/pouw/dead-letter?limit=100000", prover, "", "", 400, pouw.CodeInvalid},
		{"bad tier filter", "GET", "/v1/pouw/jobs/pending?tier=mega", prover, "", "", 400, pouw.CodeInvalid},
		{"bad event position", "GET", "/v1/pouw/events?after=x", prover, "", "", 400, pouw.CodeInvalid},
		{"blob as JSON", "PUT", "/v1/pouw/blobs/" + pouwHash([]byte("x")).String(), adminToken, js, "x", 415, pouw.CodeUnsupportedMedia},
		{"blob hash mismatch", "PUT", "/v1/pouw/blobs/" + pouwHash([]byte("x")).String(), adminToken, "application/octet-stream", "y", 422, pouw.CodeHashMismatch},
		{"blob too large", "PUT", "/v1/pouw/blobs/" + pouwHash(bytes.Repeat([]byte("z"), 1001)).String(), adminToken, "application/octet-stream", strings.Repeat("z", 1001), 413, pouw.CodeTooLarge},
		{"blob bad hash", "PUT", "/v1/pouw/blobs/xyz", adminToken, "application/octet-stream", "x", 400, pouw.CodeInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b []byte
			if tc.body != "" {
				b = []byte(tc.body)
			} else if tc.method != "GET" {
				b = []byte{}
			}
			resp, body := e.raw(tc.method, tc.path, tc.token, tc.ct, b)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, tc.status)
			}
			if tc.code != "" {
				if got := errorCode(t, body); got != tc.code {
					t.Fatalf("code %q, want %q (%s)", got, tc.code, body)
				}
			}
		})
	}
	// The lease survived every bad submit: nothing was half-written.
	if _, err := e.client(prover).Renew(ctx, job.JobID, lease.LeaseToken); err != nil {
		t.Fatalf("lease after bad requests: %v", err)
	}
}

func TestUnknownRoutesAndMethodsAnswerJSON(t *testing.T) {
	e := newEnv(t, boltBackend(), envOptions{})
	resp, body := e.rawUnchecked("GET", "/v1/pouw/nothing-here", adminToken, "", nil)
	if resp.StatusCode != 404 || errorCode(t, body) != pouw.CodeNotFound {
		t.Fatalf("unknown route: %d %s", resp.StatusCode, body)
	}
	resp, body = e.rawUnchecked("DELETE", "/v1/pouw/pool/deposits", adminToken, "", nil)
	if resp.StatusCode != http.StatusMethodNotAllowed || errorCode(t, body) != pouw.CodeMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
		t.Fatalf("wrong method: %d %s allow=%q", resp.StatusCode, body, resp.Header.Get("Allow"))
	}
}

func TestBlobDownloadHasETagAndRanges(t *testing.T) {
	e := newEnv(t, boltBackend(), envOptions{})
	data := []byte("0123456789abcdefghij")
	info, err := e.client(adminToken).UploadBlob(context.Background(), data)
	if err != nil || !info.Created || info.Size != 20 {
		t.Fatalf("upload = %+v, %v", info, err)
	}
	if again, err := e.client(adminToken).UploadBlob(context.Background(), data); err != nil || again.Created {
		t.Fatalf("second upload = %+v, %v", again, err)
	}
	path := "/v1/pouw/blobs/" + info.Hash.String()
	req, _ := http.NewRequest("GET", e.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Range", "bytes=5-9")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	_, _ = got.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || got.String() != "56789" || resp.Header.Get("ETag") != `"`+info.Hash.String()+`"` {
		t.Fatalf("range: %d %q etag %q", resp.StatusCode, got.String(), resp.Header.Get("ETag"))
	}
	req.Header.Del("Range")
	req.Header.Set("If-None-Match", `"`+info.Hash.String()+`"`)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match: %d", resp.StatusCode)
	}
	var buf bytes.Buffer
	n, err := e.client(adminToken).DownloadBlob(context.Background(), info.Hash, &buf)
	if err != nil || n != 20 || buf.String() != string(data) {
		t.Fatalf("download = %d %q %v", n, buf.String(), err)
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
