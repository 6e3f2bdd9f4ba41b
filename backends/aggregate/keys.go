package aggregate

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/consensys/gnark-crypto/ecc"
	"github.com/consensys/gnark/backend/groth16"
	"github.com/consensys/gnark/constraint"
	"github.com/consensys/gnark/frontend"
	"github.com/consensys/gnark/frontend/cs/r1cs"
	"github.com/consensys/gnark/std/algebra/native/sw_bls12377"
	stdgroth16 "github.com/consensys/gnark/std/recursion/groth16"
	"github.com/zeebo/blake3"

	"github.com/pouwfarm/pouwfarm/pouw"
)

// Curves of the 2-chain: intent proofs on BLS12-377, aggregate proofs on
// BW6-761.
var (
	innerCurve = ecc.BLS12_377
	outerCurve = ecc.BW6_761
)

// manifestFormat names the key directory layout (docs/aggregate.md, Keys).
const manifestFormat = "pouw-aggregate-keys-v1"

// Key directory files.
const (
	fileManifest = "manifest.json"
	fileIntentCS = "intent.r1cs"
	fileIntentPK = "intent.pk"
	fileIntentVK = "intent.vk"
	fileAggCS    = "aggregate.r1cs"
	fileAggPK    = "aggregate.pk"
	fileAggVK    = "aggregate.vk"
)

// manifest is the key directory's description; key ids are checked against
// the verifying keys on load.
type manifest struct {
	Format               string    `json:"format"`
	Params               Params    `json:"params"`
	IntentKeyID          pouw.Hash `json:"intent_key_id"`
	AggregateKeyID       pouw.Hash `json:"aggregate_key_id"`
	IntentCircuit        pouw.Hash `json:"intent_circuit"`    // BLAKE3 of the compiled constraint system
	AggregateCircuit     pouw.Hash `json:"aggregate_circuit"` // same, for the aggregation circuit
	IntentConstraints    int       `json:"intent_constraints"`
	AggregateConstraints int       `json:"aggregate_constraints"`
	Setup                string    `json:"setup"`
	// Ceremony records the mpcsetup ceremony that made the keys (absent
	// for single-party keys).
	Ceremony *CeremonyRecord `json:"ceremony,omitempty"`
	Gnark    string          `json:"gnark"`
}

// setupKind says who made the keys; Setup's keys are single-party.
const setupSingleParty = "single-party groth16.Setup: TRUSTED, not for production (docs/aggregate.md)"

// Keys is one key set: an intent circuit of a size class and the
// aggregation circuit over K of its proofs. Verifying keys are loaded at
// once; proving keys and constraint systems when first needed.
type Keys struct {
	Params      Params
	IntentKeyID pouw.Hash // BLAKE3 of the intent verifying key
	AggKeyID    pouw.Hash // BLAKE3 of the aggregate verifying key
	// Constraint counts, for estimates and reports.
	IntentConstraints, AggConstraints int
	// Setup says who made the keys (the manifest's "setup"); Ceremony is
	// set for keys from an mpcsetup ceremony.
	Setup    string
	Ceremony *CeremonyRecord

	intentVK, aggVK groth16.VerifyingKey
	// BLAKE3 of the constraint systems the keys were made for.
	intentCircuit, aggCircuit pouw.Hash

	dir    string
	once   sync.Once
	prover *proverKeys
	perr   error
}

type proverKeys struct {
	intentCS, aggCS constraint.ConstraintSystem
	intentPK, aggPK groth16.ProvingKey
}

// keyID is BLAKE3("pouw-aggregate-key-v1" ‖ kind ‖ verifying key encoding).
func keyID(kind byte, vk groth16.VerifyingKey) (pouw.Hash, error) {
	var b bytes.Buffer
	if _, err := vk.WriteTo(&b); err != nil {
		return pouw.Hash{}, err
	}
	h := blake3.New()
	_, _ = h.Write([]byte("pouw-aggregate-key-v1"))
	_, _ = h.Write([]byte{kind})
	_, _ = h.Write(b.Bytes())
	var id pouw.Hash
	copy(id[:], h.Sum(nil))
	return id, nil
}

// SetupStats reports what Setup did.
type SetupStats struct {
	IntentConstraints, AggConstraints int
	IntentCompile, IntentSetup        time.Duration
	AggCompile, AggSetup              time.Duration
}

