package aggregate

import (
	"math/big"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/consensys/gnark-crypto/ecc"
	"github.com/consensys/gnark/constraint/solver"
	"github.com/consensys/gnark/frontend"
	"github.com/consensys/gnark/std/rangecheck"
	"github.com/consensys/gnark/test"

	"github.com/pouwfarm/pouwfarm/trace"
)

// Soundness review of the intent circuit (issue 9): each attack below builds
// a witness for a FALSE statement (wrong outputs, step count, inputs or
// program, with the digest recomputed for the false statement) directly,
// bypassing witness.go, and checks two things:
//
//   - the intent circuit rejects it (test.IsSolved fails), and
//   - the same witness solves the circuit with one named check removed
//     (ablated): so the attack is a real forgery that only that check stops,
//     and the test fails if the check is weakened or dropped.
//
// Checks are removed by wrapping the frontend.API that Define sees and
// dropping one assertion, named by its source text in intent_circuit.go
// (and, for text that occurs several times per step, every occurrence, or
// the n-th for the three logUp identities). The ablation harness panics in
// the test when the named assertion is not found, so renaming one in
// intent_circuit.go fails loudly instead of silently ablating nothing.
//
// Checked by mutation (go test -overlay with a changed intent_circuit.go):
// dropping q0 from the range lookup makes "ADD result off by one" and
// "wrong quotient" report HOLE; dropping the OutMask booleanity makes the
// output-mask forgery report HOLE.

var field = ecc.BLS12_377.ScalarField()

// Assertion sites of intent_circuit.go (their source text, trimmed).
const (
	siteIdentity   = "api.AssertIsEqual(sum(lhs), sum(rhs))" // #0 program, #1 memory, #2 range
	siteDigest     = "api.AssertIsEqual(h.Sum(), c.Digest)"
	siteOutput     = "api.AssertIsEqual(api.Mul(c.OutMask[i], api.Sub(c.FinalV[i], c.Out[i])), 0)"
	siteSteps      = "api.AssertIsEqual(api.Add(halts, c.Steps), S+1)"
	siteLastHalt   = "api.AssertIsEqual(fHALT, 1)"
	siteLimbs      = "api.AssertIsEqual(limbsOf(api, limbs), v)"
	siteFlagBool   = "api.AssertIsBoolean(x)"
	siteHaltBool   = "api.AssertIsBoolean(fHALT)"
	siteMaskBool   = "api.AssertIsBoolean(c.OutMask[i])"
	identityProg   = 0
	identityMemory = 1
	identityRange  = 2
)

// ablation names the assertion to drop: its text and which occurrence (−1:
// all).
type ablation struct {
	site string
	nth  int
}

func (a ablation) String() string {
	if a.site == siteIdentity {
		return [...]string{"program logUp identity", "memory logUp identity", "range logUp identity"}[a.nth]
	}
	return a.site
}

// ablatedCircuit is the intent circuit with one assertion removed.
type ablatedCircuit struct {
	C    intentCircuit
	drop ablation
	hits *int // how many assertions were dropped
}

func (c *ablatedCircuit) Define(api frontend.API) error {
	w := &ablatingAPI{API: api, drop: c.drop, seen: map[string]int{}, hits: c.hits}
	return c.C.Define(w)
}

type ablatingAPI struct {
	frontend.API
	drop ablation
	seen map[string]int
	hits *int
}

var sourceLines = sync.OnceValues(func() ([]string, error) {
	_, file, _, _ := runtime.Caller(0)
	b, err := os.ReadFile(strings.TrimSuffix(file, "soundness_review_test.go") + "intent_circuit.go")
	return strings.Split(string(b), "\n"), err
})

// dropped says whether the calling assertion (the innermost frame in
// intent_circuit.go) is the one to drop.
func (a *ablatingAPI) dropped() bool {
	pcs := make([]uintptr, 16)
	n := runtime.Callers(3, pcs)
	frames := runtime.CallersFrames(pcs[:n])
	for {
		f, more := frames.Next()
		if strings.HasSuffix(f.File, "/intent_circuit.go") {
			lines, err := sourceLines()
			if err != nil {
				panic(err)
			}
			text := strings.TrimSpace(lines[f.Line-1])
			k := a.seen[text]
			a.seen[text]++
			if text == a.drop.site && (a.drop.nth < 0 || a.drop.nth == k) {
				*a.hits++
				return true
			}
			return false
		}
		if !more {
			return false
		}
	}
}

func (a *ablatingAPI) AssertIsEqual(x, y frontend.Variable) {
	if !a.dropped() {
		a.API.AssertIsEqual(x, y)
	}
}

func (a *ablatingAPI) AssertIsBoolean(x frontend.Variable) {
	if !a.dropped() {
		a.API.AssertIsBoolean(x)
	}
}

func (a *ablatingAPI) Commit(v ...frontend.Variable) (frontend.Variable, error) {
	return a.API.(frontend.Committer).Commit(v...)
}

