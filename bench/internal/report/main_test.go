package main

import (
	"strings"
	"testing"
)

func TestParseGroupsRunsByPackageAndNameWithoutProcs(t *testing.T) {
	raw := `goos: linux
pkg: github.com/pouwfarm/pouwfarm/bench
BenchmarkProve/stark/macro/steps=4096-2   1   586299994 ns/op   0.2425 cpu-s/op   62167 proof-B
BenchmarkProve/stark/macro/steps=4096-2   1   600000000 ns/op   0.2500 cpu-s/op   62167 proof-B
--- FAIL: BenchmarkSomething
pkg: github.com/pouwfarm/pouwfarm/devnet
BenchmarkFarmThroughput/stark/macro/steps=1024-16   10   201262765 ns/op   0.97 ratio
PASS
`
	res, err := parse(strings.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		pkg, name, unit string
		want            []float64
	}{
		{"bench", "BenchmarkProve/stark/macro/steps=4096", "ns/op", []float64{586299994, 600000000}},
		{"bench", "BenchmarkProve/stark/macro/steps=4096", "proof-B", []float64{62167, 62167}},
		{"devnet", "BenchmarkFarmThroughput/stark/macro/steps=1024", "ratio", []float64{0.97}},
		{"bench", "BenchmarkFarmThroughput/stark/macro/steps=1024", "ratio", nil},
	} {
		got := res.vals(tc.pkg, tc.name, tc.unit)
		if len(got) != len(tc.want) {
			t.Errorf("%s %s %s: got %v, want %v", tc.pkg, tc.name, tc.unit, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s %s %s: got %v, want %v", tc.pkg, tc.name, tc.unit, got, tc.want)
			}
		}
	}
	if _, err := parse(strings.NewReader("pkg: x\nBenchmarkX-2 1 notanumber ns/op\n")); err == nil {
		t.Error("a malformed value parsed")
	}
}

func TestDemoteLeavesCodeFencesAlone(t *testing.T) {
	in := "# Title\n\n## Section\n\n```sh\n# a shell comment\ngo test\n```\n### Sub\n"
	want := "### Title\n\n#### Section\n\n```sh\n# a shell comment\ngo test\n```\n##### Sub\n"
	if got := demote(in); got != want {
		t.Errorf("demote:\n%s\nwant:\n%s", got, want)
	}
}

func TestFigShowsMeanAndLargestDeviation(t *testing.T) {
	for _, tc := range []struct {
		v    []float64
		want string
	}{
		{nil, "—"},
		{[]float64{100}, "100"},
		{[]float64{90, 110}, "100 ±10%"},
	} {
		if got := fig(tc.v, num); got != tc.want {
			t.Errorf("fig(%v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}
