package aggregate

import (
	"fmt"
	"math/big"

	"github.com/consensys/gnark/constraint/solver"
	"github.com/consensys/gnark/frontend"
	"github.com/consensys/gnark/std/hash/mimc"
	"github.com/consensys/gnark/std/multicommit"
	"github.com/consensys/gnark/std/rangecheck"

	"github.com/pouwfarm/pouwfarm/trace"
	"github.com/pouwfarm/pouwfarm/trace/gl"
)

// The intent circuit (docs/aggregate.md, Intent circuit) computes natively in
// BLS12-377's scalar field r (253 bits). A Goldilocks value is a canonical
// integer < p < 2^64, so a Goldilocks product or sum (< 2^129) is exact in
// the native field and is reduced mod p by a quotient q and a remainder vd,
// both range-checked. The register file is not carried from row to row: it is
// an offline memory-checking argument (logUp over (register, value, time)
// tuples). The program table, the memory and the range checks are three logUp
// identities over challenges drawn from the circuit's one BSB22 commitment.
const (
	nbFlags = int(trace.NumOpcodes)
	// limbBits is the width of the range table: every range-checked value
	// is split into bytes, each looked up in [0, 2^limbBits).
	limbBits   = 8
	rangeSize  = 1 << limbBits
	valueLimbs = 64 / limbBits // bytes of a 64-bit value
	// gapLimbs bytes hold a timestamp gap: gaps are < 3·Steps + 3 ≤ 2^16.
	gapLimbs = 2
	// accesses per step: read ra, read rb, write rd.
	accesses = 3
)

// gl64 is the Goldilocks modulus p = 2^64 − 2^32 + 1; pInv its inverse in
// BLS12-377's scalar field.
var (
	gl64 = new(big.Int).SetUint64(gl.P)
	pInv = new(big.Int).ModInverse(gl64, innerCurve.ScalarField())
)

// stepWitness is one step slot of the intent. Row i of the trace holds the
// instruction at pc_i; everything the constraints need that is not computed
// from other cells is here.
type stepWitness struct {
	F          [nbFlags - 1]frontend.Variable // opcode flags 0..9; f_halt = 1 − ΣF
	Rd, Ra, Rb frontend.Variable              // register indices of the instruction
	Imm        frontend.Variable              // its immediate
	Va, Vb     frontend.Variable              // values read from ra and rb
	Old        frontend.Variable              // value of rd before the write
	Gap        [accesses][gapLimbs]frontend.Variable
	Vd         [valueLimbs - 1]frontend.Variable // bytes 1..7 of vd (byte 0 is implied)
	Q          [valueLimbs - 1]frontend.Variable // bytes 1..7 of the quotient q (byte 0 is implied)
	M          frontend.Variable                 // lo/(2^32 − 1 − hi), or 0
}

// intentCircuit is the docs/vm.md relation for one intent of at most
// 2^LogSteps steps. Its one public input is the statement digest; the
// statement's values are private inputs that the circuit hashes and compares
// with it.
type intentCircuit struct {
	Digest frontend.Variable `gnark:",public"`

	Bind    frontend.Variable
	Steps   frontend.Variable
	OutMask [trace.NumRegs]frontend.Variable
	Start   [trace.NumRegs]frontend.Variable
	Out     [trace.NumRegs]frontend.Variable
	Words   []frontend.Variable // ProgLen
	Imms    []frontend.Variable // ProgLen

	Rows []stepWitness // one per step slot
	// The register file after the last step: values and the time of each
	// register's last access (the memory argument's final read).
	FinalV [trace.NumRegs]frontend.Variable
	FinalT [trace.NumRegs]frontend.Variable

	params Params
}

func newIntentCircuit(p Params) *intentCircuit {
	return &intentCircuit{
		Words:  make([]frontend.Variable, p.ProgLen),
		Imms:   make([]frontend.Variable, p.ProgLen),
		Rows:   make([]stepWitness, p.Steps()),
		params: p,
	}
}