// Compiler wraps Defer so that the logUp identities (checked in
// multicommit's deferred callback) also see the ablating API.
func (a *ablatingAPI) Compiler() frontend.Compiler {
	return &ablatingCompiler{Compiler: a.API.Compiler(), api: a}
}

type ablatingCompiler struct {
	frontend.Compiler
	api *ablatingAPI
}

type kvStore interface {
	SetKeyValue(key, value any)
	GetKeyValue(key any) any
}

func (c *ablatingCompiler) SetKeyValue(key, value any) { c.Compiler.(kvStore).SetKeyValue(key, value) }
func (c *ablatingCompiler) GetKeyValue(key any) any    { return c.Compiler.(kvStore).GetKeyValue(key) }

func (c *ablatingCompiler) Defer(cb func(frontend.API) error) {
	c.Compiler.Defer(func(api frontend.API) error {
		return cb(&ablatingAPI{API: api, drop: c.api.drop, seen: c.api.seen, hits: c.api.hits})
	})
}

// ---- forging witnesses ----------------------------------------------------

var (
	bigP   = new(big.Int).SetUint64(gl64.Uint64())
	two32  = pow2(32)
	rField = field
)

func bi(v int64) *big.Int { return big.NewInt(v) }

// forgeRow is one step as the forger claims it. tamper may change any
// field; nil values are filled honestly from the forged register file.
type forgeRow struct {
	op         trace.Opcode
	rd, ra, rb *big.Int
	imm        *big.Int
	va, vb, vd *big.Int
	// flags overrides the one-hot flags F[0..9] of op (f_halt = 1 − ΣF):
	// op then only names the default instruction; the word the row
	// presents is Σ o·F[o] + 10·f_halt + 16·rd + 256·ra + 4096·rb.
	flags []*big.Int
	// staleA: the ra read returns ra's start value and names time 0,
	// ignoring later writes.
	staleA bool
	// selfB: the rb read names its own time (gap −1, a limb that is not a
	// byte), so its read and write tuples cancel and it returns vb freely;
	// rb's memory cell is left as it was (rb must not be accessed again).
	selfB bool
}

// forgery is a forged execution: witness plus the (false) statement it
// claims.
type forgery struct {
	p  Params
	a  *intentCircuit
	st intentStatement
}

// seal sets the witness's statement fields from st and the digest from st.
func (f *forgery) seal(t *testing.T) {
	t.Helper()
	d, err := f.st.digest(f.p)
	if err != nil {
		t.Fatal(err)
	}
	f.a.Digest = d
	f.a.Steps = f.st.steps
	for i := range trace.NumRegs {
		f.a.OutMask[i] = (f.st.outMask >> i) & 1
		f.a.Out[i] = f.st.out[i]
	}
}

type cell struct {
	v *big.Int
	t int64
}

