package aggregate

import (
	"fmt"
	"math/big"

	"github.com/consensys/gnark/frontend"
	"github.com/consensys/gnark/std/hash/mimc"
	"github.com/consensys/gnark/std/lookup/logderivlookup"
	"github.com/consensys/gnark/std/math/emulated"
	"github.com/consensys/gnark/std/math/emulated/emparams"
	"github.com/consensys/gnark/std/rangecheck"

	"github.com/pouwfarm/pouwfarm/trace"
)

type gl = emparams.Goldilocks

// Per-row witness layout: the opcode flags (one-hot) and the bits of rd, ra,
// rb. Everything else a trace row holds (pc, registers, va, vb, vd, inv, isz)
// is computed by the circuit from these and the previous row, so it is forced
// exactly as docs/vm.md §8.5 says.
const (
	nbFlags  = int(trace.NumOpcodes)
	nbRegBit = 4
	rowBits  = 3 * nbRegBit // rd, ra, rb
)

// intentCircuit is the docs/vm.md relation for one intent of at most
// 2^LogSteps steps (docs/aggregate.md, Intent circuit). Its one public input
// is the statement digest; the statement's values are private inputs that
// the circuit hashes and compares with it.
type intentCircuit struct {
	Digest frontend.Variable `gnark:",public"`

	Bind    frontend.Variable
	Steps   frontend.Variable
	OutMask [trace.NumRegs]frontend.Variable
	Start   [trace.NumRegs]frontend.Variable
	Out     [trace.NumRegs]frontend.Variable
	Words   []frontend.Variable // ProgLen
	Imms    []frontend.Variable // ProgLen

	Flags [][nbFlags]frontend.Variable // one row per step slot
	Bits  [][rowBits]frontend.Variable // rd, ra, rb, little-endian bits

	params Params
}

