package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/backends/aggregate"
	"github.com/pouwfarm/pouwfarm/backends/aggregate/aggregatetest"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/trace"
	"github.com/pouwfarm/pouwfarm/trace/tracetest"
)

// The aggregation tests prove with the real aggregate backend over the
// shared smallest test key set (aggregatetest: cached per machine, set up
// once when missing). The two children are proved once per test binary.
var testAgg struct {
	mu       sync.Mutex
	children *AggregateChildren
}

// AggregateTestBackend returns the aggregate backend over the cached test
// keys. It skips under -short.
func AggregateTestBackend(t testing.TB) *aggregate.Backend {
	t.Helper()
	return aggregatetest.Backend(t)
}

// AggregateChildren is a batch of two completed children: their traces
// (encoded), statements and accepted intent proofs, each bound to its own
// prover.
type AggregateChildren struct {
	Traces     [][]byte
	Statements []backends.Statement
	Proofs     [][]byte
}

// ChildTraces executes two small intents (fib(10), fib(5)) on the VM.
func ChildTraces(t testing.TB) []*trace.Trace {
	t.Helper()
	var out []*trace.Trace
	for _, n := range []uint64{10, 5} {
		tr, err := trace.Execute(trace.MustAssemble(tracetest.FibSource), []uint64{n}, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tr)
	}
	return out
}

// ProvedAggregateChildren proves the two children once per test binary with
// the real backend.
func ProvedAggregateChildren(t testing.TB) *AggregateChildren {
	t.Helper()
	b := AggregateTestBackend(t)
	testAgg.mu.Lock()
	defer testAgg.mu.Unlock()
	if testAgg.children != nil {
		return testAgg.children
	}
	c := &AggregateChildren{}
	for i, tr := range ChildTraces(t) {
		var buf bytes.Buffer
		if err := trace.Encode(&buf, tr); err != nil {
			t.Fatal(err)
		}
		th, err := trace.Hash(tr)
		if err != nil {
			t.Fatal(err)
		}
		st := backends.Statement{Header: &tr.Header, TraceHash: th, JobID: pouw.JobID(tr.Header.IntentID, th, pouw.TierMacro, uint64(i+1)),
			ProverID: fmt.Sprintf("prover-%c", 'a'+i)}
		t0 := time.Now()
		proof, err := b.Prove(context.Background(), tr, st)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("child %d: intent proof in %v", i, time.Since(t0).Round(time.Millisecond))
		c.Traces = append(c.Traces, buf.Bytes())
		c.Statements = append(c.Statements, st)
		c.Proofs = append(c.Proofs, proof)
	}
	testAgg.children = c
	return c
}

// serveInProcess runs ServeWorker over in-process pipes and returns a
// function that sends one request and reads its answer.
func serveInProcess(t *testing.T, reg *backends.Registry) func(req workRequest, body []byte) (workResponse, []byte) {
	t.Helper()
	reqR, reqW := io.Pipe()
	respR, respW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := ServeWorker(context.Background(), reqR, respW, reg, 1<<30)
		_ = respW.Close()
		done <- err
	}()
	t.Cleanup(func() {
		_ = reqW.Close()
		if err := <-done; err != nil {
			t.Errorf("ServeWorker: %v", err)
		}
	})
	return func(req workRequest, body []byte) (workResponse, []byte) {
		t.Helper()
		if err := writeFrame(reqW, req, body); err != nil {
			t.Fatal(err)
		}
		var resp workResponse
		proof, err := readFrame(respR, &resp, MaxProofBytes)
		if err != nil {
			t.Fatal(err)
		}
		return resp, proof
	}
}

func TestWorkerProvesAnAggregationRequest(t *testing.T) {
	b := AggregateTestBackend(t)
	c := ProvedAggregateChildren(t)
	reg, err := backends.NewRegistry(b)
	if err != nil {
		t.Fatal(err)
	}
	send := serveInProcess(t, reg)

	// Malformed requests are answered with an error and the worker goes on.
	batch := backends.Statement{TraceHash: pouw.Hash{0xba}, JobID: "agg-job", ProverID: "aggregator"}
	req, body, err := encodeAggregateRequest(b.Name(), batch, c.Statements, c.Proofs)
	if err != nil {
		t.Fatal(err)
	}
	short := req
	short.Children = slices.Clone(req.Children)
	short.Children[1].ProofBytes++
	tooMany := req
	tooMany.Children = slices.Repeat(req.Children[:1], pouw.MaxBatch+1)
	for name, bad := range map[string]struct {
		req  workRequest
		body []byte
		want string
	}{
		"a length past the body": {short, body, "left in the body"},
		"bytes after the proofs": {req, append(slices.Clone(body), 0), "after the last proof"},
		"too many children":      {tooMany, body, "children"},
		"swapped children":       {req, swapChildren(t, c), "child 0"},
	} {
		resp, proof := send(bad.req, bad.body)
		if !strings.Contains(resp.Error, bad.want) || len(proof) != 0 {
			t.Errorf("%s: answered %q with %d proof bytes, want an error containing %q", name, resp.Error, len(proof), bad.want)
		}
	}

	if RaceEnabled {
		t.Skip("race detector: the aggregate proof through a worker is TestAggregationJobIsProvedInAWorkerProcess's")
	}
	t0 := time.Now()
	resp, proof := send(req, body)
	if resp.Error != "" {
		t.Fatalf("worker: %s", resp.Error)
	}
	t.Logf("aggregate proof in the worker: %d bytes in %v", len(proof), time.Since(t0).Round(time.Millisecond))
	if err := b.VerifyAggregate(context.Background(), batch, c.Statements, proof); err != nil {
		t.Fatalf("the worker's aggregate proof does not verify: %v", err)
	}
	rev := []backends.Statement{c.Statements[1], c.Statements[0]}
	if err := b.VerifyAggregate(context.Background(), batch, rev, proof); !errors.Is(err, backends.ErrProofRejected) {
		t.Errorf("aggregate proof verified for the children reordered: %v", err)
	}
	// The worker bound the proof to the request's job and prover.
	thief := batch
	thief.ProverID = "thief"
	if err := b.VerifyAggregate(context.Background(), thief, c.Statements, proof); !errors.Is(err, backends.ErrProofRejected) {
		t.Errorf("aggregate proof verified for another prover: %v", err)
	}
}

