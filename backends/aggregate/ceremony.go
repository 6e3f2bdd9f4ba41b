package aggregate

// The multi-party Groth16 setup (gnark's mpcsetup) for an aggregate key
// set: the production path; Setup's single-party keys are trusted.
// docs/aggregate.md, Ceremony, describes the flow and the file format.
//
// Every step reads the previous state file and writes the next, so the
// participants can run on separate machines and only pass files along:
//
//	phase 1 (powers of τ), once per curve: init, contribute..., seal
//	intent phase 2 (BLS12-377):            init, contribute..., seal
//	aggregate phase 2 (BW6-761):           init, contribute..., seal
//	finalize: a key directory LoadKeys accepts
//
// The aggregation circuit embeds the intent verifying key, so its phase 2
// starts only after the intent phase 2 is sealed.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/consensys/gnark-crypto/ecc"
	bls12377 "github.com/consensys/gnark-crypto/ecc/bls12-377"
	bw6761 "github.com/consensys/gnark-crypto/ecc/bw6-761"
	"github.com/consensys/gnark/backend/groth16"
	m377 "github.com/consensys/gnark/backend/groth16/bls12-377/mpcsetup"
	m761 "github.com/consensys/gnark/backend/groth16/bw6-761/mpcsetup"
	"github.com/consensys/gnark/constraint"
	cs377 "github.com/consensys/gnark/constraint/bls12-377"
	cs761 "github.com/consensys/gnark/constraint/bw6-761"
	"github.com/consensys/gnark/frontend"
	"github.com/consensys/gnark/frontend/cs/r1cs"
	"github.com/consensys/gnark/std/algebra/native/sw_bls12377"
	stdgroth16 "github.com/consensys/gnark/std/recursion/groth16"
	"github.com/zeebo/blake3"

	"github.com/pouwfarm/pouwfarm/pouw"
)

// ErrCeremony marks a ceremony file that is malformed, of the wrong kind or
// size, or a transcript that does not verify.
var ErrCeremony = errors.New("aggregate: ceremony")

// CeremonyKind is what a ceremony file holds.
type CeremonyKind byte

const (
	// KindPhase1 is a powers-of-τ state; index 0 is the deterministic
	// start, index i the state after the i-th contribution.
	KindPhase1 CeremonyKind = 1
	// KindSRS is a sealed phase 1: the circuit-independent SRS.
	KindSRS CeremonyKind = 2
	// KindIntent and KindAggregate are phase-2 states of the two circuits.
	KindIntent    CeremonyKind = 3
	KindAggregate CeremonyKind = 4
	// KindIntentKeys and KindAggregateKeys are sealed phase 2s: the keys
	// and the record of the transcript that made them.
	KindIntentKeys    CeremonyKind = 5
	KindAggregateKeys CeremonyKind = 6
)

// MarshalText writes the kind's name (JSON reports).
func (k CeremonyKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

func (k CeremonyKind) String() string {
	switch k {
	case KindPhase1:
		return "phase1"
	case KindSRS:
		return "srs"
	case KindIntent:
		return "intent-phase2"
	case KindAggregate:
		return "aggregate-phase2"
	case KindIntentKeys:
		return "intent-keys"
	case KindAggregateKeys:
		return "aggregate-keys"
	}
	return fmt.Sprintf("kind(%d)", byte(k))
}

// Ceremony file format (all integers big-endian):
//
//	4   "PWCM"
//	1   version = 1
//	1   kind (CeremonyKind)
//	1   curve: 1 BLS12-377, 2 BW6-761
//	1   log2 N, the powers-of-τ domain
//	4   index: 0 for a start, i after the i-th contribution
//	32  BLAKE3 of the previous file (zero for a start and for sealed files)
//	4   meta length, then the meta JSON (≤ 64 KiB)
//	1   section count, then per section: 8 length, bytes
//
// and nothing after. Section bytes are gnark encodings (compressed points).
const (
	ceremonyMagic   = "PWCM"
	ceremonyVersion = 1
	headerLen       = 4 + 1 + 1 + 1 + 1 + 4 + 32 + 4
	maxMetaBytes    = 1 << 16
	// MinCeremonyLogN and MaxCeremonyLogN bound the powers-of-τ domain:
	// 2^20 covers the largest size class (2^12 steps, ≈ 612k constraints)
	// and k=16 (≈ 524k); 2^22 leaves room.
	MinCeremonyLogN = 2
	MaxCeremonyLogN = 22
	// maxCommitments bounds the BSB22 commitments of a phase-2 state
	// (gnark supports one per circuit; its mpcsetup at most 255).
	maxPhase2Commitments = 8
)

// Beacon bounds: the operator's public random beacon (e.g. a future block
// hash), hex on the command line.
const (
	MinBeaconBytes = 16
	MaxBeaconBytes = 256
)

type ceremonyFile struct {
	kind     CeremonyKind
	curve    ecc.ID
	logN     uint8
	index    uint32
	prev     pouw.Hash
	meta     []byte
	sections [][]byte
}

func curveByte(id ecc.ID) byte {
	switch id {
	case ecc.BLS12_377:
		return 1
	case ecc.BW6_761:
		return 2
	}
	return 0
}

// kindCurve is the curve a file kind belongs to (0 for phase-1 kinds, which
// exist on both).
func kindCurve(k CeremonyKind) ecc.ID {
	switch k {
	case KindIntent, KindIntentKeys:
		return innerCurve
	case KindAggregate, KindAggregateKeys:
		return outerCurve
	}
	return ecc.UNKNOWN
}

func kindSections(k CeremonyKind) int {
	if k == KindIntentKeys || k == KindAggregateKeys {
		return 2 // verifying key, proving key
	}
	return 1
}

func (f *ceremonyFile) encode() []byte {
	var b bytes.Buffer
	b.WriteString(ceremonyMagic)
	b.Write([]byte{ceremonyVersion, byte(f.kind), curveByte(f.curve), f.logN})
	b.Write(binary.BigEndian.AppendUint32(nil, f.index))
	b.Write(f.prev[:])
	b.Write(binary.BigEndian.AppendUint32(nil, uint32(len(f.meta))))
	b.Write(f.meta)
	b.WriteByte(byte(len(f.sections)))
	for _, s := range f.sections {
		b.Write(binary.BigEndian.AppendUint64(nil, uint64(len(s))))
		b.Write(s)
	}
	return b.Bytes()
}

func fileHash(b []byte) pouw.Hash { return pouw.Hash(blake3.Sum256(b)) }

// maxSectionBytes bounds a section of a file of kind k on a curve whose
// uncompressed points take g1u and g2u bytes, for a domain of 2^logN.
// Phase-1 states hold 4N G1 and N G2 points; phase-2 states and keys hold
// a few points per wire, and R1CS wires stay within a small multiple of the
// constraints (the domain): 16N is generous.
func maxSectionBytes(k CeremonyKind, g1u, g2u int, logN uint8) int64 {
	n := int64(1) << logN
	const slack = 1 << 16
	switch k {
	case KindPhase1, KindSRS:
		return 4*n*int64(g1u) + n*int64(g2u) + slack
	case KindIntent, KindAggregate:
		return 16*n*int64(g1u) + slack
	}
	return 16*n*int64(g1u) + 16*n*int64(g2u) + slack
}

// decodeCeremony parses and bounds a ceremony file's envelope. want is the
// kind expected (the error names what was found otherwise).
func decodeCeremony(b []byte, want CeremonyKind) (*ceremonyFile, error) {
	if len(b) < headerLen || string(b[:4]) != ceremonyMagic {
		return nil, fmt.Errorf("%w: not a ceremony file (magic)", ErrCeremony)
	}
	if b[4] != ceremonyVersion {
		return nil, fmt.Errorf("%w: format version %d (want %d)", ErrCeremony, b[4], ceremonyVersion)
	}
	f := &ceremonyFile{kind: CeremonyKind(b[5]), logN: b[7]}
	if f.kind != want {
		return nil, fmt.Errorf("%w: a %s file where a %s file was expected", ErrCeremony, f.kind, want)
	}
	switch b[6] {
	case 1:
		f.curve = ecc.BLS12_377
	case 2:
		f.curve = ecc.BW6_761
	default:
		return nil, fmt.Errorf("%w: unknown curve %d", ErrCeremony, b[6])
	}
	if c := kindCurve(f.kind); c != ecc.UNKNOWN && c != f.curve {
		return nil, fmt.Errorf("%w: a %s file on %s", ErrCeremony, f.kind, f.curve)
	}
	if f.logN < MinCeremonyLogN || f.logN > MaxCeremonyLogN {
		return nil, fmt.Errorf("%w: domain 2^%d outside 2^%d..2^%d", ErrCeremony, f.logN, MinCeremonyLogN, MaxCeremonyLogN)
	}
	f.index = binary.BigEndian.Uint32(b[8:12])
	copy(f.prev[:], b[12:44])
	ml := binary.BigEndian.Uint32(b[44:48])
	rest := b[headerLen:]
	if ml > maxMetaBytes || int(ml) > len(rest) {
		return nil, fmt.Errorf("%w: meta of %d bytes", ErrCeremony, ml)
	}
	f.meta, rest = rest[:ml], rest[ml:]
	if len(rest) < 1 || int(rest[0]) != kindSections(f.kind) {
		return nil, fmt.Errorf("%w: %s file without its %d section(s)", ErrCeremony, f.kind, kindSections(f.kind))
	}
	rest = rest[1:]
	kit, err := kitFor(f.curve)
	if err != nil {
		return nil, err
	}
	g1, g2 := kit.pointSizes()
	limit := maxSectionBytes(f.kind, 2*g1, 2*g2, f.logN)
	for range kindSections(f.kind) {
		if len(rest) < 8 {
			return nil, fmt.Errorf("%w: truncated section header", ErrCeremony)
		}
		sl := binary.BigEndian.Uint64(rest)
		rest = rest[8:]
		if sl > uint64(limit) || sl > uint64(len(rest)) {
			return nil, fmt.Errorf("%w: section of %d bytes (file has %d left, limit %d for 2^%d)", ErrCeremony, sl, len(rest), limit, f.logN)
		}
		f.sections = append(f.sections, rest[:sl])
		rest = rest[sl:]
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrCeremony, len(rest))
	}
	return f, nil
}

