package transcript_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/pouwfarm/pouwfarm/backends/stark/transcript"
)

func TestChallengesDependOnEveryAbsorbedByte(t *testing.T) {
	a, b := transcript.New([]byte("seed")), transcript.New([]byte("seed"))
	if x, y := a.DrawExt(), b.DrawExt(); !x.Equal(&y) {
		t.Fatal("same transcript, different challenges")
	}
	a.Absorb("root", []byte{1, 2, 3})
	b.Absorb("root", []byte{1, 2, 4})
	if x, y := a.DrawExt(), b.DrawExt(); x.Equal(&y) {
		t.Fatal("different data, same challenge")
	}
	c, d := transcript.New([]byte("seed")), transcript.New([]byte("seed"))
	c.Absorb("ab", []byte("c"))
	d.Absorb("a", []byte("bc"))
	if x, y := c.DrawExt(), d.DrawExt(); x.Equal(&y) {
		t.Fatal("label and data boundaries are ambiguous")
	}
	if x, y := transcript.New([]byte("s1")).DrawExt(), transcript.New([]byte("s2")).DrawExt(); x.Equal(&y) {
		t.Fatal("seed ignored")
	}
}

func TestGrindingFindsTheSmallestNonceAndIsChecked(t *testing.T) {
	tr := transcript.New([]byte("grind"))
	n1, err := tr.Grind(context.Background(), 10, 1)
	if err != nil {
		t.Fatal(err)
	}
	n2, _ := tr.Grind(context.Background(), 10, 3)
	if n1 != n2 {
		t.Fatalf("nonce depends on the worker count: %d vs %d", n1, n2)
	}
	if !tr.CheckPoW(n1, 10) {
		t.Fatal("found nonce fails its own check")
	}
	for n := uint64(0); n < n1; n++ {
		if tr.CheckPoW(n, 10) {
			t.Fatalf("nonce %d < %d also passes: not the smallest", n, n1)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := tr.Grind(ctx, 30, 2); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}

func TestPositionsAreSortedDistinctAndInRange(t *testing.T) {
	tr := transcript.New(nil)
	pos := tr.DrawPositions(5, 200, 256)
	if !slices.IsSorted(pos) || len(slices.Compact(slices.Clone(pos))) != len(pos) {
		t.Fatalf("positions %v", pos)
	}
	for _, p := range pos {
		if p < 0 || p >= 256 {
			t.Fatalf("position %d out of range", p)
		}
	}
}
