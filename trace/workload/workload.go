// Package workload generates useful VM programs and their inputs —
// Fibonacci, a MiMC-style hash chain, polynomial evaluation and account
// transfers — deterministically from a seed and sized by a target step
// count, as intents for trace.Execute and trace.Batch.
//
// Randomness comes from BLAKE3 in XOF mode keyed by (workload, seed, intent
// index), so a (name, seed, steps, k) always gives the same programs, inputs
// and traces on every platform and Go version. It imports trace and pouw
// only.
package workload

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/zeebo/blake3"

	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/trace"
	"github.com/pouwfarm/pouwfarm/trace/gl"
)

// ErrUnknown is returned for a workload name that does not exist.
var ErrUnknown = errors.New("unknown workload")

// generator makes one intent of about steps steps; prev holds the previous
// intent's outputs in a batch (nil for the first), for workloads that chain
// state.
type generator func(r *rng, steps uint64, prev []uint64) trace.Intent

type workload struct {
	describe string
	gen      generator
}

var workloads = map[string]workload{
	"fib":       {"Fibonacci: r1 = the n-th term of the sequence from seeded (a, b)", genFib},
	"mimc":      {"MiMC-style hash chain: x ← x^7 + c_i with a seeded round-constant recurrence", genMiMC},
	"poly":      {"polynomial evaluation: a seeded degree-d polynomial (Horner, unrolled) at successive points, folded into an accumulator", genPoly},
	"transfers": {"account transfers: seeded blocks of transfers between 8 field balances; in a batch each intent starts from the previous one's balances", genTransfers},
}

// Names lists the workloads in order.
func Names() []string {
	out := make([]string, 0, len(workloads))
	for n := range workloads {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Describe returns a one-line description of a workload.
func Describe(name string) string { return workloads[name].describe }

// MinSteps is the smallest step target every workload accepts.
const MinSteps = 16

// Intents makes k intents of workload name whose step counts add up to about
// steps (each within a few percent, never above steps plus one loop
// iteration per intent).
func Intents(name string, seed, steps uint64, k int) ([]trace.Intent, error) {
	w, ok := workloads[name]
	if !ok {
		return nil, fmt.Errorf("%w %q (have %s)", ErrUnknown, name, strings.Join(Names(), ", "))
	}
	if k < 1 || steps < MinSteps*uint64(k) {
		return nil, fmt.Errorf("workload: want k ≥ 1 intents and at least %d steps each, got k=%d steps=%d", MinSteps, k, steps)
	}
	out := make([]trace.Intent, 0, k)
	var prev []uint64
	for i := 0; i < k; i++ {
		per := steps / uint64(k)
		if i == k-1 {
			per = steps - per*uint64(k-1)
		}
		it := w.gen(newRNG(name, seed, i), per, prev)
		if err := it.Program.Validate(); err != nil {
			return nil, fmt.Errorf("workload %s: generated an invalid program: %w", name, err)
		}
		end, _, err := trace.Run(it.Program, it.Inputs, 4*per+1024)
		if err != nil {
			return nil, fmt.Errorf("workload %s intent %d: %w", name, i, err)
		}
		prev = prev[:0]
		for _, o := range it.Program.Outputs {
			prev = append(prev, end.Regs[o])
		}
		out = append(out, it)
	}
	return out, nil
}

// StepLimit is a generous limit for executing intents made for steps steps.
func StepLimit(steps uint64) uint64 { return 2*steps + 1024 }

// Macro executes one intent of about steps steps into a Macro trace.
func Macro(name string, seed, steps uint64) (*trace.Trace, error) {
	its, err := Intents(name, seed, steps, 1)
	if err != nil {
		return nil, err
	}
	return trace.Batch(its, StepLimit(steps), pouw.TierMacro)
}

// Full executes k intents of about steps steps in total into a Full trace.
func Full(name string, seed, steps uint64, k int) (*trace.Trace, error) {
	its, err := Intents(name, seed, steps, k)
	if err != nil {
		return nil, err
	}
	return trace.Batch(its, StepLimit(steps), pouw.TierFull)
}

// rng is a BLAKE3 XOF stream.
type rng struct{ d *blake3.Digest }

func newRNG(name string, seed uint64, index int) *rng {
	h := blake3.New()
	_, _ = h.Write([]byte("pouw-workload-v1\x00" + name + "\x00"))
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], seed)
	binary.LittleEndian.PutUint64(b[8:], uint64(index))
	_, _ = h.Write(b[:])
	return &rng{d: h.Digest()}
}

func (r *rng) u64() uint64 {
	var b [8]byte
	_, _ = r.d.Read(b[:])
	return binary.LittleEndian.Uint64(b[:])
}

// felt returns a uniform field element (rejection sampling).
func (r *rng) felt() uint64 {
	for {
		if v := r.u64(); v < gl.P {
			return v
		}
	}
}

