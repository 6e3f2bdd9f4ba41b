// Package airtest checks that an AIR's base-field and extension-field
// evaluations compute the same polynomials, on random frames. Test helper;
// it imports only air and field.
package airtest

import (
	"math/rand/v2"
	"testing"

	"github.com/pouwfarm/pouwfarm/backends/stark/air"
	"github.com/pouwfarm/pouwfarm/backends/stark/field"
)

// CheckEvalAgreement evaluates every group of a on random base-field frames
// through Eval/EvalAux and through EvalExt, and fails t on any difference.
func CheckEvalAgreement(t *testing.T, a air.AIR, seed uint64) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 99))
	rb := func(n int) []field.Base {
		v := make([]field.Base, n)
		for i := range v {
			v[i] = field.New(r.Uint64())
		}
		return v
	}
	re := func(n int) []field.Ext {
		v := make([]field.Ext, n)
		for i := range v {
			v[i] = field.NewExt(r.Uint64(), r.Uint64())
		}
		return v
	}
	lift := func(v []field.Base) []field.Ext {
		out := make([]field.Ext, len(v))
		for i := range v {
			out[i] = field.Lift(v[i])
		}
		return out
	}
	for range 20 {
		cur, next := rb(a.MainWidth()), rb(a.MainWidth())
		ac, an, ch := re(a.AuxWidth()), re(a.AuxWidth()), re(a.NumChallenges())
		for g, grp := range a.Groups() {
			m := len(grp.Degrees)
			want := make([]field.Ext, m)
			a.EvalExt(g, lift(cur), lift(next), ac, an, ch, want)
			got := make([]field.Ext, m)
			if grp.Aux {
				a.EvalAux(g, cur, next, ac, an, ch, got)
			} else {
				b := make([]field.Base, m)
				a.Eval(g, cur, next, b)
				got = lift(b)
			}
			for j := range m {
				if !got[j].Equal(&want[j]) {
					t.Fatalf("group %d constraint %d: base and extension evaluations differ", g, j)
				}
			}
		}
	}
}
