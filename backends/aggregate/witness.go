package aggregate

import (
	"fmt"

	"github.com/consensys/gnark/frontend"

	"github.com/pouwfarm/pouwfarm/trace"
)

// intentAssignment fills the circuit's witness for the intent segment seg of
// t whose statement is s (and digest d). Rows past the segment's HALT repeat
// it, as the trace's padding does.
func intentAssignment(p Params, t *trace.Trace, seg int, s *intentStatement, d frontend.Variable) (*intentCircuit, error) {
	S := uint64(p.Steps())
	if s.steps > S {
		return nil, fmt.Errorf("%w: intent of %d steps, keys prove at most %d", ErrTooLarge, s.steps, S)
	}
	words, imms, err := tableEntries(p, s.prog)
	if err != nil {
		return nil, err
	}
	c := newIntentCircuit(p)
	c.Digest = d
	c.Bind = s.bind
	c.Steps = s.steps
	for i := range trace.NumRegs {
		c.OutMask[i] = (s.outMask >> i) & 1
		c.Start[i] = s.start[i]
		c.Out[i] = s.out[i]
	}
	for j := range words {
		c.Words[j], c.Imms[j] = words[j], imms[j]
	}
	sg := &t.Header.Segments[seg]
	for i := range S {
		row := sg.StartRow + min(i, sg.EndRow-sg.StartRow)
		pc := t.At(row, trace.ColPC)
		if pc >= uint64(len(s.prog.Instrs)) {
			return nil, fmt.Errorf("%w: row %d has pc %d outside the program", ErrWitness, row, pc)
		}
		in := s.prog.Instrs[pc]
		for o := range nbFlags {
			c.Flags[i][o] = 0
		}
		c.Flags[i][in.Op] = 1
		for k := range nbRegBit {
			c.Bits[i][k] = (in.Rd >> k) & 1
			c.Bits[i][nbRegBit+k] = (in.Ra >> k) & 1
			c.Bits[i][2*nbRegBit+k] = (in.Rb >> k) & 1
		}
	}
	return c, nil
}