// Setup compiles both circuits for p, runs a single-party Groth16 setup for
// each (TRUSTED: the randomness is known to this process while it runs) and
// writes the key directory dir. It checks ctx between the steps; a step
// itself cannot be interrupted.
func Setup(ctx context.Context, p Params, dir string, log *slog.Logger) (*Keys, SetupStats, error) {
	var st SetupStats
	if err := p.Validate(); err != nil {
		return nil, st, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, st, err
	}
	step := func(d *time.Duration, what string, f func() error) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		t0 := time.Now()
		log.Info("aggregate setup", "step", what, "params", p.String())
		err := f()
		*d = time.Since(t0)
		if err != nil {
			return fmt.Errorf("aggregate setup: %s: %w", what, err)
		}
		return nil
	}
	pk := &proverKeys{}
	k := &Keys{Params: p, dir: dir}
	var err error
	if err = step(&st.IntentCompile, "compile intent circuit", func() error {
		pk.intentCS, err = frontend.Compile(innerCurve.ScalarField(), r1cs.NewBuilder, newIntentCircuit(p))
		return err
	}); err != nil {
		return nil, st, err
	}
	if err = step(&st.IntentSetup, "setup intent circuit", func() error {
		pk.intentPK, k.intentVK, err = groth16.Setup(pk.intentCS)
		return err
	}); err != nil {
		return nil, st, err
	}
	if err = step(&st.AggCompile, "compile aggregation circuit", func() error {
		vk, err := stdgroth16.ValueOfVerifyingKeyFixed[sw_bls12377.G1Affine, sw_bls12377.G2Affine, sw_bls12377.GT](k.intentVK)
		if err != nil {
			return err
		}
		pk.aggCS, err = frontend.Compile(outerCurve.ScalarField(), r1cs.NewBuilder, newAggCircuit(p, pk.intentCS, vk))
		return err
	}); err != nil {
		return nil, st, err
	}
	if err = step(&st.AggSetup, "setup aggregation circuit", func() error {
		pk.aggPK, k.aggVK, err = groth16.Setup(pk.aggCS)
		return err
	}); err != nil {
		return nil, st, err
	}
	st.IntentConstraints, st.AggConstraints = pk.intentCS.GetNbConstraints(), pk.aggCS.GetNbConstraints()
	k.IntentConstraints, k.AggConstraints = st.IntentConstraints, st.AggConstraints
	if k.IntentKeyID, err = keyID(1, k.intentVK); err != nil {
		return nil, st, err
	}
	if k.AggKeyID, err = keyID(2, k.aggVK); err != nil {
		return nil, st, err
	}
	if k.intentCircuit, err = circuitHash(pk.intentCS); err != nil {
		return nil, st, err
	}
	if k.aggCircuit, err = circuitHash(pk.aggCS); err != nil {
		return nil, st, err
	}
	k.prover = pk
	k.once.Do(func() {})
	if err := writeKeyDir(k, pk, setupSingleParty, nil); err != nil {
		return nil, st, err
	}
	log.Info("aggregate keys written", "dir", dir, "intent_key_id", k.IntentKeyID, "aggregate_key_id", k.AggKeyID,
		"intent_constraints", k.IntentConstraints, "aggregate_constraints", k.AggConstraints)
	return k, st, nil
}

// writeKeyDir writes k's directory: constraint systems, keys, and the
// manifest last (a directory without one is unfinished). setup says who made
// the keys; cer, when not nil, records the ceremony that did.
func writeKeyDir(k *Keys, pk *proverKeys, setup string, cer *CeremonyRecord) error {
	for _, f := range []struct {
		name string
		w    func(io.Writer) (int64, error)
	}{
		{fileIntentCS, pk.intentCS.WriteTo}, {fileIntentPK, pk.intentPK.WriteRawTo}, {fileIntentVK, k.intentVK.WriteTo},
		{fileAggCS, pk.aggCS.WriteTo}, {fileAggPK, pk.aggPK.WriteRawTo}, {fileAggVK, k.aggVK.WriteTo},
	} {
		if err := writeFile(filepath.Join(k.dir, f.name), f.w); err != nil {
			return err
		}
	}
	m := manifest{
		Format: manifestFormat, Params: k.Params, IntentKeyID: k.IntentKeyID, AggregateKeyID: k.AggKeyID,
		IntentCircuit: k.intentCircuit, AggregateCircuit: k.aggCircuit,
		IntentConstraints: k.IntentConstraints, AggregateConstraints: k.AggConstraints,
		Setup: setup, Ceremony: cer, Gnark: "v0.16.0",
	}
	mb, _ := json.MarshalIndent(m, "", "  ")
	if err := writeFile(filepath.Join(k.dir, fileManifest), func(w io.Writer) (int64, error) {
		n, err := w.Write(append(mb, '\n'))
		return int64(n), err
	}); err != nil {
		return err
	}
	k.Setup, k.Ceremony = setup, cer
	return nil
}

func writeFile(path string, w func(io.Writer) (int64, error)) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	if _, err := w(bw); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// maxManifestBytes bounds the manifest read.
const maxManifestBytes = 1 << 16

