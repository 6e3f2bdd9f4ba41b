package client_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/zeebo/blake3"

	"github.com/pouwfarm/pouwfarm/coordinator/api"
	"github.com/pouwfarm/pouwfarm/coordinator/client"
	"github.com/pouwfarm/pouwfarm/pouw"
)

// batchRequest uploads k opaque traces and returns a batch over them.
func batchRequest(t *testing.T, admin *client.Client, k int) pouw.BatchRequest {
	t.Helper()
	req := pouw.BatchRequest{FeeBudget: 4, RewardBudget: 2}
	for i := range k {
		info, err := admin.UploadBlob(context.Background(), fmt.Appendf(nil, "trace %d", i))
		if err != nil {
			t.Fatal(err)
		}
		req.Intents = append(req.Intents, pouw.BatchIntent{IntentID: pouw.Hash(blake3.Sum256(fmt.Appendf(nil, "intent %d", i))),
			TraceHash: info.Hash, FeeBudget: 2, RewardBudget: 1})
	}
	return req
}

// TestCreateBatchIsRetriedAndIdempotent: a batch whose answer was lost is
// sent again and answered with the jobs the first attempt made (created
// false), and a 503 is retried.
func TestCreateBatchIsRetriedAndIdempotent(t *testing.T) {
	e := newEnv(t, func(o *api.Options) { o.BatchBackend = "aggregate" })
	ctx := context.Background()
	admin := e.client(t, adminToken)
	if _, err := admin.Deposit(ctx, 100, ""); err != nil {
		t.Fatal(err)
	}
	req := batchRequest(t, admin, 2)
	const route = "POST /v1/pouw/batches"
	e.faults.inject(route, refuse503, dropAnswer)
	res, err := admin.CreateBatch(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if n := e.faults.count(route); n != 2 {
		t.Fatalf("the batch handler ran %d times, want 2 (the lost answer and the retry)", n)
	}
	if res.Created || len(res.Children) != 2 || res.Aggregation.State != pouw.StateWaiting ||
		!slices.Equal(res.Aggregation.DependsOn, []string{res.Children[0].JobID, res.Children[1].JobID}) {
		t.Fatalf("batch after a lost answer = %+v", res)
	}
	st, err := admin.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.LastSeq != 3 || st.Pool.Reserved != 1+1+2 {
		t.Fatalf("after one batch sent twice: %d jobs, pool %+v", st.LastSeq, st.Pool)
	}
}

// TestCreateBatchReportsRefusals: a refused batch is an *client.Error with
// the server's status and code, not retried.
func TestCreateBatchReportsRefusals(t *testing.T) {
	e := newEnv(t) // no aggregation backend
	ctx := context.Background()
	admin := e.client(t, adminToken)
	_, err := admin.CreateBatch(ctx, batchRequest(t, admin, 2))
	var ae *client.Error
	if !errors.Is(err, client.ErrConflict) || !errors.As(err, &ae) || ae.Code != pouw.CodeConflict {
		t.Fatalf("batch without an aggregation backend: %v", err)
	}
	if n := e.faults.count("POST /v1/pouw/batches"); n != 1 {
		t.Fatalf("a 409 was sent %d times", n)
	}
}
