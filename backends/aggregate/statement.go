package aggregate

import (
	"encoding/binary"
	"fmt"
	"math/big"

	fr377 "github.com/consensys/gnark-crypto/ecc/bls12-377/fr"
	mimc377 "github.com/consensys/gnark-crypto/ecc/bls12-377/fr/mimc"
	fr761 "github.com/consensys/gnark-crypto/ecc/bw6-761/fr"
	mimc761 "github.com/consensys/gnark-crypto/ecc/bw6-761/fr/mimc"
	"github.com/zeebo/blake3"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/trace"
)

// The statement of one intent proof, as the circuit sees it (docs/aggregate.md).
// A verifier derives it from the header and the job alone; the circuit
// hashes the same values with MiMC and compares with its one public input,
// the digest.
type intentStatement struct {
	bind    fr377.Element // BLAKE3 binding of trace_hash, header, job, prover, segment
	prog    *trace.Program
	start   [trace.NumRegs]uint64 // registers at pc 0 (inputs then zeros)
	outMask uint16                // bit i: register i is a declared output
	out     [trace.NumRegs]uint64 // output value of each masked register, 0 elsewhere
	steps   uint64                // instructions executed, HALT included
}

// Domain tags, as field elements (ASCII, big-endian): they separate the
// intent digest and the batch commitment from any other MiMC use.
var (
	intentTag = new(big.Int).SetBytes([]byte("pouw-aggregate-intent-v1"))
	batchTag  = new(big.Int).SetBytes([]byte("pouw-aggregate-batch-v1"))
)

// Packing of 64-bit values into field elements: three per element. The
// circuit range-checks every packed value, so packing is injective.
const (
	valueBits = 64
	wordBits  = 17 // a word is < 2^16; 2^16 marks a table slot past the program's end
	entryBits = wordBits + valueBits
	perElem   = 3
	// padWord fills table slots ≥ L: no row can decode to it (a decoded word
	// is < 2^16), so pc never leaves the program.
	padWord = 1 << 16
	// metaShift puts the output mask above the step count (steps ≤ 2^12).
	metaShift = 32
)

// paramsTag identifies the circuit shape inside the digest.
func paramsTag(p Params) *big.Int {
	return big.NewInt(int64(p.LogSteps) | int64(p.ProgLen)<<8 | int64(p.K)<<24)
}

// tableEntries returns the program table of the circuit: ProgLen (word, imm)
// pairs, padded with padWord.
func tableEntries(p Params, prog *trace.Program) (words, imms []uint64, err error) {
	if len(prog.Instrs) > p.ProgLen {
		return nil, nil, fmt.Errorf("%w: program has %d instructions, keys take at most %d", ErrTooLarge, len(prog.Instrs), p.ProgLen)
	}
	words = make([]uint64, p.ProgLen)
	imms = make([]uint64, p.ProgLen)
	for j := range words {
		if j < len(prog.Instrs) {
			words[j], imms[j] = prog.Instrs[j].Word(), prog.Instrs[j].Imm
		} else {
			words[j] = padWord
		}
	}
	return words, imms, nil
}

// pack returns Σ vals[i]·2^(shift·i).
func pack(vals []*big.Int, shift uint) *big.Int {
	acc := new(big.Int)
	for i := len(vals) - 1; i >= 0; i-- {
		acc.Lsh(acc, shift).Add(acc, vals[i])
	}
	return acc
}

func u64s(vs []uint64) []*big.Int {
	out := make([]*big.Int, len(vs))
	for i, v := range vs {
		out[i] = new(big.Int).SetUint64(v)
	}
	return out
}

func packGroups(vals []*big.Int, shift uint) []*big.Int {
	var out []*big.Int
	for i := 0; i < len(vals); i += perElem {
		out = append(out, pack(vals[i:min(i+perElem, len(vals))], shift))
	}
	return out
}

// elements lists, in order, the field elements the digest hashes.
func (s *intentStatement) elements(p Params) ([]*big.Int, error) {
	words, imms, err := tableEntries(p, s.prog)
	if err != nil {
		return nil, err
	}
	var bind big.Int
	s.bind.BigInt(&bind)
	meta := new(big.Int).SetUint64(uint64(s.outMask))
	meta.Lsh(meta, metaShift).Add(meta, new(big.Int).SetUint64(s.steps))
	els := []*big.Int{intentTag, paramsTag(p), &bind, meta}
	els = append(els, packGroups(u64s(s.start[:]), valueBits)...)
	els = append(els, packGroups(u64s(s.out[:]), valueBits)...)
	entries := make([]*big.Int, p.ProgLen)
	for j := range entries {
		e := new(big.Int).SetUint64(imms[j])
		entries[j] = e.Lsh(e, wordBits).Add(e, new(big.Int).SetUint64(words[j]))
	}
	els = append(els, packGroups(entries, entryBits)...)
	return els, nil
}