// forge runs the circuit's relation step by step as a forger would: pc by
// the circuit's own formula, reads and writes through an honest-looking
// memory log, results as claimed by tamper (honest by default). start is
// what the witness's memory starts from; the statement claims stmtStart
// (equal unless the attack is about the start binding). The statement's
// outputs and step count are what the forged execution ends with.
func forge(t *testing.T, p Params, prog *trace.Program, stmtStart [trace.NumRegs]uint64, start [trace.NumRegs]*big.Int,
	tamper func(i int, pc *big.Int, r *forgeRow)) *forgery {
	t.Helper()
	S := p.Steps()
	words, imms, err := tableEntries(p, prog)
	if err != nil {
		t.Fatal(err)
	}
	a := newIntentCircuit(p)
	for j := range words {
		a.Words[j], a.Imms[j] = words[j], imms[j]
	}
	mem := map[string]*cell{}
	for i := range trace.NumRegs {
		a.Start[i] = start[i]
		mem[bi(int64(i)).String()] = &cell{v: new(big.Int).Set(start[i])}
	}
	get := func(addr *big.Int) *cell {
		k := new(big.Int).Mod(addr, rField).String()
		c, ok := mem[k]
		if !ok { // a register that does not exist: pretend it held 0
			c = &cell{v: new(big.Int)}
			mem[k] = c
		}
		return c
	}
	pc := new(big.Int)
	halts := new(big.Int)
	for i := range S {
		var r forgeRow
		if pc.IsInt64() && pc.Int64() < int64(len(prog.Instrs)) {
			in := prog.Instrs[pc.Int64()]
			r = forgeRow{op: in.Op, rd: bi(int64(in.Rd)), ra: bi(int64(in.Ra)), rb: bi(int64(in.Rb)), imm: new(big.Int).SetUint64(in.Imm)}
		} else {
			r = forgeRow{op: trace.OpHALT, rd: bi(0), ra: bi(0), rb: bi(0), imm: bi(0)}
		}
		if tamper != nil {
			tamper(i, new(big.Int).Set(pc), &r)
		}
		w := &a.Rows[i]
		F := make([]*big.Int, nbFlags-1)
		for o := range F {
			F[o] = new(big.Int)
			if trace.Opcode(o) == r.op {
				F[o].SetInt64(1)
			}
			if r.flags != nil {
				F[o] = r.flags[o]
			}
			w.F[o] = new(big.Int).Mod(F[o], rField)
		}
		fHALT := bi(1)
		for _, x := range F {
			fHALT.Sub(fHALT, x)
		}
		w.Rd, w.Ra, w.Rb, w.Imm = r.rd, r.ra, r.rb, r.imm
		// Memory: read ra (3i+1), read rb (3i+2), write rd (3i+3).
		access := func(k int, addr, claimed *big.Int, stale bool) *big.Int {
			at := int64(3*i + k + 1)
			c := get(addr)
			prev, v := c.t, c.v
			if stale {
				prev, v = 0, start[addr.Int64()]
			}
			if claimed == nil {
				claimed = v
			}
			gap := at - 1 - prev
			w.Gap[k][0], w.Gap[k][1] = gap&0xff, gap>>8
			c.t, c.v = at, claimed
			return claimed
		}
		va := access(0, r.ra, r.va, r.staleA)
		var vb *big.Int
		if r.selfB {
			vb = r.vb
			w.Gap[1][0], w.Gap[1][1] = new(big.Int).Sub(rField, bi(1)), 0
		} else {
			vb = access(1, r.rb, r.vb, false)
		}
		w.Va, w.Vb = va, vb
		// t = va·Y + Z exactly as the circuit forms it from the flags.
		add := func(xs ...*big.Int) *big.Int {
			acc := new(big.Int)
			for _, x := range xs {
				acc.Add(acc, x)
			}
			return acc
		}
		mul := func(x, y *big.Int) *big.Int { return new(big.Int).Mul(x, y) }
		fADD, fSUB, fMUL, fADDI, fMULI := F[trace.OpADD], F[trace.OpSUB], F[trace.OpMUL], F[trace.OpADDI], F[trace.OpMULI]
		fLI, fJMP, fJZ, fJNZ := F[trace.OpLI], F[trace.OpJMP], F[trace.OpJZ], F[trace.OpJNZ]
		fM := add(fMUL, fMULI)
		y := add(vb, mul(add(fADDI, fMULI, fLI), new(big.Int).Sub(r.imm, vb)))
		bigY := add(mul(fM, y), bi(1), new(big.Int).Neg(fM), new(big.Int).Neg(fLI))
		z := add(mul(new(big.Int).Sub(add(fADD, fADDI, fLI), fSUB), y), mul(fSUB, bigP))
		tv := add(mul(va, bigY), z)
		if tv.Sign() < 0 {
			t.Fatalf("row %d: t < 0 (an attack for another check)", i)
		}
		vd := r.vd
		if vd == nil {
			vd = new(big.Int).Mod(tv, bigP)
		}
		setResult(w, tv, vd)
		c := get(r.rd)
		w.Old = c.v
		at := int64(3*i + 3)
		gap := at - 1 - c.t
		w.Gap[2][0], w.Gap[2][1] = gap&0xff, gap>>8
		c.t, c.v = at, vd

		// Next pc, by the circuit's formula.
		isz := bi(0)
		if new(big.Int).Mod(va, rField).Sign() == 0 {
			isz = bi(1)
		}
		taken := add(fJMP, fJNZ, mul(new(big.Int).Sub(fJZ, fJNZ), isz))
		pc = add(pc, new(big.Int).Sub(bi(1), fHALT), mul(taken, new(big.Int).Sub(new(big.Int).Sub(r.imm, pc), bi(1))))
		pc.Mod(pc, rField)
		halts.Add(halts, fHALT)
	}
	steps := new(big.Int).Sub(bi(int64(S+1)), halts)
	if !steps.IsUint64() {
		t.Fatalf("forged step count %v", steps)
	}
	st := intentStatement{prog: prog, start: stmtStart, steps: steps.Uint64()}
	st.bind.SetUint64(0x5eed)
	a.Bind = st.bind
	for a2 := range trace.NumRegs {
		c := get(bi(int64(a2)))
		a.FinalV[a2], a.FinalT[a2] = c.v, c.t
	}
	for _, r := range prog.Outputs {
		st.outMask |= 1 << r
		st.out[r] = get(bi(int64(r))).v.Uint64()
	}
	f := &forgery{p: p, a: a, st: st}
	f.seal(t)
	return f
}

