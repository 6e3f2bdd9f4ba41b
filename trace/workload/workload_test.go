package workload_test

import (
	"errors"
	"testing"

	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/trace"
	"github.com/pouwfarm/pouwfarm/trace/gl"
	"github.com/pouwfarm/pouwfarm/trace/workload"
)

func TestEveryWorkloadTracePassesCheckAtSeveralSizes(t *testing.T) {
	for _, name := range workload.Names() {
		for _, steps := range []uint64{64, 1000, 5000} {
			tr, err := workload.Macro(name, 7, steps)
			if err != nil {
				t.Fatalf("%s/%d: %v", name, steps, err)
			}
			got := tr.Header.Steps()
			if got > steps+300 || got < steps/2 {
				t.Errorf("%s: target %d steps, got %d", name, steps, got)
			}
			if err := trace.Check(tr); err != nil {
				t.Fatalf("%s/%d: %v", name, steps, err)
			}
		}
		full, err := workload.Full(name, 7, 3000, 4)
		if err != nil {
			t.Fatalf("%s full: %v", name, err)
		}
		if full.Header.Tier != pouw.TierFull || len(full.Header.Segments) != 4 {
			t.Fatalf("%s full: %d segments", name, len(full.Header.Segments))
		}
		if err := trace.Check(full); err != nil {
			t.Fatalf("%s full: %v", name, err)
		}
	}
}

func TestWorkloadsAreDeterministicFromTheSeed(t *testing.T) {
	for _, name := range workload.Names() {
		a, _ := workload.Macro(name, 42, 500)
		b, _ := workload.Macro(name, 42, 500)
		c, _ := workload.Macro(name, 43, 500)
		ha, _ := trace.Hash(a)
		hb, _ := trace.Hash(b)
		hc, _ := trace.Hash(c)
		if ha != hb {
			t.Errorf("%s: same seed, different traces", name)
		}
		if ha == hc {
			t.Errorf("%s: different seeds, same trace", name)
		}
	}
}

func TestMiMCMatchesADirectComputation(t *testing.T) {
	its, err := workload.Intents("mimc", 3, 200, 1)
	if err != nil {
		t.Fatal(err)
	}
	it := its[0]
	// read K and D back from the program: MULI r2 and the ADDI r2 after it
	var k, d uint64
	for i, in := range it.Program.Instrs {
		if in.Op == trace.OpMULI {
			k, d = in.Imm, it.Program.Instrs[i+1].Imm
		}
	}
	rounds, x, c := it.Inputs[0], it.Inputs[1], it.Inputs[2]
	for i := uint64(0); i < rounds; i++ {
		x = gl.Add(gl.Exp(x, 7), c)
		c = gl.Add(gl.Mul(c, k), d)
	}
	end, _, err := trace.Run(it.Program, it.Inputs, 10000)
	if err != nil || end.Regs[1] != x {
		t.Fatalf("VM x = %d, direct %d (%v)", end.Regs[1], x, err)
	}
}

func TestTransferBatchChainsBalancesAndConservesTheirSum(t *testing.T) {
	its, err := workload.Intents("transfers", 5, 4000, 4)
	if err != nil {
		t.Fatal(err)
	}
	sum := func(v []uint64) uint64 {
		var s uint64
		for _, x := range v[:8] {
			s = gl.Add(s, x)
		}
		return s
	}
	total := sum(its[0].Inputs)
	for i, it := range its {
		end, _, err := trace.Run(it.Program, it.Inputs, 100000)
		if err != nil {
			t.Fatal(err)
		}
		if sum(end.Regs[:]) != total {
			t.Fatalf("intent %d changed the total balance", i)
		}
		if i+1 < len(its) {
			for a := 0; a < 8; a++ {
				if its[i+1].Inputs[a] != end.Regs[a] {
					t.Fatalf("intent %d does not start from intent %d's balances", i+1, i)
				}
			}
		}
	}
}

func TestUnknownWorkloadAndTinySizesAreRefused(t *testing.T) {
	if _, err := workload.Macro("nope", 1, 100); !errors.Is(err, workload.ErrUnknown) {
		t.Errorf("unknown: %v", err)
	}
	if _, err := workload.Full("fib", 1, 20, 4); err == nil {
		t.Error("4 intents in 20 steps accepted")
	}
}

func TestSingleCellMutationsOfEveryWorkloadAreCaughtAtTheirRow(t *testing.T) {
	for i, name := range workload.Names() {
		tr, err := workload.Macro(name, uint64(i), 300)
		if err != nil {
			t.Fatal(err)
		}
		seed := uint64(i) + 11
		for c := 0; c < trace.Width; c++ {
			for k := 0; k < 2; k++ {
				seed = seed*6364136223846793005 + 1442695040888963407
				row := (seed >> 33) % tr.Header.Rows
				cell := &tr.Cells[row*trace.Width+uint64(c)]
				old := *cell
				*cell = gl.Add(old, 1+uint64(k)*(seed>>40))
				err := trace.Check(tr)
				var ce *trace.CheckError
				if !errors.As(err, &ce) {
					t.Fatalf("%s: column %d row %d mutation not caught: %v", name, c, row, err)
				}
				found := false
				for _, v := range ce.Violations {
					if v.Row == int64(row) || (v.Transition && v.Row+1 == int64(row)) {
						found = true
					}
				}
				if !found {
					t.Fatalf("%s: column %d row %d mutation reported elsewhere: %v", name, c, row, err)
				}
				*cell = old
			}
		}
	}
}
