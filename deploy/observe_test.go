package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const (
	rulesFile     = "prometheus/rules/pouw.rules.yml"
	ruleTestsFile = "prometheus/tests/pouw.rules.test.yml"
	dashboardsDir = "grafana/dashboards"
)

// needTool returns the path of a checker the tests cannot do without;
// scripts/test.sh installs them.
func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: install the Debian package %s (scripts/test.sh does)", name, pkg)
	}
	return p
}

func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

type rule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type ruleGroups struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

func loadRules(t *testing.T) []rule {
	t.Helper()
	var g ruleGroups
	readYAML(t, rulesFile, &g)
	var out []rule
	for _, grp := range g.Groups {
		out = append(out, grp.Rules...)
	}
	if len(out) == 0 {
		t.Fatal("no rules")
	}
	return out
}

// records maps each recording rule's name to its labels.
func records(rules []rule) map[string][]string {
	out := map[string][]string{}
	for _, r := range rules {
		if r.Record != "" {
			out[r.Record] = append(out[r.Record], sortedKeys(r.Labels)...)
		}
	}
	return out
}

// dashboard is the part of a Grafana dashboard the tests read.
type dashboard struct {
	File       string
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []variable `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Definition string          `json:"definition"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID          int            `json:"id"`
	Type        string         `json:"type"`
	Title       string         `json:"title"`
	Description string         `json:"description"`
	Datasource  *datasourceRef `json:"datasource"`
	GridPos     struct{ H, W, X, Y int }
	Repeat      string `json:"repeat"`
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Targets []struct {
		RefID        string         `json:"refId"`
		Expr         string         `json:"expr"`
		LegendFormat string         `json:"legendFormat"`
		Datasource   *datasourceRef `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

func loadDashboards(t *testing.T) []dashboard {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dashboardsDir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards in %s (%v)", dashboardsDir, err)
	}
	var out []dashboard
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		d.File = f
		out = append(out, d)
	}
	return out
}

// allPanels flattens rows' nested panels (collapsed rows keep theirs).
func (d dashboard) allPanels() []panel {
	var out []panel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

// varQuery returns the PromQL inside a query variable: the selector of
// label_values(selector, label) or the expression of query_result(expr).
var varQueryPattern = regexp.MustCompile(`^\s*(label_values|query_result)\((.*)\)\s*$`)

func (v variable) promql() (string, error) {
	if v.Type != "query" {
		return "", nil
	}
	q := v.Definition
	var obj struct {
		Query string `json:"query"`
	}
	if json.Unmarshal(v.Query, &obj) == nil && obj.Query != "" {
		q = obj.Query
	} else {
		var s string
		if json.Unmarshal(v.Query, &s) == nil && s != "" {
			q = s
		}
	}
	m := varQueryPattern.FindStringSubmatch(q)
	if m == nil {
		return "", fmt.Errorf("variable %s: query %q is neither label_values(...) nor query_result(...)", v.Name, q)
	}
	inner := m[2]
	if m[1] == "label_values" {
		i := strings.LastIndexByte(inner, ',')
		if i < 0 {
			return "", nil // label_values(label): no metric
		}
		inner = inner[:i]
	}
	return inner, nil
}

// expression is one PromQL expression of a rule or dashboard, with where it
// stands for messages.
type expression struct {
	Where, Expr string
}

func allExpressions(t *testing.T) []expression {
	t.Helper()
	var out []expression
	for _, r := range loadRules(t) {
		out = append(out, expression{rulesFile + ": " + r.Alert + r.Record, r.Expr})
	}
	for _, d := range loadDashboards(t) {
		for _, v := range d.Templating.List {
			q, err := v.promql()
			if err != nil {
				t.Fatalf("%s: %v", d.File, err)
			}
			if q != "" {
				out = append(out, expression{d.File + ": variable " + v.Name, q})
			}
		}
		for _, p := range d.allPanels() {
			for _, tg := range p.Targets {
				out = append(out, expression{d.File + ": panel " + p.Title + " " + tg.RefID, tg.Expr})
			}
		}
	}
	return out
}

// scrapeJobs are the job names of the scrape configs.
func scrapeJobs(t *testing.T) map[string]bool {
	t.Helper()
	jobs := map[string]bool{}
	for _, f := range []string{"prometheus/prometheus.yml", "compose/prometheus.yml"} {
		var cfg struct {
			ScrapeConfigs []struct {
				JobName string `yaml:"job_name"`
			} `yaml:"scrape_configs"`
		}
		readYAML(t, f, &cfg)
		for _, sc := range cfg.ScrapeConfigs {
			jobs[sc.JobName] = true
		}
	}
	return jobs
}

func TestPromtoolAcceptsTheRulesAndScrapeConfigs(t *testing.T) {
	promtool := needTool(t, "promtool", "prometheus")
	run(t, ".", promtool, "check", "rules", rulesFile)

	// check config also checks the rule files and the scrape token file it
	// names; lay each config out as it is deployed, in a scratch dir.
	for _, cfg := range []string{"prometheus/prometheus.yml", "compose/prometheus.yml"} {
		dir := t.TempDir()
		copyTree(t, "prometheus", dir)
		b, err := os.ReadFile(cfg)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "prometheus.yml"), string(b))
		writeFile(t, filepath.Join(dir, "pouw-scrape.token"), "token\n")
		out := run(t, dir, promtool, "check", "config", "prometheus.yml")
		if strings.Contains(out, "WARNING") {
			t.Errorf("promtool check config %s warns:\n%s", cfg, out)
		}
	}
}

func TestPromtoolUnitTestsFireEveryAlert(t *testing.T) {
	promtool := needTool(t, "promtool", "prometheus")
	run(t, ".", promtool, "test", "rules", ruleTestsFile)

	var tests struct {
		RuleFiles []string `yaml:"rule_files"`
		Tests     []struct {
			Name          string `yaml:"name"`
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []struct {
					ExpLabels map[string]string `yaml:"exp_labels"`
				} `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	readYAML(t, ruleTestsFile, &tests)
	if !slices.Contains(tests.RuleFiles, "../rules/pouw.rules.yml") {
		t.Errorf("%s tests %v, not %s", ruleTestsFile, tests.RuleFiles, rulesFile)
	}
	fires, quiet := map[string]int{}, map[string]int{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname]++
			} else {
				quiet[a.Alertname]++
			}
		}
	}
	for _, r := range loadRules(t) {
		if r.Alert == "" {
			continue
		}
		if fires[r.Alert] == 0 {
			t.Errorf("alert %s: no promtool test fires it", r.Alert)
		}
		if quiet[r.Alert] == 0 {
			t.Errorf("alert %s: no promtool test checks that it stays quiet", r.Alert)
		}
	}
}

