package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pouwfarm/pouwfarm/backends/aggregate"
	"github.com/pouwfarm/pouwfarm/backends/aggregate/aggregatetest"
	"github.com/pouwfarm/pouwfarm/devnet"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/trace"
	"github.com/pouwfarm/pouwfarm/trace/workload"
)

// run runs pouw with args and returns its output and error.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	root.SetArgs(args)
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	err := root.Execute()
	return out.String(), err
}

// wantErr runs pouw and checks it fails with one line containing want.
func wantErr(t *testing.T, want string, args ...string) {
	t.Helper()
	_, err := run(t, args...)
	if err == nil {
		t.Fatalf("pouw %v succeeded, want an error containing %q", args, want)
	}
	if !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("pouw %v = %q, want one line containing %q", args, err, want)
	}
}

func TestAggregateIsOffWithoutKeysAndSaysWhatToPass(t *testing.T) {
	dir := t.TempDir()
	tr := writeTrace(t, dir, "fib", 1, 64)
	need := "the aggregate backend needs Groth16 keys: pass --aggregate-keys DIR"
	wantErr(t, "--tiers names aggregate: "+need,
		"coordinator", "--data-dir", dir, "--tiers", "micro=plonkish,macro=aggregate,full=stark")
	wantErr(t, "--tier-backends names aggregate: "+need,
		"dev", "--jobs", "1", "--exit-when-done", "--gpus", "none", "--tier-backends", "full=aggregate")
	wantErr(t, "--backend names aggregate: "+need,
		"prove", "--backend", "aggregate", "--trace", tr, "--out", filepath.Join(dir, "p"))
	wantErr(t, "--backend names aggregate: "+need,
		"verify", "--backend", "aggregate", "--trace", tr, "--proof", tr)
}

