// A copy of the generic functions of constraints.go with field.Base for the
// type parameter (made by substitution): the prover evaluates them on every
// point of the constraint-evaluation domain, where the generic versions'
// dictionary calls are slow. Edit both copies together;
// TestBaseAndExtensionConstraintsAgree fails when they differ.

package vmair

import (
	"github.com/pouwfarm/pouwfarm/backends/stark/field"
	"github.com/pouwfarm/pouwfarm/trace"
)

// sum returns Σ r[first..first+n).
func sumBase(r []field.Base, first, n int) field.Base {
	var s field.Base
	for i := first; i < first+n; i++ {
		(&s).Add(&s, &r[i])
	}
	return s
}

// selected returns Σ_{j,k} hi_j·lo_k·r_{4j+k}, computed as Σ_j hi_j·(Σ_k lo_k·r_{4j+k}).
func selectedBase(r []field.Base, hi, lo int) field.Base {
	var s field.Base
	for j := range 4 {
		var inner field.Base
		for k := range 4 {
			var t field.Base
			(&t).Mul(&r[lo+k], &r[trace.ColR0+4*j+k])
			(&inner).Add(&inner, &t)
		}
		(&inner).Mul(&inner, &r[hi+j])
		(&s).Add(&s, &inner)
	}
	return s
}

// rowConstraints evaluates the 56 row constraints of §8.1 on r.
func rowConstraintsBase(k *consts[field.Base], r []field.Base, out []field.Base) {
	o := 0
	for c := trace.ColFlag0; c < trace.ColImm; c++ { // bool[c]: c·(c − 1)
		var t field.Base
		(&t).Sub(&r[c], &k.one)
		(&out[o]).Mul(&r[c], &t)
		o++
	}
	groups := [7][2]int{
		{trace.ColFlag0, int(trace.NumOpcodes)},
		{trace.ColDHi0, 4}, {trace.ColDLo0, 4}, {trace.ColAHi0, 4},
		{trace.ColALo0, 4}, {trace.ColBHi0, 4}, {trace.ColBLo0, 4},
	}
	for _, g := range groups { // one-hot: Σ x − 1
		s := sumBase(r, g[0], g[1])
		(&out[o]).Sub(&s, &k.one)
		o++
	}
	va, vb, vd, imm := &r[trace.ColVA], &r[trace.ColVB], &r[trace.ColVD], &r[trace.ColImm]
	sa := selectedBase(r, trace.ColAHi0, trace.ColALo0)
	(&out[o]).Sub(va, &sa)
	o++
	sb := selectedBase(r, trace.ColBHi0, trace.ColBLo0)
	(&out[o]).Sub(vb, &sb)
	o++
	f := func(op trace.Opcode) *field.Base { return &r[trace.ColFlag(op)] }
	var dva field.Base // vd − va
	(&dva).Sub(vd, va)
	var t field.Base
	(&t).Sub(&dva, vb) // op_add: f_add·(vd − va − vb)
	(&out[o]).Mul(f(trace.OpADD), &t)
	o++
	(&t).Add(&dva, vb) // op_sub: f_sub·(vd − va + vb)
	(&out[o]).Mul(f(trace.OpSUB), &t)
	o++
	(&t).Mul(va, vb) // op_mul: f_mul·(vd − va·vb)
	(&t).Sub(vd, &t)
	(&out[o]).Mul(f(trace.OpMUL), &t)
	o++
	(&t).Sub(&dva, imm) // op_addi: f_addi·(vd − va − imm)
	(&out[o]).Mul(f(trace.OpADDI), &t)
	o++
	(&t).Mul(va, imm) // op_muli: f_muli·(vd − va·imm)
	(&t).Sub(vd, &t)
	(&out[o]).Mul(f(trace.OpMULI), &t)
	o++
	(&t).Sub(vd, imm) // op_li: f_li·(vd − imm)
	(&out[o]).Mul(f(trace.OpLI), &t)
	o++
	var keep field.Base // op_keep: (f_mov + f_jmp + f_jz + f_jnz + f_halt)·(vd − va)
	(&keep).Add(f(trace.OpMOV), f(trace.OpJMP))
	(&keep).Add(&keep, f(trace.OpJZ))
	(&keep).Add(&keep, f(trace.OpJNZ))
	(&keep).Add(&keep, f(trace.OpHALT))
	(&out[o]).Mul(&keep, &dva)
	o++
	inv, isz := &r[trace.ColInv], &r[trace.ColIsZ]
	var br, idle field.Base
	(&br).Add(f(trace.OpJZ), f(trace.OpJNZ))
	(&idle).Sub(&k.one, &br)
	(&t).Mul(va, inv) // zero_inv: f_br·(1 − va·inv − isz)
	(&t).Sub(&k.one, &t)
	(&t).Sub(&t, isz)
	(&out[o]).Mul(&br, &t)
	o++
	(&out[o]).Mul(va, isz) // zero_va
	o++
	(&out[o]).Mul(inv, isz) // zero_isz
	o++
	(&out[o]).Mul(&idle, inv) // idle_inv
	o++
	(&out[o]).Mul(&idle, isz) // idle_isz
}

