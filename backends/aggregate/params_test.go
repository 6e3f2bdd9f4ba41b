package aggregate

import (
	"errors"
	"testing"

	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/trace"
)

func TestParamsValidate(t *testing.T) {
	for _, c := range []struct {
		p  Params
		ok bool
	}{
		{Params{8, 32, 2}, true},
		{Params{12, 1024, 16}, true},
		{Params{7, 32, 2}, false},
		{Params{13, 32, 2}, false},
		{Params{8, 0, 2}, false},
		{Params{8, 1025, 2}, false},
		{Params{8, 32, 1}, false},
		{Params{8, 32, 6}, false},
		{Params{8, 32, 32}, false},
	} {
		if err := c.p.Validate(); (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrParams)) {
			t.Errorf("%+v: got %v", c.p, err)
		}
	}
	if _, err := LogStepsFor(300); !errors.Is(err, ErrParams) {
		t.Errorf("300 steps: got %v", err)
	}
	if l, err := LogStepsFor(4096); err != nil || l != 12 {
		t.Errorf("4096 steps: got %d, %v", l, err)
	}
}

func TestNewNeedsKeysAndOneSetPerSizeClass(t *testing.T) {
	if _, err := New(Options{}); !errors.Is(err, ErrNoKeys) {
		t.Errorf("no keys: got %v", err)
	}
	a, b := &Keys{Params: testParams}, &Keys{Params: testParams}
	if _, err := New(Options{Keys: []*Keys{a, b}}); !errors.Is(err, ErrParams) {
		t.Errorf("two sets of one class: got %v", err)
	}
}

func TestEstimateScalesWithTheKeysAndRefusesWhatDoesNotFit(t *testing.T) {
	ks := &Keys{Params: testParams, IntentConstraints: 50_000, AggConstraints: 65_000}
	b, err := New(Options{Keys: []*Keys{ks}})
	if err != nil {
		t.Fatal(err)
	}
	macro := execute(t, fibSrc, 10)
	rm := b.Estimate(&macro.Header)
	if rm.Duration <= 0 || rm.MemoryBytes <= 0 || rm.Cores < 1 {
		t.Errorf("macro estimate %+v", rm)
	}
	full, err := trace.Batch([]trace.Intent{
		{Program: trace.MustAssemble(fibSrc), Inputs: []uint64{3}},
		{Program: trace.MustAssemble(fibSrc), Inputs: []uint64{4}},
	}, 1<<20, pouw.TierFull)
	if err != nil {
		t.Fatal(err)
	}
	if rf := b.Estimate(&full.Header); rf.Duration <= 2*rm.Duration {
		t.Errorf("full estimate %v not above two intent proofs (%v each)", rf.Duration, rm.Duration)
	}
	long := execute(t, fibSrc, 200)
	if r := b.Estimate(&long.Header); r.Duration != 0 {
		t.Errorf("intent past the size class: estimate %+v, want zero duration", r)
	}
}