// maxCeremonyFileBytes bounds any ceremony file read from disk (a BW6-761
// phase-1 state at 2^22 is about 2 GB compressed).
const maxCeremonyFileBytes = 8 << 30

// readCeremony reads and decodes a ceremony file of kind want, and returns
// it with the BLAKE3 of its bytes.
func readCeremony(path string, want CeremonyKind) (*ceremonyFile, pouw.Hash, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, pouw.Hash{}, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, pouw.Hash{}, err
	}
	if st.Size() > maxCeremonyFileBytes {
		return nil, pouw.Hash{}, fmt.Errorf("%w: %s: %d bytes is larger than any ceremony file", ErrCeremony, path, st.Size())
	}
	b, err := io.ReadAll(io.LimitReader(fh, st.Size()+1))
	if err != nil {
		return nil, pouw.Hash{}, err
	}
	f, err := decodeCeremony(b, want)
	if err != nil {
		return nil, pouw.Hash{}, fmt.Errorf("%s: %w", path, err)
	}
	return f, fileHash(b), nil
}

// writeCeremony writes f to path (atomically) and returns its BLAKE3.
func writeCeremony(path string, f *ceremonyFile) (pouw.Hash, error) {
	b := f.encode()
	if err := writeFile(path, func(w io.Writer) (int64, error) {
		n, err := w.Write(b)
		return int64(n), err
	}); err != nil {
		return pouw.Hash{}, err
	}
	return fileHash(b), nil
}

// ceremonyMeta describes a phase-2 state or a sealed file. It is copied
// from the start into every contribution, so a contributor sees what the
// contribution is for and a verifier checks it is the same throughout.
type ceremonyMeta struct {
	Circuit     string    `json:"circuit,omitempty"` // "intent" or "aggregate"
	Params      *Params   `json:"params,omitempty"`
	CircuitHash pouw.Hash `json:"circuit_hash,omitzero"` // BLAKE3 of the compiled constraint system
	Constraints int       `json:"constraints,omitempty"`
	// SRS is the transcript hash of the sealed phase 1 used, SRSLogN its
	// size (a larger SRS is truncated to the circuit's domain).
	SRS     pouw.Hash `json:"srs,omitzero"`
	SRSLogN int       `json:"srs_log_n,omitempty"`
	// For the aggregation circuit: the intent key it embeds and the
	// transcript of the intent phase 2 that made it.
	IntentKeyID      pouw.Hash `json:"intent_key_id,omitzero"`
	IntentTranscript pouw.Hash `json:"intent_transcript,omitzero"`
	Gnark            string    `json:"gnark,omitempty"`

	// Sealed files only.
	Contributions []pouw.Hash `json:"contributions,omitempty"` // BLAKE3 of each contribution file, in order
	Beacon        string      `json:"beacon,omitempty"`        // hex
	Transcript    pouw.Hash   `json:"transcript,omitzero"`
	KeyID         pouw.Hash   `json:"key_id,omitzero"`
}

func (m *ceremonyMeta) encode() []byte {
	b, err := json.Marshal(m)
	if err != nil {
		panic(err) // plain struct: cannot fail
	}
	return b
}

func decodeMeta(f *ceremonyFile) (*ceremonyMeta, error) {
	var m ceremonyMeta
	if len(f.meta) == 0 {
		return &m, nil
	}
	d := json.NewDecoder(bytes.NewReader(f.meta))
	d.DisallowUnknownFields()
	if err := d.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: meta: %w", ErrCeremony, err)
	}
	return &m, nil
}

// transcriptHash is BLAKE3("pouw-ceremony-transcript-v1" ‖ kind ‖ curve ‖
// log N ‖ u32 len ‖ meta ‖ u32 count ‖ each contribution file's BLAKE3 ‖
// u32 len ‖ beacon). The meta of a phase 2 names the SRS transcript (and,
// for the aggregation circuit, the intent transcript), so the aggregate
// transcript hash covers the whole ceremony.
func transcriptHash(kind CeremonyKind, curve ecc.ID, logN uint8, meta []byte, contribs []pouw.Hash, beacon []byte) pouw.Hash {
	h := blake3.New()
	_, _ = h.Write([]byte("pouw-ceremony-transcript-v1"))
	_, _ = h.Write([]byte{byte(kind), curveByte(curve), logN})
	_, _ = h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(meta))))
	_, _ = h.Write(meta)
	_, _ = h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(contribs))))
	for _, c := range contribs {
		_, _ = h.Write(c[:])
	}
	_, _ = h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(beacon))))
	_, _ = h.Write(beacon)
	var t pouw.Hash
	copy(t[:], h.Sum(nil))
	return t
}

