package trace_test

import (
	"errors"
	"testing"

	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/trace"
)

func TestMicroWindowsChainAndEachPassesCheck(t *testing.T) {
	macro, err := trace.Execute(trace.MustAssemble(fibSrc), []uint64{11}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	parent, _ := trace.Hash(macro)
	steps := macro.Header.Segments[0].Steps()
	for _, w := range []uint64{1, 2, 4, 16, 64} {
		wins, err := trace.Slice(macro, w)
		if err != nil {
			t.Fatalf("W=%d: %v", w, err)
		}
		if want := (steps + w - 1) / w; uint64(len(wins)) != want {
			t.Fatalf("W=%d: %d windows, want %d", w, len(wins), want)
		}
		for k, win := range wins {
			s := win.Header.Segments[0]
			if win.Header.Tier != pouw.TierMicro || win.Header.Rows != w || s.WindowIndex != uint64(k) || win.Header.Parent != parent {
				t.Fatalf("W=%d window %d: bad header", w, k)
			}
			if err := trace.Check(win); err != nil {
				t.Fatalf("W=%d window %d: %v", w, k, err)
			}
			if k == 0 && s.Start != macro.StateAt(0) {
				t.Fatalf("W=%d: first window does not start at the intent's start", w)
			}
			if k+1 < len(wins) && s.End != wins[k+1].Header.Segments[0].Start {
				t.Fatalf("W=%d: window %d's end is not window %d's start", w, k, k+1)
			}
		}
		last := wins[len(wins)-1].Header.Segments[0].End
		if last.Regs[1] != macro.Header.Segments[0].Outputs[0] {
			t.Fatalf("W=%d: the last window does not end in the intent's final state", w)
		}
	}
}

func TestMicroWindowWithAForgedEndStateFailsItsExitConstraint(t *testing.T) {
	macro, _ := trace.Execute(trace.MustAssemble(fibSrc), []uint64{11}, 1000)
	win, err := trace.Window(macro, 16, 1)
	if err != nil {
		t.Fatal(err)
	}
	win.Header.Segments[0].End.Regs[3]++
	var ce *trace.CheckError
	if err := trace.Check(win); !errors.As(err, &ce) || ce.First().Constraint != "exit:reg[3]" || ce.First().Row != 15 {
		t.Fatalf("Check = %v, want exit:reg[3] at row 15", err)
	}
}

func TestMicroWindowMutationsAreCaught(t *testing.T) {
	macro, _ := trace.Execute(trace.MustAssemble(fibSrc), []uint64{11}, 1000)
	win, _ := trace.Window(macro, 16, 2)
	mutateEveryColumn(t, win, 4, 3)
}

func TestSliceRefusesFullTracesAndBadSizes(t *testing.T) {
	p := trace.MustAssemble(fibSrc)
	full, _ := trace.Batch([]trace.Intent{{Program: p, Inputs: []uint64{2}}}, 100, pouw.TierFull)
	if _, err := trace.Slice(full, 4); !errors.Is(err, trace.ErrInputs) {
		t.Errorf("slicing a Full trace: %v", err)
	}
	macro, _ := trace.Execute(p, []uint64{2}, 100)
	if _, err := trace.Slice(macro, 3); !errors.Is(err, trace.ErrInputs) {
		t.Errorf("W=3: %v", err)
	}
}
