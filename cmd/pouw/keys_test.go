package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

const testBeaconHex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

func TestKeysSetupHelpSaysTrustedAndPointsToTheCeremony(t *testing.T) {
	out, err := run(t, "keys", "setup", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"TRUSTED", "forge proofs", "pouw keys ceremony"} {
		if !strings.Contains(out, want) {
			t.Errorf("pouw keys setup --help lacks %q:\n%s", want, out)
		}
	}
	out, err = run(t, "keys", "ceremony", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"phase1", "intent", "aggregate", "finalize", "--beacon", "TRUSTED"} {
		if !strings.Contains(out, want) {
			t.Errorf("pouw keys ceremony --help lacks %q:\n%s", want, out)
		}
	}
}

// runJSON runs pouw with --json and decodes its standard output (the
// progress log goes to standard error).
func runJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	root := newRootCmd()
	root.SetArgs(append(args, "--json"))
	var out, log bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&log)
	if err := root.Execute(); err != nil {
		t.Fatalf("pouw %v: %v\n%s", args, err, log.String())
	}
	if err := json.Unmarshal(out.Bytes(), v); err != nil {
		t.Fatalf("pouw %v: %v\n%s", args, err, out.String())
	}
}

func TestKeysCeremonyPhase1Flow(t *testing.T) {
	dir := t.TempDir()
	f := func(name string) string { return filepath.Join(dir, name) }
	runJSON(t, &map[string]any{}, "keys", "ceremony", "phase1", "init", "--curve", "bls12-377", "--size", "2^3", "--out", f("p.0"))
	var hashes []string
	for i, in := range []string{"p.0", "p.1"} {
		var info struct {
			Index int    `json:"index"`
			Hash  string `json:"hash"`
		}
		runJSON(t, &info, "keys", "ceremony", "phase1", "contribute", "--in", f(in), "--out", f([]string{"p.1", "p.2"}[i]))
		if info.Index != i+1 || len(info.Hash) != 64 {
			t.Fatalf("contribution %d: %+v", i+1, info)
		}
		hashes = append(hashes, info.Hash)
	}
	out, err := run(t, "keys", "ceremony", "phase1", "verify", f("p.1"), f("p.2"))
	if err != nil || !strings.Contains(out, "2 contribution(s) verified") || !strings.Contains(out, hashes[1]) {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	out, err = run(t, "keys", "ceremony", "phase1", "seal", "--beacon", testBeaconHex, "--out", f("p.srs"), f("p.1"), f("p.2"))
	if err != nil || !strings.Contains(out, "transcript BLAKE3") {
		t.Fatalf("seal: %v\n%s", err, out)
	}
	out, err = run(t, "keys", "ceremony", "phase1", "verify", "--beacon", testBeaconHex, "--srs", f("p.srs"), f("p.1"), f("p.2"))
	if err != nil || !strings.Contains(out, "is the seal of this transcript") {
		t.Fatalf("verify --srs: %v\n%s", err, out)
	}

	wantErr(t, "out of order", "keys", "ceremony", "phase1", "verify", f("p.2"), f("p.1"))
	wantErr(t, "not the seal", "keys", "ceremony", "phase1", "verify", "--beacon", "ff"+testBeaconHex[2:], "--srs", f("p.srs"), f("p.1"), f("p.2"))
	wantErr(t, "--beacon: required", "keys", "ceremony", "phase1", "seal", "--out", f("x"), f("p.1"))
	wantErr(t, "--beacon: aggregate: ceremony: beacon of 2 bytes", "keys", "ceremony", "phase1", "seal", "--beacon", "abcd", "--out", f("x"), f("p.1"))
	wantErr(t, "--beacon and --srs go together", "keys", "ceremony", "phase1", "verify", "--srs", f("p.srs"), f("p.1"))
	wantErr(t, "this command contributes to intent-phase2", "keys", "ceremony", "intent", "contribute", "--in", f("p.2"), "--out", f("x"))
	wantErr(t, "a srs file where a phase1 file was expected", "keys", "ceremony", "phase1", "verify", f("p.srs"))
	wantErr(t, "--curve", "keys", "ceremony", "phase1", "init", "--curve", "bn254", "--out", f("x"))
	wantErr(t, "--size", "keys", "ceremony", "phase1", "init", "--curve", "bw6-761", "--size", "100", "--out", f("x"))
	wantErr(t, "no such file", "keys", "ceremony", "phase1", "contribute", "--in", f("missing"), "--out", f("x"))
}

func TestKeysCeremonyIntentInitSaysWhichSRSItNeeds(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: compiles the intent circuit")
	}
	dir := t.TempDir()
	f := func(name string) string { return filepath.Join(dir, name) }
	for _, args := range [][]string{
		{"phase1", "init", "--curve", "bls12-377", "--size", "2^3", "--out", f("p.0")},
		{"phase1", "contribute", "--in", f("p.0"), "--out", f("p.1")},
		{"phase1", "seal", "--beacon", testBeaconHex, "--out", f("bls.srs"), f("p.1")},
	} {
		if out, err := run(t, append([]string{"keys", "ceremony"}, args...)...); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	wantErr(t, "needs an SRS of 2^", "keys", "ceremony", "intent", "init", "--srs", f("bls.srs"), "--steps", "256", "--k", "2", "--out", f("i.0"))
	wantErr(t, "a srs file where a intent-keys file was expected", "keys", "ceremony", "aggregate", "init", "--srs", f("bls.srs"), "--intent", f("bls.srs"), "--out", f("a.0"))
}