// ParseBeacon reads the sealing beacon from hex.
func ParseBeacon(s string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: beacon: not hex: %w", ErrCeremony, err)
	}
	if len(b) < MinBeaconBytes || len(b) > MaxBeaconBytes {
		return nil, fmt.Errorf("%w: beacon of %d bytes (want %d..%d, e.g. a future block hash)", ErrCeremony, len(b), MinBeaconBytes, MaxBeaconBytes)
	}
	return b, nil
}

// CeremonyFileInfo describes a file a ceremony step wrote.
type CeremonyFileInfo struct {
	Path  string       `json:"path"`
	Kind  CeremonyKind `json:"kind"`
	Curve string       `json:"curve"`
	LogN  int          `json:"log_n"`
	Index int          `json:"index"`
	Hash  pouw.Hash    `json:"hash"` // BLAKE3 of the file: a contributor publishes it
}

// TranscriptReport is what a verification or a seal established.
type TranscriptReport struct {
	Kind          CeremonyKind `json:"kind"`
	Curve         string       `json:"curve"`
	LogN          int          `json:"log_n"`
	Contributions []pouw.Hash  `json:"contributions"` // BLAKE3 of each contribution file, in order
	// Set when a beacon was given (seal, or verify of a sealed file).
	Transcript pouw.Hash `json:"transcript,omitzero"`
	KeyID      pouw.Hash `json:"key_id,omitzero"`
	Params     *Params   `json:"params,omitempty"`
}

// ---- phase 1 -------------------------------------------------------------

// CeremonyCurve parses a curve name: bls12-377 (the intent circuit's) or
// bw6-761 (the aggregation circuit's).
func CeremonyCurve(name string) (ecc.ID, error) {
	switch name {
	case "bls12-377", "bls12_377", "intent":
		return ecc.BLS12_377, nil
	case "bw6-761", "bw6_761", "aggregate":
		return ecc.BW6_761, nil
	}
	return ecc.UNKNOWN, fmt.Errorf("%w: curve %q (want bls12-377 or bw6-761)", ErrCeremony, name)
}

func phase1Start(curve ecc.ID, logN int) *ceremonyFile {
	return &ceremonyFile{kind: KindPhase1, curve: curve, logN: uint8(logN), sections: [][]byte{nil}}
}

// Phase1Init writes the start of a powers-of-τ ceremony for circuits of at
// most 2^logN constraints on curve. The start is deterministic; a verifier
// recomputes it.
func Phase1Init(curve ecc.ID, logN int, out string) (CeremonyFileInfo, error) {
	if _, err := kitFor(curve); err != nil {
		return CeremonyFileInfo{}, err
	}
	if logN < MinCeremonyLogN || logN > MaxCeremonyLogN {
		return CeremonyFileInfo{}, fmt.Errorf("%w: size 2^%d outside 2^%d..2^%d", ErrCeremony, logN, MinCeremonyLogN, MaxCeremonyLogN)
	}
	f := phase1Start(curve, logN)
	h, err := writeCeremony(out, f)
	return info(out, f, h), err
}

func info(path string, f *ceremonyFile, h pouw.Hash) CeremonyFileInfo {
	return CeremonyFileInfo{Path: path, Kind: f.kind, Curve: f.curve.String(), LogN: int(f.logN), Index: int(f.index), Hash: h}
}

// decodePhase1State decodes the gnark state of a phase-1 file (the start
// has none: it is recomputed).
func decodePhase1State(kit ceremonyCurve, f *ceremonyFile) (phaseState, error) {
	if f.index == 0 {
		if len(f.sections[0]) != 0 {
			return nil, fmt.Errorf("%w: a phase-1 start carries no state", ErrCeremony)
		}
		return kit.phase1New(uint64(1) << f.logN), nil
	}
	return kit.phase1Decode(f.sections[0], f.logN)
}

// Contribute reads the ceremony state in, adds this process's randomness
// (crypto/rand, inside gnark) and writes the next state to out. It works
// for phase 1 and both phase 2s. Contributing forgets the randomness when
// it returns; the contributor publishes the printed hash, which the sealed
// transcript lists.
func Contribute(ctx context.Context, in, out string, log *slog.Logger) (CeremonyFileInfo, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b, err := os.ReadFile(in)
	if err != nil {
		return CeremonyFileInfo{}, err
	}
	if len(b) < headerLen {
		return CeremonyFileInfo{}, fmt.Errorf("%s: %w: not a ceremony file", in, ErrCeremony)
	}
	kind := CeremonyKind(b[5])
	if kind != KindPhase1 && kind != KindIntent && kind != KindAggregate {
		return CeremonyFileInfo{}, fmt.Errorf("%s: %w: a %s file takes no contributions", in, ErrCeremony, kind)
	}
	f, err := decodeCeremony(b, kind)
	if err != nil {
		return CeremonyFileInfo{}, fmt.Errorf("%s: %w", in, err)
	}
	kit, err := kitFor(f.curve)
	if err != nil {
		return CeremonyFileInfo{}, err
	}
	var s phaseState
	if kind == KindPhase1 {
		s, err = decodePhase1State(kit, f)
	} else {
		s, err = kit.phase2Decode(f.sections[0], f.logN)
	}
	if err != nil {
		return CeremonyFileInfo{}, fmt.Errorf("%s: %w", in, err)
	}
	if err := ctx.Err(); err != nil {
		return CeremonyFileInfo{}, err
	}
	log.Info("ceremony: contributing", "kind", kind, "curve", f.curve, "log_n", f.logN, "index", f.index+1)
	s.Contribute()
	next := &ceremonyFile{kind: kind, curve: f.curve, logN: f.logN, index: f.index + 1, prev: fileHash(b), meta: f.meta,
		sections: [][]byte{encodeState(s)}}
	h, err := writeCeremony(out, next)
	return info(out, next, h), err
}

// verifyChain checks contributions files in order against start (the
// recomputed start state, whose file hashes to startHash): kind, curve and
// size, meta, index i, the previous file's hash, and gnark's proof of each
// update. It returns the last state and the contribution hashes.
func verifyChain(ctx context.Context, kit ceremonyCurve, kind CeremonyKind, logN uint8, meta []byte,
	start phaseState, startHash pouw.Hash, files []string, log *slog.Logger) (phaseState, []pouw.Hash, error) {
	if len(files) == 0 {
		return nil, nil, fmt.Errorf("%w: no contributions (a transcript needs at least one)", ErrCeremony)
	}
	prev, prevHash := start, startHash
	hashes := make([]pouw.Hash, 0, len(files))
	for i, path := range files {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		f, h, err := readCeremony(path, kind)
		if err != nil {
			return nil, nil, err
		}
		switch {
		case f.curve != kit.curve() || f.logN != logN:
			return nil, nil, fmt.Errorf("%w: %s: %s 2^%d, transcript is %s 2^%d", ErrCeremony, path, f.curve, f.logN, kit.curve(), logN)
		case f.index != uint32(i+1):
			return nil, nil, fmt.Errorf("%w: %s: contribution %d where %d was expected (files out of order?)", ErrCeremony, path, f.index, i+1)
		case f.prev != prevHash:
			return nil, nil, fmt.Errorf("%w: %s: contribution %d does not follow the previous file (hash %s, it names %s)", ErrCeremony, path, i+1, prevHash, f.prev)
		case !bytes.Equal(f.meta, meta):
			return nil, nil, fmt.Errorf("%w: %s: contribution %d is for another circuit or SRS", ErrCeremony, path, i+1)
		}
		var next phaseState
		if kind == KindPhase1 {
			next, err = kit.phase1Decode(f.sections[0], f.logN)
		} else {
			next, err = kit.phase2Decode(f.sections[0], f.logN)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		log.Info("ceremony: verifying", "kind", kind, "contribution", i+1, "of", len(files))
		if err := kit.verify(prev, next); err != nil {
			return nil, nil, fmt.Errorf("%w: %s: contribution %d does not verify: %w", ErrCeremony, path, i+1, err)
		}
		prev, prevHash = next, h
		hashes = append(hashes, h)
	}
	return prev, hashes, nil
}

func phase1Files(files []string) (curve ecc.ID, logN uint8, err error) {
	if len(files) == 0 {
		return 0, 0, fmt.Errorf("%w: no contributions", ErrCeremony)
	}
	b, err := readHeader(files[0])
	if err != nil {
		return 0, 0, err
	}
	f, err := decodeHeaderOnly(b, KindPhase1)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w", files[0], err)
	}
	return f.curve, f.logN, nil
}