// intn returns a value in [lo, hi].
func (r *rng) intn(lo, hi uint64) uint64 { return lo + r.u64()%(hi-lo+1) }

// asm assembles generated source; generators only emit valid programs.
func asm(src string) *trace.Program { return trace.MustAssemble(src) }

// loopCount is how many iterations of per steps (plus fixed overhead) fit.
func loopCount(steps, fixed, per uint64) uint64 {
	if steps <= fixed+per {
		return 1
	}
	return (steps - fixed) / per
}

func genFib(r *rng, steps uint64, _ []uint64) trace.Intent {
	const src = `
; generalised Fibonacci: r1, r2 = r2, r1 + r2, r0 times
.inputs 3            ; r0 = n, r1 = a, r2 = b
.outputs r1
        JZ   r0, done
loop:   ADD  r3, r1, r2
        MOV  r1, r2
        MOV  r2, r3
        ADDI r0, r0, -1
        JNZ  r0, loop
done:   HALT
`
	n := loopCount(steps, 2, 5)
	return trace.Intent{Program: asm(src), Inputs: []uint64{n, r.felt(), r.felt()}}
}

func genMiMC(r *rng, steps uint64, _ []uint64) trace.Intent {
	k, d := r.felt(), r.felt()
	src := fmt.Sprintf(`
; MiMC-style chain: x = x^7 + c; c = c*%[1]d + %[2]d; r0 rounds
.inputs 3            ; r0 = rounds, r1 = x, r2 = c0
.outputs r1, r2
        JZ   r0, done
loop:   MUL  r3, r1, r1     ; x^2
        MUL  r4, r3, r3     ; x^4
        MUL  r3, r4, r3     ; x^6
        MUL  r3, r3, r1     ; x^7
        ADD  r1, r3, r2     ; + round constant
        MULI r2, r2, %[1]d
        ADDI r2, r2, %[2]d
        ADDI r0, r0, -1
        JNZ  r0, loop
done:   HALT
`, k, d)
	n := loopCount(steps, 2, 9)
	return trace.Intent{Program: asm(src), Inputs: []uint64{n, r.felt(), r.felt()}}
}

func genPoly(r *rng, steps uint64, _ []uint64) trace.Intent {
	deg := r.intn(8, 32)
	per := 2*deg + 6
	if steps < 2+per {
		deg = 2
		per = 2*deg + 6
	}
	var b strings.Builder
	fmt.Fprintf(&b, `
; evaluate a degree-%d polynomial at x, x+δ, ... (r0 points); acc = acc·γ + P(x)
.inputs 3            ; r0 = points, r1 = x, r2 = acc
.outputs r1, r2
        JZ   r0, done
loop:   LI   r3, %d
`, deg, r.felt())
	for i := uint64(0); i < deg; i++ {
		fmt.Fprintf(&b, "        MUL  r3, r3, r1\n        ADDI r3, r3, %d\n", r.felt())
	}
	fmt.Fprintf(&b, `        MULI r2, r2, %d
        ADD  r2, r2, r3
        ADDI r1, r1, %d
        ADDI r0, r0, -1
        JNZ  r0, loop
done:   HALT
`, r.felt(), r.felt())
	n := loopCount(steps, 2, per)
	return trace.Intent{Program: asm(b.String()), Inputs: []uint64{n, r.felt(), r.felt()}}
}

func genTransfers(r *rng, steps uint64, prev []uint64) trace.Intent {
	const accounts = 8
	block := r.intn(4, 64)
	per := 4*block + 3
	if steps < 2+per {
		block = 1
		per = 4*block + 3
	}
	var b strings.Builder
	b.WriteString(`
; r8 rounds of a block of transfers between balances r0..r7;
; amount = base + round salt (r11); r10 = total volume
.inputs 9            ; r0..r7 balances, r8 = rounds
.outputs r0, r1, r2, r3, r4, r5, r6, r7, r10
        JZ   r8, done
loop:
`)
	for i := uint64(0); i < block; i++ {
		from := r.intn(0, accounts-1)
		to := (from + r.intn(1, accounts-1)) % accounts
		fmt.Fprintf(&b, "        ADDI r9, r11, %d\n        SUB  r%d, r%d, r9\n        ADD  r%d, r%d, r9\n        ADD  r10, r10, r9\n",
			r.intn(1, 1_000_000), from, from, to, to)
	}
	b.WriteString(`        ADDI r11, r11, 1
        ADDI r8, r8, -1
        JNZ  r8, loop
done:   HALT
`)
	n := loopCount(steps, 2, per)
	in := make([]uint64, accounts+1)
	for i := 0; i < accounts; i++ {
		if len(prev) >= accounts {
			in[i] = prev[i] // a batch continues from the previous balances
		} else {
			in[i] = r.intn(1_000_000, 1_000_000_000)
		}
	}
	in[accounts] = n
	return trace.Intent{Program: asm(b.String()), Inputs: in}
}
