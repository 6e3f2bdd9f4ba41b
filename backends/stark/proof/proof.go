// Package proof is the STARK proof object and its binary encoding (the byte
// layout is in docs/proof-formats.md). The decoder takes bytes from the
// network: it bounds every count before allocating, rejects non-canonical
// field elements, truncated input and trailing bytes, and never panics.
//
// It imports only air, field, fri and merkle of this module.
package proof

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/pouwfarm/pouwfarm/backends/stark/air"
	"github.com/pouwfarm/pouwfarm/backends/stark/field"
	"github.com/pouwfarm/pouwfarm/backends/stark/fri"
	"github.com/pouwfarm/pouwfarm/backends/stark/merkle"
)

// Magic starts every proof: "PWSTARK" and the format version 1.
var Magic = [8]byte{'P', 'W', 'S', 'T', 'A', 'R', 'K', 1}

// Limits of the decoder.
const (
	MaxBytes        = 8 << 20 // a proof is never larger than 8 MiB
	MaxWidth        = 1024    // columns per segment
	MaxLogTrace     = 30      // 2^30 rows
	MaxCompWidth    = 16
	MaxFRILayers    = 32
	maxNodesPerPath = 32
)

// ErrMalformed marks bytes that are not a well-formed proof.
var ErrMalformed = errors.New("malformed proof")

// Segment is one committed trace segment opened at the query positions: a
// row of base-field values per distinct position (extension columns are
// stored as their two base coordinates) and the Merkle multiproof.
type Segment struct {
	Rows  [][]field.Base
	Nodes []merkle.Digest
}

// Proof is a STARK proof.
type Proof struct {
	Options  air.Options
	LogTrace int // log2 of the trace length
	// Widths in base-field columns: main, aux (2 per extension column),
	// composition (2 per extension column).
	MainWidth, AuxWidth, CompWidth int

	MainRoot, AuxRoot, CompRoot merkle.Digest // AuxRoot only when AuxWidth > 0

	// Out-of-domain frame: every main and aux column at z and z·g, every
	// composition column at z (extension columns as one Ext each).
	OODMainCur, OODMainNext []field.Ext
	OODAuxCur, OODAuxNext   []field.Ext
	OODComp                 []field.Ext

	FRIRoots  []merkle.Digest
	Remainder []field.Ext
	Nonce     uint64

	// Openings at the distinct query positions (ascending).
	Main, Aux, Comp Segment
	FRI             []fri.Opening
}

type writer struct{ b []byte }

func (w *writer) u8(v int)               { w.b = append(w.b, byte(v)) }
func (w *writer) u16(v int)              { w.b = binary.LittleEndian.AppendUint16(w.b, uint16(v)) }
func (w *writer) u64(v uint64)           { w.b = binary.LittleEndian.AppendUint64(w.b, v) }
func (w *writer) digest(d merkle.Digest) { w.b = append(w.b, d[:]...) }
func (w *writer) base(x field.Base)      { w.u64(x.Uint64()) }
func (w *writer) ext(x field.Ext)        { w.base(x.A0); w.base(x.A1) }
func (w *writer) exts(v []field.Ext) {
	for _, x := range v {
		w.ext(x)
	}
}
func (w *writer) nodes(v []merkle.Digest) {
	w.u16(len(v))
	for _, d := range v {
		w.digest(d)
	}
}
func (w *writer) segment(s Segment, width int) {
	w.u16(len(s.Rows))
	for _, r := range s.Rows {
		for _, x := range r[:width] {
			w.base(x)
		}
	}
	w.nodes(s.Nodes)
}

// Encode returns the proof's bytes.
func (p *Proof) Encode() []byte {
	w := &writer{}
	w.b = append(w.b, Magic[:]...)
	w.b = append(w.b, p.Options.Encode()...)
	w.u8(p.LogTrace)
	w.u16(p.MainWidth)
	w.u16(p.AuxWidth)
	w.u8(p.CompWidth)
	w.digest(p.MainRoot)
	if p.AuxWidth > 0 {
		w.digest(p.AuxRoot)
	}
	w.digest(p.CompRoot)
	w.exts(p.OODMainCur)
	w.exts(p.OODMainNext)
	w.exts(p.OODAuxCur)
	w.exts(p.OODAuxNext)
	w.exts(p.OODComp)
	w.u8(len(p.FRIRoots))
	for _, d := range p.FRIRoots {
		w.digest(d)
	}
	w.u16(len(p.Remainder))
	w.exts(p.Remainder)
	w.u64(p.Nonce)
	w.segment(p.Main, p.MainWidth)
	if p.AuxWidth > 0 {
		w.segment(p.Aux, p.AuxWidth)
	}
	w.segment(p.Comp, p.CompWidth)
	for _, op := range p.FRI {
		w.u16(len(op.Leaves))
		for _, leaf := range op.Leaves {
			w.exts(leaf)
		}
		w.nodes(op.Nodes)
	}
	return w.b
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(format string, a ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, a...))
	}
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b) < n {
		r.fail("truncated")
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) u8() int {
	b := r.take(1)
	if b == nil {
		return 0
	}
	return int(b[0])
}

func (r *reader) u16() int {
	b := r.take(2)
	if b == nil {
		return 0
	}
	return int(binary.LittleEndian.Uint16(b))
}

func (r *reader) u64() uint64 {
	b := r.take(8)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(b)
}

func (r *reader) digest() (d merkle.Digest) {
	copy(d[:], r.take(32))
	return d
}

func (r *reader) base() field.Base {
	b := r.take(8)
	if b == nil {
		return field.Base{}
	}
	x, err := field.ReadBase(b)
	if err != nil {
		r.fail("%v", err)
	}
	return x
}