// Phase1Verify checks a powers-of-τ transcript: every contribution in
// order, from the deterministic start. With a beacon and a sealed SRS file,
// it also checks the SRS is the seal of this transcript.
func Phase1Verify(ctx context.Context, files []string, beacon []byte, srs string, log *slog.Logger) (TranscriptReport, error) {
	r, _, err := phase1Run(ctx, files, beacon, log)
	if err != nil || srs == "" {
		return r.TranscriptReport, err
	}
	if beacon == nil {
		return r.TranscriptReport, fmt.Errorf("%w: checking a sealed SRS needs its beacon", ErrCeremony)
	}
	return r.TranscriptReport, compareSealed(srs, KindSRS, r.sealed)
}

// Phase1Seal verifies the transcript and seals it with the beacon (a
// public random value fixed after the last contribution), writing the SRS.
func Phase1Seal(ctx context.Context, files []string, beacon []byte, out string, log *slog.Logger) (TranscriptReport, CeremonyFileInfo, error) {
	if beacon == nil {
		return TranscriptReport{}, CeremonyFileInfo{}, fmt.Errorf("%w: sealing needs a beacon", ErrCeremony)
	}
	r, f, err := phase1Run(ctx, files, beacon, log)
	if err != nil {
		return r.TranscriptReport, CeremonyFileInfo{}, err
	}
	h, err := writeCeremony(out, f)
	return r.TranscriptReport, info(out, f, h), err
}

type runResult struct {
	TranscriptReport
	sealed *ceremonyFile
}

func phase1Run(ctx context.Context, files []string, beacon []byte, log *slog.Logger) (runResult, *ceremonyFile, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	curve, logN, err := phase1Files(files)
	if err != nil {
		return runResult{}, nil, err
	}
	kit, err := kitFor(curve)
	if err != nil {
		return runResult{}, nil, err
	}
	startFile := phase1Start(curve, int(logN))
	last, hashes, err := verifyChain(ctx, kit, KindPhase1, logN, nil, kit.phase1New(uint64(1)<<logN), fileHash(startFile.encode()), files, log)
	if err != nil {
		return runResult{}, nil, err
	}
	r := runResult{TranscriptReport: TranscriptReport{Kind: KindPhase1, Curve: curve.String(), LogN: int(logN), Contributions: hashes}}
	if beacon == nil {
		return r, nil, nil
	}
	if err := ctx.Err(); err != nil {
		return r, nil, err
	}
	log.Info("ceremony: sealing phase 1", "curve", curve, "log_n", logN)
	commons := kit.phase1Seal(last, beacon)
	m := ceremonyMeta{Contributions: hashes, Beacon: hex.EncodeToString(beacon), Gnark: gnarkVersion,
		Transcript: transcriptHash(KindSRS, curve, logN, nil, hashes, beacon)}
	r.Transcript = m.Transcript
	f := &ceremonyFile{kind: KindSRS, curve: curve, logN: logN, meta: m.encode(), sections: [][]byte{encodeState(commons)}}
	r.sealed = f
	return r, f, nil
}

// compareSealed checks the file at path is byte for byte the seal
// recomputed from the transcript (sealing is deterministic).
func compareSealed(path string, kind CeremonyKind, want *ceremonyFile) error {
	got, _, err := readCeremony(path, kind)
	if err != nil {
		return err
	}
	if !bytes.Equal(got.encode(), want.encode()) {
		return fmt.Errorf("%w: %s is not the seal of this transcript with this beacon", ErrCeremony, path)
	}
	return nil
}

