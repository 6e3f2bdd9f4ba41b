package devnet_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pouwfarm/pouwfarm/devnet"
	"github.com/pouwfarm/pouwfarm/gpu"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/scheduler"
	"github.com/pouwfarm/pouwfarm/scheduler/agent"
	"github.com/pouwfarm/pouwfarm/trace/workload"
)

// serveFarm runs an in-process farm against url with its metrics server on
// a free port until the test ends, and returns that server's base URL.
func serveFarm(t *testing.T, url, token, prover string) string {
	return serveFarmLogging(t, url, token, prover, slog.New(slog.DiscardHandler))
}

func serveFarmLogging(t *testing.T, url, token, prover string, log *slog.Logger) string {
	t.Helper()
	reg, err := devnet.Backends()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- devnet.RunFarm(ctx, devnet.FarmOptions{
			Coordinator: url, Token: token, ProverID: prover,
			Host: scheduler.HostOptions{CPUCores: 1, HostMemoryBytes: 4 << 30}, GPUs: gpu.Null{Reason: "test"},
			Backends: reg, IdleMin: 10 * time.Millisecond, IdleMax: 50 * time.Millisecond,
			MetricsListener: ln, Logger: log,
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("farm: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestFarmIsLiveButNotReadyUntilTheCoordinatorAnswers(t *testing.T) {
	// A port nothing listens on: every claim fails to connect.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + dead.Addr().String()
	dead.Close()
	base := serveFarm(t, deadURL, "no-such-token", "farm-alone")

	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d, want 200", code)
	}
	// Give the agent many failed claims to (wrongly) turn ready on.
	time.Sleep(300 * time.Millisecond)
	if code, body := get(t, base+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz with no coordinator = %d %q, want 503", code, body)
	}
	code, body := get(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d", code)
	}
	for _, re := range []string{`(?m)^pouw_build_info\{goversion="go[^"]+",version="[^"]+"\} 1$`, `(?m)^go_goroutines `, `(?m)^process_start_time_seconds `} {
		if !regexp.MustCompile(re).MatchString(body) {
			t.Errorf("/metrics has no line matching %s", re)
		}
	}
}

func TestFarmTurnsReadyOnceTheCoordinatorAnswersAClaim(t *testing.T) {
	c := newDeployment(t, "bolt").start(t, "127.0.0.1:0", 30*time.Second)
	defer c.Close()
	prover, err := adminOf(t, c).RegisterProver(t.Context(), "farm-ready")
	if err != nil {
		t.Fatal(err)
	}
	base := serveFarm(t, c.URL, prover.Token, "farm-ready")
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := get(t, base+"/readyz")
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d %q after 20s with a coordinator answering", code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d, want 200", code)
	}
}

// syncBuffer is a log sink the farm's goroutines and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestFarmWarmsThePlonkishProverAtStart(t *testing.T) {
	var logs syncBuffer
	serveFarmLogging(t, "http://127.0.0.1:1", "no-such-token", "farm-warm", slog.New(slog.NewTextHandler(&logs, nil)))
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(logs.String(), `msg="plonkish prover warmed" k=9 seconds=`) {
		if time.Now().After(deadline) {
			t.Fatalf("no warm-up logged within 30s; logs:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestFarmWithAnotherProversTokenStopsAndOneWithoutProverIDCompletes(t *testing.T) {
	c := newDeployment(t, "bolt").start(t, "127.0.0.1:0", 30*time.Second)
	defer c.Close()
	admin := adminOf(t, c)
	tr, err := workload.Macro("fib", 1, 64)
	if err != nil {
		t.Fatal(err)
	}
	job := ingest(t, admin, tr)
	prover, err := admin.RegisterProver(t.Context(), "farm-a")
	if err != nil {
		t.Fatal(err)
	}
	reg, err := devnet.Backends()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	err = devnet.RunFarm(ctx, devnet.FarmOptions{
		Coordinator: c.URL, Token: prover.Token, ProverID: "farm-b",
		Host: scheduler.HostOptions{CPUCores: 1, HostMemoryBytes: 4 << 30}, GPUs: gpu.Null{Reason: "test"},
		Backends: reg, IdleMin: 10 * time.Millisecond, IdleMax: 50 * time.Millisecond,
	})
	if !errors.Is(err, agent.ErrProverMismatch) || err.Error() != `token belongs to prover "farm-a", not --prover-id "farm-b"` {
		t.Fatalf("RunFarm = %v, want the prover mismatch error", err)
	}
	if j := waitJob(t, admin, job.JobID, 10*time.Second, func(j pouw.ProofJob) bool { return j.State == pouw.StatePending }); j.Attempts != 0 {
		t.Errorf("attempts = %d after the mismatch, want 0", j.Attempts)
	}

	// Without --prover-id the proof is bound to the token's prover, and
	// the coordinator accepts it.
	runFarm(t, c.URL, prover.Token, "")
	done := waitJob(t, admin, job.JobID, time.Minute, func(j pouw.ProofJob) bool { return j.State == pouw.StateCompleted || j.State == pouw.StateDead })
	if done.State != pouw.StateCompleted || done.ProverID != "farm-a" || done.Attempts != 0 {
		t.Errorf("job = %+v, want completed by farm-a with no failed attempt", done)
	}
}