// setResult writes the bytes of vd and of q = (t − vd)/p into w, and the
// canonical-form witness M. A vd ≥ p that the canonical product cannot
// express (high half 2^32 − 1, low half ≠ 0) is written with high half
// 2^32 − 2 and a low half ≥ 2^32 (byte 0 of vd then leaves the byte range);
// a q that is not an integer leaves byte 0 of q out of range. Limbs may
// exceed a byte: the range identity is what rejects them.
func setResult(w *stepWitness, tv, vd *big.Int) {
	lo := new(big.Int).And(vd, big.NewInt(0xffffffff))
	hi := new(big.Int).Rsh(vd, 32)
	if hi.Cmp(big.NewInt(glComplement)) >= 0 && lo.Sign() != 0 {
		hi.Sub(hi, bi(1))
		lo.Add(lo, two32)
	}
	for j := 1; j < 4; j++ {
		w.Vd[j-1] = new(big.Int).And(new(big.Int).Rsh(lo, uint(8*j)), bi(0xff))
	}
	for j := 0; j < 4; j++ {
		b := new(big.Int).Rsh(hi, uint(8*j))
		if j < 3 {
			b.And(b, bi(0xff))
		}
		w.Vd[3+j] = b
	}
	den := new(big.Int).Sub(big.NewInt(glComplement), hi)
	den.Mod(den, rField)
	m := new(big.Int)
	if den.Sign() != 0 {
		m.ModInverse(den, rField).Mul(m, lo).Mod(m, rField)
	}
	w.M = m
	q := new(big.Int).Sub(tv, vd)
	if q.Sign() < 0 {
		q.SetInt64(0)
	}
	q.Quo(q, bigP)
	for j := 1; j < valueLimbs; j++ {
		b := new(big.Int).Rsh(q, uint(8*j))
		if j < valueLimbs-1 {
			b.And(b, bi(0xff))
		}
		w.Q[j-1] = b
	}
}

func startOf(inputs ...uint64) (stmt [trace.NumRegs]uint64, wit [trace.NumRegs]*big.Int) {
	for i := range trace.NumRegs {
		if i < len(inputs) {
			stmt[i] = inputs[i]
		}
		wit[i] = new(big.Int).SetUint64(stmt[i])
	}
	return stmt, wit
}

// ---- the attacks ----------------------------------------------------------

// addSrc: r2 = r0 + r1, then r3 = r2 · r2; both outputs.
const addSrc = `
.inputs 2
.outputs r2, r3
        ADD  r2, r0, r1
        MUL  r3, r2, r2
        HALT
`

// zeroSrc: r3 = r1 − r1 = 0, so JZ jumps and r4 stays 0; a forger who makes
// r3 a non-canonical zero (p) falls through and sets r4 = 1.
const zeroSrc = `
.inputs 2
.outputs r4
        SUB  r3, r1, r1
        JZ   r3, end
        LI   r4, 1
end:    HALT
`

// liSrc: r1 = 5, r2 = r1 · r0.
const liSrc = `
.inputs 1
.outputs r2
        LI   r1, 5
        MUL  r2, r1, r0
        HALT
`

// pastSrc: with r0 = 0 the JZ jumps to pc 2, whose LI is the last
// instruction: the VM runs past the program (an execution error, no trace).
const pastSrc = `
.inputs 1
.outputs r1
        JZ   r0, 2
        HALT
        LI   r1, 7
`

// neverHaltSrc never halts.
const neverHaltSrc = `
.inputs 1
.outputs r1
loop:   ADDI r1, r1, 1
        JMP  loop
        HALT
`

// movSrc: r4 = r3 (the MOV word 5 + 16·4 + 256·3 decodes also as ra = 19,
// rb = −1).
const movSrc = `
.inputs 4
.outputs r4
        MOV  r4, r3
        HALT
`

// staleSrc: r1 = input + 1, then r2 = r1 · 2.
const staleSrc = `
.inputs 2
.outputs r2
        ADDI r1, r1, 1
        MULI r2, r1, 2
        HALT
`

// sumSrc: r2 = r0 + r1.
const sumSrc = `
.inputs 2
.outputs r2
        ADD  r2, r0, r1
        HALT
`

// out3Src: r3 = r0, the only output; r2 stays 0.
const out3Src = `
.inputs 1
.outputs r3
        MOV  r3, r0
        HALT
`

type attack struct {
	name  string
	build func(t *testing.T, p Params) *forgery
	// stopped is the check that stops the attack.
	stopped ablation
	opts    []test.TestEngineOption
	// falseClaim describes why the statement the witness proves is false.
	falseClaim func(t *testing.T, f *forgery) string
}

func mustProg(t *testing.T, src string) *trace.Program {
	t.Helper()
	return trace.MustAssemble(src)
}

// honestOutputs runs the VM (trace.Execute); ok is false when it fails (no
// trace exists, so any claimed statement is false).
func honestOutputs(t *testing.T, src string, inputs []uint64) (out [trace.NumRegs]uint64, steps uint64, ok bool) {
	t.Helper()
	tr, err := trace.Execute(trace.MustAssemble(src), inputs, 1<<12)
	if err != nil {
		return out, 0, false
	}
	seg := tr.Header.Segments[0]
	for o, r := range tr.Header.Programs[0].Outputs {
		out[r] = seg.Outputs[o]
	}
	return out, seg.Steps(), true
}

