package ipa

import (
	"errors"
	"fmt"

	"github.com/consensys/gnark-crypto/ecc/bn254"
	"github.com/consensys/gnark-crypto/ecc/bn254/fr"
)

// ErrEncoding reports a malformed proof encoding.
var ErrEncoding = errors.New("ipa: malformed encoding")

// Sizes of the canonical encodings.
const (
	PointSize  = bn254.SizeOfG1AffineCompressed
	ScalarSize = fr.Bytes
)

// Writer appends points (compressed) and scalars (canonical big-endian).
type Writer struct{ Buf []byte }

func (w *Writer) Point(p *bn254.G1Affine) { b := p.Bytes(); w.Buf = append(w.Buf, b[:]...) }
func (w *Writer) Scalar(s *fr.Element)    { b := s.Bytes(); w.Buf = append(w.Buf, b[:]...) }

// Reader consumes what Writer wrote. It rejects non-canonical scalars and
// bytes that are not a compressed point of G1; the first error sticks.
type Reader struct {
	Buf []byte
	Err error
}

func (r *Reader) take(n int) []byte {
	if r.Err != nil {
		return nil
	}
	if len(r.Buf) < n {
		r.Err = fmt.Errorf("%w: truncated", ErrEncoding)
		return nil
	}
	b := r.Buf[:n]
	r.Buf = r.Buf[n:]
	return b
}

func (r *Reader) Point() bn254.G1Affine {
	var p bn254.G1Affine
	b := r.take(PointSize)
	if b == nil {
		return p
	}
	if _, err := p.SetBytes(b); err != nil {
		r.Err = fmt.Errorf("%w: point: %v", ErrEncoding, err)
	}
	return p
}

func (r *Reader) Scalar() fr.Element {
	var s fr.Element
	b := r.take(ScalarSize)
	if b == nil {
		return s
	}
	if err := s.SetBytesCanonical(b); err != nil {
		r.Err = fmt.Errorf("%w: scalar: %v", ErrEncoding, err)
	}
	return s
}

// EncodeMultiProof writes a MultiProof; its length is fixed by k and the
// number of distinct points.
func EncodeMultiProof(w *Writer, p *MultiProof) {
	w.Point(&p.F)
	for i := range p.QEvals {
		w.Scalar(&p.QEvals[i])
	}
	for i := range p.IPA.L {
		w.Point(&p.IPA.L[i])
		w.Point(&p.IPA.R[i])
	}
	w.Scalar(&p.IPA.A)
}

// DecodeMultiProof reads a MultiProof of k rounds over nPoints points.
func DecodeMultiProof(r *Reader, k, nPoints int) MultiProof {
	var p MultiProof
	p.F = r.Point()
	p.QEvals = make([]fr.Element, nPoints)
	for i := range p.QEvals {
		p.QEvals[i] = r.Scalar()
	}
	p.IPA.L = make([]bn254.G1Affine, k)
	p.IPA.R = make([]bn254.G1Affine, k)
	for i := 0; i < k; i++ {
		p.IPA.L[i] = r.Point()
		p.IPA.R[i] = r.Point()
	}
	p.IPA.A = r.Scalar()
	return p
}

// MultiProofSize is the encoded size of a MultiProof.
func MultiProofSize(k, nPoints int) int {
	return PointSize + nPoints*ScalarSize + 2*k*PointSize + ScalarSize
}
