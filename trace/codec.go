package trace

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"unsafe"

	"github.com/zeebo/blake3"

	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/trace/gl"
)

// traceMagic starts every trace encoding.
var traceMagic = [8]byte{'P', 'O', 'U', 'W', 'T', 'R', 'C', 0}

// littleEndian reports whether the host stores uint64 little-endian, in
// which case rows are written and read without conversion.
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// cellBytes views cells as bytes (little-endian hosts only).
func cellBytes(cells []uint64) []byte {
	if len(cells) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&cells[0])), len(cells)*8)
}

// segmentFixedLen is the size of a segment's fields before its tail.
const segmentFixedLen = 1 + 4 + 32 + 8 + 8 + 8 + 8*NumRegs

// AppendHeader appends the header encoding of docs/trace-format.md to b. It
// does not validate; Encode does.
func AppendHeader(b []byte, h *Header) []byte {
	le := binary.LittleEndian
	b = append(b, traceMagic[:]...)
	b = le.AppendUint16(b, h.FormatVersion)
	b = le.AppendUint16(b, h.VMVersion)
	b = append(b, byte(h.Tier), 0)
	b = le.AppendUint16(b, h.Width)
	b = le.AppendUint64(b, h.Rows)
	b = append(b, h.IntentID[:]...)
	b = append(b, h.Parent[:]...)
	b = le.AppendUint32(b, uint32(len(h.Programs)))
	for g, p := range h.Programs {
		b = append(b, h.ProgramHashes[g][:]...)
		b = le.AppendUint32(b, uint32(p.EncodedLen()))
		enc, _ := p.MarshalBinary()
		b = append(b, enc...)
	}
	for _, ms := range h.Multiplicities {
		for _, m := range ms {
			b = le.AppendUint64(b, m)
		}
	}
	b = le.AppendUint32(b, uint32(len(h.Segments)))
	for _, s := range h.Segments {
		b = append(b, byte(s.Kind))
		b = le.AppendUint32(b, s.Program)
		b = append(b, s.IntentID[:]...)
		b = le.AppendUint64(b, s.StartRow)
		b = le.AppendUint64(b, s.EndRow)
		b = appendState(b, s.Start)
		switch s.Kind {
		case SegIntent:
			for _, v := range s.Outputs {
				b = le.AppendUint64(b, v)
			}
		case SegWindow:
			b = le.AppendUint64(b, s.WindowIndex)
			b = appendState(b, s.End)
		}
	}
	return b
}

