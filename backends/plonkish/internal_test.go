package plonkish

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/backends/plonkish/circuit"
	"github.com/pouwfarm/pouwfarm/trace"
)

// A prover that skips trace.Check and proves a witness failing one gate
// gets a proof the verifier rejects.
func TestWitnessFailingOneGateIsRejected(t *testing.T) {
	p := trace.MustAssemble(`
.inputs 2
.outputs r2
        MUL r2, r0, r1
        ADDI r2, r2, 3
        HALT
`)
	good, err := trace.Execute(p, []uint64{1 << 40, 1 << 30}, 100)
	if err != nil {
		t.Fatal(err)
	}
	bad := &trace.Trace{Header: good.Header, Cells: slices.Clone(good.Cells)}
	// row 1 (ADDI) writes a wrong vd: only op_addi (and what reads vd next) breaks
	bad.Cells[1*trace.Width+trace.ColVD]++
	for r := 2; r < int(bad.Header.Rows); r++ {
		bad.Cells[r*trace.Width+trace.ColReg(2)]++ // keep reg[2] and the output consistent
		if bad.At(uint64(r), trace.ColVA) == good.At(uint64(r), trace.ColVA) && bad.At(uint64(r), trace.ColAHi0) == 1 && bad.At(uint64(r), trace.ColALo0+2) == 1 {
			bad.Cells[r*trace.Width+trace.ColVA]++
		}
	}
	bad.Header.Segments = slices.Clone(bad.Header.Segments)
	bad.Header.Segments[0].Outputs = []uint64{bad.At(bad.Header.Rows-1, trace.ColReg(2))}
	fails, err := MockProve(bad)
	if err != nil {
		t.Fatal(err)
	}
	if len(fails) == 0 || fails[0].Name != "op_addi" || fails[0].Row != 1 {
		t.Fatalf("want op_addi at row 1 first, got %v", fails)
	}
	b := New(Options{})
	k := circuitK(&bad.Header)
	pk, err := b.Keys(k)
	if err != nil {
		t.Fatal(err)
	}
	c := &vmCircuit{t: bad}
	c.Configure(&circuit.ConstraintSystem{})
	inst, err := c.instance(&bad.Header, 1<<k)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := trace.Hash(bad)
	st := backends.Statement{Header: &bad.Header, TraceHash: h}
	proof, err := circuit.Prove(context.Background(), pk, c, inst, transcript(st, k))
	if err != nil {
		t.Fatalf("the raw prover should produce a (bad) proof: %v", err)
	}
	if err := b.Verify(context.Background(), st, proof.Encode(k)); !errors.Is(err, backends.ErrProofRejected) {
		t.Fatalf("gate-violating witness: got %v", err)
	}
}
