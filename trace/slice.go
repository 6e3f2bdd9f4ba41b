package trace

import (
	"fmt"

	"github.com/pouwfarm/pouwfarm/pouw"
)

// DefaultWindow is the Micro window size W (steps per window).
const DefaultWindow = 16

// Windows is how many windows of w rows cover a Macro trace's steps.
func Windows(t *Trace, w uint64) uint64 {
	steps := t.Header.Segments[0].Steps()
	return (steps + w - 1) / w
}

// Slice cuts a Macro trace into its Micro windows of w rows (w a power of
// two), docs/vm.md §10. Window k holds the source's rows k·w … k·w+w−1
// (copies of the last row past its end); its start is its first row's state
// and its end the state of source row (k+1)·w, so window k's end is window
// k+1's start.
func Slice(t *Trace, w uint64) ([]*Trace, error) {
	if err := checkWindowArgs(t, w, 0); err != nil {
		return nil, err
	}
	parent, err := Hash(t)
	if err != nil {
		return nil, err
	}
	n := Windows(t, w)
	out := make([]*Trace, 0, n)
	for k := uint64(0); k < n; k++ {
		win, err := window(t, w, k, parent)
		if err != nil {
			return nil, err
		}
		out = append(out, win)
	}
	return out, nil
}

// Window makes window k of w rows of a Macro trace (see Slice).
func Window(t *Trace, w, k uint64) (*Trace, error) {
	if err := checkWindowArgs(t, w, k); err != nil {
		return nil, err
	}
	parent, err := Hash(t)
	if err != nil {
		return nil, err
	}
	return window(t, w, k, parent)
}

func checkWindowArgs(t *Trace, w, k uint64) error {
	h := &t.Header
	if h.Tier != pouw.TierMacro || len(h.Segments) != 1 {
		return fmt.Errorf("%w: windows are cut from Macro traces, not %s", ErrInputs, h.Tier)
	}
	if !isPow2(w) || log2(w) > MaxLogRows {
		return fmt.Errorf("%w: window size %d is not a power of two", ErrInputs, w)
	}
	if w > DefaultWindow && w > h.Rows {
		// a window wider than its source would only repeat the HALT row
		return fmt.Errorf("%w: window size %d exceeds the trace's %d rows", ErrInputs, w, h.Rows)
	}
	if k >= Windows(t, w) {
		return fmt.Errorf("%w: window %d of %d", ErrInputs, k, Windows(t, w))
	}
	return nil
}

// window cuts window k; parent is the source's trace_hash.
func window(t *Trace, w, k uint64, parent pouw.Hash) (*Trace, error) {
	h := &t.Header
	src := &h.Segments[0]
	win := &Trace{Cells: make([]uint64, w*Width)}
	last := h.Rows - 1
	rowOf := func(i uint64) uint64 { return min(i, last) }
	mult := make([]uint64, len(h.Programs[0].Instrs))
	for i := uint64(0); i < w; i++ {
		r := rowOf(k*w + i)
		copy(win.Cells[i*Width:(i+1)*Width], t.Row(r))
		mult[t.At(r, ColPC)]++
	}
	win.Header = Header{
		FormatVersion:  FormatVersion,
		VMVersion:      VMVersion,
		Tier:           pouw.TierMicro,
		Rows:           w,
		Width:          Width,
		IntentID:       src.IntentID,
		Parent:         parent,
		Programs:       []*Program{h.Programs[0]},
		ProgramHashes:  []pouw.Hash{h.ProgramHashes[0]},
		Multiplicities: [][]uint64{mult},
		Segments: []Segment{{
			Kind:        SegWindow,
			Program:     0,
			IntentID:    src.IntentID,
			StartRow:    0,
			EndRow:      w - 1,
			Start:       t.StateAt(rowOf(k * w)),
			WindowIndex: k,
			End:         t.StateAt(rowOf((k + 1) * w)),
		}},
	}
	return win, nil
}
