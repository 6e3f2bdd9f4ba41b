package trace

import (
	"errors"
	"fmt"
	"math/bits"

	"github.com/pouwfarm/pouwfarm/pouw"
)

// FormatVersion is the version of the binary trace format (docs/trace-format.md).
const FormatVersion = 1

// MaxLogRows bounds a trace to 2^MaxLogRows rows.
const MaxLogRows = 28

// MinIntentRows is the smallest row count of a Macro or Full trace; Micro
// windows have exactly W rows.
const MinIntentRows = 8

// State is the VM state: the program counter and the registers.
type State struct {
	PC   uint64
	Regs [NumRegs]uint64
}

// SegmentKind says how a segment's rows are bound to its public values.
type SegmentKind uint8

const (
	// SegIntent is one intent run from pc 0 on its inputs to its first HALT
	// (Macro and Full).
	SegIntent SegmentKind = 0
	// SegWindow is a window of consecutive steps whose first state and the
	// state after its last step are public (Micro).
	SegWindow SegmentKind = 1
)

func (k SegmentKind) String() string {
	switch k {
	case SegIntent:
		return "intent"
	case SegWindow:
		return "window"
	}
	return fmt.Sprintf("segment(%d)", uint8(k))
}

// Segment is a run of consecutive rows with public boundary values
// (docs/vm.md, Segments and boundary constraints).
type Segment struct {
	Kind     SegmentKind
	Program  uint32    // index into Header.Programs
	IntentID pouw.Hash // the intent whose execution these rows are
	StartRow uint64    // first row (a segment start: no transition into it)
	EndRow   uint64    // intent: the row of its first HALT; window: its last row
	Start    State     // state at StartRow: intent: pc 0, inputs then zeros
	// Outputs (intent) are the values of the program's output registers at
	// EndRow, in the order of Program.Outputs.
	Outputs []uint64
	// Window only: its index in the source trace (its first row there is
	// WindowIndex·W) and End, the state after its last step.
	WindowIndex uint64
	End         State
}

// Steps is the number of steps the segment proves: for an intent the
// instructions executed including its HALT, for a window its rows.
func (s *Segment) Steps() uint64 { return s.EndRow - s.StartRow + 1 }

// Header is everything about a trace except its rows: the public statement a
// verifier derives without the rows (docs/vm.md, Statement).
type Header struct {
	FormatVersion uint16
	VMVersion     uint16
	Tier          pouw.JobTier
	Rows          uint64    // N, a power of two
	Width         uint16    // columns per row, = Width
	IntentID      pouw.Hash // Macro/Micro: the intent; Full: BLAKE3 of the intents' ids in order
	Parent        pouw.Hash // Micro: trace_hash of the Macro trace the window was cut from; else zero
	Programs      []*Program
	// ProgramHashes[i] is Programs[i].Hash(); carried so a reader can name a
	// program without hashing, and checked by the decoder.
	ProgramHashes []pouw.Hash
	// Multiplicities[i][j] is how many rows of the trace execute instruction j
	// of program i; they sum to Rows. They are public (the lookup's table
	// side, docs/vm.md, Program table).
	Multiplicities [][]uint64
	Segments       []Segment
}

// Trace is a header and its rows, row-major: cell (row i, column c) is
// Cells[i*Width+c], always a canonical field element.
type Trace struct {
	Header Header
	Cells  []uint64
}

// Row returns row i (a view into Cells).
func (t *Trace) Row(i uint64) []uint64 { return t.Cells[i*Width : (i+1)*Width] }

// At returns cell (row, col).
func (t *Trace) At(row uint64, col int) uint64 { return t.Cells[row*Width+uint64(col)] }

// Column copies column c out (provers usually want columns).
func (t *Trace) Column(c int) []uint64 {
	out := make([]uint64, t.Header.Rows)
	for i := range out {
		out[i] = t.Cells[i*Width+c]
	}
	return out
}

// StateAt returns the state (pc and registers) held in row i.
func (t *Trace) StateAt(i uint64) State {
	r := t.Row(i)
	var s State
	s.PC = r[ColPC]
	copy(s.Regs[:], r[ColR0:ColR0+NumRegs])
	return s
}

// Steps is the total number of steps the trace's segments prove.
func (h *Header) Steps() uint64 {
	var n uint64
	for i := range h.Segments {
		n += h.Segments[i].Steps()
	}
	return n
}

// ErrHeader marks a header that is inconsistent with itself (sizes, indices,
// derived fields).
var ErrHeader = errors.New("invalid trace header")

// isPow2 reports whether n is a power of two (n ≥ 1).
func isPow2(n uint64) bool { return n != 0 && n&(n-1) == 0 }

// log2 of a power of two.
func log2(n uint64) int { return bits.TrailingZeros64(n) }