func (r *reader) exts(n int) []field.Ext {
	if r.err != nil || n*field.ExtBytes > len(r.b) {
		r.fail("truncated")
		return nil
	}
	out := make([]field.Ext, n)
	for i := range out {
		out[i].A0 = r.base()
		out[i].A1 = r.base()
	}
	return out
}

// count reads a u16 count and checks it against max and the bytes left
// (each item needs at least minBytes), so no allocation exceeds the input.
func (r *reader) count(max, minBytes int, what string) int {
	n := r.u16()
	if r.err == nil && (n > max || n*minBytes > len(r.b)) {
		r.fail("%s count %d out of range", what, n)
		return 0
	}
	return n
}

func (r *reader) nodes(maxN int) []merkle.Digest {
	n := r.count(maxN, 32, "merkle node")
	out := make([]merkle.Digest, n)
	for i := range out {
		out[i] = r.digest()
	}
	return out
}

func (r *reader) segment(width, queries, depth int) Segment {
	n := r.count(queries, 8*width, "row")
	if n == 0 && r.err == nil {
		r.fail("no rows opened")
	}
	s := Segment{Rows: make([][]field.Base, n)}
	for i := range s.Rows {
		row := make([]field.Base, width)
		for j := range row {
			row[j] = r.base()
		}
		s.Rows[i] = row
	}
	s.Nodes = r.nodes(queries * max(depth, 1))
	return s
}

// Decode parses a proof. It checks the encoding and the options' ranges; the
// verifier checks the shape against the statement's AIR.
func Decode(b []byte) (*Proof, error) {
	if len(b) > MaxBytes {
		return nil, fmt.Errorf("%w: %d bytes exceeds the limit of %d", ErrMalformed, len(b), MaxBytes)
	}
	r := &reader{b: b}
	if m := r.take(len(Magic)); r.err != nil || string(m) != string(Magic[:]) {
		return nil, fmt.Errorf("%w: not a pouwfarm STARK proof (bad magic or version)", ErrMalformed)
	}
	opts, err := air.DecodeOptions(r.take(air.OptionsBytes))
	if r.err != nil {
		return nil, r.err
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	p := &Proof{Options: opts}
	p.LogTrace = r.u8()
	p.MainWidth = r.u16()
	p.AuxWidth = r.u16()
	p.CompWidth = r.u8()
	if r.err != nil {
		return nil, r.err
	}
	if p.LogTrace < 0 || p.LogTrace > MaxLogTrace || p.MainWidth < 1 || p.MainWidth > MaxWidth ||
		p.AuxWidth > MaxWidth || p.AuxWidth%2 != 0 || p.CompWidth < 2 || p.CompWidth > MaxCompWidth || p.CompWidth%2 != 0 {
		return nil, fmt.Errorf("%w: trace shape out of range", ErrMalformed)
	}
	p.MainRoot = r.digest()
	if p.AuxWidth > 0 {
		p.AuxRoot = r.digest()
	}
	p.CompRoot = r.digest()
	p.OODMainCur = r.exts(p.MainWidth)
	p.OODMainNext = r.exts(p.MainWidth)
	p.OODAuxCur = r.exts(p.AuxWidth / 2)
	p.OODAuxNext = r.exts(p.AuxWidth / 2)
	p.OODComp = r.exts(p.CompWidth / 2)
	nl := r.u8()
	if nl > MaxFRILayers {
		r.fail("%d FRI layers", nl)
	}
	for range nl {
		p.FRIRoots = append(p.FRIRoots, r.digest())
	}
	p.Remainder = r.exts(r.count(256, field.ExtBytes, "remainder"))
	p.Nonce = r.u64()
	depth := p.LogTrace + bitsLen(opts.Blowup)
	p.Main = r.segment(p.MainWidth, opts.Queries, depth)
	if p.AuxWidth > 0 {
		p.Aux = r.segment(p.AuxWidth, opts.Queries, depth)
	}
	p.Comp = r.segment(p.CompWidth, opts.Queries, depth)
	for k := range nl {
		n := r.count(opts.Queries, opts.Folding*field.ExtBytes, "FRI leaf")
		op := fri.Opening{Leaves: make([][]field.Ext, n)}
		for i := range op.Leaves {
			op.Leaves[i] = r.exts(opts.Folding)
		}
		op.Nodes = r.nodes(opts.Queries * max(depth-k, 1))
		p.FRI = append(p.FRI, op)
		if r.err != nil {
			break
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(r.b))
	}
	return p, nil
}

func bitsLen(x int) int {
	n := 0
	for x > 1 {
		x >>= 1
		n++
	}
	return n
}

// Context is what both sides absorb right after the statement seed: the
// options and the trace shape, so a proof is bound to both.
func Context(o air.Options, logTrace, mainWidth, auxWidth, compWidth int) []byte {
	b := append([]byte(nil), o.Encode()...)
	b = append(b, byte(logTrace))
	b = binary.LittleEndian.AppendUint16(b, uint16(mainWidth))
	b = binary.LittleEndian.AppendUint16(b, uint16(auxWidth))
	return append(b, byte(compWidth))
}

// OODBytes is the canonical encoding of the out-of-domain frame absorbed
// into the transcript.
func (p *Proof) OODBytes() []byte {
	w := &writer{}
	w.exts(p.OODMainCur)
	w.exts(p.OODMainNext)
	w.exts(p.OODAuxCur)
	w.exts(p.OODAuxNext)
	w.exts(p.OODComp)
	return w.b
}
