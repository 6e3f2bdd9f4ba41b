package bench_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pouwfarm/pouwfarm/bench"
)

// benchmarkFuncs lists every Benchmark function declared in the module's
// test files, by the directory (relative to the module root) that holds it.
func benchmarkFuncs(t *testing.T, root string) map[string][]string {
	t.Helper()
	funcs := map[string][]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != root && (strings.HasPrefix(n, ".") || n == "testdata" || n == "shared") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil && strings.HasPrefix(fd.Name.Name, "Benchmark") {
				funcs[fd.Name.Name] = append(funcs[fd.Name.Name], filepath.ToSlash(rel))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return funcs
}

var (
	// Any benchmark name in a table row: its function and sub-benchmarks.
	tableName = regexp.MustCompile(`Benchmark[A-Za-z0-9_]+(/[^\s|` + "`" + `()]+)?`)
	// A backticked name in a row of the generated tables, with the package
	// column beside it.
	ticked = regexp.MustCompile("`(Benchmark[^`]+)`")
)

// checkReadme returns what is wrong with the benchmark names of a README's
// tables: functions that no test file declares, and sub-benchmarks of this
// package that no case (default or full) makes.
func checkReadme(readme string, funcs map[string][]string) []string {
	var bad []string
	cases := map[string]bool{}
	for _, c := range bench.Cases(true) {
		cases[c.Name()] = true
	}
	depths := map[string]bool{}
	for _, d := range scaleDepths() {
		depths[fmt.Sprintf("redis/pending=%d", d)] = true
	}
	for i, line := range strings.Split(readme, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "|") {
			continue
		}
		for _, name := range tableName.FindAllString(line, -1) {
			fn, _, _ := strings.Cut(name, "/")
			if len(funcs[fn]) == 0 {
				bad = append(bad, fmt.Sprintf("line %d: %s: no test file declares %s", i+1, name, fn))
			}
		}
		for _, m := range ticked.FindAllStringSubmatch(line, -1) {
			fn, sub, ok := strings.Cut(m[1], "/")
			if !ok || !slices.Contains(funcs[fn], "bench") {
				continue
			}
			switch fn {
			case "BenchmarkProve", "BenchmarkVerify":
				if !cases[sub] {
					bad = append(bad, fmt.Sprintf("line %d: %s: bench.Cases has no case %q", i+1, m[1], sub))
				}
			case "BenchmarkClaimScale":
				if !depths[sub] {
					bad = append(bad, fmt.Sprintf("line %d: %s: BenchmarkClaimScale has no depth %q", i+1, m[1], sub))
				}
			}
		}
	}
	return bad
}

// TestReadmeNamesOnlyBenchmarksThatExist keeps bench/README.md from going
// stale silently: every benchmark its tables name must exist in the code.
func TestReadmeNamesOnlyBenchmarksThatExist(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatalf("bench/README.md: %v (bench/run.sh writes it)", err)
	}
	funcs := benchmarkFuncs(t, "..")
	if len(funcs["BenchmarkProve"]) == 0 {
		t.Fatal("found no BenchmarkProve in the module: the scan is broken")
	}
	n := len(tableName.FindAllString(string(b), -1))
	if n == 0 {
		t.Fatal("bench/README.md names no benchmark in a table")
	}
	for _, p := range checkReadme(string(b), funcs) {
		t.Error(p)
	}
}

// TestReadmeCheckCatchesStaleNames shows the check fails on a renamed
// benchmark, a case that no longer exists and a removed depth.
func TestReadmeCheckCatchesStaleNames(t *testing.T) {
	funcs := benchmarkFuncs(t, "..")
	for name, row := range map[string]string{
		"unknown function": "| `BenchmarkNoSuchThing/x` | coordinator/api | ... |",
		"unknown case":     "| prove benchmark | `BenchmarkProve/stark/macro/steps=12345` |",
		"unknown tier":     "| `BenchmarkVerify/stark/huge/steps=16` |",
		"unknown depth":    "| `BenchmarkClaimScale/redis/pending=7` | 7 |",
		"unticked unknown": "| BenchmarkRenamedAway/workers=1 | 3000 jobs |",
	} {
		if got := checkReadme(row, funcs); len(got) == 0 {
			t.Errorf("%s: %q passed the check", name, row)
		}
	}
	ok := "| `BenchmarkProve/stark/macro/steps=4096` | `BenchmarkClaimScale/redis/pending=1000` | BenchmarkRedisClaimSubmit/workers=8 |"
	if got := checkReadme(ok, funcs); len(got) != 0 {
		t.Errorf("existing names flagged: %v", got)
	}
}

// TestDefaultCasesMakeTracesOfTheirSize checks every default case's trace
// has the rows its name says (cheap: no proving).
func TestDefaultCasesMakeTracesOfTheirSize(t *testing.T) {
	for _, c := range bench.Cases(false) {
		tr, err := bench.Trace(c)
		if err != nil {
			t.Errorf("%s: %v", c.Name(), err)
			continue
		}
		if tr.Header.Tier != c.Tier {
			t.Errorf("%s: trace tier %v", c.Name(), tr.Header.Tier)
		}
		got, err := bench.ParseName(c.Name())
		if err != nil || got.Backend != c.Backend || got.Tier != c.Tier || got.Rows != c.Rows {
			t.Errorf("ParseName(%q) = %+v, %v", c.Name(), got, err)
		}
	}
	if _, err := bench.ParseName("stark/macro"); err == nil {
		t.Error("ParseName accepted a name without steps=")
	}
}