func init() {
	solver.RegisterHint(countHint)
}

// countHint returns, for inputs (n, x_1 … x_m), how many x_i equal each of
// 0 … n−1 (the multiplicities of a logUp table indexed by position).
func countHint(_ *big.Int, in, out []*big.Int) error {
	if len(in) == 0 || !in[0].IsInt64() || int(in[0].Int64()) != len(out) {
		return fmt.Errorf("aggregate: countHint: want %d buckets", len(out))
	}
	for _, o := range out {
		o.SetUint64(0)
	}
	for _, x := range in[1:] {
		if x.IsInt64() && x.Int64() >= 0 && int(x.Int64()) < len(out) {
			o := out[x.Int64()]
			o.Add(o, big.NewInt(1))
		}
	}
	return nil
}

// glComplement is 2^64 − p.
const glComplement = 1<<32 - 1

func pow2(n uint) *big.Int { return new(big.Int).Lsh(big.NewInt(1), n) }

// packVars is pack() in-circuit.
func packVars(api frontend.API, vals []frontend.Variable, shift uint) []frontend.Variable {
	var out []frontend.Variable
	for i := 0; i < len(vals); i += perElem {
		var acc frontend.Variable = 0
		for j := i; j < min(i+perElem, len(vals)); j++ {
			acc = api.Add(acc, api.Mul(vals[j], pow2(shift*uint(j-i))))
		}
		out = append(out, acc)
	}
	return out
}

// limbsOf is Σ limbs[j]·2^(8j).
func limbsOf(api frontend.API, limbs []frontend.Variable) frontend.Variable {
	var acc frontend.Variable = 0
	for j, l := range limbs {
		acc = api.Add(acc, api.Mul(l, pow2(uint(limbBits*j))))
	}
	return acc
}

// memAccess is one register access: the memory argument reads (a, vR, tR)
// and writes (a, vW, tW).
type memAccess struct {
	a, vR, tR, vW, tW frontend.Variable
}

// logUp collects the three lookup identities until the commitment is known.
type logUp struct {
	ranged    []frontend.Variable // each must be in [0, 2^limbBits)
	committed []frontend.Variable
	mem       []memAccess
	progPC    []frontend.Variable
	progWord  []frontend.Variable
	progImm   []frontend.Variable
}

// checkBits range-checks v < 2^n (n ≥ 1) by a byte decomposition.
func (l *logUp) checkBits(api frontend.API, v frontend.Variable, n int) error {
	nb := (n + limbBits - 1) / limbBits
	limbs, err := api.Compiler().NewHint(rangecheck.DecomposeHint, nb, n, limbBits, v)
	if err != nil {
		return err
	}
	api.AssertIsEqual(limbsOf(api, limbs), v)
	l.ranged = append(l.ranged, limbs...)
	l.committed = append(l.committed, limbs...)
	if sh := nb*limbBits - n; sh > 0 {
		// The top limb is < 2^(n mod 8) iff top·2^sh is a byte.
		l.ranged = append(l.ranged, api.Mul(limbs[nb-1], 1<<sh))
	}
	return nil
}

