package vmair

import (
	"github.com/pouwfarm/pouwfarm/backends/stark/field"
	"github.com/pouwfarm/pouwfarm/trace"
)

// elem is the arithmetic both fields offer (gnark-crypto's pointer-receiver
// style); the constraints are written once, generically, and instantiated
// for the base field (prover) and the extension (verifier), so the two can
// never disagree.
type elem[E any] interface {
	*E
	Add(x, y *E) *E
	Sub(x, y *E) *E
	Mul(x, y *E) *E
}

// consts holds the integer constants of docs/vm.md's polynomials in E.
type consts[E any] struct {
	one, c16, c256, c4096 E
	small                 [16]E // 0..15: opcode values and selector weights
}

func newConsts[E any](lift func(uint64) E) *consts[E] {
	k := &consts[E]{one: lift(1), c16: lift(16), c256: lift(256), c4096: lift(4096)}
	for i := range k.small {
		k.small[i] = lift(uint64(i))
	}
	return k
}

var (
	baseConsts = newConsts(func(v uint64) field.Base { return field.New(v) })
	extConsts  = newConsts(func(v uint64) field.Ext { return field.Lift(field.New(v)) })
)

// Numbers of constraints (docs/vm.md §8.1, §8.2).
const (
	numRow        = 56
	numTransition = 22
	numBool       = trace.ColImm - trace.ColFlag0 // 35 boolean columns
)

var rowDegrees, transitionDegrees = func() ([]int, []int) {
	var r []int
	for range numBool {
		r = append(r, 2)
	}
	r = append(r, 1, 1, 1, 1, 1, 1, 1) // one-hot groups
	r = append(r, 3, 3)                // va, vb
	r = append(r, 2, 2, 3, 2, 3, 2, 2) // op_add .. op_keep
	r = append(r, 3, 2, 2, 2, 2)       // zero_inv, zero_va, zero_isz, idle_inv, idle_isz
	t := []int{2, 2, 3, 3, 2, 1}
	for range trace.NumRegs {
		t = append(t, 3)
	}
	return r, t
}()

// sum returns Σ r[first..first+n).
func sum[E any, P elem[E]](r []E, first, n int) E {
	var s E
	for i := first; i < first+n; i++ {
		P(&s).Add(&s, &r[i])
	}
	return s
}

// selected returns Σ_{j,k} hi_j·lo_k·r_{4j+k}, computed as Σ_j hi_j·(Σ_k lo_k·r_{4j+k}).
func selected[E any, P elem[E]](r []E, hi, lo int) E {
	var s E
	for j := range 4 {
		var inner E
		for k := range 4 {
			var t E
			P(&t).Mul(&r[lo+k], &r[trace.ColR0+4*j+k])
			P(&inner).Add(&inner, &t)
		}
		P(&inner).Mul(&inner, &r[hi+j])
		P(&s).Add(&s, &inner)
	}
	return s
}

// rowConstraints evaluates the 56 row constraints of §8.1 on r.
func rowConstraints[E any, P elem[E]](k *consts[E], r []E, out []E) {
	o := 0
	for c := trace.ColFlag0; c < trace.ColImm; c++ { // bool[c]: c·(c − 1)
		var t E
		P(&t).Sub(&r[c], &k.one)
		P(&out[o]).Mul(&r[c], &t)
		o++
	}
	groups := [7][2]int{
		{trace.ColFlag0, int(trace.NumOpcodes)},
		{trace.ColDHi0, 4}, {trace.ColDLo0, 4}, {trace.ColAHi0, 4},
		{trace.ColALo0, 4}, {trace.ColBHi0, 4}, {trace.ColBLo0, 4},
	}
	for _, g := range groups { // one-hot: Σ x − 1
		s := sum[E, P](r, g[0], g[1])
		P(&out[o]).Sub(&s, &k.one)
		o++
	}
	va, vb, vd, imm := &r[trace.ColVA], &r[trace.ColVB], &r[trace.ColVD], &r[trace.ColImm]
	sa := selected[E, P](r, trace.ColAHi0, trace.ColALo0)
	P(&out[o]).Sub(va, &sa)
	o++
	sb := selected[E, P](r, trace.ColBHi0, trace.ColBLo0)
	P(&out[o]).Sub(vb, &sb)
	o++
	f := func(op trace.Opcode) *E { return &r[trace.ColFlag(op)] }
	var dva E // vd − va
	P(&dva).Sub(vd, va)
	var t E
	P(&t).Sub(&dva, vb) // op_add: f_add·(vd − va − vb)
	P(&out[o]).Mul(f(trace.OpADD), &t)
	o++
	P(&t).Add(&dva, vb) // op_sub: f_sub·(vd − va + vb)
	P(&out[o]).Mul(f(trace.OpSUB), &t)
	o++
	P(&t).Mul(va, vb) // op_mul: f_mul·(vd − va·vb)
	P(&t).Sub(vd, &t)
	P(&out[o]).Mul(f(trace.OpMUL), &t)
	o++
	P(&t).Sub(&dva, imm) // op_addi: f_addi·(vd − va − imm)
	P(&out[o]).Mul(f(trace.OpADDI), &t)
	o++
	P(&t).Mul(va, imm) // op_muli: f_muli·(vd − va·imm)
	P(&t).Sub(vd, &t)
	P(&out[o]).Mul(f(trace.OpMULI), &t)
	o++
	P(&t).Sub(vd, imm) // op_li: f_li·(vd − imm)
	P(&out[o]).Mul(f(trace.OpLI), &t)
	o++
	var keep E // op_keep: (f_mov + f_jmp + f_jz + f_jnz + f_halt)·(vd − va)
	P(&keep).Add(f(trace.OpMOV), f(trace.OpJMP))
	P(&keep).Add(&keep, f(trace.OpJZ))
	P(&keep).Add(&keep, f(trace.OpJNZ))
	P(&keep).Add(&keep, f(trace.OpHALT))
	P(&out[o]).Mul(&keep, &dva)
	o++
	inv, isz := &r[trace.ColInv], &r[trace.ColIsZ]
	var br, idle E
	P(&br).Add(f(trace.OpJZ), f(trace.OpJNZ))
	P(&idle).Sub(&k.one, &br)
	P(&t).Mul(va, inv) // zero_inv: f_br·(1 − va·inv − isz)
	P(&t).Sub(&k.one, &t)
	P(&t).Sub(&t, isz)
	P(&out[o]).Mul(&br, &t)
	o++
	P(&out[o]).Mul(va, isz) // zero_va
	o++
	P(&out[o]).Mul(inv, isz) // zero_isz
	o++
	P(&out[o]).Mul(&idle, inv) // idle_inv
	o++
	P(&out[o]).Mul(&idle, isz) // idle_isz
}