// differsFromVM says how the forged statement differs from the VM's.
func differsFromVM(src string, inputs ...uint64) func(t *testing.T, f *forgery) string {
	return func(t *testing.T, f *forgery) string {
		out, steps, ok := honestOutputs(t, src, inputs)
		if !ok {
			return "the VM has no execution (error), the forgery claims one"
		}
		if f.st.start != func() (s [trace.NumRegs]uint64) { s, _ = startOf(inputs...); return }() {
			t.Fatalf("statement start %v is not the inputs %v", f.st.start, inputs)
		}
		if out != f.st.out {
			return "outputs differ from the VM's"
		}
		if steps != f.st.steps {
			return "step count differs from the VM's"
		}
		return ""
	}
}

func attacks() []attack {
	return []attack{
		{
			name: "ADD result off by one",
			build: func(t *testing.T, p Params) *forgery {
				s, w := startOf(3, 4)
				return forge(t, p, mustProg(t, addSrc), s, w, func(i int, pc *big.Int, r *forgeRow) {
					if i == 0 {
						r.vd = bi(8)
					}
				})
			},
			stopped:    ablation{siteIdentity, identityRange},
			falseClaim: differsFromVM(addSrc, 3, 4),
		},
		{
			name: "MUL result plus p (non-canonical, q − 1)",
			build: func(t *testing.T, p Params) *forgery {
				s, w := startOf(3, 4)
				return forge(t, p, mustProg(t, addSrc), s, w, func(i int, pc *big.Int, r *forgeRow) {
					if i == 1 {
						r.vd = new(big.Int).Add(bi(49), bigP)
					}
				})
			},
			stopped: ablation{siteIdentity, identityRange},
			// 49 + p ≡ 49: the output register then holds 49 + p, which
			// the statement cannot even state; check the witness's Out.
			falseClaim: func(t *testing.T, f *forgery) string {
				if v, ok := f.a.FinalV[3].(*big.Int); ok && v.Cmp(bigP) >= 0 {
					return "r3 holds the non-canonical 49 + p"
				}
				return ""
			},
		},
		{
			name: "zero written as p flips JZ",
			build: func(t *testing.T, p Params) *forgery {
				s, w := startOf(0, 9)
				return forge(t, p, mustProg(t, zeroSrc), s, w, func(i int, pc *big.Int, r *forgeRow) {
					if i == 0 {
						r.vd = new(big.Int).Set(bigP)
					}
				})
			},
			stopped:    ablation{siteIdentity, identityRange},
			falseClaim: differsFromVM(zeroSrc, 0, 9),
		},
		{
			name: "wrong quotient: MUL remainder + 1 with q·p + vd ≠ t",
			build: func(t *testing.T, p Params) *forgery {
				s, w := startOf(1<<40, 1<<40)
				return forge(t, p, mustProg(t, addSrc), s, w, func(i int, pc *big.Int, r *forgeRow) {
					if i == 1 {
						// (2^41)^2 = 2^82 mod p, plus one.
						v := new(big.Int).Exp(bi(2), bi(82), bigP)
						r.vd = v.Add(v, bi(1))
					}
				})
			},
			stopped:    ablation{siteIdentity, identityRange},
			falseClaim: differsFromVM(addSrc, 1<<40, 1<<40),
		},
		{
			name: "wrong read value (ra returns a value never written)",
			build: func(t *testing.T, p Params) *forgery {
				s, w := startOf(3, 4)
				return forge(t, p, mustProg(t, addSrc), s, w, func(i int, pc *big.Int, r *forgeRow) {
					if i == 1 {
						r.va = bi(100)
					}
				})
			},
			stopped:    ablation{siteIdentity, identityMemory},
			falseClaim: differsFromVM(addSrc, 3, 4),
		},
		{
			name: "stale read (ra returns its start value, skipping a write)",
			build: func(t *testing.T, p Params) *forgery {
				s, w := startOf(0, 10)
				return forge(t, p, mustProg(t, staleSrc), s, w, func(i int, pc *big.Int, r *forgeRow) {
					if i == 1 {
						r.staleA = true
					}
				})
			},
			stopped:    ablation{siteIdentity, identityMemory},
			falseClaim: differsFromVM(staleSrc, 0, 10),
		},
		{
			name: "read names its own time (gap −1) and returns any value",
			build: func(t *testing.T, p Params) *forgery {
				s, w := startOf(3, 4)
				return forge(t, p, mustProg(t, sumSrc), s, w, func(i int, pc *big.Int, r *forgeRow) {
					if i == 0 { // r1's only access
						r.selfB, r.vb = true, bi(100)
					}
				})
			},
			stopped:    ablation{siteIdentity, identityRange},
			falseClaim: differsFromVM(sumSrc, 3, 4),
		},
		{
			name: "register index out of range (MOV r4, r3 as ra = 19, rb = −1)",
			build: func(t *testing.T, p Params) *forgery {
				s, w := startOf(1, 2, 3, 4)
				return forge(t, p, mustProg(t, movSrc), s, w, func(i int, pc *big.Int, r *forgeRow) {
					if i == 0 {
						r.ra, r.rb = bi(19), new(big.Int).Sub(rField, bi(1))
						r.va = bi(1234) // "r19"
					}
				})
			},
			stopped:    ablation{siteIdentity, identityMemory},
			falseClaim: differsFromVM(movSrc, 1, 2, 3, 4),
		},
		{
			name: "forged final value (FinalV = Out, both wrong)",
			build: func(t *testing.T, p Params) *forgery {
				s, w := startOf(3, 4)
				f := forge(t, p, mustProg(t, addSrc), s, w, nil)
				f.st.out[2]++
				f.a.FinalV[2] = f.st.out[2]
				f.seal(t)
				return f
			},
			stopped:    ablation{siteIdentity, identityMemory},
			falseClaim: differsFromVM(addSrc, 3, 4),
		},
		{
			name: "output not the final value",
			build: func(t *testing.T, p Params) *forgery {
				s, w := startOf(3, 4)
				f := forge(t, p, mustProg(t, addSrc), s, w, nil)
				f.st.out[3]++
				f.seal(t)
				return f
			},
			stopped:    ablation{siteOutput, 3},
			falseClaim: differsFromVM(addSrc, 3, 4),
		},
		{
			name: "skipped step (ADD executed as JMP 1)",
			build: func(t *testing.T, p Params) *forgery {
				s, w := startOf(3, 4)
				return forge(t, p, mustProg(t, addSrc), s, w, func(i int, pc *big.Int, r *forgeRow) {
					if i == 0 {
						r.op, r.rd, r.ra, r.rb, r.imm = trace.OpJMP, bi(0), bi(0), bi(0), bi(1)
					}
				})
			},
			stopped:    ablation{siteIdentity, identityProg},
			falseClaim: differsFromVM(addSrc, 3, 4),
		},
		{
			name: "altered immediate (LI r1, 6 for LI r1, 5)",
			build: func(t *testing.T, p Params) *forgery {
				s, w := startOf(7)
				return forge(t, p, mustProg(t, liSrc), s, w, func(i int, pc *big.Int, r *forgeRow) {
					if i == 0 {
						r.imm = bi(6)
					}
				})
			},
			stopped:    ablation{siteIdentity, identityProg},
			falseClaim: differsFromVM(liSrc, 7),
		},
		{
			name: "run past the program into a padding slot executed as HALT",
			build: func(t *testing.T, p Params) *forgery {
				s, w := startOf(0)
				return forge(t, p, mustProg(t, pastSrc), s, w, nil) // pc 3 ≥ L: HALT by default
			},
			stopped:    ablation{siteIdentity, identityProg},
			falseClaim: differsFromVM(pastSrc, 0),
		},
		{
			name: "padding slots executed (2^16 as ADD r0, r0, r16 and as JMP 0 with a non-integer rd)",
			build: func(t *testing.T, p Params) *forgery {
				s, w := startOf(0)
				// 7 + 16·rd = 2^16 with rd = (2^16 − 7)/16 in F_r.
				rd := new(big.Int).ModInverse(bi(16), rField)
				rd.Mul(rd, bi(1<<16-7)).Mod(rd, rField)
				// pc 0 JZ → pc 2 LI r1, 7 → pc 3 (past the end, a padding
				// slot): r0 += "r16" (= 1) → pc 4: JMP 0 → JZ falls through
				// → pc 1 HALT. The VM has no execution at all.
				return forge(t, p, mustProg(t, pastSrc), s, w, func(i int, pc *big.Int, r *forgeRow) {
					switch pc.Int64() {
					case 3:
						r.op, r.rd, r.ra, r.rb, r.imm, r.vb = trace.OpADD, bi(0), bi(0), bi(16), bi(0), bi(1)
					case 4:
						r.op, r.rd, r.ra, r.rb, r.imm = trace.OpJMP, rd, bi(0), bi(0), bi(0)
					}
				})
			},
			stopped:    ablation{siteIdentity, identityMemory},
			falseClaim: differsFromVM(pastSrc, 0),
		},
		{
			name: "fewer steps claimed",
			build: func(t *testing.T, p Params) *forgery {
				s, w := startOf(3, 4)
				f := forge(t, p, mustProg(t, addSrc), s, w, nil)
				f.st.steps--
				f.seal(t)
				return f
			},
			stopped:    ablation{siteSteps, -1},
			falseClaim: differsFromVM(addSrc, 3, 4),
		},
		{
			name: "no HALT within the steps (the last row loops)",
			build: func(t *testing.T, p Params) *forgery {
				s, w := startOf(0)
				return forge(t, p, mustProg(t, neverHaltSrc), s, w, nil)
			},
			stopped: ablation{siteLastHalt, -1},
			falseClaim: func(t *testing.T, f *forgery) string {
				if f.st.steps > uint64(f.p.Steps()) {
					return "claims a halting run of S+1 steps of a program that never halts"
				}
				return ""
			},
		},
		{
			name: "execution from other inputs than the statement's",
			build: func(t *testing.T, p Params) *forgery {
				s, _ := startOf(3, 4)
				_, w := startOf(3, 5)
				return forge(t, p, mustProg(t, sumSrc), s, w, nil)
			},
			stopped:    ablation{siteDigest, -1},
			falseClaim: differsFromVM(sumSrc, 3, 4),
		},
		{
			name: "packing alias: Start[0] + 2^64, Start[1] − 1 (honest decomposition)",
			build: func(t *testing.T, p Params) *forgery {
				s, w := startOf(3, 4)
				w[0].Add(w[0], pow2(64))
				w[1].Sub(w[1], bi(1))
				return forge(t, p, mustProg(t, sumSrc), s, w, nil)
			},
			stopped:    ablation{siteLimbs, -1},
			falseClaim: differsFromVM(sumSrc, 3, 4),
		},
		{
			name: "packing alias with a forged decomposition (top byte 256 + 0)",
			build: func(t *testing.T, p Params) *forgery {
				s, w := startOf(3, 4)
				w[0].Add(w[0], pow2(64))
				w[1].Sub(w[1], bi(1))
				return forge(t, p, mustProg(t, sumSrc), s, w, nil)
			},
			opts: []test.TestEngineOption{test.WithReplacementHint(solver.GetHintID(rangecheck.DecomposeHint),
				func(m *big.Int, in, out []*big.Int) error {
					if err := rangecheck.DecomposeHint(m, in, out); err != nil {
						return err
					}
					if in[2].BitLen() > 64 { // keep the value: the top "byte" carries the excess
						out[len(out)-1].Add(out[len(out)-1], new(big.Int).Rsh(in[2], 56))
						out[len(out)-1].Sub(out[len(out)-1], new(big.Int).And(new(big.Int).Rsh(in[2], 56), bi(0xff)))
					}
					return nil
				})},
			stopped:    ablation{siteIdentity, identityRange},
			falseClaim: differsFromVM(sumSrc, 3, 4),
		},
		{
			name: "program multiplicity −1 to cancel a forged row",
			build: func(t *testing.T, p Params) *forgery {
				s, w := startOf(7)
				return forge(t, p, mustProg(t, liSrc), s, w, func(i int, pc *big.Int, r *forgeRow) {
					if i == 0 {
						r.imm = bi(6)
					}
				})
			},
			opts: []test.TestEngineOption{test.WithReplacementHint(solver.GetHintID(countHint),
				func(m *big.Int, in, out []*big.Int) error {
					if err := countHint(m, in, out); err != nil {
						return err
					}
					if len(out) != rangeSize { // the program table: slot 0 (LI r1, 5) counted −1
						out[0].Sub(m, bi(1))
					}
					return nil
				})},
			stopped:    ablation{siteIdentity, identityProg},
			falseClaim: differsFromVM(liSrc, 7),
		},
		{
			name: "non-boolean flags (ADDI = 2, ADD = −1) present the LI word and compute 2·imm",
			build: func(t *testing.T, p Params) *forgery {
				s, w := startOf(7)
				return forge(t, p, mustProg(t, liSrc), s, w, func(i int, pc *big.Int, r *forgeRow) {
					if i == 0 { // LI r1, 5 with va = vb = r0: t = va + 2·imm − vb = 10
						r.flags = make([]*big.Int, nbFlags-1)
						for o := range r.flags {
							r.flags[o] = bi(0)
						}
						r.flags[trace.OpADDI], r.flags[trace.OpADD] = bi(2), bi(-1)
					}
				})
			},
			stopped:    ablation{siteFlagBool, -1},
			falseClaim: differsFromVM(liSrc, 7),
		},
		{
			name: "two flags (JMP + ADDI) with f_halt = −1 present the ADD word",
			build: func(t *testing.T, p Params) *forgery {
				s, w := startOf(3, 4)
				return forge(t, p, mustProg(t, addSrc), s, w, func(i int, pc *big.Int, r *forgeRow) {
					if i == 0 { // op = 7 + 3 − 10 = 0: r2 ← r0, jump to imm + … = 1, one step more
						r.flags = make([]*big.Int, nbFlags-1)
						for o := range r.flags {
							r.flags[o] = bi(0)
						}
						r.flags[trace.OpJMP], r.flags[trace.OpADDI] = bi(1), bi(1)
					}
				})
			},
			stopped:    ablation{siteHaltBool, -1},
			falseClaim: differsFromVM(addSrc, 3, 4),
		},
		{
			name: "early HALT (HALT flags at the MUL)",
			build: func(t *testing.T, p Params) *forgery {
				s, w := startOf(3, 4)
				return forge(t, p, mustProg(t, addSrc), s, w, func(i int, pc *big.Int, r *forgeRow) {
					if i >= 1 {
						r.op, r.rd, r.ra, r.rb, r.imm = trace.OpHALT, bi(0), bi(0), bi(0), bi(0)
					}
				})
			},
			stopped:    ablation{siteIdentity, identityProg},
			falseClaim: differsFromVM(addSrc, 3, 4),
		},
		{
			name: "JZ executed as JNZ",
			build: func(t *testing.T, p Params) *forgery {
				s, w := startOf(0, 9)
				return forge(t, p, mustProg(t, zeroSrc), s, w, func(i int, pc *big.Int, r *forgeRow) {
					if i == 1 {
						r.op = trace.OpJNZ
					}
				})
			},
			stopped:    ablation{siteIdentity, identityProg},
			falseClaim: differsFromVM(zeroSrc, 0, 9),
		},
		{
			name: "a padding row after the first HALT executes LI r2, 9",
			build: func(t *testing.T, p Params) *forgery {
				s, w := startOf(3, 4)
				return forge(t, p, mustProg(t, addSrc), s, w, func(i int, pc *big.Int, r *forgeRow) {
					if i == 3 {
						r.op, r.rd, r.ra, r.rb, r.imm = trace.OpLI, bi(2), bi(0), bi(0), bi(9)
					}
				})
			},
			stopped:    ablation{siteIdentity, identityProg},
			falseClaim: differsFromVM(addSrc, 3, 4),
		},
		{
			name: "output mask bit 3 given as OutMask[2] = 2 (r3 unconstrained)",
			build: func(t *testing.T, p Params) *forgery {
				s, w := startOf(5)
				f := forge(t, p, mustProg(t, out3Src), s, w, nil)
				f.st.out[3] = 999
				f.seal(t)
				f.a.OutMask[2], f.a.OutMask[3] = 2, 0
				return f
			},
			stopped:    ablation{siteMaskBool, -1},
			falseClaim: differsFromVM(out3Src, 5),
		},
	}
}

