package plonkish

import (
	"fmt"
	"math/bits"

	"github.com/consensys/gnark-crypto/ecc/bn254/fr"

	"github.com/pouwfarm/pouwfarm/backends/plonkish/circuit"
	"github.com/pouwfarm/pouwfarm/backends/plonkish/goldilocks"
	"github.com/pouwfarm/pouwfarm/trace"
)

// minK: the range table alone needs 256 usable rows (2^9 - 1 >= 256).
const minK = 9

// circuitK is the size (log2 rows) of the circuit for a trace header: the
// trace rows, the program table and the range table must each fit in the
// 2^k - 1 usable rows.
func circuitK(h *trace.Header) int {
	rows := max(h.Rows, uint64(goldilocks.TableRows), programTableLen(h))
	return max(minK, bits.Len64(rows))
}

func programTableLen(h *trace.Header) uint64 {
	var l uint64
	for _, p := range h.Programs {
		l += uint64(len(p.Instrs))
	}
	return l
}

// vmCircuit is docs/vm.md's relation as a PLONKish circuit. The 59 trace
// columns are advice columns, one trace row per circuit row. Everything
// that depends on the statement (which rows are trace rows, transitions,
// segment boundaries, public values, the program table) lives in instance
// columns, so the keys depend on the circuit size k alone.
type vmCircuit struct {
	t *trace.Trace // nil at keygen

	adv   [trace.Width]circuit.Column
	res   *goldilocks.Word // vd (or inv on JZ/JNZ rows): canonical
	quo   *goldilocks.Word // the quotient q of the emulated identity
	table circuit.Column   // range table 0..255

	sRow, sTrans, sStart, sExit, sHalt, sHaltFirst circuit.Column
	stPC, stProg                                   circuit.Column
	stReg                                          [trace.NumRegs]circuit.Column
	exPC                                           circuit.Column
	exMask, exVal                                  [trace.NumRegs]circuit.Column
	tpProg, tpPC, tpWord, tpImm                    circuit.Column
}

