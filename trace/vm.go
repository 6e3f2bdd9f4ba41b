package trace

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/zeebo/blake3"

	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/trace/gl"
)

// ErrStepLimit is returned when a program runs limit steps without HALT.
var ErrStepLimit = errors.New("step limit reached before HALT")

// ErrInputs marks public inputs that do not fit the program (wrong count or
// a value ≥ p).
var ErrInputs = errors.New("invalid inputs")

// Intent is one program run on its public inputs, named by its id.
type Intent struct {
	ID      pouw.Hash // zero: DefaultIntentID(Program, Inputs)
	Program *Program
	Inputs  []uint64
}

// DefaultIntentID is BLAKE3("pouw-intent-v1" ‖ program hash ‖ u32le(len
// inputs) ‖ inputs as u64le), the id Execute gives an unnamed intent.
func DefaultIntentID(p *Program, inputs []uint64) pouw.Hash {
	h := blake3.New()
	_, _ = h.Write([]byte("pouw-intent-v1"))
	ph := p.Hash()
	_, _ = h.Write(ph[:])
	var b [8]byte
	binary.LittleEndian.PutUint32(b[:4], uint32(len(inputs)))
	_, _ = h.Write(b[:4])
	for _, v := range inputs {
		binary.LittleEndian.PutUint64(b[:], v)
		_, _ = h.Write(b[:])
	}
	var out pouw.Hash
	copy(out[:], h.Sum(nil))
	return out
}

// InitialState is the state an intent starts in: pc 0, the inputs in
// r0..r(n-1), zeros after.
func InitialState(p *Program, inputs []uint64) (State, error) {
	var s State
	if len(inputs) != p.NumInputs {
		return s, fmt.Errorf("%w: program takes %d inputs, got %d", ErrInputs, p.NumInputs, len(inputs))
	}
	for i, v := range inputs {
		if !gl.Canonical(v) {
			return s, fmt.Errorf("%w: input %d is %#x ≥ p", ErrInputs, i, v)
		}
		s.Regs[i] = v
	}
	return s, nil
}

// Run interprets p on inputs without keeping a trace and returns the state at
// the first HALT and the step count (HALT included). It is the fast path for
// callers that need only the result, and the first pass of Execute.
func Run(p *Program, inputs []uint64, limit uint64) (State, uint64, error) {
	if err := p.Validate(); err != nil {
		return State{}, 0, err
	}
	s, err := InitialState(p, inputs)
	if err != nil {
		return s, 0, err
	}
	return run(p.Instrs, s, limit)
}

// run is the interpreter loop. Programs are validated, so every pc it reaches
// is in range (jump targets are < len, and a pc+1 past the end can only
// follow... nothing: see the bounds check).
func run(code []Instr, s State, limit uint64) (State, uint64, error) {
	regs := s.Regs
	pc := s.PC
	n := uint64(len(code))
	for steps := uint64(1); steps <= limit; steps++ {
		if pc >= n {
			return State{PC: pc, Regs: regs}, steps - 1, fmt.Errorf("%w: pc %d ran past the end of the program", ErrProgram, pc)
		}
		in := &code[pc]
		switch in.Op {
		case OpADD:
			regs[in.Rd] = gl.Add(regs[in.Ra], regs[in.Rb])
		case OpSUB:
			regs[in.Rd] = gl.Sub(regs[in.Ra], regs[in.Rb])
		case OpMUL:
			regs[in.Rd] = gl.Mul(regs[in.Ra], regs[in.Rb])
		case OpADDI:
			regs[in.Rd] = gl.Add(regs[in.Ra], in.Imm)
		case OpMULI:
			regs[in.Rd] = gl.Mul(regs[in.Ra], in.Imm)
		case OpMOV:
			regs[in.Rd] = regs[in.Ra]
		case OpLI:
			regs[in.Rd] = in.Imm
		case OpJMP:
			pc = in.Imm
			continue
		case OpJZ:
			if regs[in.Ra] == 0 {
				pc = in.Imm
				continue
			}
		case OpJNZ:
			if regs[in.Ra] != 0 {
				pc = in.Imm
				continue
			}
		case OpHALT:
			return State{PC: pc, Regs: regs}, steps, nil
		}
		pc++
	}
	return State{PC: pc, Regs: regs}, limit, fmt.Errorf("%w: %d steps", ErrStepLimit, limit)
}