// readSRS reads a sealed phase 1.
func readSRS(path string, curve ecc.ID) (commons any, m *ceremonyMeta, logN uint8, err error) {
	f, _, err := readCeremony(path, KindSRS)
	if err != nil {
		return nil, nil, 0, err
	}
	if f.curve != curve {
		return nil, nil, 0, fmt.Errorf("%w: %s: an SRS on %s, this circuit needs %s", ErrCeremony, path, f.curve, curve)
	}
	if m, err = decodeMeta(f); err != nil {
		return nil, nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	kit, err := kitFor(curve)
	if err != nil {
		return nil, nil, 0, err
	}
	c, err := kit.commonsDecode(f.sections[0], f.logN)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	return c, m, f.logN, nil
}

// ---- phase 2 -------------------------------------------------------------

const gnarkVersion = "v0.16.0"

// phase2Target is everything a phase 2 is for: the circuit, the SRS
// truncated to its domain, and the meta every state of it carries.
type phase2Target struct {
	kind    CeremonyKind
	kit     ceremonyCurve
	cs      constraint.ConstraintSystem
	commons any
	logN    uint8
	meta    ceremonyMeta
}

func domainLog(cs constraint.ConstraintSystem) uint8 {
	n := ecc.NextPowerOfTwo(uint64(cs.GetNbConstraints()))
	var l uint8
	for uint64(1)<<l < n {
		l++
	}
	return max(l, MinCeremonyLogN)
}

func newTarget(kind CeremonyKind, cs constraint.ConstraintSystem, srs string, meta ceremonyMeta) (*phase2Target, error) {
	curve := kindCurve(kind)
	commons, sm, srsLog, err := readSRS(srs, curve)
	if err != nil {
		return nil, err
	}
	logN := domainLog(cs)
	if logN > srsLog {
		return nil, fmt.Errorf("%w: the %s circuit has %d constraints and needs an SRS of 2^%d; %s has 2^%d", ErrCeremony, meta.Circuit, cs.GetNbConstraints(), logN, srs, srsLog)
	}
	kit, err := kitFor(curve)
	if err != nil {
		return nil, err
	}
	h, err := circuitHash(cs)
	if err != nil {
		return nil, err
	}
	meta.CircuitHash, meta.Constraints, meta.SRS, meta.SRSLogN, meta.Gnark = h, cs.GetNbConstraints(), sm.Transcript, int(srsLog), gnarkVersion
	return &phase2Target{kind: kind, kit: kit, cs: cs, commons: kit.commonsTruncate(commons, 1<<logN), logN: logN, meta: meta}, nil
}

func compileIntent(p Params) (constraint.ConstraintSystem, error) {
	cs, err := frontend.Compile(innerCurve.ScalarField(), r1cs.NewBuilder, newIntentCircuit(p))
	if err != nil {
		return nil, fmt.Errorf("compile intent circuit: %w", err)
	}
	return cs, nil
}

func compileAggregate(p Params, intentCS constraint.ConstraintSystem, intentVK groth16.VerifyingKey) (constraint.ConstraintSystem, error) {
	vk, err := stdgroth16.ValueOfVerifyingKeyFixed[sw_bls12377.G1Affine, sw_bls12377.G2Affine, sw_bls12377.GT](intentVK)
	if err != nil {
		return nil, err
	}
	cs, err := frontend.Compile(outerCurve.ScalarField(), r1cs.NewBuilder, newAggCircuit(p, intentCS, vk))
	if err != nil {
		return nil, fmt.Errorf("compile aggregation circuit: %w", err)
	}
	return cs, nil
}

// intentTarget compiles the intent circuit of p against the BLS12-377 SRS.
func intentTarget(p Params, srs string) (*phase2Target, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	cs, err := compileIntent(p)
	if err != nil {
		return nil, err
	}
	return newTarget(KindIntent, cs, srs, ceremonyMeta{Circuit: "intent", Params: &p})
}

// sealedKeys is a sealed phase 2 read back.
type sealedKeys struct {
	meta *ceremonyMeta
	vk   groth16.VerifyingKey
	pk   groth16.ProvingKey // nil unless asked for
	file *ceremonyFile
	hash pouw.Hash
}

func readSealedKeys(path string, kind CeremonyKind, withPK bool) (*sealedKeys, error) {
	f, h, err := readCeremony(path, kind)
	if err != nil {
		return nil, err
	}
	m, err := decodeMeta(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if m.Params == nil {
		return nil, fmt.Errorf("%w: %s: no parameters", ErrCeremony, path)
	}
	if err := m.Params.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s := &sealedKeys{meta: m, file: f, hash: h, vk: groth16.NewVerifyingKey(f.curve)}
	if err := readExact(f.sections[0], s.vk.ReadFrom); err != nil {
		return nil, fmt.Errorf("%w: %s: verifying key: %w", ErrCeremony, path, err)
	}
	id, err := keyID(keyKind(kind), s.vk)
	if err != nil {
		return nil, err
	}
	if id != m.KeyID {
		return nil, fmt.Errorf("%w: %s: verifying key hashes to %s, record says %s", ErrCeremony, path, id, m.KeyID)
	}
	if withPK {
		// The proving key comes from the operator's own seal (and verify
		// --sealed reproduces it byte for byte); its size is bounded above.
		s.pk = groth16.NewProvingKey(f.curve)
		if err := readExact(f.sections[1], s.pk.UnsafeReadFrom); err != nil {
			return nil, fmt.Errorf("%w: %s: proving key: %w", ErrCeremony, path, err)
		}
	}
	return s, nil
}

func keyKind(k CeremonyKind) byte {
	if k == KindAggregateKeys {
		return 2
	}
	return 1
}

func readExact(b []byte, r func(io.Reader) (int64, error)) error {
	n, err := r(bytes.NewReader(b))
	if err != nil {
		return err
	}
	if n != int64(len(b)) {
		return fmt.Errorf("%d trailing bytes", int64(len(b))-n)
	}
	return nil
}

// aggregateTarget compiles the aggregation circuit around the sealed
// intent key against the BW6-761 SRS.
func aggregateTarget(intentKeys, srs string) (*phase2Target, error) {
	ik, err := readSealedKeys(intentKeys, KindIntentKeys, false)
	if err != nil {
		return nil, err
	}
	p := *ik.meta.Params
	ics, err := compileIntent(p)
	if err != nil {
		return nil, err
	}
	if h, err := circuitHash(ics); err != nil {
		return nil, err
	} else if h != ik.meta.CircuitHash {
		return nil, fmt.Errorf("%w: %s: the intent circuit of this binary differs from the one the intent keys were made for", ErrCeremony, intentKeys)
	}
	cs, err := compileAggregate(p, ics, ik.vk)
	if err != nil {
		return nil, err
	}
	return newTarget(KindAggregate, cs, srs, ceremonyMeta{Circuit: "aggregate", Params: &p,
		IntentKeyID: ik.meta.KeyID, IntentTranscript: ik.meta.Transcript})
}

// start computes the deterministic start of the target's phase 2.
func (t *phase2Target) start() (phaseState, any, *ceremonyFile, error) {
	s, evals, err := t.kit.phase2Init(t.cs, t.commons)
	if err != nil {
		return nil, nil, nil, err
	}
	f := &ceremonyFile{kind: t.kind, curve: t.kit.curve(), logN: t.logN, meta: t.meta.encode(), sections: [][]byte{encodeState(s)}}
	return s, evals, f, nil
}

func (t *phase2Target) init(out string) (CeremonyFileInfo, error) {
	_, _, f, err := t.start()
	if err != nil {
		return CeremonyFileInfo{}, err
	}
	h, err := writeCeremony(out, f)
	return info(out, f, h), err
}

// IntentInit writes the start of the intent circuit's phase 2 for p, from
// a sealed BLS12-377 phase 1.
func IntentInit(ctx context.Context, p Params, srs, out string) (CeremonyFileInfo, error) {
	t, err := intentTarget(p, srs)
	if err != nil {
		return CeremonyFileInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return CeremonyFileInfo{}, err
	}
	return t.init(out)
}

// AggregateInit writes the start of the aggregation circuit's phase 2,
// from the sealed intent keys and a sealed BW6-761 phase 1.
func AggregateInit(ctx context.Context, intentKeys, srs, out string) (CeremonyFileInfo, error) {
	t, err := aggregateTarget(intentKeys, srs)
	if err != nil {
		return CeremonyFileInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return CeremonyFileInfo{}, err
	}
	return t.init(out)
}

// Phase2Source names what a phase-2 verification or seal recomputes the
// start from: the sealed SRS of the circuit's curve and, for the
// aggregation circuit, the sealed intent keys.
type Phase2Source struct {
	SRS        string
	IntentKeys string // aggregate only
}

func (src Phase2Source) target(kind CeremonyKind, files []string) (*phase2Target, error) {
	switch kind {
	case KindIntent:
		if len(files) == 0 {
			return nil, fmt.Errorf("%w: no contributions", ErrCeremony)
		}
		// The parameters come from the transcript; the recomputed start
		// must then match its meta byte for byte.
		b, err := readHeader(files[0])
		if err != nil {
			return nil, err
		}
		f, err := decodeHeaderOnly(b, KindIntent)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", files[0], err)
		}
		m, err := decodeMeta(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", files[0], err)
		}
		if m.Params == nil {
			return nil, fmt.Errorf("%w: %s: no parameters", ErrCeremony, files[0])
		}
		return intentTarget(*m.Params, src.SRS)
	case KindAggregate:
		if src.IntentKeys == "" {
			return nil, fmt.Errorf("%w: the aggregation circuit's phase 2 needs the sealed intent keys", ErrCeremony)
		}
		return aggregateTarget(src.IntentKeys, src.SRS)
	}
	return nil, fmt.Errorf("%w: %s is not a phase 2", ErrCeremony, kind)
}

// Phase2Verify checks a phase-2 transcript (kind KindIntent or
// KindAggregate): it recomputes the start from src and checks every
// contribution in order. With a beacon and a sealed keys file, it also
// checks the keys are the seal of this transcript.
func Phase2Verify(ctx context.Context, kind CeremonyKind, src Phase2Source, files []string, beacon []byte, sealed string, log *slog.Logger) (TranscriptReport, error) {
	r, err := phase2Run(ctx, kind, src, files, beacon, log)
	if err != nil || sealed == "" {
		return r.TranscriptReport, err
	}
	if beacon == nil {
		return r.TranscriptReport, fmt.Errorf("%w: checking a sealed file needs its beacon", ErrCeremony)
	}
	return r.TranscriptReport, compareSealed(sealed, r.sealed.kind, r.sealed)
}

// Phase2Seal verifies a phase-2 transcript and seals it with the beacon,
// writing the keys and the transcript's record to out.
func Phase2Seal(ctx context.Context, kind CeremonyKind, src Phase2Source, files []string, beacon []byte, out string, log *slog.Logger) (TranscriptReport, CeremonyFileInfo, error) {
	if beacon == nil {
		return TranscriptReport{}, CeremonyFileInfo{}, fmt.Errorf("%w: sealing needs a beacon", ErrCeremony)
	}
	r, err := phase2Run(ctx, kind, src, files, beacon, log)
	if err != nil {
		return r.TranscriptReport, CeremonyFileInfo{}, err
	}
	h, err := writeCeremony(out, r.sealed)
	return r.TranscriptReport, info(out, r.sealed, h), err
}

func phase2Run(ctx context.Context, kind CeremonyKind, src Phase2Source, files []string, beacon []byte, log *slog.Logger) (runResult, error) {
	t, err := src.target(kind, files)
	if err != nil {
		return runResult{}, err
	}
	return t.run(ctx, files, beacon, log)
}

// run verifies the transcript files of t and, with a beacon, seals it.
func (t *phase2Target) run(ctx context.Context, files []string, beacon []byte, log *slog.Logger) (runResult, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	kind := t.kind
	if err := ctx.Err(); err != nil {
		return runResult{}, err
	}
	log.Info("ceremony: recomputing the phase-2 start", "circuit", t.meta.Circuit, "constraints", t.meta.Constraints, "log_n", t.logN)
	start, evals, sf, err := t.start()
	if err != nil {
		return runResult{}, err
	}
	last, hashes, err := verifyChain(ctx, t.kit, kind, t.logN, sf.meta, start, fileHash(sf.encode()), files, log)
	if err != nil {
		return runResult{}, err
	}
	r := runResult{TranscriptReport: TranscriptReport{Kind: kind, Curve: t.kit.curve().String(), LogN: int(t.logN), Contributions: hashes, Params: t.meta.Params}}
	if beacon == nil {
		return r, nil
	}
	if err := ctx.Err(); err != nil {
		return r, err
	}
	log.Info("ceremony: sealing phase 2", "circuit", t.meta.Circuit)
	pk, vk := t.kit.phase2Seal(last, t.commons, evals, beacon)
	keysKind := KindIntentKeys
	if kind == KindAggregate {
		keysKind = KindAggregateKeys
	}
	m := t.meta
	m.Contributions, m.Beacon = hashes, hex.EncodeToString(beacon)
	m.Transcript = transcriptHash(keysKind, t.kit.curve(), t.logN, sf.meta, hashes, beacon)
	if m.KeyID, err = keyID(keyKind(keysKind), vk); err != nil {
		return r, err
	}
	var vb, pb bytes.Buffer
	if _, err := vk.WriteTo(&vb); err != nil {
		return r, err
	}
	if _, err := pk.WriteRawTo(&pb); err != nil {
		return r, err
	}
	r.Transcript, r.KeyID = m.Transcript, m.KeyID
	r.sealed = &ceremonyFile{kind: keysKind, curve: t.kit.curve(), logN: t.logN, meta: m.encode(), sections: [][]byte{vb.Bytes(), pb.Bytes()}}
	return r, nil
}

// ---- finalize --------------------------------------------------------------

// CeremonyRecord is what a key directory's manifest records of the
// ceremony that made its keys.
type CeremonyRecord struct {
	// Transcript is the aggregate phase 2's transcript hash, which covers
	// both phase 1s and the intent phase 2 through their transcript hashes.
	Transcript          pouw.Hash `json:"transcript"`
	IntentTranscript    pouw.Hash `json:"intent_transcript"`
	IntentSRS           pouw.Hash `json:"intent_srs"`
	AggregateSRS        pouw.Hash `json:"aggregate_srs"`
	IntentContributions int       `json:"intent_contributions"`
	AggregateContrib    int       `json:"aggregate_contributions"`
	IntentBeacon        string    `json:"intent_beacon"`
	AggregateBeacon     string    `json:"aggregate_beacon"`
	IntentSRSLogN       int       `json:"intent_srs_log_n"`
	AggregateSRSLogN    int       `json:"aggregate_srs_log_n"`
}

// Finalize writes the key directory dir from the sealed intent and
// aggregate keys, after checking they belong together and that both
// circuits are this binary's. It does not re-verify the transcripts
// (Phase2Verify with the sealed files does).
func Finalize(ctx context.Context, intentKeys, aggregateKeys, dir string, log *slog.Logger) (*Keys, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ik, err := readSealedKeys(intentKeys, KindIntentKeys, true)
	if err != nil {
		return nil, err
	}
	ak, err := readSealedKeys(aggregateKeys, KindAggregateKeys, true)
	if err != nil {
		return nil, err
	}
	p := *ik.meta.Params
	switch {
	case *ak.meta.Params != p:
		return nil, fmt.Errorf("%w: intent keys for %v, aggregate keys for %v", ErrCeremony, p, *ak.meta.Params)
	case ak.meta.IntentKeyID != ik.meta.KeyID || ak.meta.IntentTranscript != ik.meta.Transcript:
		return nil, fmt.Errorf("%w: %s was made around another intent key than %s", ErrCeremony, aggregateKeys, intentKeys)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	log.Info("ceremony: compiling both circuits to check them")
	ics, err := compileIntent(p)
	if err != nil {
		return nil, err
	}
	acs, err := compileAggregate(p, ics, ik.vk)
	if err != nil {
		return nil, err
	}
	k := &Keys{Params: p, dir: dir, IntentKeyID: ik.meta.KeyID, AggKeyID: ak.meta.KeyID,
		IntentConstraints: ics.GetNbConstraints(), AggConstraints: acs.GetNbConstraints(),
		intentVK: ik.vk, aggVK: ak.vk}
	if k.intentCircuit, err = circuitHash(ics); err != nil {
		return nil, err
	}
	if k.aggCircuit, err = circuitHash(acs); err != nil {
		return nil, err
	}
	if k.intentCircuit != ik.meta.CircuitHash || k.aggCircuit != ak.meta.CircuitHash {
		return nil, fmt.Errorf("%w: this binary's circuits differ from the ones the ceremony was for", ErrCeremony)
	}
	rec := &CeremonyRecord{
		Transcript: ak.meta.Transcript, IntentTranscript: ik.meta.Transcript,
		IntentSRS: ik.meta.SRS, AggregateSRS: ak.meta.SRS,
		IntentContributions: len(ik.meta.Contributions), AggregateContrib: len(ak.meta.Contributions),
		IntentBeacon: ik.meta.Beacon, AggregateBeacon: ak.meta.Beacon,
		IntentSRSLogN: ik.meta.SRSLogN, AggregateSRSLogN: ak.meta.SRSLogN,
	}
	setup := fmt.Sprintf("mpcsetup ceremony: %d intent + %d aggregate phase-2 contributions, transcript BLAKE3 %s",
		rec.IntentContributions, rec.AggregateContrib, rec.Transcript)
	pk := &proverKeys{intentCS: ics, aggCS: acs, intentPK: ik.pk, aggPK: ak.pk}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := writeKeyDir(k, pk, setup, rec); err != nil {
		return nil, err
	}
	k.prover = pk
	k.once.Do(func() {})
	log.Info("ceremony: keys written", "dir", dir, "intent_key_id", k.IntentKeyID, "aggregate_key_id", k.AggKeyID, "transcript", rec.Transcript)
	return k, nil
}

// ---- header-only reads -----------------------------------------------------

// readHeader reads a file's header and meta (not its sections).
func readHeader(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	b := make([]byte, headerLen)
	if _, err := io.ReadFull(fh, b); err != nil {
		return nil, fmt.Errorf("%s: %w: not a ceremony file: %w", path, ErrCeremony, err)
	}
	ml := binary.BigEndian.Uint32(b[44:48])
	if ml > maxMetaBytes {
		return nil, fmt.Errorf("%s: %w: meta of %d bytes", path, ErrCeremony, ml)
	}
	meta := make([]byte, ml)
	if _, err := io.ReadFull(fh, meta); err != nil {
		return nil, fmt.Errorf("%s: %w: truncated meta: %w", path, ErrCeremony, err)
	}
	return append(b, meta...), nil
}

// decodeHeaderOnly checks what readHeader read (sections left out).
func decodeHeaderOnly(b []byte, want CeremonyKind) (*ceremonyFile, error) {
	withEmpty := append(bytes.Clone(b), byte(kindSections(want)))
	for range kindSections(want) {
		withEmpty = binary.BigEndian.AppendUint64(withEmpty, 0)
	}
	return decodeCeremony(withEmpty, want)
}

// CeremonyFileKind reads the kind of a ceremony file (for the CLI, which
// picks the step from the file).
func CeremonyFileKind(path string) (CeremonyKind, error) {
	b, err := readHeader(path)
	if err != nil {
		return 0, err
	}
	if string(b[:4]) != ceremonyMagic {
		return 0, fmt.Errorf("%s: %w: not a ceremony file (magic)", path, ErrCeremony)
	}
	return CeremonyKind(b[5]), nil
}

// ---- gnark's mpcsetup, per curve -----------------------------------------

// phaseState is a phase-1 or phase-2 state of either curve.
type phaseState interface {
	Contribute()
	io.WriterTo
}

func encodeState(s io.WriterTo) []byte {
	var b bytes.Buffer
	if _, err := s.WriteTo(&b); err != nil {
		panic(err) // writing to memory cannot fail
	}
	return b.Bytes()
}

// ceremonyCurve is gnark's mpcsetup for one curve, behind states of type
// any (the two curves' types differ).
type ceremonyCurve interface {
	curve() ecc.ID
	pointSizes() (g1, g2 int) // compressed
	phase1New(n uint64) phaseState
	phase1Decode(b []byte, logN uint8) (phaseState, error)
	phase1Seal(s phaseState, beacon []byte) io.WriterTo
	commonsDecode(b []byte, logN uint8) (any, error)
	commonsTruncate(c any, n int) any
	verify(prev, next phaseState) error
	phase2Init(cs constraint.ConstraintSystem, commons any) (phaseState, any, error)
	phase2Decode(b []byte, logN uint8) (phaseState, error)
	phase2Seal(s phaseState, commons, evals any, beacon []byte) (groth16.ProvingKey, groth16.VerifyingKey)
}

func kitFor(curve ecc.ID) (ceremonyCurve, error) {
	switch curve {
	case ecc.BLS12_377:
		return mpcKit[m377.Phase1, m377.SrsCommons, m377.Phase2, m377.Phase2Evaluations, cs377.R1CS, *m377.Phase1, *m377.SrsCommons, *m377.Phase2]{
			id: curve, g1: bls12377.SizeOfG1AffineCompressed, g2: bls12377.SizeOfG2AffineCompressed,
			truncate: func(c *m377.SrsCommons, n int) *m377.SrsCommons {
				var t m377.SrsCommons
				t.G1.Tau, t.G1.AlphaTau, t.G1.BetaTau = c.G1.Tau[:2*n-1], c.G1.AlphaTau[:n], c.G1.BetaTau[:n]
				t.G2.Tau, t.G2.Beta = c.G2.Tau[:n], c.G2.Beta
				return &t
			},
			size: func(c *m377.SrsCommons) int { return len(c.G1.AlphaTau) },
		}, nil
	case ecc.BW6_761:
		return mpcKit[m761.Phase1, m761.SrsCommons, m761.Phase2, m761.Phase2Evaluations, cs761.R1CS, *m761.Phase1, *m761.SrsCommons, *m761.Phase2]{
			id: curve, g1: bw6761.SizeOfG1AffineCompressed, g2: bw6761.SizeOfG2AffineCompressed,
			truncate: func(c *m761.SrsCommons, n int) *m761.SrsCommons {
				var t m761.SrsCommons
				t.G1.Tau, t.G1.AlphaTau, t.G1.BetaTau = c.G1.Tau[:2*n-1], c.G1.AlphaTau[:n], c.G1.BetaTau[:n]
				t.G2.Tau, t.G2.Beta = c.G2.Tau[:n], c.G2.Beta
				return &t
			},
			size: func(c *m761.SrsCommons) int { return len(c.G1.AlphaTau) },
		}, nil
	}
	return nil, fmt.Errorf("%w: no ceremony for curve %s", ErrCeremony, curve)
}

type phase1Ptr[T, C any] interface {
	*T
	Initialize(uint64)
	Contribute()
	Verify(*T) error
	Seal([]byte) C
	io.WriterTo
	io.ReaderFrom
}

type commonsPtr[C any] interface {
	*C
	io.WriterTo
	io.ReaderFrom
}

type phase2Ptr[T, C, E, R any] interface {
	*T
	Initialize(*R, *C) E
	Contribute()
	Verify(*T) error
	Seal(*C, *E, []byte) (groth16.ProvingKey, groth16.VerifyingKey)
	io.WriterTo
	io.ReaderFrom
}

type mpcKit[P1, C, P2, E, R any, PP1 phase1Ptr[P1, C], PC commonsPtr[C], PP2 phase2Ptr[P2, C, E, R]] struct {
	id       ecc.ID
	g1, g2   int
	truncate func(*C, int) *C
	size     func(*C) int
}

func (k mpcKit[P1, C, P2, E, R, PP1, PC, PP2]) curve() ecc.ID          { return k.id }
func (k mpcKit[P1, C, P2, E, R, PP1, PC, PP2]) pointSizes() (int, int) { return k.g1, k.g2 }

func (k mpcKit[P1, C, P2, E, R, PP1, PC, PP2]) phase1New(n uint64) phaseState {
	p := PP1(new(P1))
	p.Initialize(n)
	return p
}

// decodeGnark runs gnark's decoder on b, which scan has checked first (so
// gnark allocates only what the bytes hold), and refuses trailing bytes.
func decodeGnark(b []byte, scan func(*scanner) error, r func(io.Reader) (int64, error)) (err error) {
	sc := &scanner{b: b}
	if err := scan(sc); err != nil {
		return fmt.Errorf("%w: %w", ErrCeremony, err)
	}
	if sc.off != len(b) {
		return fmt.Errorf("%w: %d trailing bytes", ErrCeremony, len(b)-sc.off)
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: decode: %v", ErrCeremony, p)
		}
	}()
	if err := readExact(b, r); err != nil {
		return fmt.Errorf("%w: decode: %w", ErrCeremony, err)
	}
	return nil
}

func (k mpcKit[P1, C, P2, E, R, PP1, PC, PP2]) phase1Decode(b []byte, logN uint8) (phaseState, error) {
	p := PP1(new(P1))
	err := decodeGnark(b, func(s *scanner) error {
		for range 3 { // update proofs of τ, α, β
			if err := s.points(1, k.g1); err != nil {
				return err
			}
			if err := s.points(1, k.g2); err != nil {
				return err
			}
		}
		if err := k.scanCommons(s, logN); err != nil {
			return err
		}
		return s.shortBytes()
	}, p.ReadFrom)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// scanCommons checks gnark's SrsCommons encoding: N, [β]₂, 2N−2 G1, N−1 G2,
// 2N G1.
func (k mpcKit[P1, C, P2, E, R, PP1, PC, PP2]) scanCommons(s *scanner, logN uint8) error {
	n, err := s.u64()
	if err != nil {
		return err
	}
	if n != uint64(1)<<logN {
		return fmt.Errorf("domain %d in a 2^%d file", n, logN)
	}
	N := int(n)
	for _, c := range []struct{ count, size int }{{1, k.g2}, {2*N - 2, k.g1}, {N - 1, k.g2}, {2 * N, k.g1}} {
		if err := s.points(c.count, c.size); err != nil {
			return err
		}
	}
	return nil
}

func (k mpcKit[P1, C, P2, E, R, PP1, PC, PP2]) phase1Seal(s phaseState, beacon []byte) io.WriterTo {
	c := s.(PP1).Seal(beacon)
	return PC(&c)
}

func (k mpcKit[P1, C, P2, E, R, PP1, PC, PP2]) commonsDecode(b []byte, logN uint8) (any, error) {
	c := PC(new(C))
	if err := decodeGnark(b, func(s *scanner) error { return k.scanCommons(s, logN) }, c.ReadFrom); err != nil {
		return nil, err
	}
	return (*C)(c), nil
}

func (k mpcKit[P1, C, P2, E, R, PP1, PC, PP2]) commonsTruncate(c any, n int) any {
	cc := c.(*C)
	if k.size(cc) == n {
		return cc
	}
	return k.truncate(cc, n)
}

func (k mpcKit[P1, C, P2, E, R, PP1, PC, PP2]) verify(prev, next phaseState) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	switch p := prev.(type) {
	case PP1:
		n, ok := next.(PP1)
		if !ok {
			return fmt.Errorf("state types differ")
		}
		return p.Verify((*P1)(n))
	case PP2:
		n, ok := next.(PP2)
		if !ok {
			return fmt.Errorf("state types differ")
		}
		return p.Verify((*P2)(n))
	}
	return fmt.Errorf("not a %s state", k.id)
}

func (k mpcKit[P1, C, P2, E, R, PP1, PC, PP2]) phase2Init(cs constraint.ConstraintSystem, commons any) (s phaseState, evals any, err error) {
	r, ok := any(cs).(*R)
	if !ok {
		return nil, nil, fmt.Errorf("%w: a %T is not an R1CS on %s", ErrCeremony, cs, k.id)
	}
	c := commons.(*C)
	if k.size(c) < cs.GetNbConstraints() {
		return nil, nil, fmt.Errorf("%w: SRS of %d for %d constraints", ErrCeremony, k.size(c), cs.GetNbConstraints())
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: phase 2 init: %v", ErrCeremony, p)
		}
	}()
	p := PP2(new(P2))
	e := p.Initialize(r, c)
	return p, &e, nil
}