func (c *vmCircuit) Configure(cs *circuit.ConstraintSystem) {
	for i := range c.adv {
		c.adv[i] = cs.AdviceColumn()
	}
	c.table = goldilocks.ConfigureRangeTable(cs)
	inst := func() circuit.Column { return cs.InstanceColumn() }
	c.sRow, c.sTrans, c.sStart, c.sExit, c.sHalt, c.sHaltFirst = inst(), inst(), inst(), inst(), inst(), inst()
	c.stPC, c.stProg = inst(), inst()
	for i := range c.stReg {
		c.stReg[i] = inst()
	}
	c.exPC = inst()
	for i := range c.exMask {
		c.exMask[i], c.exVal[i] = inst(), inst()
	}
	c.tpProg, c.tpPC, c.tpWord, c.tpImm = inst(), inst(), inst(), inst()

	s := c.sRow.Cur()
	col := func(i int) *circuit.Expr { return c.adv[i].Cur() }
	nxt := func(i int) *circuit.Expr { return c.adv[i].Next() }
	f := func(op trace.Opcode) *circuit.Expr { return col(trace.ColFlag(op)) }
	one := circuit.Const(1)
	pFr := goldilocks.PFr()
	P := circuit.ConstFr(pFr)
	sum := func(ops ...trace.Opcode) *circuit.Expr {
		es := make([]*circuit.Expr, len(ops))
		for i, op := range ops {
			es[i] = f(op)
		}
		return circuit.Sum(es...)
	}
	fSeq := sum(trace.OpADD, trace.OpSUB, trace.OpMUL, trace.OpADDI, trace.OpMULI, trace.OpMOV, trace.OpLI)
	fKeep := sum(trace.OpMOV, trace.OpJMP, trace.OpJZ, trace.OpJNZ, trace.OpHALT)
	fBr := sum(trace.OpJZ, trace.OpJNZ)
	pc, imm := col(trace.ColPC), col(trace.ColImm)
	va, vb, vd := col(trace.ColVA), col(trace.ColVB), col(trace.ColVD)
	inv, isz := col(trace.ColInv), col(trace.ColIsZ)
	sel := func(hi, lo, i int) *circuit.Expr { return col(hi + i/4).Mul(col(lo + i%4)) }
	names := trace.ColumnNames()

	c.res = goldilocks.ConfigureWord(cs, "result", s, true)
	c.quo = goldilocks.ConfigureWord(cs, "quotient", s, false)
	goldilocks.RangeCheck(cs, "range", c.table, c.res, c.quo)
	qp := c.quo.Expr().Mul(P)

	// §8.1 row constraints, on trace rows
	for i := trace.ColFlag0; i < trace.ColImm; i++ {
		cs.CreateGate("bool["+names[i]+"]", s.Mul(col(i).Mul(col(i).Sub(one))))
	}
	onehot := func(name string, first, n int) {
		es := make([]*circuit.Expr, n)
		for i := range es {
			es[i] = col(first + i)
		}
		cs.CreateGate("onehot["+name+"]", s.Mul(circuit.Sum(es...).Sub(one)))
	}
	onehot("flags", trace.ColFlag0, int(trace.NumOpcodes))
	onehot("dhi", trace.ColDHi0, 4)
	onehot("dlo", trace.ColDLo0, 4)
	onehot("ahi", trace.ColAHi0, 4)
	onehot("alo", trace.ColALo0, 4)
	onehot("bhi", trace.ColBHi0, 4)
	onehot("blo", trace.ColBLo0, 4)
	var aTerms, bTerms []*circuit.Expr
	for i := 0; i < trace.NumRegs; i++ {
		r := col(trace.ColReg(i))
		aTerms = append(aTerms, sel(trace.ColAHi0, trace.ColALo0, i).Mul(r))
		bTerms = append(bTerms, sel(trace.ColBHi0, trace.ColBLo0, i).Mul(r))
	}
	cs.CreateGate("va", s.Mul(va.Sub(circuit.Sum(aTerms...))))
	cs.CreateGate("vb", s.Mul(vb.Sub(circuit.Sum(bTerms...))))
	// Goldilocks identities as integer equations with the quotient q
	cs.CreateGate("op_add", s.Mul(f(trace.OpADD).Mul(va.Add(vb).Sub(vd).Sub(qp))))
	cs.CreateGate("op_sub", s.Mul(f(trace.OpSUB).Mul(va.Add(qp).Sub(vb).Sub(vd))))
	cs.CreateGate("op_mul", s.Mul(f(trace.OpMUL).Mul(va.Mul(vb).Sub(vd).Sub(qp))))
	cs.CreateGate("op_addi", s.Mul(f(trace.OpADDI).Mul(va.Add(imm).Sub(vd).Sub(qp))))
	cs.CreateGate("op_muli", s.Mul(f(trace.OpMULI).Mul(va.Mul(imm).Sub(vd).Sub(qp))))
	cs.CreateGate("op_li", s.Mul(f(trace.OpLI).Mul(vd.Sub(imm))))
	cs.CreateGate("op_keep", s.Mul(fKeep.Mul(vd.Sub(va))))
	cs.CreateGate("zero_inv", s.Mul(fBr.Mul(va.Mul(inv).Add(isz).Sub(one).Sub(qp))))
	cs.CreateGate("zero_va", s.Mul(va.Mul(isz)))
	cs.CreateGate("zero_isz", s.Mul(inv.Mul(isz)))
	cs.CreateGate("idle_inv", s.Mul(one.Sub(fBr).Mul(inv)))
	cs.CreateGate("idle_isz", s.Mul(one.Sub(fBr).Mul(isz)))
	// emulation: isz is 0/1 (implied mod p, needed natively), and the
	// range-checked canonical result is vd, or inv on JZ/JNZ rows
	cs.CreateGate("isz_bool", s.Mul(isz.Mul(isz.Sub(one))))
	cs.CreateGate("result", s.Mul(c.res.Expr().Sub(vd.Mul(one.Sub(fBr))).Sub(inv.Mul(fBr))))

	// §8.2 transitions on the rows T, §8.4 the same at a window's exit
	// with the public end state in place of the next row
	transition := func(prefix string, sel, pcN *circuit.Expr) {
		pc1 := pc.Add(one)
		cs.CreateGate(prefix+"pc_seq", sel.Mul(fSeq.Mul(pcN.Sub(pc1))))
		cs.CreateGate(prefix+"pc_jmp", sel.Mul(f(trace.OpJMP).Mul(pcN.Sub(imm))))
		cs.CreateGate(prefix+"pc_jz", sel.Mul(f(trace.OpJZ).Mul(pcN.Sub(pc1).Sub(isz.Mul(imm.Sub(pc1))))))
		cs.CreateGate(prefix+"pc_jnz", sel.Mul(f(trace.OpJNZ).Mul(pcN.Sub(imm).Sub(isz.Mul(pc1.Sub(imm))))))
		cs.CreateGate(prefix+"pc_halt", sel.Mul(f(trace.OpHALT).Mul(pcN.Sub(pc))))
	}
	t := c.sTrans.Cur()
	transition("", t, nxt(trace.ColPC))
	cs.CreateGate("prog", t.Mul(nxt(trace.ColProg).Sub(col(trace.ColProg))))
	for i := 0; i < trace.NumRegs; i++ {
		r := col(trace.ColReg(i))
		d := sel(trace.ColDHi0, trace.ColDLo0, i)
		cs.CreateGate(fmt.Sprintf("reg[%d]", i), t.Mul(nxt(trace.ColReg(i)).Sub(r).Sub(d.Mul(vd.Sub(r)))))
	}
	ex := c.sExit.Cur()
	transition("exit:", ex, c.exPC.Cur())
	for i := 0; i < trace.NumRegs; i++ {
		// windows: exit:reg[i] (mask 1, sExit 1); intents: output (mask
		// 1 on output registers, sExit 0): r_i = value at the HALT row
		r := col(trace.ColReg(i))
		d := sel(trace.ColDHi0, trace.ColDLo0, i)
		cs.CreateGate(fmt.Sprintf("exit:reg[%d]", i),
			c.exMask[i].Cur().Mul(c.exVal[i].Cur().Sub(r).Sub(ex.Mul(d.Mul(vd.Sub(r))))))
	}

	// §8.3 boundaries at segment starts and intent ends
	st := c.sStart.Cur()
	cs.CreateGate("start_pc", st.Mul(pc.Sub(c.stPC.Cur())))
	cs.CreateGate("start_prog", st.Mul(col(trace.ColProg).Sub(c.stProg.Cur())))
	for i := 0; i < trace.NumRegs; i++ {
		cs.CreateGate("start_"+names[trace.ColReg(i)], st.Mul(col(trace.ColReg(i)).Sub(c.stReg[i].Cur())))
	}
	cs.CreateGate("halt", c.sHalt.Cur().Mul(f(trace.OpHALT).Sub(one)))
	cs.CreateGate("halt_first", c.sHaltFirst.Cur().Mul(f(trace.OpHALT)))

	// §9 program table: (prog, pc, word, imm) of every trace row is a row
	// of the public table
	regIdx := func(hi, lo int) *circuit.Expr {
		return circuit.Sum(
			col(hi+1).Mul(circuit.Const(4)), col(hi+2).Mul(circuit.Const(8)), col(hi+3).Mul(circuit.Const(12)),
			col(lo+1), col(lo+2).Mul(circuit.Const(2)), col(lo+3).Mul(circuit.Const(3)))
	}
	var opTerms []*circuit.Expr
	for op := trace.Opcode(1); op < trace.NumOpcodes; op++ {
		opTerms = append(opTerms, f(op).Mul(circuit.Const(uint64(op))))
	}
	word := circuit.Sum(
		circuit.Sum(opTerms...),
		regIdx(trace.ColDHi0, trace.ColDLo0).Mul(circuit.Const(16)),
		regIdx(trace.ColAHi0, trace.ColALo0).Mul(circuit.Const(256)),
		regIdx(trace.ColBHi0, trace.ColBLo0).Mul(circuit.Const(4096)))
	cs.AddLookup("lookup",
		[]*circuit.Expr{c.tpProg.Cur(), c.tpPC.Cur(), c.tpWord.Cur(), c.tpImm.Cur()},
		circuit.LookupInput{Weight: s, Tuple: []*circuit.Expr{col(trace.ColProg), pc, word, imm}})
}