func appendState(b []byte, s State) []byte {
	b = binary.LittleEndian.AppendUint64(b, s.PC)
	for _, v := range s.Regs {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	return b
}

// EncodedSize is the length of t's encoding: header plus rows.
func EncodedSize(h *Header) int64 {
	return int64(len(AppendHeader(nil, h))) + int64(h.Rows)*Width*8
}

// Encode writes t's encoding to w: the header, then the rows streamed
// straight from memory (no second copy of the trace is made).
func Encode(w io.Writer, t *Trace) error {
	if err := t.Header.Validate(); err != nil {
		return err
	}
	if uint64(len(t.Cells)) != t.Header.Rows*Width {
		return fmt.Errorf("%w: %d cells for %d rows", ErrHeader, len(t.Cells), t.Header.Rows)
	}
	if _, err := w.Write(AppendHeader(nil, &t.Header)); err != nil {
		return fmt.Errorf("write trace header: %w", err)
	}
	return writeCells(w, t.Cells)
}

// rowChunk is how many bytes of rows go to the writer per call.
const rowChunk = 1 << 20

func writeCells(w io.Writer, cells []uint64) error {
	if littleEndian {
		b := cellBytes(cells)
		for len(b) > 0 {
			n := min(len(b), rowChunk)
			if _, err := w.Write(b[:n]); err != nil {
				return fmt.Errorf("write trace rows: %w", err)
			}
			b = b[n:]
		}
		return nil
	}
	buf := make([]byte, rowChunk)
	for len(cells) > 0 {
		n := min(len(cells), rowChunk/8)
		for i, v := range cells[:n] {
			binary.LittleEndian.PutUint64(buf[8*i:], v)
		}
		if _, err := w.Write(buf[:8*n]); err != nil {
			return fmt.Errorf("write trace rows: %w", err)
		}
		cells = cells[n:]
	}
	return nil
}

// Hash is the trace_hash: BLAKE3-256 of t's whole encoding, computed while
// streaming it (no encoding is materialised).
func Hash(t *Trace) (pouw.Hash, error) {
	hs := blake3.New()
	if err := Encode(hs, t); err != nil {
		return pouw.Hash{}, err
	}
	var out pouw.Hash
	copy(out[:], hs.Sum(nil))
	return out, nil
}

// StatementDigest is BLAKE3("pouw-statement-v1" ‖ header encoding): a
// 32-byte name for everything a verifier derives from the header.
func StatementDigest(h *Header) pouw.Hash {
	hs := blake3.New()
	_, _ = hs.Write([]byte("pouw-statement-v1"))
	_, _ = hs.Write(AppendHeader(nil, h))
	var out pouw.Hash
	copy(out[:], hs.Sum(nil))
	return out
}

// DecodeHeader reads and validates a header from r, consuming at most limit
// bytes. It returns the bytes consumed.
func DecodeHeader(r io.Reader, limit int64) (*Header, int64, error) {
	d := &decoder{r: r, left: limit}
	h := d.header()
	if d.err != nil {
		return nil, d.read, d.err
	}
	if err := h.Validate(); err != nil {
		return nil, d.read, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	return h, d.read, nil
}

// Decode reads one whole trace encoding from r. limit bounds the bytes it
// will read and therefore the memory it allocates: every length in the
// header is checked against what the limit still allows before anything is
// allocated for it, rows are read into storage that grows only as bytes
// arrive, every value must be a canonical field element, and trailing bytes
// are an error. Decode does not run Check.
func Decode(r io.Reader, limit int64) (*Trace, error) {
	hint := remaining(r)
	if _, ok := r.(io.ByteReader); !ok {
		r = bufio.NewReaderSize(r, 1<<16)
	}
	d := &decoder{r: r, left: limit}
	h := d.header()
	if d.err != nil {
		return nil, d.err
	}
	if err := h.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	total := int64(h.Rows) * Width
	// a reader that knows how much it holds lets the rows be allocated once
	// when the bytes are really there
	d.sizeKnown = hint >= 0 && hint-d.read >= total*8
	if !d.need(total*8, "rows") {
		return nil, d.err
	}
	cells, err := d.cells(total)
	if err != nil {
		return nil, err
	}
	var one [1]byte
	if n, _ := io.ReadFull(r, one[:]); n != 0 {
		return nil, fmt.Errorf("%w: trailing bytes after the rows", ErrFormat)
	}
	return &Trace{Header: *h, Cells: cells}, nil
}

// cells reads total u64 values, growing the slice as data arrives so a
// header that lies about its row count costs at most what was really sent.
func (d *decoder) cells(total int64) ([]uint64, error) {
	const first = 1 << 21 // 16 MiB of cells before the first growth
	start := min(total, first)
	if d.sizeKnown {
		start = total
	}
	cells := make([]uint64, 0, start)
	buf := make([]byte, 0)
	for int64(len(cells)) < total {
		if len(cells) == cap(cells) {
			grown := make([]uint64, len(cells), min(total, 2*int64(cap(cells))))
			copy(grown, cells)
			cells = grown
		}
		n := min(int64(cap(cells)-len(cells)), rowChunk/8)
		at := len(cells)
		cells = cells[:at+int(n)]
		var dst []byte
		if littleEndian {
			dst = cellBytes(cells[at:])
		} else {
			if len(buf) < int(8*n) {
				buf = make([]byte, 8*n)
			}
			dst = buf[:8*n]
		}
		d.full(dst)
		if d.err != nil {
			return nil, d.err
		}
		if !littleEndian {
			for i := range cells[at:] {
				cells[at+i] = binary.LittleEndian.Uint64(dst[8*i:])
			}
		}
		for i, v := range cells[at:] {
			if v >= gl.P {
				k := int64(at + i)
				return nil, fmt.Errorf("%w: cell (row %d, column %d) = %#x is not a canonical field element (≥ p)", ErrFormat, k/Width, k%Width, v)
			}
		}
	}
	return cells, nil
}

// remaining is how many bytes r still holds when it can tell (an in-memory
// reader or a regular file), else -1.
func remaining(r io.Reader) int64 {
	switch v := r.(type) {
	case interface{ Len() int }:
		return int64(v.Len())
	case *os.File:
		st, err := v.Stat()
		if err != nil || !st.Mode().IsRegular() {
			return -1
		}
		off, err := v.Seek(0, io.SeekCurrent)
		if err != nil {
			return -1
		}
		return st.Size() - off
	}
	return -1
}

// header reads the header fields of docs/trace-format.md.
func (d *decoder) header() *Header {
	var magic [8]byte
	d.full(magic[:])
	if d.err == nil && magic != traceMagic {
		d.fail(fmt.Errorf("%w: bad magic %q", ErrFormat, magic[:]))
	}
	h := &Header{}
	h.FormatVersion = d.u16()
	h.VMVersion = d.u16()
	if d.err == nil && (h.FormatVersion != FormatVersion || h.VMVersion != VMVersion) {
		d.fail(fmt.Errorf("%w: format version %d, VM version %d (this reader knows %d, %d)", ErrFormat, h.FormatVersion, h.VMVersion, FormatVersion, VMVersion))
	}
	h.Tier = pouw.JobTier(d.u8())
	if rsv := d.u8(); d.err == nil && (rsv != 0 || !h.Tier.Valid()) {
		d.fail(fmt.Errorf("%w: tier byte %d, reserved byte %d", ErrFormat, h.Tier, rsv))
	}
	h.Width = d.u16()
	h.Rows = d.u64()
	if d.err == nil && (h.Width != Width || !isPow2(h.Rows) || log2(h.Rows) > MaxLogRows) {
		d.fail(fmt.Errorf("%w: width %d, rows %d (want width %d, rows a power of two ≤ 2^%d)", ErrFormat, h.Width, h.Rows, Width, MaxLogRows))
	}
	h.IntentID = d.hash()
	h.Parent = d.hash()
	np := d.u32()
	if d.err == nil && (np == 0 || np > MaxProgramLen) {
		d.fail(fmt.Errorf("%w: %d programs", ErrFormat, np))
	}
	// each program takes at least 32+4+14+16 bytes
	if !d.need(int64(np)*66, "programs") {
		return nil
	}
	for g := uint32(0); g < np && d.err == nil; g++ {
		ph := d.hash()
		plen := d.u32()
		if !d.need(int64(plen), "program") {
			return nil
		}
		before := d.read
		p := d.program()
		if d.err == nil && d.read-before != int64(plen) {
			d.fail(fmt.Errorf("%w: program %d is %d bytes, header says %d", ErrFormat, g, d.read-before, plen))
		}
		if d.err != nil {
			d.err = fmt.Errorf("%w: program %d: %w", ErrFormat, g, d.err)
			return nil
		}
		h.Programs = append(h.Programs, p)
		h.ProgramHashes = append(h.ProgramHashes, ph)
	}
	for _, p := range h.Programs {
		if !d.need(8*int64(len(p.Instrs)), "multiplicities") {
			return nil
		}
		ms := make([]uint64, len(p.Instrs))
		for j := range ms {
			ms[j] = d.u64()
		}
		h.Multiplicities = append(h.Multiplicities, ms)
	}
	ns := d.u32()
	if d.err == nil && (ns == 0 || uint64(ns) > h.Rows) {
		d.fail(fmt.Errorf("%w: %d segments for %d rows", ErrFormat, ns, h.Rows))
	}
	if !d.need(int64(ns)*segmentFixedLen, "segments") {
		return nil
	}
	h.Segments = make([]Segment, 0, ns)
	for k := uint32(0); k < ns && d.err == nil; k++ {
		var s Segment
		s.Kind = SegmentKind(d.u8())
		s.Program = d.u32()
		s.IntentID = d.hash()
		s.StartRow = d.u64()
		s.EndRow = d.u64()
		s.Start = d.state()
		if d.err != nil {
			break
		}
		switch {
		case s.Kind == SegIntent && int(s.Program) < len(h.Programs):
			s.Outputs = make([]uint64, len(h.Programs[s.Program].Outputs))
			for o := range s.Outputs {
				s.Outputs[o] = d.felt("output")
			}
		case s.Kind == SegWindow:
			s.WindowIndex = d.u64()
			s.End = d.state()
		default:
			d.fail(fmt.Errorf("%w: segment %d: kind %d, program %d of %d", ErrFormat, k, s.Kind, s.Program, len(h.Programs)))
		}
		h.Segments = append(h.Segments, s)
	}
	if d.err != nil {
		return nil
	}
	return h
}

func (d *decoder) state() State {
	var s State
	s.PC = d.felt("pc")
	for i := range s.Regs {
		s.Regs[i] = d.felt("register")
	}
	return s
}
