package trace_test

import (
	"math/rand/v2"
	"testing"

	"github.com/pouwfarm/pouwfarm/trace"
	"github.com/pouwfarm/pouwfarm/trace/gl"
)

// logUpSides evaluates both sides of the logUp identity of docs/vm.md §9
// over the base field (a consistency check of the formulas; real backends
// draw α, β from an extension field).
func logUpSides(tr *trace.Trace, alpha, beta uint64) (lhs, rhs uint64) {
	compress := func(t [4]uint64) uint64 {
		return gl.Add(gl.Add(t[0], gl.Mul(beta, t[1])), gl.Add(gl.Mul(gl.Mul(beta, beta), t[2]), gl.Mul(gl.Exp(beta, 3), t[3])))
	}
	for i := uint64(0); i < tr.Header.Rows; i++ {
		lhs = gl.Add(lhs, gl.Inv(gl.Sub(alpha, compress(trace.LookupTuple(tr.Row(i))))))
	}
	for g, p := range tr.Header.Programs {
		for j := range p.Instrs {
			m := tr.Header.Multiplicities[g][j] % gl.P
			rhs = gl.Add(rhs, gl.Mul(m, gl.Inv(gl.Sub(alpha, compress(tr.Header.TableEntry(g, j))))))
		}
	}
	return lhs, rhs
}

func TestLogUpIdentityHoldsExactlyForValidTraces(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for name, tr := range sampleTraces(t) {
		// also check the running-sum column's constraints as written
		alpha, beta := r.Uint64N(gl.P), r.Uint64N(gl.P)
		lhs, rhs := logUpSides(tr, alpha, beta)
		if lhs != rhs {
			t.Fatalf("%s: logUp sides differ for a valid trace", name)
		}
		phi := uint64(0)
		for i := uint64(0); i < tr.Header.Rows; i++ {
			tu := trace.LookupTuple(tr.Row(i))
			c := gl.Add(gl.Add(tu[0], gl.Mul(beta, tu[1])), gl.Add(gl.Mul(gl.Mul(beta, beta), tu[2]), gl.Mul(gl.Exp(beta, 3), tu[3])))
			next := gl.Add(phi, gl.Inv(gl.Sub(alpha, c)))
			// lookup_step / lookup_first: (φ' − φ)·(α − c') = 1
			if gl.Mul(gl.Sub(next, phi), gl.Sub(alpha, c)) != 1 {
				t.Fatalf("%s: lookup_step fails at row %d", name, i)
			}
			phi = next
		}
		if phi != rhs {
			t.Fatalf("%s: lookup_last fails", name)
		}
	}
	// a trace executing an instruction that is not in the table
	tr := sampleTraces(t)["macro"]
	tr.Cells[3*trace.Width+trace.ColImm] = 12345
	lhs, rhs := logUpSides(tr, r.Uint64N(gl.P), r.Uint64N(gl.P))
	if lhs == rhs {
		t.Fatal("logUp identity holds for a row outside the program table")
	}
}

func TestTransitionExcludedListsSegmentGapsAndTheLastRow(t *testing.T) {
	full := sampleTraces(t)["full"]
	ex := full.Header.TransitionExcluded()
	s := full.Header.Segments
	if len(ex) != 2 || ex[0] != s[1].StartRow-1 || ex[1] != full.Header.Rows-1 {
		t.Fatalf("excluded rows %v for segments starting at %d, %d", ex, s[0].StartRow, s[1].StartRow)
	}
}