// TestSoundnessReviewAttacks runs every attack: the forged witness proves a
// false statement, the intent circuit rejects it, and the circuit without
// the check named for the attack accepts it.
func TestSoundnessReviewAttacks(t *testing.T) {
	p := Params{LogSteps: 8, ProgLen: 8, K: 2}
	for _, at := range attacks() {
		t.Run(at.name, func(t *testing.T) {
			f := at.build(t, p)
			if why := at.falseClaim(t, f); why == "" {
				t.Fatal("the forged statement is true: not an attack")
			} else {
				t.Logf("false statement: %s", why)
			}
			err := test.IsSolved(newIntentCircuit(p), f.a, field, at.opts...)
			if err == nil {
				t.Fatal("HOLE: the intent circuit accepts a false statement")
			}
			t.Logf("rejected: %.160s", err)
			hits := 0
			c := &ablatedCircuit{C: *newIntentCircuit(p), drop: at.stopped, hits: &hits}
			w := &ablatedCircuit{C: *f.a}
			if err := test.IsSolved(c, w, field, at.opts...); err != nil {
				t.Fatalf("without %v the forgery still fails (the test cannot fail): %v", at.stopped, err)
			}
			if hits == 0 {
				t.Fatalf("assertion %q not found in intent_circuit.go", at.stopped.site)
			}
			// Specificity: removing some other check does not let it
			// through (the forgery is not simply broken everywhere).
			other := ablation{siteIdentity, identityProg}
			if at.stopped == other {
				other = ablation{siteIdentity, identityMemory}
			}
			c = &ablatedCircuit{C: *newIntentCircuit(p), drop: other, hits: &hits}
			if err := test.IsSolved(c, &ablatedCircuit{C: *f.a}, field, at.opts...); err == nil {
				t.Fatalf("the forgery solves without the %v, which should not matter to it", other)
			}
		})
	}
}

