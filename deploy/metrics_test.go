package deploy

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pouwfarm/pouwfarm/coordinator"
	"github.com/pouwfarm/pouwfarm/coordinator/client"
	"github.com/pouwfarm/pouwfarm/devnet"
	"github.com/pouwfarm/pouwfarm/gpu"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/scheduler"
	"github.com/pouwfarm/pouwfarm/scheduler/agent"
	"github.com/pouwfarm/pouwfarm/trace"
	"github.com/pouwfarm/pouwfarm/trace/workload"
)

// exported is what the code exports: every series name (histograms as
// their _bucket, _sum and _count), the labels of each, and the values of
// each label seen or known.
type exported struct {
	// family maps a series name to its metric family's name.
	family map[string]string
	// labels maps a family to its label names and the values seen.
	labels map[string]map[string]map[string]bool
	// source maps a family to who exports it, for messages.
	source map[string]string
	// known are label values the code declares but one short run does not
	// produce (every outcome, every route).
	known map[string]map[string]bool
}

var (
	exportedOnce sync.Once
	exportedSet  *exported
	exportedErr  string
)

// exportedMetrics runs the coordinator as `pouw coordinator` assembles it
// (coordinator.New: bolt store, file blobs, the backends' verifier, its own
// registry with the Go and process collectors) and a farm as `pouw farm`
// runs it (devnet.RunFarm on CPU slots), proves one micro job end to end so
// that every vector has a child, then reads the coordinator's /metrics and
// gathers the farm's registry, plus the GPU collector over a fixed reading
// (no GPU here). Once per test binary.
func exportedMetrics(t *testing.T) *exported {
	t.Helper()
	exportedOnce.Do(func() {
		e, err := gatherExported(t.TempDir())
		if err != nil {
			exportedErr = err.Error()
			return
		}
		exportedSet = e
	})
	if exportedErr != "" {
		t.Fatalf("gathering the exported metrics: %s", exportedErr)
	}
	return exportedSet
}

type gatherError string

func (e gatherError) Error() string { return string(e) }

