package coordinator_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestSecurityDocNamesOnlyTestsThatExist: every test or fuzz target that
// docs/security.md gives as the proof of a defence exists in the tree
// (conformance subtests as storetest cases), so the threat model cannot
// point at a test that was renamed or removed.
func TestSecurityDocNamesOnlyTestsThatExist(t *testing.T) {
	doc, err := os.ReadFile("../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	var src strings.Builder
	err = filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != "..") {
			return filepath.SkipDir // .git, .review: not part of the suite
		}
		if !d.IsDir() && (strings.HasSuffix(path, "_test.go") || strings.Contains(filepath.ToSlash(path), "/storetest/")) {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			src.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	all := src.String()
	names := regexp.MustCompile("`[^`]*\\b((?:Test|Fuzz)[A-Z][A-Za-z0-9]*)(/[A-Za-z0-9_-]+)?").FindAllStringSubmatch(string(doc), -1)
	if len(names) < 30 {
		t.Fatalf("found only %d test names in docs/security.md; the pattern is broken", len(names))
	}
	for _, m := range names {
		name, sub := m[1], strings.TrimPrefix(m[2], "/")
		if !strings.Contains(all, "func "+name+"(") {
			t.Errorf("docs/security.md names %s, which no test file defines", name)
			continue
		}
		if sub == "" {
			continue
		}
		if name == "TestConformance" {
			if !strings.Contains(all, `add("`+sub+`"`) {
				t.Errorf("docs/security.md names conformance case %s, which storetest does not add", sub)
			}
		} else if !strings.Contains(all, `"`+sub+`"`) {
			t.Errorf("docs/security.md names subtest %s/%s, which does not exist", name, sub)
		}
	}
}