// The forger with no tampering is the VM: same outputs and step count as
// trace.Execute, and the circuit accepts it (so the forgeries above differ
// from a valid witness only where they say).
func TestSoundnessReviewHonestForgery(t *testing.T) {
	p := Params{LogSteps: 8, ProgLen: 8, K: 2}
	for _, tc := range []struct {
		src    string
		inputs []uint64
	}{{addSrc, []uint64{3, 4}}, {zeroSrc, []uint64{0, 9}}, {staleSrc, []uint64{0, 10}}, {gadgetSrc, []uint64{2, 0x7fffffff80000003}}} {
		s, w := startOf(tc.inputs...)
		f := forge(t, p, mustProg(t, tc.src), s, w, nil)
		out, steps, ok := honestOutputs(t, tc.src, tc.inputs)
		if !ok || out != f.st.out || steps != f.st.steps {
			t.Fatalf("forger without tampering: out %v steps %d, VM: %v %d", f.st.out, f.st.steps, out, steps)
		}
		if err := test.IsSolved(newIntentCircuit(p), f.a, field); err != nil {
			t.Fatalf("honest forgery rejected: %v", err)
		}
		hits := 0
		c := &ablatedCircuit{C: *newIntentCircuit(p), drop: ablation{siteIdentity, identityMemory}, hits: &hits}
		if err := test.IsSolved(c, &ablatedCircuit{C: *f.a}, field); err != nil || hits != 1 {
			t.Fatalf("ablation harness: err %v, %d assertions dropped", err, hits)
		}
	}
}