func (c *vmCircuit) Synthesize(a *circuit.Assignment) error {
	goldilocks.AssignRangeTable(a, c.table)
	if c.t == nil {
		return nil
	}
	t := c.t
	n := int(t.Header.Rows)
	if n > a.Usable() {
		return fmt.Errorf("plonkish: %d trace rows exceed %d usable rows", n, a.Usable())
	}
	var v fr.Element
	for row := 0; row < n; row++ {
		r := t.Cells[row*trace.Width : (row+1)*trace.Width]
		for ci, x := range r {
			v.SetUint64(x)
			a.Set(c.adv[ci], row, v)
		}
		va, vb, vd, imm := r[trace.ColVA], r[trace.ColVB], r[trace.ColVD], r[trace.ColImm]
		var q uint64
		res := vd
		switch {
		case r[trace.ColFlag(trace.OpADD)] == 1:
			q, _ = goldilocks.AddQuo(va, vb)
		case r[trace.ColFlag(trace.OpSUB)] == 1:
			q, _ = goldilocks.SubQuo(va, vb)
		case r[trace.ColFlag(trace.OpMUL)] == 1:
			q, _ = goldilocks.MulQuo(va, vb)
		case r[trace.ColFlag(trace.OpADDI)] == 1:
			q, _ = goldilocks.AddQuo(va, imm)
		case r[trace.ColFlag(trace.OpMULI)] == 1:
			q, _ = goldilocks.MulQuo(va, imm)
		case r[trace.ColFlag(trace.OpJZ)] == 1 || r[trace.ColFlag(trace.OpJNZ)] == 1:
			q, _ = goldilocks.MulQuo(va, r[trace.ColInv])
			res = r[trace.ColInv]
		}
		c.res.Assign(a, row, res)
		c.quo.Assign(a, row, q)
	}
	return nil
}