// transitionConstraints evaluates the 22 constraints of §8.2 on row r with
// the next state (pcN, progN, regsN): the next row's, or a window's public
// end state (§8.4, exit constraints).
func transitionConstraintsBase(k *consts[field.Base], r []field.Base, pcN, progN *field.Base, regsN []field.Base, out []field.Base) {
	f := func(op trace.Opcode) *field.Base { return &r[trace.ColFlag(op)] }
	pc, imm, isz, vd := &r[trace.ColPC], &r[trace.ColImm], &r[trace.ColIsZ], &r[trace.ColVD]
	var seq field.Base
	for op := trace.OpADD; op <= trace.OpLI; op++ {
		(&seq).Add(&seq, f(op))
	}
	var pc1, d1, t, u field.Base
	(&pc1).Add(pc, &k.one)
	(&d1).Sub(pcN, &pc1)              // pc' − pc − 1
	(&out[0]).Mul(&seq, &d1)          // pc_seq
	(&t).Sub(pcN, imm)                // pc' − imm
	(&out[1]).Mul(f(trace.OpJMP), &t) // pc_jmp
	(&u).Sub(imm, &pc1)               // pc_jz: f_jz·(pc' − pc − 1 − isz·(imm − pc − 1))
	(&u).Mul(isz, &u)
	(&u).Sub(&d1, &u)
	(&out[2]).Mul(f(trace.OpJZ), &u)
	(&u).Sub(&pc1, imm) // pc_jnz: f_jnz·(pc' − imm − isz·(pc + 1 − imm))
	(&u).Mul(isz, &u)
	(&u).Sub(&t, &u)
	(&out[3]).Mul(f(trace.OpJNZ), &u)
	(&u).Sub(pcN, pc) // pc_halt
	(&out[4]).Mul(f(trace.OpHALT), &u)
	(&out[5]).Sub(progN, &r[trace.ColProg]) // prog
	for j := range 4 {
		for kk := range 4 {
			i := 4*j + kk
			x := &r[trace.ColR0+i]
			var sel, dv, c field.Base
			(&sel).Mul(&r[trace.ColDHi0+j], &r[trace.ColDLo0+kk])
			(&dv).Sub(vd, x)
			(&sel).Mul(&sel, &dv)
			(&c).Sub(&regsN[i], x)
			(&out[6+i]).Sub(&c, &sel)
		}
	}
}

// word returns Σ op·f_op + 16·rd + 256·ra + 4096·rb with each register
// index read from its one-hot selectors (§9).
func wordBase(k *consts[field.Base], r []field.Base) field.Base {
	var w field.Base
	for op := 1; op < int(trace.NumOpcodes); op++ {
		var t field.Base
		(&t).Mul(&k.small[op], &r[trace.ColFlag0+op])
		(&w).Add(&w, &t)
	}
	idx := func(hi, lo int) field.Base {
		var v field.Base
		for j := 1; j < 4; j++ {
			var t field.Base
			(&t).Mul(&k.small[4*j], &r[hi+j])
			(&v).Add(&v, &t)
			(&t).Mul(&k.small[j], &r[lo+j])
			(&v).Add(&v, &t)
		}
		return v
	}
	for _, s := range [3]struct {
		hi, lo int
		c      *field.Base
	}{{trace.ColDHi0, trace.ColDLo0, &k.c16}, {trace.ColAHi0, trace.ColALo0, &k.c256}, {trace.ColBHi0, trace.ColBLo0, &k.c4096}} {
		v := idx(s.hi, s.lo)
		(&v).Mul(&v, s.c)
		(&w).Add(&w, &v)
	}
	return w
}
