package trace_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/pouwfarm/pouwfarm/trace"
)

// FuzzDecodeHeader feeds DecodeHeader what ingest feeds it: an uploaded
// blob of any bytes. The seed corpus (testdata/fuzz/FuzzDecodeHeader) holds
// the headers of docs/test-vectors and truncations of them; it runs in
// every go test.
func FuzzDecodeHeader(f *testing.F) {
	for _, tr := range sampleTraces(f) {
		b := encode(f, tr)
		f.Add(b)
		f.Add(b[:len(b)/3])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		const limit = 1 << 16
		h, n, err := trace.DecodeHeader(bytes.NewReader(b), limit)
		if n < 0 || n > int64(len(b)) || n > limit {
			t.Fatalf("consumed %d bytes of %d (limit %d)", n, len(b), limit)
		}
		if err != nil {
			if h != nil {
				t.Fatal("a header returned with an error")
			}
			if !errors.Is(err, trace.ErrFormat) && !errors.Is(err, trace.ErrTooLarge) {
				t.Fatalf("error outside the sentinels: %v", err)
			}
			return
		}
		// What decodes is valid, and is exactly the bytes it consumed: the
		// header encoding is canonical, so the statement digest a
		// coordinator derives from it names these bytes alone.
		if verr := h.Validate(); verr != nil {
			t.Fatalf("decoded header does not validate: %v", verr)
		}
		if !bytes.Equal(trace.AppendHeader(nil, h), b[:n]) {
			t.Fatal("decoded header re-encodes differently")
		}
		// The limit bounds it: one byte short of the header fails.
		if _, _, err := trace.DecodeHeader(bytes.NewReader(b), n-1); err == nil {
			t.Fatalf("a %d-byte header decoded under a limit of %d", n, n-1)
		}
	})
}