// swapChildren is a well-formed body whose proofs are in the wrong order:
// the backend refuses it (child 0's proof does not prove child 0).
func swapChildren(t *testing.T, c *AggregateChildren) []byte {
	t.Helper()
	_, body, err := encodeAggregateRequest("aggregate", backends.Statement{}, c.Statements, [][]byte{c.Proofs[1], c.Proofs[0]})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Proofs[0]) != len(c.Proofs[1]) {
		t.Fatal("test assumes intent proofs of one size")
	}
	return body
}

func TestAggregateRequestRoundTrips(t *testing.T) {
	trs := ChildTraces(t)
	var sts []backends.Statement
	for i, tr := range trs {
		sts = append(sts, backends.Statement{Header: &tr.Header, TraceHash: pouw.Hash{byte(i + 1)}, JobID: fmt.Sprintf("job-%d", i), ProverID: fmt.Sprintf("p%d", i)})
	}
	proofs := [][]byte{[]byte("proof zero"), {}}
	batch := backends.Statement{TraceHash: pouw.Hash{0xba}, JobID: "agg", ProverID: "p"}
	req, body, err := encodeAggregateRequest("aggregate", batch, sts, proofs)
	if err != nil {
		t.Fatal(err)
	}
	if req.JobID != batch.JobID || req.ProverID != batch.ProverID || req.TraceHash != batch.TraceHash {
		t.Errorf("request %+v does not carry the batch statement %+v", req, batch)
	}
	gotSts, gotProofs, err := decodeAggregateRequest(req, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := range sts {
		if !bytes.Equal(trace.AppendHeader(nil, gotSts[i].Header), trace.AppendHeader(nil, sts[i].Header)) ||
			gotSts[i].TraceHash != sts[i].TraceHash || gotSts[i].JobID != sts[i].JobID || gotSts[i].ProverID != sts[i].ProverID {
			t.Errorf("child %d: statement %+v, want %+v", i, gotSts[i], sts[i])
		}
		if !bytes.Equal(gotProofs[i], proofs[i]) {
			t.Errorf("child %d: proof %q, want %q", i, gotProofs[i], proofs[i])
		}
	}
	if _, _, err := encodeAggregateRequest("aggregate", batch, sts, proofs[:1]); err == nil {
		t.Error("encoded two statements with one proof")
	}
}

// FuzzDecodeAggregateRequest feeds arbitrary request headers and bodies to
// the worker's decoder: it must refuse or decode, never panic or slice
// past the body, and whatever it accepts re-encodes to the same body.
func FuzzDecodeAggregateRequest(f *testing.F) {
	trs := ChildTraces(f)
	sts := []backends.Statement{{Header: &trs[0].Header, JobID: "a"}, {Header: &trs[1].Header, JobID: "b"}}
	req, body, err := encodeAggregateRequest("aggregate", backends.Statement{JobID: "agg"}, sts, [][]byte{{1, 2, 3}, {4}})
	if err != nil {
		f.Fatal(err)
	}
	head, _ := json.Marshal(req)
	f.Add(head, body)
	f.Add(head, body[:len(body)-1])
	f.Add([]byte(`{"children":[{"header_bytes":-1,"proof_bytes":0}]}`), body)
	f.Add([]byte(`{"children":[{"header_bytes":9223372036854775807,"proof_bytes":9223372036854775807}]}`), body)
	f.Add([]byte(`{"children":[]}`), []byte{})
	f.Fuzz(func(t *testing.T, head, body []byte) {
		var req workRequest
		if json.Unmarshal(head, &req) != nil {
			return
		}
		sts, proofs, err := decodeAggregateRequest(req, body)
		if err != nil {
			return
		}
		if len(sts) > pouw.MaxBatch || len(sts) != len(proofs) {
			t.Fatalf("%d statements, %d proofs", len(sts), len(proofs))
		}
		batch := backends.Statement{TraceHash: req.TraceHash, JobID: req.JobID, ProverID: req.ProverID}
		req2, body2, err := encodeAggregateRequest(req.Backend, batch, sts, proofs)
		if err != nil {
			t.Fatalf("accepted request does not re-encode: %v", err)
		}
		if !bytes.Equal(body, body2) {
			t.Fatalf("accepted body does not re-encode to itself")
		}
		for i := range req.Children {
			if req.Children[i] != req2.Children[i] {
				t.Fatalf("child %d: %+v re-encodes as %+v", i, req.Children[i], req2.Children[i])
			}
		}
	})
}
