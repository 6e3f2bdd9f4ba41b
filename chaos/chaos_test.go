//go:build chaos

package chaos_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/pouwfarm/pouwfarm/chaos"
)

// TestChaosScenarioLosesNothing builds pouw, starts Redis (AOF, a replica),
// two coordinators and three farms on loopback, runs a no-fault phase and
// then a phase with every fault kind, and fails on any invariant
// violation. POUW_CHAOS_MINUTES sets the fault phase (the soak; default:
// the 2-3 minute CI scenario), POUW_CHAOS_SEED replays a run,
// POUW_CHAOS_REPORT writes the JSON report there and POUW_CHAOS_DIR keeps
// the data and process logs.
func TestChaosScenarioLosesNothing(t *testing.T) {
	seed := time.Now().UnixNano() % 1_000_000
	if s := os.Getenv("POUW_CHAOS_SEED"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("POUW_CHAOS_SEED: %v", err)
		}
		seed = v
	}
	t.Logf("chaos seed %d (replay with POUW_CHAOS_SEED=%d)", seed, seed)
	cfg := chaos.Config{Seed: seed, Dir: t.TempDir(),
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	if d := os.Getenv("POUW_CHAOS_DIR"); d != "" {
		cfg.Dir = d // kept after the run, for the process logs
	}
	if m := os.Getenv("POUW_CHAOS_MINUTES"); m != "" {
		v, err := strconv.ParseFloat(m, 64)
		if err != nil || v <= 0 {
			t.Fatalf("POUW_CHAOS_MINUTES=%q: want a positive number", m)
		}
		cfg.Faults = time.Duration(v * float64(time.Minute))
		cfg.Baseline = min(cfg.Faults/6, 5*time.Minute)
		cfg.FaultEvery = 20 * time.Second
		cfg.Rate = 1.5
	}
	cfg.Bin = filepath.Join(t.TempDir(), "pouw")
	build := exec.Command("go", "build", "-o", cfg.Bin, "./cmd/pouw")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/pouw: %v\n%s", err, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), cfg.Faults+cfg.Baseline+10*time.Minute)
	defer cancel()
	rep, err := chaos.Run(ctx, cfg)
	if rep != nil {
		var buf bytes.Buffer
		rep.WriteText(&buf)
		t.Logf("\n%s", buf.String())
		if path := os.Getenv("POUW_CHAOS_REPORT"); path != "" {
			b, _ := json.MarshalIndent(rep, "", "  ")
			if werr := os.WriteFile(path, b, 0o644); werr != nil {
				t.Errorf("writing the report: %v", werr)
			}
		}
	}
	if err != nil {
		t.Fatalf("chaos run (seed %d): %v (process logs in %s)", seed, err, cfg.Dir)
	}
	if n := len(rep.Violations); n != 0 {
		t.Fatalf("seed %d: %d invariant violations (process logs in %s)", seed, n, cfg.Dir)
	}
	if len(rep.Phases) != 2 || rep.Phases[1].Completions == 0 || rep.Phases[0].Completions == 0 {
		t.Fatalf("seed %d: a phase completed no job: %+v", seed, rep.Phases)
	}
	if os.Getenv("POUW_CHAOS_MINUTES") != "" {
		for _, g := range rep.Growth {
			if g.Minutes >= 10 && !g.Flat() {
				t.Errorf("%s grew over %.0f minutes: RSS %.1f -> %.1f MB, goroutines %.0f -> %.0f",
					g.Proc, g.Minutes, g.RSSFirstMB, g.RSSLastMB, g.GoroutinesFirst, g.GoroutinesLast)
			}
		}
	}
}