// digest is the intent proof's public input: MiMC over BLS12-377's scalar
// field of elements().
func (s *intentStatement) digest(p Params) (fr377.Element, error) {
	els, err := s.elements(p)
	if err != nil {
		return fr377.Element{}, err
	}
	h := mimc377.NewFieldHasher()
	for _, e := range els {
		var x fr377.Element
		x.SetBigInt(e)
		h.WriteElement(x)
	}
	return h.SumElement(), nil
}

// batchCommitment is the aggregate proof's public input: MiMC over BW6-761's
// scalar field of the tag, the parameters, the batch binding (batchBind) and
// the k intent digests in order.
func batchCommitment(p Params, bind fr761.Element, digests []fr377.Element) fr761.Element {
	h := mimc761.NewFieldHasher()
	var x fr761.Element
	x.SetBigInt(batchTag)
	h.WriteElement(x)
	x.SetBigInt(paramsTag(p))
	h.WriteElement(x)
	h.WriteElement(bind)
	for i := range digests {
		var d big.Int
		digests[i].BigInt(&d)
		x.SetBigInt(&d)
		h.WriteElement(x)
	}
	return h.SumElement()
}

// batchBind binds an aggregate proof to the job it answers, as every proof
// is (ARCHITECTURE.md, Proof statement): BLAKE3 of the batch's trace hash
// (the manifest's, or the Full trace's), its job and its prover, cut to 248
// bits so it is a canonical field element. The children's statements are
// bound through their digests; this binds the aggregation itself, so an
// aggregate proof taken from another job or prover is worthless.
func batchBind(batch backends.Statement) fr761.Element {
	h := blake3.New()
	_, _ = h.Write([]byte("pouw-aggregate-batch-bind-v1"))
	_, _ = h.Write(batch.TraceHash[:])
	var b [4]byte
	for _, s := range []string{batch.JobID, batch.ProverID} {
		binary.LittleEndian.PutUint32(b[:], uint32(len(s)))
		_, _ = h.Write(b[:])
		_, _ = h.Write([]byte(s))
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	var e fr761.Element
	e.SetBytes(sum[:31])
	return e
}

// bindElement binds the parts of the statement the circuit does not compute
// with: BLAKE3 of the trace hash, the header's statement digest (programs,
// multiplicities, intent ids), the segment index, job and prover, cut to 248
// bits so it is a canonical field element.
func bindElement(st backends.Statement, segment int) fr377.Element {
	h := blake3.New()
	_, _ = h.Write([]byte("pouw-aggregate-bind-v1"))
	_, _ = h.Write([]byte{byte(st.Header.Tier)})
	_, _ = h.Write(st.TraceHash[:])
	sd := trace.StatementDigest(st.Header)
	_, _ = h.Write(sd[:])
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], uint32(segment))
	_, _ = h.Write(b[:])
	for _, s := range []string{st.JobID, st.ProverID} {
		binary.LittleEndian.PutUint32(b[:], uint32(len(s)))
		_, _ = h.Write(b[:])
		_, _ = h.Write([]byte(s))
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	var e fr377.Element
	e.SetBytes(sum[:31])
	return e
}

// intentStatements derives the statements of the intents a Macro (one) or
// Full (one per segment) statement covers. The header is validated first.
func intentStatements(st backends.Statement) ([]intentStatement, error) {
	h := st.Header
	if h == nil {
		return nil, fmt.Errorf("%w: statement without a header", backends.ErrProofRejected)
	}
	if err := h.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", backends.ErrProofRejected, err)
	}
	if h.Tier != pouw.TierMacro && h.Tier != pouw.TierFull {
		return nil, fmt.Errorf("%w: %s", backends.ErrUnsupportedTier, h.Tier)
	}
	out := make([]intentStatement, len(h.Segments))
	for i := range h.Segments {
		seg := &h.Segments[i]
		prog := h.Programs[seg.Program]
		s := intentStatement{bind: bindElement(st, i), prog: prog, start: seg.Start.Regs, steps: seg.Steps()}
		for o, r := range prog.Outputs {
			s.outMask |= 1 << r
			s.out[r] = seg.Outputs[o]
		}
		out[i] = s
	}
	return out, nil
}