// transitionConstraints evaluates the 22 constraints of §8.2 on row r with
// the next state (pcN, progN, regsN): the next row's, or a window's public
// end state (§8.4, exit constraints).
func transitionConstraints[E any, P elem[E]](k *consts[E], r []E, pcN, progN *E, regsN []E, out []E) {
	f := func(op trace.Opcode) *E { return &r[trace.ColFlag(op)] }
	pc, imm, isz, vd := &r[trace.ColPC], &r[trace.ColImm], &r[trace.ColIsZ], &r[trace.ColVD]
	var seq E
	for op := trace.OpADD; op <= trace.OpLI; op++ {
		P(&seq).Add(&seq, f(op))
	}
	var pc1, d1, t, u E
	P(&pc1).Add(pc, &k.one)
	P(&d1).Sub(pcN, &pc1)              // pc' − pc − 1
	P(&out[0]).Mul(&seq, &d1)          // pc_seq
	P(&t).Sub(pcN, imm)                // pc' − imm
	P(&out[1]).Mul(f(trace.OpJMP), &t) // pc_jmp
	P(&u).Sub(imm, &pc1)               // pc_jz: f_jz·(pc' − pc − 1 − isz·(imm − pc − 1))
	P(&u).Mul(isz, &u)
	P(&u).Sub(&d1, &u)
	P(&out[2]).Mul(f(trace.OpJZ), &u)
	P(&u).Sub(&pc1, imm) // pc_jnz: f_jnz·(pc' − imm − isz·(pc + 1 − imm))
	P(&u).Mul(isz, &u)
	P(&u).Sub(&t, &u)
	P(&out[3]).Mul(f(trace.OpJNZ), &u)
	P(&u).Sub(pcN, pc) // pc_halt
	P(&out[4]).Mul(f(trace.OpHALT), &u)
	P(&out[5]).Sub(progN, &r[trace.ColProg]) // prog
	for j := range 4 {
		for kk := range 4 {
			i := 4*j + kk
			x := &r[trace.ColR0+i]
			var sel, dv, c E
			P(&sel).Mul(&r[trace.ColDHi0+j], &r[trace.ColDLo0+kk])
			P(&dv).Sub(vd, x)
			P(&sel).Mul(&sel, &dv)
			P(&c).Sub(&regsN[i], x)
			P(&out[6+i]).Sub(&c, &sel)
		}
	}
}

// word returns Σ op·f_op + 16·rd + 256·ra + 4096·rb with each register
// index read from its one-hot selectors (§9).
func word[E any, P elem[E]](k *consts[E], r []E) E {
	var w E
	for op := 1; op < int(trace.NumOpcodes); op++ {
		var t E
		P(&t).Mul(&k.small[op], &r[trace.ColFlag0+op])
		P(&w).Add(&w, &t)
	}
	idx := func(hi, lo int) E {
		var v E
		for j := 1; j < 4; j++ {
			var t E
			P(&t).Mul(&k.small[4*j], &r[hi+j])
			P(&v).Add(&v, &t)
			P(&t).Mul(&k.small[j], &r[lo+j])
			P(&v).Add(&v, &t)
		}
		return v
	}
	for _, s := range [3]struct {
		hi, lo int
		c      *E
	}{{trace.ColDHi0, trace.ColDLo0, &k.c16}, {trace.ColAHi0, trace.ColALo0, &k.c256}, {trace.ColBHi0, trace.ColBLo0, &k.c4096}} {
		v := idx(s.hi, s.lo)
		P(&v).Mul(&v, s.c)
		P(&w).Add(&w, &v)
	}
	return w
}