// instance builds the public columns from the header alone (the verifier
// never sees the rows). Column order is Configure's.
func (c *vmCircuit) instance(h *trace.Header, n int) ([][]fr.Element, error) {
	if err := h.Validate(); err != nil {
		return nil, fmt.Errorf("plonkish: %w", err)
	}
	usable := n - 1
	if h.Rows > uint64(usable) || programTableLen(h) > uint64(usable) {
		return nil, fmt.Errorf("plonkish: statement does not fit 2^%d rows", bits.Len(uint(n))-1)
	}
	cols := make([][]fr.Element, 6+2+trace.NumRegs+1+2*trace.NumRegs+4)
	for i := range cols {
		cols[i] = make([]fr.Element, usable)
	}
	set := func(col circuit.Column, row uint64, v uint64) { cols[col.Index][row].SetUint64(v) }
	N := h.Rows
	starts := map[uint64]bool{}
	for _, s := range h.Segments {
		starts[s.StartRow] = true
	}
	for i := uint64(0); i < N; i++ {
		set(c.sRow, i, 1)
		if i+1 < N && !starts[i+1] {
			set(c.sTrans, i, 1)
		}
	}
	for _, s := range h.Segments {
		b, e := s.StartRow, s.EndRow
		set(c.sStart, b, 1)
		set(c.stPC, b, s.Start.PC)
		set(c.stProg, b, uint64(s.Program))
		for i, r := range s.Start.Regs {
			set(c.stReg[i], b, r)
		}
		switch s.Kind {
		case trace.SegIntent:
			set(c.sHalt, e, 1)
			if e > b {
				set(c.sHaltFirst, e-1, 1)
			}
			outs := h.Programs[s.Program].Outputs
			if len(outs) != len(s.Outputs) {
				return nil, fmt.Errorf("plonkish: segment outputs do not match the program")
			}
			for o, reg := range outs {
				set(c.exMask[reg], e, 1)
				set(c.exVal[reg], e, s.Outputs[o])
			}
		default: // window
			set(c.sExit, e, 1)
			set(c.exPC, e, s.End.PC)
			for i, r := range s.End.Regs {
				set(c.exMask[i], e, 1)
				set(c.exVal[i], e, r)
			}
		}
	}
	row := uint64(0)
	for g, p := range h.Programs {
		for j, in := range p.Instrs {
			set(c.tpProg, row, uint64(g))
			set(c.tpPC, row, uint64(j))
			set(c.tpWord, row, in.Word())
			set(c.tpImm, row, in.Imm)
			row++
		}
	}
	// pad the table by repeating its first entry (harmless: it is a real row)
	for ; row < uint64(usable); row++ {
		for _, tc := range []circuit.Column{c.tpProg, c.tpPC, c.tpWord, c.tpImm} {
			cols[tc.Index][row] = cols[tc.Index][0]
		}
	}
	return cols, nil
}