// grafanaVariable matches $name, ${name} and ${name:format}.
var grafanaVariable = regexp.MustCompile(`\$\{[^}]+\}|\$[A-Za-z_][A-Za-z0-9_]*`)

// TestDashboardExpressionsAreValidPromQL has promtool parse every dashboard
// query (variables replaced by what Grafana would put there) as a
// recording rule.
func TestDashboardExpressionsAreValidPromQL(t *testing.T) {
	promtool := needTool(t, "promtool", "prometheus")
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboards\n    rules:\n")
	n := 0
	for _, e := range allExpressions(t) {
		if strings.HasPrefix(e.Where, rulesFile) {
			continue
		}
		expr := grafanaVariable.ReplaceAllStringFunc(e.Expr, func(v string) string {
			if strings.HasPrefix(strings.Trim(v, "${}"), "__") { // $__rate_interval, $__range, ...
				return "5m"
			}
			return ".*"
		})
		n++
		q, _ := json.Marshal(expr) // a JSON string is a YAML string
		fmt.Fprintf(&b, "      - record: dashboard_expr_%d  # %s\n        expr: %s\n", n, strings.ReplaceAll(e.Where, "\n", " "), q)
	}
	f := filepath.Join(t.TempDir(), "dashboards.rules.yml")
	writeFile(t, f, b.String())
	out := run(t, ".", promtool, "check", "rules", "--lint=none", f)
	if !strings.Contains(out, fmt.Sprintf("%d rules found", n)) {
		t.Errorf("promtool read a different number of expressions than the %d written:\n%s", n, out)
	}
}

func TestDashboardsAndRulesReadOnlyMetricsTheCodeExports(t *testing.T) {
	ex := exportedMetrics(t)
	rec := records(loadRules(t))
	jobs := scrapeJobs(t)
	used := map[string]bool{}
	for _, e := range allExpressions(t) {
		for _, p := range ex.check(e.Expr, rec, jobs) {
			t.Errorf("%s: %s\n    %s", e.Where, p, e.Expr)
		}
		sels, _ := selectors(e.Expr)
		for _, s := range sels {
			used[ex.family[s.Name]] = true
		}
	}
	// Not a failure, but worth seeing: our own series shown nowhere.
	var unused []string
	for fam := range ex.labels {
		if !used[fam] && strings.HasPrefix(fam, "pouw_") {
			unused = append(unused, fam)
		}
	}
	sort.Strings(unused)
	t.Logf("exported but on no dashboard or rule: %v", unused)
}

