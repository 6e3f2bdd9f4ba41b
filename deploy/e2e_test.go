package deploy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/pouwfarm/pouwfarm/coordinator/client"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/trace"
	"github.com/pouwfarm/pouwfarm/trace/workload"
)

// TestStackEndToEndWithPrometheus runs the stack as the deploy files
// configure it — Redis with the StatefulSet's flags, `pouw coordinator` and
// `pouw farm` with the systemd units' arguments and their environment files'
// variables, a real Prometheus with prometheus.yml's scrape jobs and the
// rules — proves jobs of every tier and one with a corrupted trace, then
// asks Prometheus: every target up, every rule healthy, PouwDeadLetterGrowth
// firing for the corrupted job's tier, and every dashboard query answering
// with data (GPU panels excepted on a host without GPUs, error panels
// excepted when nothing failed). About a minute; opt in with
// POUW_DEPLOY_E2E=1.
func TestStackEndToEndWithPrometheus(t *testing.T) {
	if os.Getenv("POUW_DEPLOY_E2E") == "" {
		t.Skip("set POUW_DEPLOY_E2E=1 to run Redis, pouw coordinator, pouw farm and Prometheus for about a minute")
	}
	redisServer := needTool(t, "redis-server", "redis-server")
	prometheus := needTool(t, "prometheus", "prometheus")
	bin := pouwBinary(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// Redis, with the args of the k8s StatefulSet (minus its sizes and paths).
	redisPort := freePort(t)
	c := dig(find(t, loadK8s(t), "StatefulSet", "pouw-redis").Raw, "spec", "template", "spec", "containers", 0)
	args := append([]string(nil), strs(dig(c, "args"))[1:]...)
	args = setArg(args, "--maxmemory", "256mb")
	args = setArg(args, "--dir", mkdir(t, dir, "redis"))
	args = append(args, "--port", redisPort, "--bind", "127.0.0.1")
	start(t, dir, "redis", nil, redisServer, args...)

	// The coordinator: the unit's ExecStart, its environment file's
	// variables with this host's addresses.
	coordAddr := "127.0.0.1:" + freePort(t)
	const adminToken = "deploy-e2e-admin-token-0123456789"
	env := envFile(t, "systemd/coordinator.env.example", map[string]string{
		"POUW_ADDR": coordAddr, "POUW_STORE": "redis://127.0.0.1:" + redisPort + "/0",
		"POUW_BLOBS": "file://" + filepath.Join(dir, "blobs"), "POUW_ADMIN_TOKEN": adminToken,
	})
	start(t, dir, "coordinator", env, bin, execArgs(t, "systemd/pouw-coordinator.service", map[string]string{"/var/lib/pouw": mkdir(t, dir, "data")})...)
	coordURL := "http://" + coordAddr
	waitFor(t, ctx, "coordinator ready", func() bool {
		resp, err := http.Get(coordURL + "/readyz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	})
	admin, err := client.New(coordURL, client.Options{Token: adminToken})
	if err != nil {
		t.Fatal(err)
	}
	farmProver, err := admin.RegisterProver(ctx, "e2e-farm")
	if err != nil {
		t.Fatal(err)
	}
	scraper, err := admin.RegisterProver(ctx, "prometheus")
	if err != nil {
		t.Fatal(err)
	}

	// The farm, likewise.
	farmMetrics := "127.0.0.1:" + freePort(t)
	env = envFile(t, "systemd/farm.env.example", map[string]string{
		"POUW_COORDINATOR": coordURL, "POUW_PROVER_ID": farmProver.ProverID, "POUW_TOKEN": farmProver.Token,
		"POUW_CPU": "2", "POUW_CORES_PER_SLOT": "1", "POUW_GPUS": "none", "POUW_METRICS_ADDR": farmMetrics,
	})
	start(t, dir, "farm", env, bin, execArgs(t, "systemd/pouw-farm.service", nil)...)

	// Prometheus: prometheus.yml with these targets and a 2 s interval.
	promDir := mkdir(t, dir, "prometheus")
	copyTree(t, "prometheus/rules", mkdir(t, promDir, "rules"))
	writeFile(t, filepath.Join(promDir, "pouw-scrape.token"), scraper.Token+"\n")
	var cfg map[string]any
	readYAML(t, "prometheus/prometheus.yml", &cfg)
	cfg["global"] = map[string]any{"scrape_interval": "2s", "evaluation_interval": "2s"}
	for _, sc := range cfg["scrape_configs"].([]any) {
		sc := sc.(map[string]any)
		delete(sc, "file_sd_configs")
		target := coordAddr
		if sc["job_name"] == "pouw-farm" {
			target = farmMetrics
		}
		sc["static_configs"] = []any{map[string]any{"targets": []any{target}}}
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(promDir, "prometheus.yml"), string(b))
	promAddr := "127.0.0.1:" + freePort(t)
	start(t, dir, "prometheus", nil, prometheus, "--config.file="+filepath.Join(promDir, "prometheus.yml"),
		"--storage.tsdb.path="+mkdir(t, promDir, "data"), "--web.listen-address="+promAddr)

	prom := "http://" + promAddr
	// Counters must be scraped before they move, or increase() cannot see
	// the move: wait for the first scrape of both targets.
	waitFor(t, ctx, "Prometheus to scrape both targets", func() bool {
		var r struct {
			Data struct{ Result []json.RawMessage }
		}
		return promGet(prom+"/api/v1/query?query="+url.QueryEscape("up == 1"), &r) == nil && len(r.Data.Result) == 2
	})

	// Jobs: two of every tier, and one macro job whose stored trace is then
	// corrupted, so the farm fails it (hash mismatch) until it is dead.
	if _, err := admin.Deposit(ctx, 1_000_000, "e2e"); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for seed := uint64(1); seed <= 6; seed++ {
		ids = append(ids, ingestTier(t, ctx, admin, pouw.Tiers[seed%3], seed, nil))
	}
	ingestTier(t, ctx, admin, pouw.TierMacro, 99, func(h pouw.Hash) {
		// File blobs are stored under their hex hash; flip one byte of it.
		var found bool
		_ = filepath.WalkDir(filepath.Join(dir, "blobs"), func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.Contains(filepath.Base(p), h.String()) {
				f, err := os.OpenFile(p, os.O_RDWR, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				// The last byte is in the rows: ingest reads the header, so
				// the damage must lie beyond it to reach the farm.
				st, err := f.Stat()
				if err != nil {
					t.Fatal(err)
				}
				if _, err := f.WriteAt([]byte{0xff}, st.Size()-1); err != nil {
					t.Fatal(err)
				}
				found = true
			}
			return nil
		})
		if !found {
			t.Fatalf("blob %s not found under %s", h, filepath.Join(dir, "blobs"))
		}
	})
	waitFor(t, ctx, "the jobs to complete", func() bool {
		for _, id := range ids {
			j, err := admin.Job(ctx, id)
			if err != nil || j.State != pouw.StateCompleted {
				return false
			}
		}
		return true
	})
	waitFor(t, ctx, "PouwDeadLetterGrowth to fire for macro", func() bool {
		var r struct {
			Data struct {
				Alerts []struct {
					Labels map[string]string
					State  string
				}
			}
		}
		if promGet(prom+"/api/v1/alerts", &r) != nil {
			return false
		}
		for _, a := range r.Data.Alerts {
			if a.Labels["alertname"] == "PouwDeadLetterGrowth" && a.Labels["tier"] == "macro" && a.State == "firing" {
				return true
			}
		}
		return false
	})
	// A few more scrapes, so every rate has two samples after the last job.
	time.Sleep(5 * time.Second)

	var targets struct {
		Data struct {
			ActiveTargets []struct {
				Labels    map[string]string
				Health    string
				LastError string
			}
		}
	}
	if err := promGet(prom+"/api/v1/targets", &targets); err != nil {
		t.Fatal(err)
	}
	if len(targets.Data.ActiveTargets) != 2 {
		t.Errorf("Prometheus has %d targets, want the coordinator and the farm", len(targets.Data.ActiveTargets))
	}
	for _, tg := range targets.Data.ActiveTargets {
		if tg.Health != "up" {
			t.Errorf("target %s is %s: %s", tg.Labels["job"], tg.Health, tg.LastError)
		}
	}
	var rules struct {
		Data struct {
			Groups []struct {
				Rules []struct {
					Name, Health, LastError string
				}
			}
		}
	}
	if err := promGet(prom+"/api/v1/rules", &rules); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range rules.Data.Groups {
		for _, r := range g.Rules {
			n++
			if r.Health != "ok" {
				t.Errorf("rule %s: %s %s", r.Name, r.Health, r.LastError)
			}
		}
	}
	if want := len(loadRules(t)); n != want {
		t.Errorf("Prometheus loaded %d rules, the file has %d", n, want)
	}

	noData := regexp.MustCompile(`pouw_gpu_|code=~"[45]\.\."`) // no GPU here; nothing failed with 4xx/5xx
	for _, d := range loadDashboards(t) {
		for _, p := range d.allPanels() {
			for _, tg := range p.Targets {
				expr := grafanaVariable.ReplaceAllStringFunc(tg.Expr, func(v string) string {
					if strings.HasPrefix(strings.Trim(v, "${}"), "__") {
						return "1m"
					}
					return ".*"
				})
				var r struct {
					Status string
					Data   struct{ Result []json.RawMessage }
					Error  string
				}
				if err := promGet(prom+"/api/v1/query?query="+url.QueryEscape(expr), &r); err != nil || r.Status != "success" {
					t.Errorf("%s %q: %v %s", d.UID, p.Title, err, r.Error)
					continue
				}
				t.Logf("%3d series  %s: %s [%s]", len(r.Data.Result), d.UID, p.Title, tg.RefID)
				if len(r.Data.Result) == 0 && !noData.MatchString(tg.Expr) {
					t.Errorf("%s: panel %q query %s shows no data:\n    %s", d.UID, p.Title, tg.RefID, expr)
				}
			}
		}
	}
}

func ingestTier(t *testing.T, ctx context.Context, admin *client.Client, tier pouw.JobTier, seed uint64, corrupt func(pouw.Hash)) string {
	t.Helper()
	var tr *trace.Trace
	var err error
	switch tier {
	case pouw.TierMicro:
		var m *trace.Trace
		if m, err = workload.Macro("mimc", seed, 64); err == nil {
			tr, err = trace.Window(m, 16, seed%trace.Windows(m, 16))
		}
	case pouw.TierMacro:
		tr, err = workload.Macro("mimc", seed, 64)
	default:
		tr, err = workload.Full("mimc", seed, 64, 2)
	}
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := trace.Encode(&buf, tr); err != nil {
		t.Fatal(err)
	}
	info, err := admin.UploadBlob(ctx, buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if corrupt != nil {
		corrupt(info.Hash)
	}
	resp, err := admin.Ingest(ctx, pouw.IngestRequest{Tier: tier, IntentID: tr.Header.IntentID, TraceHash: info.Hash,
		FeeBudget: 100, RewardBudget: 100, MaxRetries: 2})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Job.JobID
}

// start runs a process until the test ends (SIGTERM, then its exit), its
// output in dir/name.log, shown when the test fails.
func start(t *testing.T, dir, name string, env []string, bin string, args ...string) {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(45 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("--- %s log (tail):\n%s", name, b)
		}
	})
}

// envFile reads an environment file example (KEY=VALUE lines, commented
// ones skipped) and overrides the host-specific values; a key it overrides
// must be in the file, so the file keeps documenting it.
func envFile(t *testing.T, path string, override map[string]string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: bad line %q", path, line)
		}
		if o, ok := override[k]; ok {
			v = o
		}
		seen[k] = true
		out = append(out, k+"="+v)
	}
	for k := range override {
		if !seen[k] {
			t.Errorf("%s does not set %s", path, k)
		}
	}
	return out
}

// execArgs returns the arguments of a unit's ExecStart after the binary,
// with paths replaced.
func execArgs(t *testing.T, path string, replace map[string]string) []string {
	t.Helper()
	f := strings.Fields(parseUnit(t, path)["Service"]["ExecStart"][0])[1:]
	for i, a := range f {
		if r, ok := replace[a]; ok {
			f[i] = r
		}
	}
	return f
}

func setArg(args []string, flag, value string) []string {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag {
			args[i+1] = value
			return args
		}
	}
	return append(args, flag, value)
}

func mkdir(t *testing.T, parts ...string) string {
	t.Helper()
	p := filepath.Join(parts...)
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
}

func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func promGet(u string, v any) error {
	resp, err := http.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}
