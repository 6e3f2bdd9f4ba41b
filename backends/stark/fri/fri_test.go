package fri_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/pouwfarm/pouwfarm/backends/stark/field"
	"github.com/pouwfarm/pouwfarm/backends/stark/fri"
	"github.com/pouwfarm/pouwfarm/backends/stark/transcript"
)

// evalsOf evaluates a random polynomial of degree < d over the coset of size n.
func evalsOf(r *rand.Rand, d, n int) []field.Ext {
	c := make([]field.Ext, d)
	for i := range c {
		c[i] = field.NewExt(r.Uint64(), r.Uint64())
	}
	w := field.RootOfUnity(uint64(n))
	x := field.Generator()
	out := make([]field.Ext, n)
	for i := range out {
		out[i] = field.EvalPolyExtAt(c, x)
		x.Mul(&x, &w)
	}
	return out
}

func TestFRIAcceptsLowDegreeAndRejectsTampering(t *testing.T) {
	for _, tc := range []struct{ d, blowup, F, rem int }{
		{256, 8, 4, 16}, {1024, 4, 8, 64}, {16, 8, 4, 64}, {512, 16, 8, 8},
	} {
		r := rand.New(rand.NewPCG(uint64(tc.d), 1))
		p := fri.Params{Folding: tc.F, MaxRemainder: tc.rem, DomainSize: tc.d * tc.blowup, DegreeBound: tc.d, Offset: field.Generator()}
		evals := evalsOf(r, tc.d, p.DomainSize)
		layer0 := append([]field.Ext(nil), evals...)
		ptr := transcript.New([]byte("seed"))
		pr, err := fri.Commit(context.Background(), ptr, evals, p)
		if err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		pos := ptr.DrawPositions(0, 20, p.DomainSize)
		ops := pr.Open(pos)
		c := fri.Commitments{Roots: pr.Roots(), Remainder: pr.Remainder()}

		vtr := transcript.New([]byte("seed"))
		alphas, err := fri.ReadCommitments(vtr, p, c)
		if err != nil {
			t.Fatal(err)
		}
		if vpos := vtr.DrawPositions(0, 20, p.DomainSize); len(vpos) != len(pos) {
			t.Fatal("transcripts diverged")
		}
		vals := make([]field.Ext, len(pos))
		for i, x := range pos {
			vals[i] = layer0[x]
		}
		if err := fri.Verify(p, alphas, c, ops, pos, vals); err != nil {
			t.Fatalf("%+v: honest proof rejected: %v", tc, err)
		}
		bad := append([]field.Ext(nil), vals...)
		bad[0].A0.SetUint64(12345)
		if err := fri.Verify(p, alphas, c, ops, pos, bad); !errors.Is(err, fri.ErrRejected) {
			t.Fatalf("wrong layer-0 value accepted: %v", err)
		}
		if len(c.Remainder) > 0 {
			c2 := c
			c2.Remainder = append([]field.Ext(nil), c.Remainder...)
			c2.Remainder[0].A1.SetUint64(1)
			if err := fri.Verify(p, alphas, c2, ops, pos, vals); err == nil {
				t.Fatal("changed remainder accepted")
			}
		}
		if len(ops) > 0 {
			ops[0].Leaves[0][1].A0.SetUint64(99)
			if err := fri.Verify(p, alphas, c, ops, pos, vals); err == nil {
				t.Fatal("changed leaf accepted")
			}
		}
	}
}

func TestFRIProverRefusesHighDegree(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	p := fri.Params{Folding: 4, MaxRemainder: 16, DomainSize: 1024, DegreeBound: 128, Offset: field.Generator()}
	evals := evalsOf(r, 129, p.DomainSize)
	if _, err := fri.Commit(context.Background(), transcript.New(nil), evals, p); !errors.Is(err, fri.ErrNotLowDegree) {
		t.Fatalf("got %v", err)
	}
}
