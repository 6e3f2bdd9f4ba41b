package trace_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/pouwfarm/pouwfarm/trace"
	"github.com/pouwfarm/pouwfarm/trace/gl"
)

func TestAssembleResolvesLabelsAndNegativeImmediates(t *testing.T) {
	p := trace.MustAssemble(fibSrc)
	if len(p.Instrs) != 9 || p.NumInputs != 1 || len(p.Outputs) != 1 || p.Outputs[0] != 1 {
		t.Fatalf("program shape: %d instrs, %d inputs, outputs %v", len(p.Instrs), p.NumInputs, p.Outputs)
	}
	jz, addi, jnz := p.Instrs[2], p.Instrs[6], p.Instrs[7]
	if jz.Op != trace.OpJZ || jz.Imm != 8 || jz.Rd != jz.Ra {
		t.Errorf("JZ r0, done = %+v", jz)
	}
	if addi.Imm != gl.P-1 {
		t.Errorf("ADDI -1 has imm %d", addi.Imm)
	}
	if jnz.Imm != 3 {
		t.Errorf("JNZ r0, loop jumps to %d", jnz.Imm)
	}
}

func TestDisassembleRoundTrips(t *testing.T) {
	p := trace.MustAssemble(fibSrc)
	var b bytes.Buffer
	if err := trace.Disassemble(&b, p); err != nil {
		t.Fatal(err)
	}
	q, err := trace.Assemble(b.String())
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if q.Hash() != p.Hash() {
		t.Fatalf("round trip changed the program:\n%s", b.String())
	}
}

func TestAssembleRejectsBadPrograms(t *testing.T) {
	for name, src := range map[string]string{
		"unknown op":      "NOP",
		"bad register":    "ADD r1, r2, r16\nHALT",
		"missing operand": "ADD r1, r2\nHALT",
		"unknown label":   "JMP nowhere\nHALT",
		"duplicate label": "a: HALT\na: HALT",
		"imm ≥ p":         "LI r1, 18446744069414584321\nHALT",
		"too many inputs": ".inputs 17\nHALT",
		"repeated output": ".outputs r1, r1\nHALT",
		"target past end": "JMP 5\nHALT",
		"empty":           "; nothing",
		"late directive":  "HALT\n.inputs 1",
	} {
		if _, err := trace.Assemble(src); !errors.Is(err, trace.ErrProgram) {
			t.Errorf("%s: err = %v, want ErrProgram", name, err)
		}
	}
}

func TestProgramDecoderRejectsNonCanonicalEncodings(t *testing.T) {
	p := trace.MustAssemble(fibSrc)
	good, _ := p.MarshalBinary()
	if q, err := trace.UnmarshalProgram(good); err != nil || q.Hash() != p.Hash() {
		t.Fatalf("round trip: %v", err)
	}
	// JZ (pc 2) with rd != ra: word = op 8 | rd<<4 | ra<<8
	bad := append([]byte{}, good...)
	off := 8 + 2 + 1 + 4 + 16*2
	bad[off] = 8 | 5<<4
	if _, err := trace.UnmarshalProgram(bad); !errors.Is(err, trace.ErrProgram) {
		t.Errorf("JZ with rd != ra accepted: %v", err)
	}
	if _, err := trace.UnmarshalProgram(append(good, 0)); !errors.Is(err, trace.ErrProgram) {
		t.Errorf("trailing byte accepted")
	}
	if _, err := trace.UnmarshalProgram(good[:len(good)-1]); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("truncated program: %v", err)
	}
}

func FuzzUnmarshalProgram(f *testing.F) {
	for _, src := range []string{fibSrc, ".inputs 2\n.outputs r2\nMUL r2, r0, r1\nHALT", "top: JMP top"} {
		b, _ := trace.MustAssemble(src).MarshalBinary()
		f.Add(b)
		f.Add(b[:len(b)-1])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := trace.UnmarshalProgram(b)
		if err != nil {
			return
		}
		// a decoded program is valid and encodes back to the same bytes
		if err := p.Validate(); err != nil {
			t.Fatal(err)
		}
		if enc, _ := p.MarshalBinary(); !bytes.Equal(enc, b) {
			t.Fatal("re-encoding differs")
		}
	})
}
