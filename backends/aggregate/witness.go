package aggregate

import (
	"fmt"
	"math/big"

	fr377 "github.com/consensys/gnark-crypto/ecc/bls12-377/fr"
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
	// last[a] is the time of register a's last access (0: its start value).
	var last [trace.NumRegs]uint64
	for i := range S {
		row := sg.StartRow + min(i, sg.EndRow-sg.StartRow)
		pc := t.At(row, trace.ColPC)
		if pc >= uint64(len(s.prog.Instrs)) {
			return nil, fmt.Errorf("%w: row %d has pc %d outside the program", ErrWitness, row, pc)
		}
		in := s.prog.Instrs[pc]
		w := &c.Rows[i]
		for o := range w.F {
			w.F[o] = 0
			if trace.Opcode(o) == in.Op {
				w.F[o] = 1
			}
		}
		reg := func(r uint8) uint64 { return t.At(row, trace.ColR0+int(r)) }
		va, vb := reg(in.Ra), reg(in.Rb)
		w.Rd, w.Ra, w.Rb, w.Imm = in.Rd, in.Ra, in.Rb, in.Imm
		w.Va, w.Vb, w.Old = va, vb, reg(in.Rd)

		// t = va·Y + Z as in the circuit, then t = q·p + vd.
		y := vb
		switch in.Op {
		case trace.OpADDI, trace.OpMULI, trace.OpLI:
			y = in.Imm
		}
		tv := new(big.Int)
		bva, by := new(big.Int).SetUint64(va), new(big.Int).SetUint64(y)
		switch in.Op {
		case trace.OpMUL, trace.OpMULI:
			tv.Mul(bva, by)
		case trace.OpADD, trace.OpADDI:
			tv.Add(bva, by)
		case trace.OpSUB:
			tv.Add(bva, gl64).Sub(tv, by)
		case trace.OpLI:
			tv.Set(by)
		default:
			tv.Set(bva)
		}
		q, vdBig := new(big.Int).QuoRem(tv, gl64, new(big.Int))
		vd := vdBig.Uint64()
		qv := q.Uint64()
		for j := 1; j < valueLimbs; j++ {
			w.Q[j-1] = (qv >> (limbBits * j)) & (rangeSize - 1)
			w.Vd[j-1] = (vd >> (limbBits * j)) & (rangeSize - 1)
		}
		// m = lo/(2^32 − 1 − hi) in the native field (0 when vd = p − 1).
		var m, den fr377.Element
		m.SetUint64(vd & 0xffffffff)
		den.SetUint64(glComplement - vd>>32)
		den.Inverse(&den)
		w.M = *m.Mul(&m, &den)

		// The memory accesses at times 3i+1, 3i+2, 3i+3.
		for k, a := range []uint8{in.Ra, in.Rb, in.Rd} {
			at := 3*i + uint64(k) + 1
			gap := at - 1 - last[a]
			w.Gap[k][0], w.Gap[k][1] = gap&(rangeSize-1), gap>>limbBits
			last[a] = at
		}
	}
	endRow := sg.StartRow + min(S-1, sg.EndRow-sg.StartRow)
	for a := range trace.NumRegs {
		c.FinalV[a] = t.At(endRow, trace.ColR0+a)
		c.FinalT[a] = last[a]
	}
	return c, nil
}