func newIntentCircuit(p Params) *intentCircuit {
	return &intentCircuit{
		Words:  make([]frontend.Variable, p.ProgLen),
		Imms:   make([]frontend.Variable, p.ProgLen),
		Flags:  make([][nbFlags]frontend.Variable, p.Steps()),
		Bits:   make([][rowBits]frontend.Variable, p.Steps()),
		params: p,
	}
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

// mux16 selects regs[idx] for idx given by four little-endian bits: a tree
// of 15 selects (one constraint each; api.Lookup2 costs five).
func mux16(api frontend.API, b []frontend.Variable, regs []frontend.Variable) frontend.Variable {
	level := regs
	for _, bit := range b {
		next := make([]frontend.Variable, len(level)/2)
		for j := range next {
			next[j] = api.Select(bit, level[2*j+1], level[2*j])
		}
		level = next
	}
	return level[0]
}

// onehot4 decodes two bits into four indicators with one product.
func onehot4(api frontend.API, b0, b1 frontend.Variable) [4]frontend.Variable {
	t := api.Mul(b0, b1)
	return [4]frontend.Variable{
		api.Add(api.Sub(1, b0, b1), t),
		api.Sub(b0, t),
		api.Sub(b1, t),
		t,
	}
}

func (c *intentCircuit) Define(api frontend.API) error {
	p := c.params
	S := p.Steps()
	if len(c.Flags) != S || len(c.Bits) != S || len(c.Words) != p.ProgLen || len(c.Imms) != p.ProgLen {
		return fmt.Errorf("aggregate: circuit sized for %v", p)
	}
	f, err := emulated.NewField[gl](api)
	if err != nil {
		return err
	}
	rc := rangecheck.New(api)

	// The statement: range checks make the packing injective, the hash binds
	// it to the public digest.
	for i := range trace.NumRegs {
		api.AssertIsBoolean(c.OutMask[i])
		rc.Check(c.Start[i], valueBits)
		rc.Check(c.Out[i], valueBits)
	}
	tWord, tImm := logderivlookup.New(api), logderivlookup.New(api)
	entries := make([]frontend.Variable, p.ProgLen)
	for j := range p.ProgLen {
		rc.Check(c.Words[j], wordBits)
		rc.Check(c.Imms[j], valueBits)
		tWord.Insert(c.Words[j])
		tImm.Insert(c.Imms[j])
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

	// The execution. Registers hold canonical values throughout: the start
	// values are the verifier's (bound by the digest), and every written
	// value is strictly reduced.
	regs := make([]frontend.Variable, trace.NumRegs)
	copy(regs, c.Start[:])
	var pc frontend.Variable = 0
	var halts frontend.Variable = 0
	for i := range S {
		fl, bt := c.Flags[i][:], c.Bits[i][:]
		var sum, op frontend.Variable = 0, 0
		for o, x := range fl {
			api.AssertIsBoolean(x)
			sum = api.Add(sum, x)
			op = api.Add(op, api.Mul(x, o))
		}
		api.AssertIsEqual(sum, 1)
		var word frontend.Variable = op
		for k, x := range bt {
			api.AssertIsBoolean(x)
			// rd bits weigh 16·2^k, ra 256·2^k, rb 4096·2^k.
			word = api.Add(word, api.Mul(x, 1<<(4+4*(k/nbRegBit)+k%nbRegBit)))
		}
		// The program table (docs/vm.md §9): the row decodes the
		// instruction at pc; a pc outside the table has no entry.
		api.AssertIsEqual(tWord.Lookup(pc)[0], word)
		imm := tImm.Lookup(pc)[0]

		fADD, fSUB, fMUL, fADDI, fMULI := fl[trace.OpADD], fl[trace.OpSUB], fl[trace.OpMUL], fl[trace.OpADDI], fl[trace.OpMULI]
		fLI, fJMP, fJZ, fJNZ, fHALT := fl[trace.OpLI], fl[trace.OpJMP], fl[trace.OpJZ], fl[trace.OpJNZ], fl[trace.OpHALT]
		va := mux16(api, bt[4:8], regs)
		vb := mux16(api, bt[8:12], regs)

		// vd: y is the second operand (vb, or imm for ADDI/MULI).
		y := api.Add(vb, api.Mul(api.Add(fADDI, fMULI), api.Sub(imm, vb)))
		eva, ey := f.UnsafeFromLimbs([]frontend.Variable{va}), f.UnsafeFromLimbs([]frontend.Variable{y})
		r := f.Select(fSUB, f.Sub(eva, ey), f.Add(eva, ey))
		r = f.Select(api.Add(fMUL, fMULI), f.Mul(eva, ey), r)
		r = f.Select(fLI, f.UnsafeFromLimbs([]frontend.Variable{imm}), r)
		r = f.Select(api.Add(fADD, fSUB, fMUL, fADDI, fMULI, fLI), r, eva)
		// Reduce bounds the value; the two range checks make it canonical
		// (0 ≤ vd and vd + 2^64 − p < 2^64, i.e. vd < p). ReduceStrict
		// would do the same with a 64-bit decomposition, about 256
		// constraints a row in gnark v0.16.
		vd := f.Reduce(r).Limbs[0]
		rc.Check(vd, valueBits)
		rc.Check(api.Add(vd, glComplement), valueBits)

		// Next pc: pc+1, or imm when the jump is taken; HALT stays.
		isz := api.IsZero(va)
		taken := api.Add(fJMP, api.Mul(fJZ, isz), api.Mul(fJNZ, api.Sub(1, isz)))
		pcNext := api.Add(pc, api.Sub(1, fHALT), api.Mul(taken, api.Sub(imm, pc, 1)))

		// reg[i]: the register selected by rd takes vd.
		lo, hi := onehot4(api, bt[0], bt[1]), onehot4(api, bt[2], bt[3])
		next := make([]frontend.Variable, trace.NumRegs)
		for j := range 4 {
			for k := range 4 {
				ri := regs[4*j+k]
				e := api.Mul(hi[j], lo[k])
				next[4*j+k] = api.Add(ri, api.Mul(e, api.Sub(vd, ri)))
			}
		}
		halts = api.Add(halts, fHALT)
		pc, regs = pcNext, next
	}
	// HALT is a fixed point, so the HALT rows are a suffix: the last row
	// halts and their count fixes the step count (halt, halt_first), and the
	// final registers are those at the first HALT (output[o]).
	api.AssertIsEqual(c.Flags[S-1][trace.OpHALT], 1)
	api.AssertIsEqual(api.Add(halts, c.Steps), S+1)
	for i := range trace.NumRegs {
		api.AssertIsEqual(api.Mul(c.OutMask[i], api.Sub(regs[i], c.Out[i])), 0)
	}
	return nil
}