// phase2Decode checks gnark's Phase2 encoding: u16 commitments; [δ]₁;
// PKK and Z (u32 length + G1 each); [δ]₂; per commitment a G1 slice; per
// commitment a G2; the δ update proof; one per commitment; the challenge.
func (k mpcKit[P1, C, P2, E, R, PP1, PC, PP2]) phase2Decode(b []byte, logN uint8) (phaseState, error) {
	p := PP2(new(P2))
	err := decodeGnark(b, func(s *scanner) error {
		nc, err := s.u16()
		if err != nil {
			return err
		}
		if nc > maxPhase2Commitments {
			return fmt.Errorf("%d commitments (at most %d)", nc, maxPhase2Commitments)
		}
		if err := s.points(1, k.g1); err != nil {
			return err
		}
		if _, err := s.slice(k.g1); err != nil { // PKK
			return err
		}
		z, err := s.slice(k.g1)
		if err != nil {
			return err
		}
		if z != 1<<logN-1 {
			return fmt.Errorf("the Z section has %d points in a 2^%d file", z, logN)
		}
		if err := s.points(1, k.g2); err != nil {
			return err
		}
		for range nc {
			if _, err := s.slice(k.g1); err != nil {
				return err
			}
		}
		if err := s.points(int(nc), k.g2); err != nil {
			return err
		}
		for range 1 + int(nc) {
			if err := s.points(1, k.g1); err != nil {
				return err
			}
			if err := s.points(1, k.g2); err != nil {
				return err
			}
		}
		return s.shortBytes()
	}, p.ReadFrom)
	if err != nil {
		return nil, err
	}
	return p, nil
}