// LoadKeys reads the verifying side of a key directory and checks that the
// verifying keys hash to the manifest's key ids. Proving material is read
// on first use.
func LoadKeys(dir string) (*Keys, error) {
	f, err := os.Open(filepath.Join(dir, fileManifest))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrNoKeys, dir, err)
	}
	defer f.Close()
	var m manifest
	if err := json.NewDecoder(io.LimitReader(f, maxManifestBytes)).Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %s: manifest: %w", ErrKeyMismatch, dir, err)
	}
	if m.Format != manifestFormat {
		return nil, fmt.Errorf("%w: %s: format %q (want %q)", ErrKeyMismatch, dir, m.Format, manifestFormat)
	}
	if err := m.Params.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	k := &Keys{Params: m.Params, dir: dir, IntentConstraints: m.IntentConstraints, AggConstraints: m.AggregateConstraints,
		intentCircuit: m.IntentCircuit, aggCircuit: m.AggregateCircuit, Setup: m.Setup, Ceremony: m.Ceremony}
	for _, v := range []struct {
		name  string
		curve ecc.ID
		kind  byte
		want  pouw.Hash
		dst   *groth16.VerifyingKey
		id    *pouw.Hash
	}{
		{fileIntentVK, innerCurve, 1, m.IntentKeyID, &k.intentVK, &k.IntentKeyID},
		{fileAggVK, outerCurve, 2, m.AggregateKeyID, &k.aggVK, &k.AggKeyID},
	} {
		vk := groth16.NewVerifyingKey(v.curve)
		if err := readFile(filepath.Join(dir, v.name), vk.ReadFrom); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrKeyMismatch, err)
		}
		id, err := keyID(v.kind, vk)
		if err != nil {
			return nil, err
		}
		if id != v.want {
			return nil, fmt.Errorf("%w: %s hashes to %s, manifest says %s", ErrKeyMismatch, v.name, id, v.want)
		}
		*v.dst, *v.id = vk, id
	}
	return k, nil
}

func readFile(path string, r func(io.Reader) (int64, error)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := r(bufio.NewReaderSize(f, 1<<20)); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}

// proving returns the proving material, reading it on first use. Proving
// keys are read without point checks (UnsafeReadFrom): they come from the
// operator's own key directory, and a corrupted key only yields proofs that
// do not verify.
func (k *Keys) proving() (*proverKeys, error) {
	k.once.Do(func() {
		pk := &proverKeys{
			intentCS: groth16.NewCS(innerCurve), aggCS: groth16.NewCS(outerCurve),
			intentPK: groth16.NewProvingKey(innerCurve), aggPK: groth16.NewProvingKey(outerCurve),
		}
		for _, f := range []struct {
			name string
			r    func(io.Reader) (int64, error)
		}{
			{fileIntentCS, pk.intentCS.ReadFrom}, {fileIntentPK, pk.intentPK.UnsafeReadFrom},
			{fileAggCS, pk.aggCS.ReadFrom}, {fileAggPK, pk.aggPK.UnsafeReadFrom},
		} {
			if err := readFile(filepath.Join(k.dir, f.name), f.r); err != nil {
				k.perr = fmt.Errorf("%w: %w", ErrNoKeys, err)
				return
			}
		}
		k.prover = pk
	})
	return k.prover, k.perr
}

// circuitHash is BLAKE3 of a constraint system's encoding (deterministic for
// a given circuit and gnark version).
func circuitHash(cs constraint.ConstraintSystem) (pouw.Hash, error) {
	h := blake3.New()
	if _, err := cs.WriteTo(h); err != nil {
		return pouw.Hash{}, err
	}
	var id pouw.Hash
	copy(id[:], h.Sum(nil))
	return id, nil
}

// CheckCircuits compiles both circuits of k's parameters as this binary
// defines them and checks they are the circuits the keys were made for
// (after an upgrade, stale keys would only make proofs fail). It takes a
// few seconds.
func (k *Keys) CheckCircuits() error {
	ics, err := frontend.Compile(innerCurve.ScalarField(), r1cs.NewBuilder, newIntentCircuit(k.Params))
	if err != nil {
		return err
	}
	if h, err := circuitHash(ics); err != nil {
		return err
	} else if h != k.intentCircuit {
		return fmt.Errorf("%w: %s: the intent circuit of this binary differs from the keys' (set up again)", ErrKeyMismatch, k.dir)
	}
	vk, err := stdgroth16.ValueOfVerifyingKeyFixed[sw_bls12377.G1Affine, sw_bls12377.G2Affine, sw_bls12377.GT](k.intentVK)
	if err != nil {
		return err
	}
	acs, err := frontend.Compile(outerCurve.ScalarField(), r1cs.NewBuilder, newAggCircuit(k.Params, ics, vk))
	if err != nil {
		return err
	}
	if h, err := circuitHash(acs); err != nil {
		return err
	} else if h != k.aggCircuit {
		return fmt.Errorf("%w: %s: the aggregation circuit of this binary differs from the keys' (set up again)", ErrKeyMismatch, k.dir)
	}
	return nil
}