// template is the part of a row that depends only on the instruction: pc,
// prog, flags, selectors and imm; the rest is zero.
func templates(p *Program, prog uint32) []uint64 {
	t := make([]uint64, len(p.Instrs)*Width)
	for j, in := range p.Instrs {
		r := t[j*Width : (j+1)*Width]
		r[ColPC] = uint64(j)
		r[ColProg] = uint64(prog)
		r[ColFlag(in.Op)] = 1
		r[ColDHi0+int(in.Rd>>2)] = 1
		r[ColDLo0+int(in.Rd&3)] = 1
		r[ColAHi0+int(in.Ra>>2)] = 1
		r[ColALo0+int(in.Ra&3)] = 1
		r[ColBHi0+int(in.Rb>>2)] = 1
		r[ColBLo0+int(in.Rb&3)] = 1
		r[ColImm] = in.Imm
	}
	return t
}

// filler writes the rows of intents into a preallocated cell buffer.
type filler struct {
	cells   []uint64
	pending []uint64 // cell indices of ColInv holding a value to invert
}

// fill executes code from s for exactly steps rows starting at row, the last
// being its HALT, and counts executions per pc into mult.
func (f *filler) fill(code []Instr, tmpl []uint64, s State, row, steps uint64, mult []uint64) {
	regs := s.Regs
	pc := s.PC
	for k := uint64(0); k < steps; k++ {
		base := (row + k) * Width
		r := f.cells[base : base+Width : base+Width]
		copy(r, tmpl[pc*Width:(pc+1)*Width])
		copy(r[ColR0:ColR0+NumRegs], regs[:])
		mult[pc]++
		in := &code[pc]
		va, vb := regs[in.Ra], regs[in.Rb]
		vd := va
		next := pc + 1
		switch in.Op {
		case OpADD:
			vd = gl.Add(va, vb)
		case OpSUB:
			vd = gl.Sub(va, vb)
		case OpMUL:
			vd = gl.Mul(va, vb)
		case OpADDI:
			vd = gl.Add(va, in.Imm)
		case OpMULI:
			vd = gl.Mul(va, in.Imm)
		case OpLI:
			vd = in.Imm
		case OpJMP:
			next = in.Imm
		case OpJZ, OpJNZ:
			if va == 0 {
				r[ColIsZ] = 1
			} else {
				r[ColInv] = va
				f.pending = append(f.pending, base+ColInv)
			}
			if (va == 0) == (in.Op == OpJZ) {
				next = in.Imm
			}
		case OpHALT:
			next = pc
		}
		r[ColVA], r[ColVB], r[ColVD] = va, vb, vd
		regs[in.Rd] = vd
		pc = next
	}
}

// invert replaces every pending inv cell by its inverse, in batches.
func (f *filler) invert() {
	const chunk = 1 << 14
	vals := make([]uint64, 0, min(chunk, len(f.pending)))
	scratch := make([]uint64, min(chunk, len(f.pending)))
	for len(f.pending) > 0 {
		n := min(chunk, len(f.pending))
		idx := f.pending[:n]
		vals = vals[:0]
		for _, c := range idx {
			vals = append(vals, f.cells[c])
		}
		gl.BatchInv(vals, scratch)
		for i, c := range idx {
			f.cells[c] = vals[i]
		}
		f.pending = f.pending[n:]
	}
}

// padRows copies row last into every row after it.
func padRows(cells []uint64, last, n uint64) {
	src := cells[last*Width : (last+1)*Width]
	for i := last + 1; i < n; i++ {
		copy(cells[i*Width:(i+1)*Width], src)
	}
}

// intentRows is the row count of an intent trace with used rows.
func intentRows(used uint64) uint64 {
	n := uint64(MinIntentRows)
	for n < used {
		n <<= 1
	}
	return n
}

