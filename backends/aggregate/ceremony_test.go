package aggregate

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/consensys/gnark-crypto/ecc"
	bls12377 "github.com/consensys/gnark-crypto/ecc/bls12-377"
	"github.com/consensys/gnark/backend/groth16"
	m377 "github.com/consensys/gnark/backend/groth16/bls12-377/mpcsetup"
	"github.com/consensys/gnark/frontend"
	"github.com/consensys/gnark/frontend/cs/r1cs"
	"github.com/consensys/gnark/std/algebra/native/sw_bls12377"
	"github.com/consensys/gnark/std/math/emulated"
	stdgroth16 "github.com/consensys/gnark/std/recursion/groth16"
	"github.com/consensys/gnark/test"

	"github.com/pouwfarm/pouwfarm/backends"
)

// testBeacon stands for a public random beacon (e.g. a block hash).
const testBeacon = "6d0a3c7e9b1f24c58e7a01d2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6"

func beacon(t testing.TB) []byte {
	t.Helper()
	b, err := ParseBeacon(testBeacon)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// contributeN runs n contributions from start and returns their files.
func contributeN(t testing.TB, dir, prefix, start string, n int) []string {
	t.Helper()
	var files []string
	in := start
	for i := 1; i <= n; i++ {
		out := filepath.Join(dir, fmt.Sprintf("%s.%d", prefix, i))
		info, err := Contribute(context.Background(), in, out, nil)
		if err != nil {
			t.Fatal(err)
		}
		if info.Index != i || info.Hash.IsZero() {
			t.Fatalf("contribution %d: info %+v", i, info)
		}
		files = append(files, out)
		in = out
	}
	return files
}

// phase1 runs a powers-of-τ ceremony of n contributions and seals it.
func phase1(t testing.TB, dir string, curve ecc.ID, logN, n int) (srs string, contribs []string) {
	t.Helper()
	name := fmt.Sprintf("p1-%d-%d", curveByte(curve), logN)
	start := filepath.Join(dir, name+".0")
	if _, err := Phase1Init(curve, logN, start); err != nil {
		t.Fatal(err)
	}
	contribs = contributeN(t, dir, name, start, n)
	srs = filepath.Join(dir, name+".srs")
	r, _, err := Phase1Seal(context.Background(), contribs, beacon(t), srs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Contributions) != n || r.Transcript.IsZero() {
		t.Fatalf("seal report %+v", r)
	}
	return srs, contribs
}

// phase1Concurrent is phase1 for a goroutine other than the test's: it
// reports failures with t.Error and returns "" on one.
func phase1Concurrent(t testing.TB, dir string, curve ecc.ID, logN, n int) string {
	name := fmt.Sprintf("p1-%d-%d", curveByte(curve), logN)
	in := filepath.Join(dir, name+".0")
	if _, err := Phase1Init(curve, logN, in); err != nil {
		t.Error(err)
		return ""
	}
	var files []string
	for i := 1; i <= n; i++ {
		out := filepath.Join(dir, fmt.Sprintf("%s.%d", name, i))
		if _, err := Contribute(context.Background(), in, out, nil); err != nil {
			t.Error(err)
			return ""
		}
		files, in = append(files, out), out
	}
	srs := filepath.Join(dir, name+".srs")
	if _, _, err := Phase1Seal(context.Background(), files, beacon(t), srs, nil); err != nil {
		t.Error(err)
		return ""
	}
	return srs
}

func copyFile(t testing.TB, from, to string, edit func([]byte) []byte) string {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		b = edit(slices.Clone(b))
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return to
}

// rewrite decodes a ceremony file, lets edit change it and encodes it
// again (header fields stay consistent; only what edit changes differs).
func rewrite(t testing.TB, from, to string, kind CeremonyKind, edit func(*ceremonyFile)) string {
	t.Helper()
	return copyFile(t, from, to, func(b []byte) []byte {
		f, err := decodeCeremony(b, kind)
		if err != nil {
			t.Fatal(err)
		}
		edit(f)
		return f.encode()
	})
}

func wantCeremonyErr(t *testing.T, what string, err error, contains string) {
	t.Helper()
	if !errors.Is(err, ErrCeremony) || !strings.Contains(err.Error(), contains) {
		t.Errorf("%s: got %v, want ErrCeremony containing %q", what, err, contains)
	}
}

func TestCeremonyPhase1VerifiesAndRejectsTamperedReorderedAndForkedContributions(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	const logN = 4
	srs, c := phase1(t, dir, ecc.BLS12_377, logN, 2)

	r, err := Phase1Verify(ctx, c, beacon(t), srs, nil)
	if err != nil {
		t.Fatalf("valid transcript rejected: %v", err)
	}
	if len(r.Contributions) != 2 || r.Kind != KindPhase1 || r.LogN != logN {
		t.Fatalf("report %+v", r)
	}
	if _, err := Phase1Verify(ctx, c[:1], nil, "", nil); err != nil {
		t.Fatalf("a prefix of a valid transcript is valid: %v", err)
	}

	// Tampered: swap [τ¹]₁ and [τ²]₁ in the second contribution. The file
	// still decodes and its header still chains; only gnark's proofs can
	// tell.
	g1, g2 := bls12377.SizeOfG1AffineCompressed, bls12377.SizeOfG2AffineCompressed
	tampered := rewrite(t, c[1], filepath.Join(dir, "tampered"), KindPhase1, func(f *ceremonyFile) {
		s := f.sections[0]
		o := 3*(g1+g2) + 8 + g2 // after the proofs, N and [β]₂: [τ¹]₁, [τ²]₁
		a := slices.Clone(s[o : o+g1])
		copy(s[o:], s[o+g1:o+2*g1])
		copy(s[o+g1:], a)
	})
	// Forked: a second contribution made on top of the start instead of
	// the first, relabelled so that its header claims to follow c[0].
	fork := contributeN(t, filepath.Join(dir), "fork", filepath.Join(dir, fmt.Sprintf("p1-1-%d.0", logN)), 1)[0]
	h0 := hashOf(t, c[0])
	forged := rewrite(t, fork, filepath.Join(dir, "forged"), KindPhase1, func(f *ceremonyFile) {
		f.index, f.prev = 2, h0
	})
	_, err = Phase1Verify(ctx, []string{c[0], tampered}, nil, "", nil)
	wantCeremonyErr(t, "tampered", err, "contribution 2 does not verify")
	_, err = Phase1Verify(ctx, []string{c[0], forged}, nil, "", nil)
	wantCeremonyErr(t, "forked", err, "contribution 2 does not verify")
	_, err = Phase1Verify(ctx, []string{c[1], c[0]}, nil, "", nil)
	wantCeremonyErr(t, "reordered", err, "out of order")
	_, err = Phase1Verify(ctx, []string{c[0], fork}, nil, "", nil)
	wantCeremonyErr(t, "fork not relabelled", err, "out of order")
	_, err = Phase1Verify(ctx, []string{c[0], c[0]}, nil, "", nil)
	wantCeremonyErr(t, "duplicated", err, "out of order")
	_, err = Phase1Verify(ctx, nil, nil, "", nil)
	wantCeremonyErr(t, "empty", err, "no contributions")
	_, _, err = Phase1Seal(ctx, []string{c[0], tampered}, beacon(t), filepath.Join(dir, "bad.srs"), nil)
	wantCeremonyErr(t, "seal of a tampered transcript", err, "does not verify")

	// The SRS is the seal of this transcript with this beacon only.
	other := slices.Clone(beacon(t))
	other[0] ^= 1
	_, err = Phase1Verify(ctx, c, other, srs, nil)
	wantCeremonyErr(t, "other beacon", err, "not the seal")
	_, err = Phase1Verify(ctx, c[:1], beacon(t), srs, nil)
	wantCeremonyErr(t, "shorter transcript", err, "not the seal")
}

func hashOf(t testing.TB, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return fileHash(b)
}

// cubeCircuit is a small circuit with a BSB22 commitment, as ours have:
// X³ = Y.
type cubeCircuit struct {
	X frontend.Variable
	Y frontend.Variable `gnark:",public"`
}

func (c *cubeCircuit) Define(api frontend.API) error {
	api.AssertIsEqual(api.Mul(c.X, c.X, c.X), c.Y)
	cm, err := api.(frontend.Committer).Commit(c.X, c.Y)
	if err != nil {
		return err
	}
	api.AssertIsDifferent(cm, 0)
	return nil
}

func TestCeremonyPhase2MakesWorkingKeysAndRejectsTamperedReorderedAndForeignContributions(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	srs, _ := phase1(t, dir, ecc.BLS12_377, 5, 1) // larger than the circuit needs: truncated
	cs, err := frontend.Compile(ecc.BLS12_377.ScalarField(), r1cs.NewBuilder, &cubeCircuit{})
	if err != nil {
		t.Fatal(err)
	}
	p := testParams
	target, err := newTarget(KindIntent, cs, srs, ceremonyMeta{Circuit: "intent", Params: &p})
	if err != nil {
		t.Fatal(err)
	}
	start := filepath.Join(dir, "p2.0")
	if _, err := target.init(start); err != nil {
		t.Fatal(err)
	}
	c := contributeN(t, dir, "p2", start, 2)

	res, err := target.run(ctx, c, beacon(t), nil)
	if err != nil {
		t.Fatalf("valid transcript rejected: %v", err)
	}
	sealed := filepath.Join(dir, "p2.keys")
	if _, err := writeCeremony(sealed, res.sealed); err != nil {
		t.Fatal(err)
	}
	// The seal is reproducible: verifying again with the beacon yields the
	// same file, and another beacon does not.
	again, err := target.run(ctx, c, beacon(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := compareSealed(sealed, KindIntentKeys, again.sealed); err != nil {
		t.Fatalf("seal not reproducible: %v", err)
	}
	other := slices.Clone(beacon(t))
	other[0] ^= 1
	if otherSeal, err := target.run(ctx, c, other, nil); err != nil {
		t.Fatal(err)
	} else if err := compareSealed(sealed, KindIntentKeys, otherSeal.sealed); !errors.Is(err, ErrCeremony) {
		t.Fatalf("seal with another beacon matched: %v", err)
	}
	sk, err := readSealedKeys(sealed, KindIntentKeys, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(sk.meta.Contributions) != 2 || sk.meta.Transcript != res.Transcript || sk.meta.KeyID != res.KeyID {
		t.Fatalf("sealed record %+v, report %+v", sk.meta, res.TranscriptReport)
	}

	// The keys prove and verify, and refuse a wrong statement.
	w, err := frontend.NewWitness(&cubeCircuit{X: 3, Y: 27}, ecc.BLS12_377.ScalarField())
	if err != nil {
		t.Fatal(err)
	}
	proof, err := groth16.Prove(cs, sk.pk, w)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := w.Public()
	if err := groth16.Verify(proof, sk.vk, pub); err != nil {
		t.Fatalf("proof with ceremony keys rejected: %v", err)
	}
	wrong, _ := frontend.NewWitness(&cubeCircuit{Y: 28}, ecc.BLS12_377.ScalarField(), frontend.PublicOnly())
	if err := groth16.Verify(proof, sk.vk, wrong); err == nil {
		t.Fatal("proof verified for another public input")
	}

	// Tampered: the second contribution's first Z point replaced by the
	// second's, re-encoded with its header intact.
	tampered := rewrite(t, c[1], filepath.Join(dir, "tampered"), KindIntent, func(f *ceremonyFile) {
		var s m377.Phase2
		if _, err := s.ReadFrom(bytes.NewReader(f.sections[0])); err != nil {
			t.Fatal(err)
		}
		s.Parameters.G1.Z[0] = s.Parameters.G1.Z[1]
		f.sections[0] = encodeState(&s)
	})
	// Foreign: a contribution whose meta names another circuit.
	foreign := rewrite(t, c[1], filepath.Join(dir, "foreign"), KindIntent, func(f *ceremonyFile) {
		m := p
		m.K = 4
		f.meta = (&ceremonyMeta{Circuit: "intent", Params: &m}).encode()
	})
	for name, files := range map[string][]string{
		"tampered":   {c[0], tampered},
		"reordered":  {c[1], c[0]},
		"duplicated": {c[0], c[0]},
		"foreign":    {c[0], foreign},
	} {
		_, err := target.run(ctx, files, nil, nil)
		if !errors.Is(err, ErrCeremony) {
			t.Errorf("%s: got %v, want ErrCeremony", name, err)
		}
	}
	_, err = target.run(ctx, []string{c[0], tampered}, nil, nil)
	wantCeremonyErr(t, "tampered", err, "contribution 2 does not verify")

	// A phase-2 state cannot be read as another kind, nor contributed to
	// once sealed.
	if _, _, err := readCeremony(c[0], KindAggregate); !errors.Is(err, ErrCeremony) {
		t.Errorf("read as aggregate: %v", err)
	}
	if _, err := Contribute(ctx, sealed, filepath.Join(dir, "x"), nil); !errors.Is(err, ErrCeremony) {
		t.Errorf("contribution to sealed keys: %v", err)
	}
}

func TestCeremonyFilesAreBoundedAndMalformedOnesRefused(t *testing.T) {
	dir := t.TempDir()
	_, c := phase1(t, dir, ecc.BLS12_377, 3, 1)
	good, err := os.ReadFile(c[0])
	if err != nil {
		t.Fatal(err)
	}
	f, err := decodeCeremony(good, KindPhase1)
	if err != nil {
		t.Fatal(err)
	}
	kit, _ := kitFor(ecc.BLS12_377)
	if _, err := kit.phase1Decode(f.sections[0], f.logN); err != nil {
		t.Fatalf("valid state refused: %v", err)
	}
	set := func(off int, v ...byte) []byte { b := slices.Clone(good); copy(b[off:], v); return b }
	sectionLen := headerLen + len(f.meta) + 1
	for name, tc := range map[string]struct {
		b    []byte
		kind CeremonyKind
		want string
	}{
		"empty":          {nil, KindPhase1, "magic"},
		"magic":          {set(0, 'X'), KindPhase1, "magic"},
		"version":        {set(4, 9), KindPhase1, "version"},
		"kind":           {good, KindSRS, "where a srs file was expected"},
		"curve":          {set(6, 7), KindPhase1, "unknown curve"},
		"huge domain":    {set(7, 40), KindPhase1, "domain 2^40"},
		"huge meta":      {set(44, 0xff, 0xff, 0xff, 0xff), KindPhase1, "meta of"},
		"section count":  {set(sectionLen-1, 2), KindPhase1, "section"},
		"section length": {set(sectionLen, 0x7f), KindPhase1, "section of"},
		"truncated":      {good[:len(good)-1], KindPhase1, "section of"},
		"trailing":       {append(slices.Clone(good), 0), KindPhase1, "trailing"},
	} {
		_, err := decodeCeremony(tc.b, tc.kind)
		if !errors.Is(err, ErrCeremony) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want ErrCeremony containing %q", name, err, tc.want)
		}
	}
	// The state's own domain must be the header's: a 2^3 state labelled
	// 2^4 is refused before gnark allocates for it.
	if _, err := kit.phase1Decode(f.sections[0], 4); !errors.Is(err, ErrCeremony) || !strings.Contains(err.Error(), "domain 8 in a 2^4 file") {
		t.Errorf("relabelled domain: %v", err)
	}
	// A phase-2 slice claiming more points than the bytes hold is refused
	// by the scan, not by an allocation.
	var b bytes.Buffer
	var inf bls12377.G1Affine
	infBytes := inf.Bytes()
	b.Write([]byte{0, 1})                                   // one commitment
	b.Write(infBytes[:])                                    // [δ]₁ (infinity, compressed)
	b.Write(binary.BigEndian.AppendUint32(nil, ^uint32(0))) // PKK: 2^32−1 points
	if _, err := kit.phase2Decode(b.Bytes(), 3); !errors.Is(err, ErrCeremony) || !strings.Contains(err.Error(), "slice of") {
		t.Errorf("oversized slice: %v", err)
	}
	if _, err := ParseBeacon("00"); !errors.Is(err, ErrCeremony) {
		t.Errorf("short beacon: %v", err)
	}
	if _, err := ParseBeacon("zz"); !errors.Is(err, ErrCeremony) {
		t.Errorf("non-hex beacon: %v", err)
	}
}

// FuzzDecodeCeremony: no input makes the envelope or state decoders panic
// or allocate beyond what the bytes hold.
func FuzzDecodeCeremony(f *testing.F) {
	dir := f.TempDir()
	_, c := phase1(f, dir, ecc.BLS12_377, 2, 1)
	for _, p := range c {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(ceremonyMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, kind := range []CeremonyKind{KindPhase1, KindSRS, KindIntent, KindAggregate} {
			cf, err := decodeCeremony(b, kind)
			if err != nil {
				continue
			}
			kit, err := kitFor(cf.curve)
			if err != nil {
				t.Fatal(err)
			}
			switch kind {
			case KindPhase1:
				_, _ = kit.phase1Decode(cf.sections[0], cf.logN)
			case KindSRS:
				_, _ = kit.commonsDecode(cf.sections[0], cf.logN)
			default:
				_, _ = kit.phase2Decode(cf.sections[0], cf.logN)
			}
			_, _ = decodeMeta(cf)
		}
	})
}

// TestCeremonyEndToEnd runs the whole ceremony for the smallest key set
// (steps 2^8, k = 2) with two contributions per phase, finalizes a key
// directory and proves with it. Phase 1 on BW6-761 at 2^16 takes many
// minutes on a small machine: POUW_CEREMONY_E2E=1 runs it. The two phase 1s
// are circuit-independent and run concurrently, as they can in a real
// ceremony; the BW6-761 one is sized up front (aggLogN) and checked against
// the aggregation circuit once it can be compiled.
func TestCeremonyEndToEnd(t *testing.T) {
	if os.Getenv("POUW_CEREMONY_E2E") != "1" {
		t.Skip("POUW_CEREMONY_E2E=1 runs the full ceremony (minutes)")
	}
	const aggLogN = 16 // 65,517 constraints at k = 2
	ctx := context.Background()
	dir := t.TempDir()
	p := Params{LogSteps: MinLogSteps, ProgLen: DefaultProgLen, K: 2}
	t0 := time.Now()
	step := func(what string, f func()) {
		s := time.Now()
		f()
		t.Logf("%-38s %8v  (at %v)", what, time.Since(s).Round(time.Millisecond), time.Since(t0).Round(time.Second))
	}
	ics, err := compileIntent(p)
	if err != nil {
		t.Fatal(err)
	}
	bw6Done := make(chan string, 1)
	go func() {
		var srs string
		step("phase 1 BW6-761 2^16 (2 contributions)", func() { srs = phase1Concurrent(t, dir, ecc.BW6_761, aggLogN, 2) })
		bw6Done <- srs
	}()
	var blsSRS, bw6SRS, intentKeys, aggKeys string
	var ic, ac []string
	step(fmt.Sprintf("phase 1 BLS12-377 2^%d (2 contributions)", domainLog(ics)), func() { blsSRS, _ = phase1(t, dir, ecc.BLS12_377, int(domainLog(ics)), 2) })
	step("intent phase 2 init", func() {
		if _, err := IntentInit(ctx, p, blsSRS, filepath.Join(dir, "intent.0")); err != nil {
			t.Error(err)
		}
	})
	step("intent phase 2 contributions (2)", func() { ic = contributeN(t, dir, "intent", filepath.Join(dir, "intent.0"), 2) })
	step("intent phase 2 verify + seal", func() {
		intentKeys = filepath.Join(dir, "intent.keys")
		if _, _, err := Phase2Seal(ctx, KindIntent, Phase2Source{SRS: blsSRS}, ic, beacon(t), intentKeys, nil); err != nil {
			t.Error(err)
		}
	})
	bw6SRS = <-bw6Done
	if t.Failed() || bw6SRS == "" {
		t.FailNow()
	}
	ik, err := readSealedKeys(intentKeys, KindIntentKeys, false)
	if err != nil {
		t.Fatal(err)
	}
	acs, err := compileAggregate(p, ics, ik.vk)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("intent %d constraints (2^%d), aggregation %d (2^%d)", ics.GetNbConstraints(), domainLog(ics), acs.GetNbConstraints(), domainLog(acs))
	if domainLog(acs) > aggLogN {
		t.Fatalf("the aggregation circuit now needs 2^%d: raise aggLogN", domainLog(acs))
	}
	asrc := Phase2Source{SRS: bw6SRS, IntentKeys: intentKeys}
	step("aggregate phase 2 init", func() {
		if _, err := AggregateInit(ctx, intentKeys, bw6SRS, filepath.Join(dir, "agg.0")); err != nil {
			t.Fatal(err)
		}
	})
	step("aggregate phase 2 contributions (2)", func() { ac = contributeN(t, dir, "agg", filepath.Join(dir, "agg.0"), 2) })
	step("aggregate phase 2 verify + seal", func() {
		aggKeys = filepath.Join(dir, "agg.keys")
		if _, _, err := Phase2Seal(ctx, KindAggregate, asrc, ac, beacon(t), aggKeys, nil); err != nil {
			t.Fatal(err)
		}
	})

	keyDir := filepath.Join(dir, "keys")
	step("finalize", func() {
		if _, err := Finalize(ctx, intentKeys, aggKeys, keyDir, nil); err != nil {
			t.Fatal(err)
		}
	})
	keys, err := LoadKeys(keyDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.CheckCircuits(); err != nil {
		t.Fatal(err)
	}
	if keys.Ceremony == nil || keys.Ceremony.IntentContributions != 2 || keys.Ceremony.AggregateContrib != 2 ||
		!strings.Contains(keys.Setup, "mpcsetup ceremony") || !strings.Contains(keys.Setup, keys.Ceremony.Transcript.String()) {
		t.Fatalf("manifest does not record the ceremony: setup %q, %+v", keys.Setup, keys.Ceremony)
	}
	b, err := New(Options{Keys: []*Keys{keys}})
	if err != nil {
		t.Fatal(err)
	}
	var stA, stB backends.Statement
	var pA, pB, agg []byte
	step("prove 2 intents", func() {
		stA, pA = proveMacro(t, b, execute(t, fibSrc, 10), "job-a")
		stB, pB = proveMacro(t, b, execute(t, mixSrc, 5, 1), "job-b")
	})
	for _, c := range []struct {
		st backends.Statement
		p  []byte
	}{{stA, pA}, {stB, pB}} {
		if err := b.Verify(ctx, c.st, c.p); err != nil {
			t.Fatalf("intent proof with ceremony keys rejected: %v", err)
		}
	}
	step("aggregate k=2", func() {
		if agg, err = b.Aggregate(ctx, batchStatement("agg", "p"), []backends.Statement{stA, stB}, [][]byte{pA, pB}); err != nil {
			t.Fatal(err)
		}
	})
	if err := b.VerifyAggregate(ctx, batchStatement("agg", "p"), []backends.Statement{stA, stB}, agg); err != nil {
		t.Fatalf("aggregate proof with ceremony keys rejected: %v", err)
	}
	if err := b.VerifyAggregate(ctx, batchStatement("agg", "p"), []backends.Statement{stB, stA}, agg); !errors.Is(err, backends.ErrProofRejected) {
		t.Fatalf("reordered batch: got %v, want ErrProofRejected", err)
	}
}

// cubeOuter verifies a cubeCircuit proof in a BW6-761 circuit, as the
// aggregation circuit verifies intent proofs: the verifying key fixed in
// the circuit, subgroup checks on.
type cubeOuter struct {
	Proof innerProof
	Y     emulated.Element[innerFr]
	vk    innerVK `gnark:"-"`
}

func (c *cubeOuter) Define(api frontend.API) error {
	v, err := stdgroth16.NewVerifier[innerFr, sw_bls12377.G1Affine, sw_bls12377.G2Affine, sw_bls12377.GT](api)
	if err != nil {
		return err
	}
	w := stdgroth16.Witness[innerFr]{Public: []emulated.Element[innerFr]{c.Y}}
	return v.AssertProof(c.vk, c.Proof, w, stdgroth16.WithSubgroupCheck())
}

// Keys from the ceremony (whose verifying key has γ and the commitment
// key's G at the generator, unlike groth16.Setup's) work in the recursive
// verifier the aggregation circuit uses.
func TestCeremonyKeysVerifyInsideTheRecursiveVerifier(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	srs, _ := phase1(t, dir, ecc.BLS12_377, 4, 1)
	cs, err := frontend.Compile(ecc.BLS12_377.ScalarField(), r1cs.NewBuilder, &cubeCircuit{})
	if err != nil {
		t.Fatal(err)
	}
	p := testParams
	target, err := newTarget(KindIntent, cs, srs, ceremonyMeta{Circuit: "intent", Params: &p})
	if err != nil {
		t.Fatal(err)
	}
	start := filepath.Join(dir, "p2.0")
	if _, err := target.init(start); err != nil {
		t.Fatal(err)
	}
	res, err := target.run(ctx, contributeN(t, dir, "p2", start, 1), beacon(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	sealed := filepath.Join(dir, "p2.keys")
	if _, err := writeCeremony(sealed, res.sealed); err != nil {
		t.Fatal(err)
	}
	sk, err := readSealedKeys(sealed, KindIntentKeys, true)
	if err != nil {
		t.Fatal(err)
	}
	w, err := frontend.NewWitness(&cubeCircuit{X: 3, Y: 27}, ecc.BLS12_377.ScalarField())
	if err != nil {
		t.Fatal(err)
	}
	proof, err := groth16.Prove(cs, sk.pk, w, stdgroth16.GetNativeProverOptions(outerCurve.ScalarField(), innerCurve.ScalarField()))
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := w.Public()
	if err := groth16.Verify(proof, sk.vk, pub, stdgroth16.GetNativeVerifierOptions(outerCurve.ScalarField(), innerCurve.ScalarField())); err != nil {
		t.Fatalf("native verification: %v", err)
	}
	vk, err := stdgroth16.ValueOfVerifyingKeyFixed[sw_bls12377.G1Affine, sw_bls12377.G2Affine, sw_bls12377.GT](sk.vk)
	if err != nil {
		t.Fatal(err)
	}
	pv, err := stdgroth16.ValueOfProof[sw_bls12377.G1Affine, sw_bls12377.G2Affine](proof)
	if err != nil {
		t.Fatal(err)
	}
	circuit := &cubeOuter{Proof: stdgroth16.PlaceholderProof[sw_bls12377.G1Affine, sw_bls12377.G2Affine](cs), vk: vk}
	good := &cubeOuter{Proof: pv, Y: emulated.ValueOf[innerFr](27), vk: vk}
	if err := test.IsSolved(circuit, good, outerCurve.ScalarField()); err != nil {
		t.Fatalf("in-circuit verification of a ceremony-key proof failed: %v", err)
	}
	bad := &cubeOuter{Proof: pv, Y: emulated.ValueOf[innerFr](28), vk: vk}
	if err := test.IsSolved(circuit, bad, outerCurve.ScalarField()); err == nil {
		t.Fatal("in-circuit verification accepted a proof for another public input")
	}
}
