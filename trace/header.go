package trace

import (
	"fmt"

	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/trace/gl"
)

// Validate checks the header rules of docs/vm.md §11: versions, sizes,
// program hashes, multiplicities, and the segment layout of the tier. It
// reads no rows.
func (h *Header) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrHeader, fmt.Sprintf(format, a...))
	}
	if h.FormatVersion != FormatVersion {
		return bad("format version %d (want %d)", h.FormatVersion, FormatVersion)
	}
	if h.VMVersion != VMVersion {
		return bad("VM version %d (want %d)", h.VMVersion, VMVersion)
	}
	if !h.Tier.Valid() {
		return bad("tier %d", uint8(h.Tier))
	}
	if h.Width != Width {
		return bad("width %d (want %d)", h.Width, Width)
	}
	if !isPow2(h.Rows) || log2(h.Rows) > MaxLogRows {
		return bad("rows %d is not a power of two ≤ 2^%d", h.Rows, MaxLogRows)
	}
	np := len(h.Programs)
	if np == 0 || len(h.ProgramHashes) != np || len(h.Multiplicities) != np {
		return bad("%d programs, %d hashes, %d multiplicity lists", np, len(h.ProgramHashes), len(h.Multiplicities))
	}
	if np > 1 && h.Tier != pouw.TierFull {
		return bad("a %s trace has one program, got %d", h.Tier, np)
	}
	seen := map[pouw.Hash]bool{}
	var sum uint64
	for g, p := range h.Programs {
		if err := p.Validate(); err != nil {
			return bad("program %d: %v", g, err)
		}
		if ph := p.Hash(); ph != h.ProgramHashes[g] {
			return bad("program %d hash %s does not match its encoding (%s)", g, h.ProgramHashes[g], ph)
		}
		if seen[h.ProgramHashes[g]] {
			return bad("program %d is listed twice", g)
		}
		seen[h.ProgramHashes[g]] = true
		if len(h.Multiplicities[g]) != len(p.Instrs) {
			return bad("program %d: %d multiplicities for %d instructions", g, len(h.Multiplicities[g]), len(p.Instrs))
		}
		for _, m := range h.Multiplicities[g] {
			if m > h.Rows || sum+m > h.Rows {
				return bad("multiplicities exceed the row count %d", h.Rows)
			}
			sum += m
		}
	}
	if sum != h.Rows {
		return bad("multiplicities sum to %d, want the row count %d", sum, h.Rows)
	}
	ns := len(h.Segments)
	if ns == 0 {
		return bad("no segments")
	}
	if ns > 1 && h.Tier != pouw.TierFull {
		return bad("a %s trace has one segment, got %d", h.Tier, ns)
	}
	next := uint64(0)
	for k := range h.Segments {
		s := &h.Segments[k]
		if s.StartRow != next {
			return bad("segment %d starts at row %d, want %d (segments are contiguous from row 0)", k, s.StartRow, next)
		}
		if s.EndRow < s.StartRow || s.EndRow >= h.Rows {
			return bad("segment %d ends at row %d (starts %d, %d rows)", k, s.EndRow, s.StartRow, h.Rows)
		}
		next = s.EndRow + 1
		if int(s.Program) >= np {
			return bad("segment %d names program %d of %d", k, s.Program, np)
		}
		p := h.Programs[s.Program]
		if !gl.Canonical(s.Start.PC) || !gl.Canonical(s.End.PC) {
			return bad("segment %d: pc not canonical", k)
		}
		for i := 0; i < NumRegs; i++ {
			if !gl.Canonical(s.Start.Regs[i]) || !gl.Canonical(s.End.Regs[i]) {
				return bad("segment %d: register value not canonical", k)
			}
		}
		switch s.Kind {
		case SegIntent:
			if h.Tier == pouw.TierMicro {
				return bad("a micro trace has a window segment, not an intent")
			}
			if s.Start.PC != 0 {
				return bad("intent segment %d starts at pc %d, want 0", k, s.Start.PC)
			}
			for i := p.NumInputs; i < NumRegs; i++ {
				if s.Start.Regs[i] != 0 {
					return bad("intent segment %d: r%d starts at %d, want 0 (program takes %d inputs)", k, i, s.Start.Regs[i], p.NumInputs)
				}
			}
			if len(s.Outputs) != len(p.Outputs) {
				return bad("intent segment %d has %d outputs, program declares %d", k, len(s.Outputs), len(p.Outputs))
			}
			for _, v := range s.Outputs {
				if !gl.Canonical(v) {
					return bad("intent segment %d: output not canonical", k)
				}
			}
			if s.WindowIndex != 0 || s.End != (State{}) {
				return bad("intent segment %d carries window fields", k)
			}
		case SegWindow:
			if h.Tier != pouw.TierMicro {
				return bad("window segments belong to micro traces")
			}
			if s.StartRow != 0 || s.EndRow != h.Rows-1 {
				return bad("a window segment covers all %d rows", h.Rows)
			}
			if len(s.Outputs) != 0 {
				return bad("window segment carries outputs")
			}
		default:
			return bad("segment %d has kind %d", k, s.Kind)
		}
	}
	switch h.Tier {
	case pouw.TierFull:
		if want := BatchIntentID(h.Segments); h.IntentID != want {
			return bad("full trace intent id %s, want BLAKE3 of its intents' ids %s", h.IntentID, want)
		}
	default:
		if h.IntentID != h.Segments[0].IntentID {
			return bad("intent id %s differs from its segment's %s", h.IntentID, h.Segments[0].IntentID)
		}
	}
	if h.Tier != pouw.TierMicro && !h.Parent.IsZero() {
		return bad("only micro traces have a parent")
	}
	return nil
}