// TestARenamedMetricOrLabelValueFailsTheCheck is the check's negative
// test: the expressions it accepts stop passing when a name, a label or a
// value in them changes.
func TestARenamedMetricOrLabelValueFailsTheCheck(t *testing.T) {
	ex := exportedMetrics(t)
	rec := records(loadRules(t))
	jobs := scrapeJobs(t)
	for _, tc := range []struct{ ok, renamed string }{
		{`max by (tier) (pouw_jobs{state="pending"})`, `max by (tier) (pouw_job{state="pending"})`},
		{`max by (tier) (pouw_jobs{state="pending"})`, `max by (tier) (pouw_jobs{state="queued"})`},
		{`max by (tier) (pouw_jobs{state="pending"})`, `max by (tier) (pouw_jobs{status="pending"})`},
		{`rate(pouw_farm_proof_duration_seconds_bucket[5m])`, `rate(pouw_farm_proof_seconds_bucket[5m])`},
		{`rate(pouw_farm_proof_duration_seconds_sum[5m])`, `rate(pouw_farm_proof_duration_seconds_total[5m])`},
		{`pouw_gpu_temperature_celsius > 85`, `pouw_gpu_temp_celsius > 85`},
		{`rate(pouw_job_transitions_total{transition=~"completed|rejected"}[5m])`, `rate(pouw_job_transitions_total{transition=~"completed|refused"}[5m])`},
		{`rate(pouw_farm_jobs_total{outcome="hash_mismatch"}[5m])`, `rate(pouw_farm_jobs_total{outcome="bad_hash"}[5m])`},
		{`rate(pouw_http_requests_total{route="POST /v1/pouw/jobs/{id}/submit"}[5m])`, `rate(pouw_http_requests_total{route="POST /v1/pouw/jobs/:id/submit"}[5m])`},
		{`up{job="pouw-farm"}`, `up{job="pouw-farms"}`},
		{`pouw:pending_age_budget_seconds{tier="micro"}`, `pouw:pending_age_budget{tier="micro"}`},
		{`sum by (tier, device) (rate(pouw_farm_jobs_total[5m]))`, `sum by (tier, kind) (rate(pouw_farm_jobs_total[5m]))`},
		{`histogram_quantile(0.9, sum by (le, backend) (rate(pouw_proof_verification_duration_seconds_bucket[5m])))`,
			`histogram_quantile(0.9, sum by (le, tier) (rate(pouw_proof_verification_duration_seconds_bucket[5m])))`},
		{`max by (tier) (pouw_oldest_pending_job_age_seconds) > on (tier) pouw:pending_age_budget_seconds`,
			`max by (tier) (pouw_oldest_pending_job_age_seconds) > on (tiers) pouw:pending_age_budget_seconds`},
	} {
		if p := ex.check(tc.ok, rec, jobs); len(p) > 0 {
			t.Errorf("%s: %v", tc.ok, p)
		}
		if p := ex.check(tc.renamed, rec, jobs); len(p) == 0 {
			t.Errorf("%s passes the check", tc.renamed)
		}
	}
}