func (c *intentCircuit) Define(api frontend.API) error {
	p := c.params
	S := p.Steps()
	if len(c.Rows) != S || len(c.Words) != p.ProgLen || len(c.Imms) != p.ProgLen {
		return fmt.Errorf("aggregate: circuit sized for %v", p)
	}
	if 3*S+3 >= 1<<(limbBits*gapLimbs) {
		return fmt.Errorf("aggregate: %d steps exceed the timestamp range", S)
	}
	lu := &logUp{}

	// The statement: range checks make the packing injective, the hash binds
	// it to the public digest.
	for i := range trace.NumRegs {
		api.AssertIsBoolean(c.OutMask[i])
		if err := lu.checkBits(api, c.Start[i], valueBits); err != nil {
			return err
		}
		if err := lu.checkBits(api, c.Out[i], valueBits); err != nil {
			return err
		}
	}
	entries := make([]frontend.Variable, p.ProgLen)
	for j := range p.ProgLen {
		if err := lu.checkBits(api, c.Words[j], wordBits); err != nil {
			return err
		}
		if err := lu.checkBits(api, c.Imms[j], valueBits); err != nil {
			return err
		}
		entries[j] = api.Add(c.Words[j], api.Mul(c.Imms[j], pow2(wordBits)))
	}
	var mask frontend.Variable = 0
	for i := range trace.NumRegs {
		mask = api.Add(mask, api.Mul(c.OutMask[i], 1<<i))
	}
	h, err := mimc.NewMiMC(api)
	if err != nil {
		return err
	}
	h.Write(intentTag, paramsTag(p), c.Bind, api.Add(c.Steps, api.Mul(mask, pow2(metaShift))))
	h.Write(packVars(api, c.Start[:], valueBits)...)
	h.Write(packVars(api, c.Out[:], valueBits)...)
	h.Write(packVars(api, entries, entryBits)...)
	api.AssertIsEqual(h.Sum(), c.Digest)
	lu.committed = append(lu.committed, c.Start[:]...)
	lu.committed = append(lu.committed, c.Words...)
	lu.committed = append(lu.committed, c.Imms...)
	lu.committed = append(lu.committed, c.FinalV[:]...)
	lu.committed = append(lu.committed, c.FinalT[:]...)

	// The execution. Step i's accesses happen at times 3i+1 (read ra),
	// 3i+2 (read rb) and 3i+3 (write rd); the start values are written at
	// time 0. A read of register a at time t names the time t' < t of a's
	// previous access by the gap t − 1 − t' (range-checked), reads (a, v, t')
	// and writes (a, v', t) back.
	var pc frontend.Variable = 0
	var halts frontend.Variable = 0
	for i := range S {
		r := &c.Rows[i]
		var fsum, op frontend.Variable = 0, 0
		for o, x := range r.F {
			api.AssertIsBoolean(x)
			fsum = api.Add(fsum, x)
			op = api.Add(op, api.Mul(x, o))
		}
		fHALT := api.Sub(1, fsum)
		api.AssertIsBoolean(fHALT)
		op = api.Add(op, api.Mul(fHALT, int(trace.OpHALT)))
		word := api.Add(op, api.Mul(r.Rd, 16), api.Mul(r.Ra, 256), api.Mul(r.Rb, 4096))
		// The program table (docs/vm.md §9): (pc, word, imm) is an entry.
		lu.progPC = append(lu.progPC, pc)
		lu.progWord = append(lu.progWord, word)
		lu.progImm = append(lu.progImm, r.Imm)

		f := func(op trace.Opcode) frontend.Variable { return r.F[op] }
		fADD, fSUB, fMUL, fADDI, fMULI := f(trace.OpADD), f(trace.OpSUB), f(trace.OpMUL), f(trace.OpADDI), f(trace.OpMULI)
		fLI, fJMP, fJZ, fJNZ := f(trace.OpLI), f(trace.OpJMP), f(trace.OpJZ), f(trace.OpJNZ)

		// vd = (va·Y + Z) mod p, with y the second operand (vb, or imm for
		// ADDI/MULI/LI):
		//   MUL, MULI: Y = y, Z = 0      ADD, ADDI: Y = 1, Z = y
		//   SUB:       Y = 1, Z = p − y  LI:        Y = 0, Z = y
		//   MOV, JMP, JZ, JNZ, HALT: Y = 1, Z = 0 (vd = va)
		// Every operand is < 2^64, so va·Y + Z < 2^129 and the identity
		// va·Y + Z = q·p + vd with 0 ≤ q < 2^64, 0 ≤ vd < p holds over the
		// integers: vd is the Goldilocks result.
		fM := api.Add(fMUL, fMULI)
		y := api.Add(r.Vb, api.Mul(api.Add(fADDI, fMULI, fLI), api.Sub(r.Imm, r.Vb)))
		bigY := api.Add(api.Mul(fM, y), api.Sub(1, fM, fLI))
		z := api.Add(api.Mul(api.Sub(api.Add(fADD, fADDI, fLI), fSUB), y), api.Mul(fSUB, gl64))
		t := api.Add(api.Mul(r.Va, bigY), z)
		// vd = lo + 2^32·hi. lo is the product (2^32 − 1 − hi)·m, which makes
		// vd canonical: vd < p ⟺ hi < 2^32 − 1, or hi = 2^32 − 1 and lo = 0
		// (and then the product is 0). The bytes 1..7 of vd and of q are
		// witnesses; byte 0 of vd is what lo leaves, byte 0 of q what the
		// identity t = q·p + vd leaves (division by the constant p is
		// linear). All 16 bytes are range-checked, so 0 ≤ q < 2^64.
		hi := limbsOf(api, r.Vd[3:])
		lo := api.Mul(api.Sub(glComplement, hi), r.M)
		vd := api.Add(lo, api.Mul(hi, pow2(32)))
		vd0 := lo
		for j, b := range r.Vd[:3] {
			vd0 = api.Sub(vd0, api.Mul(b, pow2(uint(limbBits*(j+1)))))
		}
		var qUpper frontend.Variable = 0
		for j, b := range r.Q {
			qUpper = api.Add(qUpper, api.Mul(b, pow2(uint(limbBits*(j+1)))))
		}
		q0 := api.Sub(api.Mul(api.Sub(t, vd), pInv), qUpper)
		lu.ranged = append(lu.ranged, vd0, q0)
		lu.ranged = append(lu.ranged, r.Vd[:]...)
		lu.ranged = append(lu.ranged, r.Q[:]...)

		// Next pc: pc+1, or imm when the jump is taken; HALT stays.
		isz := api.IsZero(r.Va)
		taken := api.Add(fJMP, fJNZ, api.Mul(api.Sub(fJZ, fJNZ), isz))
		pcNext := api.Add(pc, api.Sub(1, fHALT), api.Mul(taken, api.Sub(r.Imm, pc, 1)))

		// The register file.
		t0 := 3 * i
		for k, acc := range []struct{ a, vR, vW frontend.Variable }{
			{r.Ra, r.Va, r.Va}, {r.Rb, r.Vb, r.Vb}, {r.Rd, r.Old, vd},
		} {
			gap := limbsOf(api, r.Gap[k][:])
			lu.ranged = append(lu.ranged, r.Gap[k][:]...)
			at := t0 + k + 1
			lu.mem = append(lu.mem, memAccess{a: acc.a, vR: acc.vR, tR: api.Sub(at-1, gap), vW: acc.vW, tW: at})
		}
		fl := r.F[:]
		lu.committed = append(lu.committed, fl...)
		lu.committed = append(lu.committed, r.Rd, r.Ra, r.Rb, r.Imm, r.Va, r.Vb, r.Old, r.M)
		for k := range accesses {
			lu.committed = append(lu.committed, r.Gap[k][:]...)
		}
		lu.committed = append(lu.committed, r.Vd[:]...)
		lu.committed = append(lu.committed, r.Q[:]...)

		halts = api.Add(halts, fHALT)
		pc = pcNext
		if i == S-1 {
			// HALT is a fixed point, so the HALT rows are a suffix: the last
			// row halts and their count fixes the step count (halt,
			// halt_first).
			api.AssertIsEqual(fHALT, 1)
		}
	}
	api.AssertIsEqual(api.Add(halts, c.Steps), S+1)
	// The final registers are those at the first HALT (output[o]).
	for i := range trace.NumRegs {
		api.AssertIsEqual(api.Mul(c.OutMask[i], api.Sub(c.FinalV[i], c.Out[i])), 0)
	}

	// Multiplicities (hints, committed with everything else).
	pcm, err := api.Compiler().NewHint(countHint, p.ProgLen, append([]frontend.Variable{p.ProgLen}, lu.progPC...)...)
	if err != nil {
		return err
	}
	rm, err := api.Compiler().NewHint(countHint, rangeSize, append([]frontend.Variable{rangeSize}, lu.ranged...)...)
	if err != nil {
		return err
	}
	lu.committed = append(lu.committed, pcm...)
	lu.committed = append(lu.committed, rm...)
	multicommit.WithCommitment(api, func(api frontend.API, x frontend.Variable) error {
		return c.identities(api, lu, x, pcm, rm)
	}, lu.committed...)
	return nil
}