func (k mpcKit[P1, C, P2, E, R, PP1, PC, PP2]) phase2Seal(s phaseState, commons, evals any, beacon []byte) (groth16.ProvingKey, groth16.VerifyingKey) {
	return s.(PP2).Seal(commons.(*C), evals.(*E), beacon)
}

// scanner walks a gnark encoding without decoding points: each point is
// compressed (size c) or uncompressed (2c) by the flag bits of its first
// byte, the same on both curves.
type scanner struct {
	b   []byte
	off int
}

func (s *scanner) need(n int) error {
	if n < 0 || n > len(s.b)-s.off {
		return fmt.Errorf("truncated at byte %d (need %d more)", s.off, n)
	}
	return nil
}

func (s *scanner) u16() (uint16, error) {
	if err := s.need(2); err != nil {
		return 0, err
	}
	v := binary.BigEndian.Uint16(s.b[s.off:])
	s.off += 2
	return v, nil
}

func (s *scanner) u64() (uint64, error) {
	if err := s.need(8); err != nil {
		return 0, err
	}
	v := binary.BigEndian.Uint64(s.b[s.off:])
	s.off += 8
	return v, nil
}

// points skips count points of compressed size c.
func (s *scanner) points(count, c int) error {
	if err := s.need(count * c); err != nil { // each point takes at least c
		return err
	}
	for range count {
		if err := s.need(1); err != nil {
			return err
		}
		size := c
		switch s.b[s.off] & 0xe0 {
		case 0b100 << 5, 0b101 << 5, 0b110 << 5: // compressed (smallest, largest, infinity)
		case 0b000 << 5, 0b010 << 5: // uncompressed (point, infinity)
			size = 2 * c
		default:
			return fmt.Errorf("invalid point encoding at byte %d", s.off)
		}
		if err := s.need(size); err != nil {
			return err
		}
		s.off += size
	}
	return nil
}

// slice skips a u32-length-prefixed slice of points; the length is checked
// against the bytes left before anything is skipped.
func (s *scanner) slice(c int) (int, error) {
	if err := s.need(4); err != nil {
		return 0, err
	}
	n := int(binary.BigEndian.Uint32(s.b[s.off:]))
	s.off += 4
	if n > (len(s.b)-s.off)/c {
		return 0, fmt.Errorf("slice of %d points in %d bytes", n, len(s.b)-s.off)
	}
	return n, s.points(n, c)
}

// shortBytes skips gnark's u8-length-prefixed challenge.
func (s *scanner) shortBytes() error {
	if err := s.need(1); err != nil {
		return err
	}
	n := int(s.b[s.off])
	s.off++
	if err := s.need(n); err != nil {
		return err
	}
	s.off += n
	return nil
}