func TestAggregateKeysRefusesMissingAndCorruptDirectories(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nokeys")
	corrupt := filepath.Join(dir, "corrupt")
	if err := os.MkdirAll(corrupt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(corrupt, "manifest.json"), []byte(`{"format":`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range [][]string{
		{"coordinator", "--data-dir", dir},
		{"farm", "--coordinator", "http://127.0.0.1:1", "--token", "x", "--gpus", "none"},
		{"dev", "--jobs", "1", "--exit-when-done", "--gpus", "none"},
		{"prove", "--trace", writeTrace(t, dir, "fib", 1, 64), "--out", filepath.Join(dir, "p")},
	} {
		wantErr(t, "--aggregate-keys "+missing+": "+aggregate.ErrNoKeys.Error(), append(cmd, "--aggregate-keys", missing)...)
		wantErr(t, "--aggregate-keys "+corrupt+": "+aggregate.ErrKeyMismatch.Error(), append(cmd, "--aggregate-keys", corrupt)...)
	}
	// The environment twin is read as the flag is.
	t.Setenv("POUW_AGGREGATE_KEYS", missing)
	wantErr(t, "--aggregate-keys "+missing+": ", "coordinator", "--data-dir", dir)
}

// copyVerifyingSide copies what LoadKeys reads of a key directory.
func copyVerifyingSide(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"manifest.json", "intent.vk", "aggregate.vk"} {
		b, err := os.ReadFile(filepath.Join(from, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAggregateKeysRefusesMismatchedKeySets(t *testing.T) {
	aggregatetest.Keys(t, aggregatetest.Params)
	good := aggregate.CacheDir(aggregatetest.Root(), aggregatetest.Params)
	dir := t.TempDir()
	// A verifying key that is not the one the manifest names.
	swapped := filepath.Join(dir, "swapped")
	copyVerifyingSide(t, good, swapped)
	vk, err := os.ReadFile(filepath.Join(good, "intent.vk"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(swapped, "aggregate.vk"), vk, 0o644); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "--aggregate-keys "+swapped+": "+aggregate.ErrKeyMismatch.Error(),
		"coordinator", "--data-dir", dir, "--aggregate-keys", swapped)
	// Two key sets of one size class: which would prove is ambiguous.
	twin := filepath.Join(dir, "twin")
	copyVerifyingSide(t, good, twin)
	wantErr(t, "two key sets for steps 2^8", "coordinator", "--data-dir", dir, "--aggregate-keys", good+","+twin)
	// pouw dev with keys that do not take its batches.
	wantErr(t, "--aggregate-keys: no key set takes batches of 4 intents of 64 steps (--steps/--batch); have steps=2^8 prog_len=32 k=2",
		"dev", "--jobs", "1", "--exit-when-done", "--gpus", "none", "--full-backend", "aggregate", "--aggregate-keys", good, "--batch", "4")
	wantErr(t, "--aggregate-keys: no key set takes batches of 2 intents of 512 steps",
		"dev", "--jobs", "1", "--exit-when-done", "--gpus", "none", "--full-backend", "aggregate", "--aggregate-keys", good, "--steps", "1024")
}

func TestDevFullBackendFlags(t *testing.T) {
	base := []string{"dev", "--jobs", "1", "--exit-when-done", "--gpus", "none"}
	wantErr(t, `--full-backend "stark": only "aggregate" (batches); another backend for Full jobs goes in --tier-backends full=NAME`,
		append(base, "--full-backend", "stark")...)
	wantErr(t, "--batch 3: a batch of the aggregate backend has 2, 4, 8 or 16 intents",
		append(base, "--full-backend", "aggregate", "--batch", "3")...)
	wantErr(t, "--steps 65536 --batch 2: intents of 32768 steps exceed the aggregate backend's largest size class, 4096 steps",
		append(base, "--full-backend", "aggregate", "--steps", "65536")...)
}

func TestDevBatchSizeDefaultsToTheKeysK(t *testing.T) {
	if k, err := devBatchSize(backendConfig{}, 4, false); err != nil || k != 2 {
		t.Errorf("no keys, --batch not given: %d, %v; want 2", k, err)
	}
	if k, err := devBatchSize(backendConfig{}, 8, true); err != nil || k != 8 {
		t.Errorf("--batch 8: %d, %v", k, err)
	}
	ks := &aggregate.Keys{Params: aggregate.Params{LogSteps: 8, ProgLen: 32, K: 4}}
	if k, err := devBatchSize(backendConfig{aggregateKeys: []*aggregate.Keys{ks}}, 4, false); err != nil || k != 4 {
		t.Errorf("keys of k=4, --batch not given: %d, %v; want 4", k, err)
	}
}

// writeTrace writes a Macro trace of workload name and returns its path.
func writeTrace(t *testing.T, dir, name string, seed, steps uint64) string {
	t.Helper()
	tr, err := workload.Macro(name, seed, steps)
	if err != nil {
		t.Fatal(err)
	}
	return writeTraceFile(t, dir, tr)
}

func writeTraceFile(t *testing.T, dir string, tr *trace.Trace) string {
	t.Helper()
	f, err := os.CreateTemp(dir, "*.trace")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := trace.Encode(f, tr); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

func TestIngestBatchRefusesWhatCannotBeABatch(t *testing.T) {
	dir := t.TempDir()
	a, b, c := writeTrace(t, dir, "fib", 1, 64), writeTrace(t, dir, "fib", 2, 64), writeTrace(t, dir, "mimc", 3, 64)
	full, err := workload.Full("fib", 1, 128, 2)
	if err != nil {
		t.Fatal(err)
	}
	f := writeTraceFile(t, dir, full)
	api := []string{"--coordinator", "http://127.0.0.1:1", "--token", "x"}
	ingest := func(args ...string) []string { return append(append([]string{"ingest"}, api...), args...) }
	wantErr(t, "--batch: 3 traces; a batch has 2, 4, 8 or 16", ingest("--batch", a, b, c, "--reward", "1")...)
	wantErr(t, "--batch: "+f+" is a full trace; a batch takes Macro intent traces", ingest("--batch", a, f, "--reward", "1")...)
	wantErr(t, "are the same trace", ingest("--batch", a, a, "--reward", "1")...)
	wantErr(t, "--batch needs trace files", ingest("--batch", "--reward", "1")...)
	wantErr(t, "--trace is for one job", ingest("--batch", a, b, "--trace", a, "--reward", "1")...)
	wantErr(t, "--reward is required", ingest("--batch", a, b)...)
	wantErr(t, "unexpected arguments", ingest("--trace", a, b, "--reward", "1")...)
	wantErr(t, "--batch-reward and --batch-fee go with --batch", ingest("--trace", a, "--reward", "1", "--batch-reward", "2")...)
}

// startCoordinator serves a coordinator with the backends of devnet (and
// the aggregate backend over keys, when given) until the test ends.
func startCoordinator(t *testing.T, keys ...*aggregate.Keys) *devnet.Coordinator {
	t.Helper()
	reg, err := newRegistry(backendConfig{aggregateKeys: keys})
	if err != nil {
		t.Fatal(err)
	}
	c, err := devnet.StartCoordinator(devnet.CoordinatorOptions{DataDir: t.TempDir(), Addr: "127.0.0.1:0",
		AdminToken: "cmd-test-admin-token-0123456789abcdef", Backends: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestIngestBatchAtACoordinatorWithoutAggregationSaysSo(t *testing.T) {
	c := startCoordinator(t)
	dir := t.TempDir()
	a, b := writeTrace(t, dir, "fib", 1, 64), writeTrace(t, dir, "fib", 2, 64)
	wantErr(t, "creating the batch: coordinator: 409 conflict: this coordinator has no aggregation backend (start it with --aggregate-keys)",
		"ingest", "--coordinator", c.URL, "--token", c.AdminToken, "--batch", a, b, "--reward", "1")
}

func TestIngestBatchMakesChildrenAndTheAggregationJob(t *testing.T) {
	c := startCoordinator(t, aggregatetest.Keys(t, aggregatetest.Params))
	dir := t.TempDir()
	a, b := writeTrace(t, dir, "fib", 1, 128), writeTrace(t, dir, "poly", 2, 128)
	api := []string{"--coordinator", c.URL, "--token", c.AdminToken}
	if _, err := run(t, append([]string{"pool", "deposit", "100"}, api...)...); err != nil {
		t.Fatal(err)
	}
	// The pool covers two children of 10 and an aggregation job of 30.
	out, err := run(t, append([]string{"ingest", "--batch", a, b, "--reward", "10", "--batch-reward", "30", "--json"}, api...)...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var res pouw.BatchResponse
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	agg := res.Aggregation
	if !res.Created || len(res.Children) != 2 || agg.Tier != pouw.TierFull || agg.State != pouw.StateWaiting ||
		agg.Backend != aggregate.Name || agg.RewardBudget != 30 || len(agg.DependsOn) != 2 {
		t.Fatalf("batch = %+v", res)
	}
	for i, ch := range res.Children {
		if ch.Tier != pouw.TierMacro || ch.RewardBudget != 10 || ch.JobID != agg.DependsOn[i] {
			t.Errorf("child %d = %+v", i, ch)
		}
	}
	// The same batch again: the same jobs, shown as a table.
	out, err = run(t, append([]string{"ingest", "--batch", a, b, "--reward", "10", "--batch-reward", "30"}, api...)...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"already ingested; the existing batch:", "aggregation job (waits for every child):",
		agg.JobID, "waiting", "children (2, in batch order):", res.Children[0].JobID, res.Children[1].JobID} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestHelpSaysSinglePartyKeysAreTrusted(t *testing.T) {
	for _, cmd := range []string{"coordinator", "farm", "prove", "verify", "dev", "devices"} {
		out, err := run(t, cmd, "--help")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "--aggregate-keys") || !strings.Contains(out, "TRUSTED") || !strings.Contains(out, "[POUW_AGGREGATE_KEYS]") {
			t.Errorf("pouw %s --help does not describe --aggregate-keys and its trusted keys:\n%s", cmd, out)
		}
	}
}