// identities checks the three logUp identities at the point x (the
// commitment); the tuple coefficients γ, δ are MiMC(1, x), MiMC(2, x).
func (c *intentCircuit) identities(api frontend.API, lu *logUp, x frontend.Variable, pcm, rm []frontend.Variable) error {
	h, err := mimc.NewMiMC(api)
	if err != nil {
		return err
	}
	h.Write(1, x)
	gamma := h.Sum()
	h.Reset()
	h.Write(2, x)
	delta := h.Sum()
	inv := func(v frontend.Variable) frontend.Variable { return api.Inverse(api.Sub(x, v)) }
	// api.Mul(v, c) with a challenge c second: on a tie gnark puts the
	// second factor in the B matrix, and a shared c there keeps the B
	// MSMs (G2 among them) small.
	sum := func(vs []frontend.Variable) frontend.Variable {
		var acc frontend.Variable = 0
		for _, v := range vs {
			acc = api.Add(acc, v)
		}
		return acc
	}

	// Program table: Σ_rows 1/(x − (pc + γ·word + δ·imm)) = Σ_j m_j/(x − (j + γ·W_j + δ·I_j)).
	var lhs, rhs []frontend.Variable
	for i := range lu.progPC {
		lhs = append(lhs, inv(api.Add(lu.progPC[i], api.Mul(lu.progWord[i], gamma), api.Mul(lu.progImm[i], delta))))
	}
	for j := range c.Words {
		e := api.Add(j, api.Mul(gamma, c.Words[j]), api.Mul(delta, c.Imms[j]))
		rhs = append(rhs, api.DivUnchecked(pcm[j], api.Sub(x, e)))
	}
	api.AssertIsEqual(sum(lhs), sum(rhs))

	// Memory: tuple (a, v, t) ↦ v + γ·t + δ·a. Reads and final values on one
	// side, initial values and writes on the other.
	lhs, rhs = lhs[:0], rhs[:0]
	for i := range trace.NumRegs {
		rhs = append(rhs, inv(api.Add(c.Start[i], api.Mul(delta, i))))
		lhs = append(lhs, inv(api.Add(c.FinalV[i], api.Mul(c.FinalT[i], gamma), api.Mul(delta, i))))
	}
	for _, m := range lu.mem {
		da := api.Mul(m.a, delta)
		lhs = append(lhs, inv(api.Add(m.vR, api.Mul(m.tR, gamma), da)))
		rhs = append(rhs, inv(api.Add(m.vW, api.Mul(gamma, m.tW), da)))
	}
	api.AssertIsEqual(sum(lhs), sum(rhs))

	// Range: every checked limb is in [0, 2^limbBits).
	lhs, rhs = lhs[:0], rhs[:0]
	for _, v := range lu.ranged {
		lhs = append(lhs, inv(v))
	}
	for k := range rangeSize {
		rhs = append(rhs, api.DivUnchecked(rm[k], api.Sub(x, k)))
	}
	api.AssertIsEqual(sum(lhs), sum(rhs))
	return nil
}
