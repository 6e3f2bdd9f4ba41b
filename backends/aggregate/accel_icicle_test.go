//go:build icicle

package aggregate

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/consensys/gnark/backend/accelerated/icicle"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/scheduler"
	"github.com/pouwfarm/pouwfarm/scheduler/agent"
	"github.com/pouwfarm/pouwfarm/trace"
)

// These tests need ICICLE's front-end libraries for BLS12-377 and BW6-761
// (built with -DCUDA_BACKEND=OFF, they carry ICICLE's CPU backend): see
// docs/gpu.md. No GPU is needed. On a GPU host, POUW_ICICLE_BACKEND=CUDA
// runs TestIcicleProverMakesProofsThatVerify on ICICLE's CUDA backend
// (from $ICICLE_BACKEND_INSTALL_DIR) instead.

func schedulerKinds(t *testing.T, b *Backend) []scheduler.Kind {
	t.Helper()
	reg, err := backends.NewRegistry(b)
	if err != nil {
		t.Fatal(err)
	}
	sbs := agent.SchedulerBackends(reg)
	if len(sbs) != 1 {
		t.Fatalf("scheduler backends %+v", sbs)
	}
	return sbs[0].Kinds
}

// With the icicle tag but no CUDA backend to load, the backend says why,
// proves on the CPU, asks for no GPU memory and gets no GPU slots.
func TestIcicleBuildWithoutCUDABackendStaysOnTheCPU(t *testing.T) {
	if !GPUAccelerated() {
		t.Fatal("the icicle build does not report GPU acceleration")
	}
	t.Setenv("ICICLE_BACKEND_INSTALL_DIR", t.TempDir()) // exists, holds no backend
	b := &Backend{keys: []*Keys{{Params: testParams, IntentConstraints: 14_000, AggConstraints: 75_000}}, log: slog.New(slog.DiscardHandler)}
	b.accel = newAccelOn(b.log, icicle.CUDA)
	if n, why := b.GPU(); n != 0 || !strings.Contains(why, "CUDA") {
		t.Errorf("GPU() = %d, %q; want no device and a reason naming CUDA", n, why)
	}
	if b.HasGPUPath() {
		t.Error("HasGPUPath without a CUDA backend")
	}
	if r := b.Estimate(&trace.Header{Tier: pouw.TierMacro, Width: trace.Width, Rows: 256}); r.GPUMemoryBytes != 0 || r.MemoryBytes <= 0 {
		t.Errorf("estimate %+v: want host memory only", r)
	}
	if k := schedulerKinds(t, b); len(k) != 1 || k[0] != scheduler.CPU {
		t.Errorf("scheduler kinds %v, want cpu only", k)
	}
}

// On ICICLE's CPU backend (the same gnark ICICLE prover code as on a GPU,
// ICICLE's CPU device under it): intent proofs and an aggregate proof made
// by it verify with gnark's verifier, and the scheduler gets a GPU path
// whose estimate asks for GPU memory.
func TestIcicleProverMakesProofsThatVerify(t *testing.T) {
	backend := icicle.CPU
	if os.Getenv("POUW_ICICLE_BACKEND") == "CUDA" {
		backend = icicle.CUDA
	}
	b := testBackend(t)
	b.accel = newAccelOn(b.log, backend)
	if n, why := b.GPU(); n == 0 {
		t.Fatalf("ICICLE CPU backend not usable: %s", why)
	}
	macro := execute(t, fibSrc, 10)
	if r := b.Estimate(&macro.Header); r.GPUMemoryBytes <= 0 {
		t.Errorf("estimate %+v asks for no GPU memory", r)
	}
	if k := schedulerKinds(t, b); len(k) != 2 || k[1] != scheduler.GPU {
		t.Errorf("scheduler kinds %v, want cpu and gpu", k)
	}

	ctx := context.Background()
	stA, pA := proveMacro(t, b, macro, "job-a")
	if err := b.Verify(ctx, stA, pA); err != nil {
		t.Fatalf("ICICLE intent proof rejected: %v", err)
	}
	stB, pB := proveMacro(t, b, execute(t, fibSrc, 11), "job-b")
	if err := b.Verify(ctx, stA, pB); err == nil {
		t.Error("ICICLE intent proof verifies against another statement")
	}
	children := []backends.Statement{stA, stB}
	batch := batchStatement("agg-job", "aggregator")
	agg, err := b.Aggregate(ctx, batch, children, [][]byte{pA, pB})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.VerifyAggregate(ctx, batch, children, agg); err != nil {
		t.Fatalf("ICICLE aggregate proof rejected: %v", err)
	}
	if err := b.VerifyAggregate(ctx, batch, []backends.Statement{stB, stA}, agg); err == nil {
		t.Error("ICICLE aggregate proof verifies for the children reordered")
	}
}
