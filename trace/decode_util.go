package trace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ErrFormat marks bytes that are not a valid encoding (bad magic, version,
// non-canonical value, truncated, over the size limit).
var ErrFormat = errors.New("invalid trace encoding")

// ErrTooLarge marks an encoding that claims or has more bytes than the
// caller's limit allows.
var ErrTooLarge = errors.New("trace encoding exceeds the size limit")

// decoder reads little-endian values from r, never more than left bytes, and
// keeps the first error (later reads become no-ops).
type decoder struct {
	r    io.Reader
	left int64 // bytes the limit still allows
	read int64 // bytes consumed
	err  error
	buf  [32]byte
	// sizeKnown: the reader holds all the bytes the rows need, so they may
	// be allocated at once
	sizeKnown bool
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

// need checks that n more bytes fit the limit before anything is allocated
// for them.
func (d *decoder) need(n int64, what string) bool {
	if d.err != nil {
		return false
	}
	if n < 0 || n > d.left {
		d.fail(fmt.Errorf("%w: %s needs %d bytes, %d left within the limit", ErrTooLarge, what, n, d.left))
		return false
	}
	return true
}

func (d *decoder) full(b []byte) {
	if d.err != nil {
		return
	}
	if !d.need(int64(len(b)), "field") {
		return
	}
	n, err := io.ReadFull(d.r, b)
	d.left -= int64(n)
	d.read += int64(n)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			d.fail(fmt.Errorf("%w: truncated at byte %d", ErrFormat, d.read))
			return
		}
		d.fail(fmt.Errorf("%w: read: %w", ErrFormat, err))
	}
}

func (d *decoder) u8() uint8 {
	d.full(d.buf[:1])
	return d.buf[0]
}

func (d *decoder) u16() uint16 {
	d.full(d.buf[:2])
	return binary.LittleEndian.Uint16(d.buf[:2])
}

func (d *decoder) u32() uint32 {
	d.full(d.buf[:4])
	return binary.LittleEndian.Uint32(d.buf[:4])
}

func (d *decoder) u64() uint64 {
	d.full(d.buf[:8])
	return binary.LittleEndian.Uint64(d.buf[:8])
}

// felt reads a u64 that must be a canonical field element.
func (d *decoder) felt(what string) uint64 {
	v := d.u64()
	if d.err == nil && v >= 0xffffffff00000001 {
		d.fail(fmt.Errorf("%w: %s %#x is not a canonical field element (≥ p)", ErrFormat, what, v))
	}
	return v
}

func (d *decoder) hash() (h [32]byte) {
	d.full(h[:])
	return h
}

// program reads one program encoding (docs/vm.md, Program encoding).
func (d *decoder) program() *Program {
	var magic [8]byte
	d.full(magic[:])
	if d.err == nil && magic != programMagic {
		d.fail(fmt.Errorf("%w: bad program magic %q", ErrProgram, magic[:]))
	}
	nin := d.u8()
	nout := d.u8()
	if d.err == nil && (nin > NumRegs || nout > NumRegs) {
		d.fail(fmt.Errorf("%w: %d inputs, %d outputs (at most 16 each)", ErrProgram, nin, nout))
	}
	if d.err != nil {
		return nil
	}
	p := &Program{NumInputs: int(nin), Outputs: make([]uint8, nout)}
	d.full(p.Outputs)
	n := d.u32()
	if d.err == nil && (n == 0 || n > MaxProgramLen) {
		d.fail(fmt.Errorf("%w: %d instructions (want 1..%d)", ErrProgram, n, MaxProgramLen))
	}
	if !d.need(16*int64(n), "program instructions") {
		return nil
	}
	p.Instrs = make([]Instr, n)
	for i := range p.Instrs {
		w := d.u64()
		imm := d.u64()
		if d.err != nil {
			return nil
		}
		in, err := decodeInstr(w, imm)
		if err != nil {
			d.fail(fmt.Errorf("%w: pc %d: %w", ErrProgram, i, err))
			return nil
		}
		p.Instrs[i] = in
	}
	if d.err == nil {
		if err := p.Validate(); err != nil {
			d.fail(err)
		}
	}
	if d.err != nil {
		return nil
	}
	return p
}

// byteReader is a minimal io.Reader over a byte slice.
type byteReader struct{ b []byte }

func (r *byteReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}