func gatherExported(dir string) (*exported, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	regs, err := devnet.Backends()
	if err != nil {
		return nil, err
	}
	// The coordinator as `pouw coordinator` assembles it, with its own
	// registry (Go and process collectors included); its metrics are read
	// from its /metrics route at the end.
	coord, err := coordinator.New(ctx, coordinator.Config{
		Addr: "127.0.0.1:0", DataDir: filepath.Join(dir, "coordinator"), AdminToken: "deploy-test-admin-token-0123456789",
		Backends: regs, Logger: log, ReapInterval: 100 * time.Millisecond,
	})
	if err != nil {
		return nil, err
	}
	coordCtx, stopCoord := context.WithCancel(ctx)
	coordDone := make(chan error, 1)
	go func() { coordDone <- coord.Run(coordCtx) }()
	defer func() { stopCoord(); <-coordDone }()
	admin, err := client.New(coord.URL(), client.Options{Token: coord.AdminToken()})
	if err != nil {
		return nil, err
	}
	pr, err := admin.RegisterProver(ctx, "deploy-test-farm")
	if err != nil {
		return nil, err
	}
	job, err := ingestMicroJob(ctx, admin)
	if err != nil {
		return nil, err
	}

	farmReg := prometheus.NewRegistry()
	farmCtx, stopFarm := context.WithCancel(ctx)
	defer stopFarm()
	farmDone := make(chan error, 1)
	go func() {
		farmDone <- devnet.RunFarm(farmCtx, devnet.FarmOptions{
			Coordinator: coord.URL(), Token: pr.Token, ProverID: pr.ProverID,
			Host: scheduler.HostOptions{CPUCores: 1, HostMemoryBytes: 2 << 30}, GPUs: gpu.Null{Reason: "deploy test"},
			Backends: regs, Logger: log, Registry: farmReg,
			IdleMin: 10 * time.Millisecond, IdleMax: 50 * time.Millisecond,
		})
	}()
	for {
		j, err := admin.Job(ctx, job)
		if err == nil && (j.State == pouw.StateCompleted || j.State == pouw.StateDead) {
			if j.State != pouw.StateCompleted {
				stopFarm()
				<-farmDone
				return nil, gatherError("the test job ended " + string(j.State))
			}
			break
		}
		if ctx.Err() != nil {
			stopFarm()
			<-farmDone
			return nil, gatherError("the test job did not complete in time")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The transition counters follow the event log; wait until they saw
	// the completion.
	var coordMetrics []*dto.MetricFamily
	for {
		if coordMetrics, err = scrape(ctx, coord.URL()+"/metrics", coord.AdminToken()); err != nil {
			stopFarm()
			<-farmDone
			return nil, err
		}
		if metricSum(coordMetrics, "pouw_job_transitions_total", "transition", "completed") >= 1 {
			break
		}
		if ctx.Err() != nil {
			<-farmDone
			return nil, gatherError("the coordinator did not count the completion")
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopFarm()
	if err := <-farmDone; err != nil {
		return nil, err
	}

	gpuReg := prometheus.NewRegistry()
	if err := gpu.RegisterMetrics(gpuReg, fixedGPU{}); err != nil {
		return nil, err
	}

	e := &exported{
		family: map[string]string{}, labels: map[string]map[string]map[string]bool{},
		source: map[string]string{}, known: map[string]map[string]bool{},
	}
	for _, mf := range coordMetrics {
		e.add("coordinator (coordinator, coordinator/api)", mf)
	}
	for _, r := range []struct {
		name string
		reg  *prometheus.Registry
	}{{"farm (scheduler/agent)", farmReg}, {"GPU collector (gpu)", gpuReg}} {
		mfs, err := r.reg.Gather()
		if err != nil {
			return nil, err
		}
		for _, mf := range mfs {
			e.add(r.name, mf)
		}
	}
	// Values the code declares that one run cannot show.
	e.know("route", "unmatched")
	for _, rt := range coord.API.Routes() {
		e.know("route", rt.Method+" "+rt.Path)
	}
	e.know("outcome", agent.OutcomeCompleted, agent.OutcomeRejected, agent.OutcomeFailed, agent.OutcomeHashMismatch,
		agent.OutcomeLeaseLost, agent.OutcomeReleased, agent.OutcomeError)
	e.know("device", string(scheduler.CPU), string(scheduler.GPU))
	e.know("backend", regs.Names()...)
	e.know("result", "granted", "empty", "error")
	for _, tier := range pouw.Tiers {
		e.know("tier", tier.String())
	}
	for _, s := range pouw.States {
		e.know("state", string(s))
	}
	return e, nil
}

func (e *exported) add(source string, mf *dto.MetricFamily) {
	name := mf.GetName()
	e.source[name] = source
	series := []string{name}
	if mf.GetType() == dto.MetricType_HISTOGRAM {
		series = []string{name + "_bucket", name + "_sum", name + "_count"}
	}
	if mf.GetType() == dto.MetricType_SUMMARY {
		series = append(series, name+"_sum", name+"_count")
	}
	for _, s := range series {
		e.family[s] = name
	}
	ls := e.labels[name]
	if ls == nil {
		ls = map[string]map[string]bool{}
		e.labels[name] = ls
	}
	for _, m := range mf.GetMetric() {
		for _, lp := range m.GetLabel() {
			if ls[lp.GetName()] == nil {
				ls[lp.GetName()] = map[string]bool{}
			}
			ls[lp.GetName()][lp.GetValue()] = true
		}
	}
	if mf.GetType() == dto.MetricType_HISTOGRAM {
		ls["le"] = map[string]bool{}
	}
}

func (e *exported) know(label string, values ...string) {
	if e.known[label] == nil {
		e.known[label] = map[string]bool{}
	}
	for _, v := range values {
		e.known[label][v] = true
	}
}

// ingestMicroJob uploads a 16-step window of a workload and ingests it.
func ingestMicroJob(ctx context.Context, admin *client.Client) (string, error) {
	m, err := workload.Macro(workload.Names()[0], 1, 64)
	if err != nil {
		return "", err
	}
	tr, err := trace.Window(m, 16, 0)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if err := trace.Encode(&buf, tr); err != nil {
		return "", err
	}
	info, err := admin.UploadBlob(ctx, buf.Bytes())
	if err != nil {
		return "", err
	}
	if _, err := admin.Deposit(ctx, 10, "deploy test"); err != nil {
		return "", err
	}
	resp, err := admin.Ingest(ctx, pouw.IngestRequest{Tier: tr.Header.Tier, IntentID: tr.Header.IntentID,
		TraceHash: info.Hash, FeeBudget: 10, RewardBudget: 10, MaxRetries: 1})
	if err != nil {
		return "", err
	}
	return resp.Job.JobID, nil
}

// scrape reads a /metrics endpoint as Prometheus does.
func scrape(ctx context.Context, url, token string) ([]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, gatherError("GET " + url + ": " + resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	byName, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, err
	}
	out := make([]*dto.MetricFamily, 0, len(byName))
	for _, mf := range byName {
		out = append(out, mf)
	}
	return out, nil
}

func metricSum(mfs []*dto.MetricFamily, name, label, value string) float64 {
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
				}
			}
		}
	}
	return sum
}

