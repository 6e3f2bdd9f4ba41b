package trace

// Helpers for backends that build the relation of docs/vm.md from a header.

// LookupTuple returns row r's program-table tuple (prog, pc, word, imm) of
// docs/vm.md §9, with word computed from the flag and selector columns as
// the linear form reads it.
func LookupTuple(r []uint64) [4]uint64 {
	return [4]uint64{r[ColProg], r[ColPC], word(r), r[ColImm]}
}

// TableEntry returns the tuple of instruction j of program g: (g, j, word,
// imm).
func (h *Header) TableEntry(g, j int) [4]uint64 {
	in := h.Programs[g].Instrs[j]
	return [4]uint64{uint64(g), uint64(j), in.Word(), in.Imm}
}

// TransitionExcluded lists, in ascending order, the rows i at which the
// transition constraints of docs/vm.md §8.2 do not apply: the row before
// each segment start after the first, and the last row N−1. (A STARK divides
// its transition constraints by (x^N − 1)/Π_{i in this list}(x − ω^i).)
func (h *Header) TransitionExcluded() []uint64 {
	out := make([]uint64, 0, len(h.Segments))
	for _, s := range h.Segments[1:] {
		out = append(out, s.StartRow-1)
	}
	return append(out, h.Rows-1)
}