// Execute runs program p on inputs (at most limit steps) and returns its
// Macro trace (docs/vm.md §6): one intent segment, padded to a power of two
// with copies of the HALT row.
func Execute(p *Program, inputs []uint64, limit uint64) (*Trace, error) {
	return Batch([]Intent{{Program: p, Inputs: inputs}}, limit, pouw.TierMacro)
}

// Batch executes intents back to back into one trace (docs/vm.md §10): a
// Full trace, or with one intent and tier Macro the same as Execute. Each
// intent is limited to limit steps.
func Batch(intents []Intent, limit uint64, tier pouw.JobTier) (*Trace, error) {
	if len(intents) == 0 {
		return nil, fmt.Errorf("%w: a batch needs at least one intent", ErrInputs)
	}
	if tier == pouw.TierMacro && len(intents) != 1 {
		return nil, fmt.Errorf("%w: a Macro trace has exactly one intent, got %d", ErrInputs, len(intents))
	}
	if tier != pouw.TierMacro && tier != pouw.TierFull {
		return nil, fmt.Errorf("%w: Batch makes Macro or Full traces, not %s (use Slice)", ErrInputs, tier)
	}
	h := Header{FormatVersion: FormatVersion, VMVersion: VMVersion, Tier: tier, Width: Width}
	progIndex := map[pouw.Hash]uint32{}
	var total uint64
	for i, it := range intents {
		if it.Program == nil {
			return nil, fmt.Errorf("%w: intent %d has no program", ErrInputs, i)
		}
		end, steps, err := Run(it.Program, it.Inputs, limit)
		if err != nil {
			return nil, fmt.Errorf("intent %d: %w", i, err)
		}
		ph := it.Program.Hash()
		g, ok := progIndex[ph]
		if !ok {
			g = uint32(len(h.Programs))
			progIndex[ph] = g
			h.Programs = append(h.Programs, it.Program)
			h.ProgramHashes = append(h.ProgramHashes, ph)
			h.Multiplicities = append(h.Multiplicities, make([]uint64, len(it.Program.Instrs)))
		}
		id := it.ID
		if id.IsZero() {
			id = DefaultIntentID(it.Program, it.Inputs)
		}
		start, _ := InitialState(it.Program, it.Inputs)
		seg := Segment{Kind: SegIntent, Program: g, IntentID: id, StartRow: total, EndRow: total + steps - 1, Start: start}
		for _, o := range it.Program.Outputs {
			seg.Outputs = append(seg.Outputs, end.Regs[o])
		}
		h.Segments = append(h.Segments, seg)
		total += steps
		if total > 1<<MaxLogRows {
			return nil, fmt.Errorf("%w: %d rows exceed 2^%d", ErrStepLimit, total, MaxLogRows)
		}
	}
	h.Rows = intentRows(total)
	if tier == pouw.TierFull {
		h.IntentID = BatchIntentID(h.Segments)
	} else {
		h.IntentID = h.Segments[0].IntentID
	}
	t := &Trace{Header: h, Cells: make([]uint64, h.Rows*Width)}
	f := &filler{cells: t.Cells}
	tmpls := make([][]uint64, len(h.Programs))
	for g, p := range h.Programs {
		tmpls[g] = templates(p, uint32(g))
	}
	for _, seg := range h.Segments {
		p := h.Programs[seg.Program]
		f.fill(p.Instrs, tmpls[seg.Program], seg.Start, seg.StartRow, seg.Steps(), h.Multiplicities[seg.Program])
	}
	f.invert()
	last := h.Segments[len(h.Segments)-1]
	padRows(t.Cells, last.EndRow, h.Rows)
	haltPC := t.Cells[last.EndRow*Width+ColPC]
	h.Multiplicities[last.Program][haltPC] += h.Rows - total
	t.Header = h
	return t, nil
}

// BatchIntentID is a Full trace's intent id: BLAKE3 of its segments' intent
// ids in order.
func BatchIntentID(segs []Segment) pouw.Hash {
	hs := blake3.New()
	for i := range segs {
		_, _ = hs.Write(segs[i].IntentID[:])
	}
	var out pouw.Hash
	copy(out[:], hs.Sum(nil))
	return out
}