// fixedGPU is one GPU reading with every field the collector can export
// set, so the collector emits each of its series.
type fixedGPU struct{}

func (fixedGPU) Devices() []gpu.Device {
	return []gpu.Device{{Index: 0, UUID: "GPU-0", Name: "test", MemoryTotalBytes: 80 << 30, ComputeCapability: "9.0", Healthy: true}}
}

func (fixedGPU) Telemetry() []gpu.Telemetry {
	f := func(v float64) *float64 { return &v }
	used := uint64(1 << 30)
	return []gpu.Telemetry{{Index: 0, UUID: "GPU-0", UtilizationRatio: f(0.5), MemoryUsedBytes: &used, MemoryTotalBytes: 80 << 30,
		TemperatureC: f(60), PowerWatts: f(300), EnergyJoules: f(1e6), ThrottleReasons: []string{}, Healthy: true}}
}

func (fixedGPU) Unavailable() string { return "" }

// targetLabels are attached by Prometheus to every scraped series.
var targetLabels = map[string]bool{"job": true, "instance": true}

// prometheusSeries are series Prometheus itself makes, with their labels.
var prometheusSeries = map[string][]string{"up": {"job", "instance"}}

// literalAlternation matches regexes that are a plain list of values,
// "a|b|c", whose values can be checked one by one.
var literalAlternation = regexp.MustCompile(`^[a-zA-Z0-9_:-]+(\|[a-zA-Z0-9_:-]+)*$`)

// check reports every way the selectors of expr do not match what the code
// exports: unknown metric names, labels the metric does not have, and
// label values (in =, != and plain-alternation matchers) it never takes.
// records are the recording rules' names with their labels; jobs the
// scrape job names.
func (e *exported) check(expr string, records map[string][]string, jobs map[string]bool) []string {
	sels, grouping, err := parsePromQL(expr)
	if err != nil {
		return []string{err.Error()}
	}
	var problems []string
	// A grouping label must be a label of some series the expression
	// reads: `sum by (devce)` would draw one unlabelled line, not fail.
	for _, l := range grouping {
		found := targetLabels[l]
		for _, s := range sels {
			if fam, ok := e.family[s.Name]; ok {
				_, has := e.labels[fam][l]
				found = found || has
			} else if slices.Contains(records[s.Name], l) || slices.Contains(prometheusSeries[s.Name], l) {
				found = true
			}
		}
		if !found {
			problems = append(problems, "grouping label "+l+" is on none of the series the expression reads")
		}
	}
	for _, s := range sels {
		var labelsOf map[string]map[string]bool
		switch fam, ok := e.family[s.Name]; {
		case ok:
			labelsOf = e.labels[fam]
		case records[s.Name] != nil:
			labelsOf = map[string]map[string]bool{}
			for _, l := range records[s.Name] {
				labelsOf[l] = nil
			}
		case prometheusSeries[s.Name] != nil:
			labelsOf = map[string]map[string]bool{}
		default:
			problems = append(problems, "metric "+s.Name+" is exported by neither the coordinator, the farm nor the GPU collector")
			continue
		}
		for _, m := range s.Matchers {
			if m.Label == "__name__" {
				continue
			}
			values, has := labelsOf[m.Label]
			if !has && !targetLabels[m.Label] {
				problems = append(problems, s.Name+" has no label "+m.Label)
				continue
			}
			if strings.Contains(m.Value, "$") {
				continue // a dashboard variable
			}
			var want []string
			switch {
			case m.Op == "=" || m.Op == "!=":
				want = []string{m.Value}
			case literalAlternation.MatchString(m.Value):
				want = strings.Split(m.Value, "|")
			}
			for _, v := range want {
				ok := values[v] || e.known[m.Label][v] || m.Label == "job" && jobs[v]
				if !ok && values == nil && !targetLabels[m.Label] {
					ok = true // a recording rule's label: its values are the rule's
				}
				if !ok {
					problems = append(problems, s.Name+"{"+m.Label+"} never takes the value "+v+" (seen: "+strings.Join(sortedKeys(values), ", ")+")")
				}
			}
		}
	}
	return problems
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
