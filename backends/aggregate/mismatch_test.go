package aggregate

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	fr377 "github.com/consensys/gnark-crypto/ecc/bls12-377/fr"
	"github.com/consensys/gnark/backend/groth16"
	"github.com/consensys/gnark/frontend"
	"github.com/consensys/gnark/frontend/cs/r1cs"

	"github.com/pouwfarm/pouwfarm/backends"
)

// otherIntentKeys is a second, independent intent key for the test
// parameters (its own setup), cached beside the test keys.
func otherIntentKeys(t *testing.T) *Keys {
	t.Helper()
	shared := sharedKeys(t)
	dir := filepath.Join(filepath.Dir(shared.dir), "other-intent")
	cs, err := frontend.Compile(innerCurve.ScalarField(), r1cs.NewBuilder, newIntentCircuit(testParams))
	if err != nil {
		t.Fatal(err)
	}
	ch, err := circuitHash(cs)
	if err != nil {
		t.Fatal(err)
	}
	k := &Keys{Params: testParams, dir: dir, intentCircuit: ch}
	pk := &proverKeys{intentCS: cs, intentPK: groth16.NewProvingKey(innerCurve)}
	vk := groth16.NewVerifyingKey(innerCurve)
	stamp, _ := os.ReadFile(filepath.Join(dir, "circuit"))
	if string(stamp) != ch.String() ||
		readFile(filepath.Join(dir, fileIntentPK), pk.intentPK.UnsafeReadFrom) != nil ||
		readFile(filepath.Join(dir, fileIntentVK), vk.ReadFrom) != nil {
		if pk.intentPK, vk, err = groth16.Setup(cs); err != nil {
			t.Fatal(err)
		}
		_ = os.MkdirAll(dir, 0o755)
		if err := errors.Join(
			writeFile(filepath.Join(dir, fileIntentPK), pk.intentPK.WriteRawTo),
			writeFile(filepath.Join(dir, fileIntentVK), vk.WriteTo),
			os.WriteFile(filepath.Join(dir, "circuit"), []byte(ch.String()), 0o644),
		); err != nil {
			t.Fatal(err)
		}
	}
	k.intentVK = vk
	if k.IntentKeyID, err = keyID(kindIntent, vk); err != nil {
		t.Fatal(err)
	}
	k.prover = pk
	k.once.Do(func() {})
	return k
}

func TestProofsOfAnotherKeyAreRefused(t *testing.T) {
	b := testBackend(t)
	ks := b.keys[0]
	other := otherIntentKeys(t)
	if other.IntentKeyID == ks.IntentKeyID {
		t.Fatal("two setups gave the same key")
	}
	ctx := context.Background()
	tr := execute(t, fibSrc, 6)
	st := macroStatement(t, tr, "job-x", "prover-1")
	ss, err := intentStatements(st)
	if err != nil {
		t.Fatal(err)
	}
	gp, d, err := b.proveIntent(ctx, other, tr, 0, &ss[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyIntent(other, gp, d); err != nil {
		t.Fatalf("proof does not verify under its own key: %v", err)
	}
	foreign, err := encodeProof(kindIntent, other.IntentKeyID, gp)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Verify(ctx, st, foreign); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("proof of an unloaded key: got %v, want ErrKeyMismatch", err)
	}
	// Labelled with the loaded key's id, it is checked against that key and fails.
	disguised, err := encodeProof(kindIntent, ks.IntentKeyID, gp)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Verify(ctx, st, disguised); !errors.Is(err, backends.ErrProofRejected) {
		t.Errorf("disguised proof: got %v, want ErrProofRejected", err)
	}
	stB, pB := proveMacro(t, b, execute(t, fibSrc, 2), "job-y")
	for name, p := range map[string][]byte{"foreign": foreign, "disguised": disguised} {
		if _, err := b.Aggregate(ctx, batchStatement("agg", "p"), []backends.Statement{st, stB}, [][]byte{p, pB}); !errors.Is(err, backends.ErrProofRejected) {
			t.Errorf("aggregating a %s child: got %v", name, err)
		}
	}
	// The aggregation circuit fixes the intent key: with the native checks
	// bypassed the other key's proof still does not satisfy it.
	eB, err := decodeProof(pB)
	if err != nil {
		t.Fatal(err)
	}
	ssB, _ := intentStatements(stB)
	dB, _ := ssB[0].digest(ks.Params)
	if _, err := b.aggregate(ctx, ks, batchStatement("agg", "p"), []groth16.Proof{gp, eB.proof}, []fr377.Element{d, dB}); err == nil || !strings.Contains(err.Error(), "constraint") {
		t.Errorf("aggregation circuit with another key's child: got %v", err)
	}
}

func TestLoadKeysRefusesMismatchedDirectories(t *testing.T) {
	ks := sharedKeys(t)
	copyDir := func(t *testing.T) string {
		d := t.TempDir()
		for _, f := range []string{fileManifest, fileIntentVK, fileAggVK} {
			b, err := os.ReadFile(filepath.Join(ks.dir, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(d, f), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	d := copyDir(t)
	if _, err := LoadKeys(d); err != nil {
		t.Fatalf("copy of good keys: %v", err)
	}
	for name, mutate := range map[string]func(d string){
		"swapped verifying keys": func(d string) {
			a, _ := os.ReadFile(filepath.Join(d, fileIntentVK))
			_ = os.WriteFile(filepath.Join(d, fileAggVK), a, 0o644)
		},
		"manifest key id": func(d string) {
			m, _ := os.ReadFile(filepath.Join(d, fileManifest))
			_ = os.WriteFile(filepath.Join(d, fileManifest), []byte(strings.Replace(string(m), ks.IntentKeyID.String(), ks.AggKeyID.String(), 1)), 0o644)
		},
		"manifest format": func(d string) {
			m, _ := os.ReadFile(filepath.Join(d, fileManifest))
			_ = os.WriteFile(filepath.Join(d, fileManifest), []byte(strings.Replace(string(m), manifestFormat, "other", 1)), 0o644)
		},
		"flipped verifying key byte": func(d string) {
			a, _ := os.ReadFile(filepath.Join(d, fileIntentVK))
			a = slices.Clone(a)
			a[len(a)/2] ^= 1
			_ = os.WriteFile(filepath.Join(d, fileIntentVK), a, 0o644)
		},
	} {
		d := copyDir(t)
		mutate(d)
		if _, err := LoadKeys(d); !errors.Is(err, ErrKeyMismatch) {
			t.Errorf("%s: got %v, want ErrKeyMismatch", name, err)
		}
	}
	if _, err := LoadKeys(t.TempDir()); !errors.Is(err, ErrNoKeys) {
		t.Errorf("empty directory: got %v, want ErrNoKeys", err)
	}
	// Keys whose params differ from their circuits (a hand-edited manifest)
	// fail CheckCircuits.
	p := ks.Params
	p.ProgLen++
	bad := &Keys{Params: p, dir: ks.dir, intentVK: ks.intentVK, intentCircuit: ks.intentCircuit, aggCircuit: ks.aggCircuit}
	if err := bad.CheckCircuits(); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("params not matching the circuits: got %v", err)
	}
}
