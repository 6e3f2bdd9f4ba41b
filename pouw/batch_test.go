package pouw_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/pouwfarm/pouwfarm/pouw"
)

func testManifest(k int) *pouw.BatchManifest {
	m := &pouw.BatchManifest{Backend: "aggregate"}
	for i := range k {
		var in, tr pouw.Hash
		in[0], tr[0] = byte(i+1), byte(i+100)
		m.Children = append(m.Children, pouw.BatchChild{
			JobID: pouw.JobID(in, tr, pouw.TierMacro, uint64(i+1)), IntentID: in, TraceHash: tr,
		})
	}
	return m
}

func TestManifestRoundTrip(t *testing.T) {
	for _, k := range []int{2, 4, 8, 16} {
		m := testManifest(k)
		b, err := pouw.EncodeManifest(m)
		if err != nil {
			t.Fatal(err)
		}
		if !pouw.IsManifest(b) {
			t.Fatal("encoding does not start with the format line")
		}
		got, err := pouw.DecodeManifest(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("k=%d: %v", k, err)
		}
		b2, _ := pouw.EncodeManifest(got)
		if !bytes.Equal(b, b2) {
			t.Fatalf("k=%d: re-encoding differs", k)
		}
		if got.IntentID() != m.IntentID() || len(got.ChildIDs()) != k {
			t.Fatalf("k=%d: intent id or children differ", k)
		}
	}
}

func TestManifestRejects(t *testing.T) {
	good, err := pouw.EncodeManifest(testManifest(2))
	if err != nil {
		t.Fatal(err)
	}
	dup := testManifest(2)
	dup.Children[1] = dup.Children[0]
	dupB, _ := jsonManifest(dup)
	three := testManifest(3)
	threeB, _ := jsonManifest(three)
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"trace magic", []byte("POUWTRC\x00")},
		{"no format line", good[len(pouw.ManifestFormat)+1:]},
		{"trailing bytes", append(append([]byte{}, good...), ' ')},
		{"non-canonical spacing", bytes.Replace(good, []byte(`","`), []byte(`", "`), 1)},
		{"unknown field", bytes.Replace(good, []byte(`{"backend"`), []byte(`{"x":1,"backend"`), 1)},
		{"duplicate child", dupB},
		{"three children", threeB},
		{"oversized", append([]byte(pouw.ManifestFormat+"\n"), bytes.Repeat([]byte(" "), pouw.MaxManifestBytes)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := pouw.DecodeManifest(bytes.NewReader(tc.b)); !errors.Is(err, pouw.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

// jsonManifest encodes m without validating it.
func jsonManifest(m *pouw.BatchManifest) ([]byte, error) {
	var sb strings.Builder
	sb.WriteString(pouw.ManifestFormat + "\n")
	sb.WriteString(`{"backend":"` + m.Backend + `","children":[`)
	for i, c := range m.Children {
		if i > 0 {
			sb.WriteString(",")
		}
		sb.WriteString(`{"job_id":"` + c.JobID + `","intent_id":"` + c.IntentID.String() + `","trace_hash":"` + c.TraceHash.String() + `"}`)
	}
	sb.WriteString("]}")
	return []byte(sb.String()), nil
}

func TestValidBatchSize(t *testing.T) {
	for k, want := range map[int]bool{0: false, 1: false, 2: true, 3: false, 4: true, 8: true, 12: false, 16: true, 32: false} {
		if pouw.ValidBatchSize(k) != want {
			t.Errorf("ValidBatchSize(%d) = %v", k, !want)
		}
	}
}

func FuzzDecodeManifest(f *testing.F) {
	good, _ := pouw.EncodeManifest(testManifest(4))
	f.Add(good)
	f.Add([]byte(pouw.ManifestFormat + "\n{}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := pouw.DecodeManifest(bytes.NewReader(b))
		if err != nil {
			return
		}
		// Whatever decodes is valid and canonical.
		again, err := pouw.EncodeManifest(m)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("decoded manifest does not re-encode to its bytes: %v", err)
		}
	})
}
