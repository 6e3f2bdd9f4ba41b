package deploy

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/pouwfarm/pouwfarm/coordinator/api"
	"github.com/pouwfarm/pouwfarm/coordinator/blob"
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

// exportedMetrics runs a real coordinator (bolt store, file blobs, the
// backends' verifier) and a real farm (CPU slots, STARK) wired as `pouw
// dev` wires them, proves one micro job end to end so that every vector
// has a child, and gathers their registries, plus the GPU collector over a
// fixed reading. Once per test binary.
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
	coordReg := prometheus.NewRegistry()
	coord, err := devnet.StartCoordinator(devnet.CoordinatorOptions{
		DataDir: dir, Addr: "127.0.0.1:0", AdminToken: "deploy-test-admin-token-0123456789",
		Backends: regs, Registry: coordReg, Logger: log, ReapEvery: 100 * time.Millisecond,
	})
	if err != nil {
		return nil, err
	}
	defer coord.Close()
	admin, err := client.New(coord.URL, client.Options{Token: coord.AdminToken})
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
			Coordinator: coord.URL, Token: pr.Token, ProverID: pr.ProverID,
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
	for metricSum(coordReg, "pouw_job_transitions_total", "transition", "completed") < 1 {
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
	for _, r := range []struct {
		name string
		reg  *prometheus.Registry
	}{{"coordinator (coordinator/api)", coordReg}, {"farm (scheduler/agent)", farmReg}, {"GPU collector (gpu)", gpuReg}} {
		mfs, err := r.reg.Gather()
		if err != nil {
			return nil, err
		}
		for _, mf := range mfs {
			e.add(r.name, mf)
		}
	}
	// Values the code declares that one run cannot show.
	blobs, err := blob.NewFiles(filepath.Join(dir, "routes-blobs"))
	if err != nil {
		return nil, err
	}
	srv, err := api.New(api.Options{Store: coord.Store, Blobs: blobs, AdminToken: coord.AdminToken, Registry: prometheus.NewRegistry()})
	if err != nil {
		return nil, err
	}
	e.know("route", "unmatched")
	for _, rt := range srv.Routes() {
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

func metricSum(reg *prometheus.Registry, name, label, value string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		return 0
	}
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
	sels, err := selectors(expr)
	if err != nil {
		return []string{err.Error()}
	}
	var problems []string
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
