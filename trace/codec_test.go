package trace_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"

	"github.com/zeebo/blake3"

	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/trace"
)

func encode(t testing.TB, tr *trace.Trace) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := trace.Encode(&buf, tr); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sampleTraces(t testing.TB) map[string]*trace.Trace {
	t.Helper()
	fib := trace.MustAssemble(fibSrc)
	sq := trace.MustAssemble(".inputs 2\n.outputs r2\nMUL r2, r0, r1\nHALT")
	macro, err := trace.Execute(fib, []uint64{6}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	full, err := trace.Batch([]trace.Intent{{Program: fib, Inputs: []uint64{3}}, {Program: sq, Inputs: []uint64{5, 7}}}, 1000, pouw.TierFull)
	if err != nil {
		t.Fatal(err)
	}
	wins, err := trace.Slice(macro, 4)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]*trace.Trace{"macro": macro, "full": full, "micro": wins[1]}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for name, tr := range sampleTraces(t) {
		b := encode(t, tr)
		if int64(len(b)) != trace.EncodedSize(&tr.Header) {
			t.Errorf("%s: EncodedSize %d, encoding %d bytes", name, trace.EncodedSize(&tr.Header), len(b))
		}
		got, err := trace.Decode(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, tr) {
			t.Fatalf("%s: decoded trace differs", name)
		}
		if !bytes.Equal(encode(t, got), b) {
			t.Fatalf("%s: re-encoding differs", name)
		}
		h, err := trace.Hash(tr)
		if err != nil || h != pouw.Hash(blake3.Sum256(b)) {
			t.Fatalf("%s: Hash %s, BLAKE3 of the encoding %x (%v)", name, h, blake3.Sum256(b), err)
		}
		if err := trace.Check(got); err != nil {
			t.Fatalf("%s: decoded trace fails Check: %v", name, err)
		}
	}
}

func TestDecodeRejectsOverLimitTruncatedTrailingAndNonCanonical(t *testing.T) {
	tr := sampleTraces(t)["macro"]
	b := encode(t, tr)
	if _, err := trace.Decode(bytes.NewReader(b), int64(len(b))-1); !errors.Is(err, trace.ErrTooLarge) {
		t.Errorf("limit one byte short: %v, want ErrTooLarge", err)
	}
	if _, err := trace.Decode(bytes.NewReader(b[:len(b)-3]), int64(len(b))); !errors.Is(err, trace.ErrFormat) {
		t.Errorf("truncated: %v, want ErrFormat", err)
	}
	if _, err := trace.Decode(bytes.NewReader(append(append([]byte{}, b...), 0)), int64(len(b))+1); !errors.Is(err, trace.ErrFormat) {
		t.Errorf("trailing byte: %v, want ErrFormat", err)
	}
	bad := append([]byte{}, b...)
	binary.LittleEndian.PutUint64(bad[len(bad)-8:], 0xffffffff00000001) // = p
	if _, err := trace.Decode(bytes.NewReader(bad), int64(len(bad))); !errors.Is(err, trace.ErrFormat) {
		t.Errorf("cell = p: %v, want ErrFormat", err)
	}
}

func TestDecodeDoesNotTrustAHugeRowCount(t *testing.T) {
	tr := sampleTraces(t)["macro"]
	b := encode(t, tr)
	// rows field sits after magic(8) versions(4) tier(2) width(2)
	forged := append([]byte{}, b...)
	binary.LittleEndian.PutUint64(forged[16:], 1<<28)
	if _, err := trace.Decode(bytes.NewReader(forged), 1<<20); !errors.Is(err, trace.ErrTooLarge) && !errors.Is(err, trace.ErrFormat) {
		t.Fatalf("forged row count: %v", err)
	}
	// within a generous limit the decoder still fails on the missing bytes
	// without having allocated the claimed 2^28 rows up front
	if _, err := trace.Decode(bytes.NewReader(forged), 1<<40); err == nil {
		t.Fatal("forged row count accepted")
	}
}

func FuzzDecode(f *testing.F) {
	for _, tr := range sampleTraces(f) {
		b := encode(f, tr)
		f.Add(b)
		f.Add(b[:len(b)/2])
		f.Add(b[:200])
	}
	f.Add([]byte("POUWTRC\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := trace.Decode(bytes.NewReader(b), 1<<22)
		if err != nil {
			return
		}
		// whatever decodes re-encodes to the same bytes (the format is
		// canonical) and Check does not panic on it
		if !bytes.Equal(encode(t, tr), b) {
			t.Fatal("decoded trace re-encodes differently")
		}
		_ = trace.Check(tr)
	})
}
