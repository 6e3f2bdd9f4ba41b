package deploy

import (
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the generated parts of docs/operations.md")

const operationsDoc = "../docs/operations.md"

// panelList renders a dashboard as the Markdown table docs/operations.md
// shows: one row per panel, grouped by the dashboard's rows.
func panelList(d dashboard) string {
	var b strings.Builder
	fmt.Fprintf(&b, "**%s** (`%s`, uid `%s`)\n", d.Title, strings.TrimPrefix(d.File, "grafana/"), d.UID)
	var vars []string
	for _, v := range d.Templating.List {
		vars = append(vars, "`$"+v.Name+"`")
	}
	fmt.Fprintf(&b, "\nVariables: %s.\n", strings.Join(vars, ", "))
	open := false
	for _, p := range d.allPanels() {
		if p.Type == "row" {
			fmt.Fprintf(&b, "\n| %s | unit | what it shows |\n|---|---|---|\n", p.Title)
			open = true
			continue
		}
		if !open {
			b.WriteString("\n| panel | unit | what it shows |\n|---|---|---|\n")
			open = true
		}
		title := p.Title
		if p.Type != "timeseries" {
			title += " (" + p.Type
			if p.Repeat != "" {
				title += ", one per $" + p.Repeat
			}
			title += ")"
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", title, p.FieldConfig.Defaults.Unit, strings.ReplaceAll(p.Description, "|", `\|`))
	}
	return b.String()
}

// alertTable renders the rules file's alerts.
func alertTable(rules []rule) string {
	var b strings.Builder
	b.WriteString("| alert | severity | for | expression |\n|---|---|---|---|\n")
	for _, r := range rules {
		if r.Alert == "" {
			continue
		}
		f := r.For
		if f == "" {
			f = "at once"
		}
		expr := strings.Join(strings.Fields(r.Expr), " ")
		fmt.Fprintf(&b, "| [%s](#%s) | %s | %s | `%s` |\n", r.Alert, strings.ToLower(r.Alert), r.Labels["severity"], f,
			strings.ReplaceAll(expr, "|", `\|`))
	}
	return b.String()
}

// generated replaces (with -update) or checks the text between
// <!-- BEGIN name --> and <!-- END name --> in doc.
func generated(t *testing.T, doc *string, name, want string) {
	t.Helper()
	begin := "<!-- BEGIN " + name + " (go test ./deploy -update) -->\n"
	end := "<!-- END " + name + " -->"
	i := strings.Index(*doc, begin)
	j := strings.Index(*doc, end)
	if i < 0 || j < i {
		t.Errorf("%s has no %q ... %q section", operationsDoc, strings.TrimSpace(begin), end)
		return
	}
	got := (*doc)[i+len(begin) : j]
	if got == want {
		return
	}
	if *update {
		*doc = (*doc)[:i+len(begin)] + want + (*doc)[j:]
		return
	}
	t.Errorf("%s: the %s section is stale; run go test ./deploy -update", operationsDoc, name)
}

var headingPattern = regexp.MustCompile(`(?m)^#{2,4} (.+)$`)

// TestOperationsDocShowsEachDashboardAndExplainsEachAlert: the panel lists
// and the alert table are generated from the JSON and the rules, and each
// alert's runbook link lands on a section of its own.
func TestOperationsDocShowsEachDashboardAndExplainsEachAlert(t *testing.T) {
	b, err := os.ReadFile(operationsDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, d := range loadDashboards(t) {
		generated(t, &doc, "panels "+d.UID, panelList(d))
	}
	rules := loadRules(t)
	generated(t, &doc, "alerts", alertTable(rules))
	if *update && doc != string(b) {
		if err := os.WriteFile(operationsDoc, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	headings := map[string]bool{}
	for _, m := range headingPattern.FindAllStringSubmatch(doc, -1) {
		headings[strings.TrimSpace(m[1])] = true
	}
	for _, r := range rules {
		if r.Alert == "" {
			continue
		}
		if want := "docs/operations.md#" + strings.ToLower(r.Alert); r.Annotations["runbook"] != want {
			t.Errorf("alert %s: runbook %q, want %q", r.Alert, r.Annotations["runbook"], want)
		}
		if !headings[r.Alert] {
			t.Errorf("%s has no section %q explaining the alert", operationsDoc, r.Alert)
		}
	}
}
