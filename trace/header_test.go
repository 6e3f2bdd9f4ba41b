package trace_test

import (
	"errors"
	"testing"

	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/trace"
)

func TestHeaderValidateRejectsInconsistentHeaders(t *testing.T) {
	cases := map[string]struct {
		trace  string
		mutate func(h *trace.Header)
	}{
		"rows not a power of two":   {"macro", func(h *trace.Header) { h.Rows = 24 }},
		"wrong width":               {"macro", func(h *trace.Header) { h.Width = 58 }},
		"vm version":                {"macro", func(h *trace.Header) { h.VMVersion = 2 }},
		"program hash mismatch":     {"macro", func(h *trace.Header) { h.ProgramHashes[0][0] ^= 1 }},
		"multiplicities short":      {"macro", func(h *trace.Header) { h.Multiplicities[0][0]-- }},
		"segment not at row 0":      {"macro", func(h *trace.Header) { h.Segments[0].StartRow = 1 }},
		"segment past the end":      {"macro", func(h *trace.Header) { h.Segments[0].EndRow = h.Rows }},
		"intent not at pc 0":        {"macro", func(h *trace.Header) { h.Segments[0].Start.PC = 1 }},
		"non-input register set":    {"macro", func(h *trace.Header) { h.Segments[0].Start.Regs[9] = 1 }},
		"missing output":            {"macro", func(h *trace.Header) { h.Segments[0].Outputs = nil }},
		"macro intent id differs":   {"macro", func(h *trace.Header) { h.IntentID[0] ^= 1 }},
		"macro with a parent":       {"macro", func(h *trace.Header) { h.Parent[0] = 1 }},
		"full intent id underived":  {"full", func(h *trace.Header) { h.IntentID[3] ^= 1 }},
		"full segments with a gap":  {"full", func(h *trace.Header) { h.Segments[1].StartRow++ }},
		"full program out of range": {"full", func(h *trace.Header) { h.Segments[1].Program = 9 }},
		"micro window short":        {"micro", func(h *trace.Header) { h.Segments[0].EndRow-- }},
		"micro as an intent":        {"micro", func(h *trace.Header) { h.Segments[0].Kind = trace.SegIntent }},
		"micro tier changed":        {"micro", func(h *trace.Header) { h.Tier = pouw.TierMacro }},
	}
	for name, c := range cases {
		tr := sampleTraces(t)[c.trace]
		c.mutate(&tr.Header)
		if err := tr.Header.Validate(); !errors.Is(err, trace.ErrHeader) {
			t.Errorf("%s: Validate = %v, want ErrHeader", name, err)
		}
		if err := trace.Check(tr); err == nil {
			t.Errorf("%s: Check accepted it", name)
		}
		if _, err := trace.Hash(tr); err == nil {
			t.Errorf("%s: Encode accepted it", name)
		}
	}
}