func TestDashboardsAreProvisionableWithADatasourceVariableAndUnits(t *testing.T) {
	uids := map[string]bool{}
	for _, d := range loadDashboards(t) {
		if d.UID == "" || d.Title == "" || uids[d.UID] {
			t.Errorf("%s: uid %q title %q (uids must be set and unique)", d.File, d.UID, d.Title)
		}
		uids[d.UID] = true
		vars := map[string]variable{}
		for _, v := range d.Templating.List {
			vars[v.Name] = v
		}
		if v, ok := vars["datasource"]; !ok || v.Type != "datasource" || string(v.Query) != `"prometheus"` {
			t.Errorf("%s: no $datasource variable of type datasource over prometheus (%+v)", d.File, v)
		}
		for _, v := range d.Templating.List {
			if v.Type == "query" {
				var obj struct{ Query string }
				_ = json.Unmarshal(v.Query, &obj)
				for _, used := range grafanaVariable.FindAllString(obj.Query, -1) {
					if _, ok := vars[strings.Trim(used, "${}")]; !ok {
						t.Errorf("%s: variable %s uses undefined %s", d.File, v.Name, used)
					}
				}
			}
		}
		ids := map[int]bool{}
		for _, p := range d.allPanels() {
			if ids[p.ID] {
				t.Errorf("%s: panel id %d twice", d.File, p.ID)
			}
			ids[p.ID] = true
			if p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 || p.GridPos.H <= 0 {
				t.Errorf("%s: panel %q: gridPos %+v outside the 24-column grid", d.File, p.Title, p.GridPos)
			}
			if p.Type == "row" {
				continue
			}
			if p.Type != "timeseries" && p.Type != "heatmap" {
				t.Errorf("%s: panel %q is a %s, want timeseries (or a heatmap for distributions)", d.File, p.Title, p.Type)
			}
			if p.FieldConfig.Defaults.Unit == "" {
				t.Errorf("%s: panel %q has no unit", d.File, p.Title)
			}
			if p.Description == "" {
				t.Errorf("%s: panel %q has no description", d.File, p.Title)
			}
			if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
				t.Errorf("%s: panel %q does not use $datasource", d.File, p.Title)
			}
			if p.Repeat != "" {
				if _, ok := vars[p.Repeat]; !ok {
					t.Errorf("%s: panel %q repeats over undefined variable %s", d.File, p.Title, p.Repeat)
				}
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no query", d.File, p.Title)
			}
			for _, tg := range p.Targets {
				if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
					t.Errorf("%s: panel %q query %s does not use $datasource", d.File, p.Title, tg.RefID)
				}
				for _, used := range grafanaVariable.FindAllString(tg.Expr, -1) {
					name := strings.Trim(used, "${}")
					name, _, _ = strings.Cut(name, ":")
					if _, ok := vars[name]; !ok && !strings.HasPrefix(name, "__") {
						t.Errorf("%s: panel %q uses undefined variable %s", d.File, p.Title, used)
					}
				}
			}
		}
	}

	// The provisioning provider loads the directory compose mounts them in.
	var prov struct {
		Providers []struct {
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, "grafana/provisioning/dashboards/pouw.yml", &prov)
	if len(prov.Providers) != 1 || prov.Providers[0].Type != "file" {
		t.Fatalf("dashboard provisioning: %+v", prov)
	}
	var ds struct {
		Datasources []struct {
			Type, URL string
		} `yaml:"datasources"`
	}
	readYAML(t, "grafana/provisioning/datasources/prometheus.yml", &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" {
		t.Errorf("datasource provisioning: %+v", ds)
	}
	compose := loadCompose(t)
	want := "../grafana/dashboards:" + prov.Providers[0].Options.Path + ":ro"
	if !slices.Contains(compose.Services["grafana"].Volumes, want) {
		t.Errorf("compose's grafana does not mount %s (volumes %v)", want, compose.Services["grafana"].Volumes)
	}
}

// TestDashboardsShowWhatTheIssueAsks: the coordinator dashboard is RED per
// route plus the queue, the farm dashboard USE per GPU and slot.
func TestDashboardsShowWhatTheIssueAsks(t *testing.T) {
	ex := exportedMetrics(t)
	want := map[string][]string{
		"pouw-coordinator": {"pouw_http_requests_total", "pouw_http_request_duration_seconds", "pouw_jobs",
			"pouw_job_transitions_total", "pouw_oldest_pending_job_age_seconds", "pouw_proof_verification_duration_seconds",
			"pouw_pool_amount"},
		"pouw-farm": {"pouw_gpu_utilization_ratio", "pouw_gpu_memory_used_bytes", "pouw_gpu_memory_total_bytes",
			"pouw_gpu_temperature_celsius", "pouw_gpu_power_watts", "pouw_gpu_energy_joules_total", "pouw_gpu_healthy",
			"pouw_farm_slot_busy_ratio", "pouw_farm_proof_duration_seconds", "pouw_farm_jobs_total"},
	}
	heatmap := map[string]string{"pouw-farm": "pouw_farm_proof_duration_seconds"}
	for _, d := range loadDashboards(t) {
		shown := map[string]bool{}
		for _, p := range d.allPanels() {
			for _, tg := range p.Targets {
				sels, _ := selectors(tg.Expr)
				for _, s := range sels {
					shown[ex.family[s.Name]] = true
					if p.Type == "heatmap" && ex.family[s.Name] == heatmap[d.UID] {
						delete(heatmap, d.UID)
					}
				}
			}
		}
		for _, m := range want[d.UID] {
			if !shown[m] {
				t.Errorf("dashboard %s shows no %s", d.UID, m)
			}
		}
		delete(want, d.UID)
	}
	if len(want) > 0 {
		t.Errorf("dashboards missing: %v", sortedKeys(want))
	}
	if len(heatmap) > 0 {
		t.Errorf("no heatmap of %v", heatmap)
	}
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
