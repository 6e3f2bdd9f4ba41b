// Package deep holds what prover and verifier share about the DEEP
// composition polynomial
//
//	D(x) = Σ_j γ_j (T_j(x) − T_j(z))/(x − z) + γ'_j (T_j(x) − T_j(zg))/(x − zg)
//	     + Σ_h δ_h (H_h(x) − H_h(z))/(x − z)
//
// over the trace columns T_j (main and auxiliary) and the composition columns
// H_h. Extension columns are committed as two base columns (T = T0 + u·T1),
// so the coefficient of T1 is γ·u. It imports only field and transcript.
package deep

import (
	"github.com/pouwfarm/pouwfarm/backends/stark/field"
	"github.com/pouwfarm/pouwfarm/backends/stark/transcript"
)

// Segment describes one committed segment for the combination.
type Segment struct {
	Ext   bool        // columns are extension columns split in two
	OODZ  []field.Ext // value of each (extension or base) column at z
	OODZG []field.Ext // at z·g; nil for the composition segment
}

// Coeffs are the drawn coefficients, laid out per committed base column.
type Coeffs struct {
	Z, ZG           [][]field.Ext // [segment][base column]
	ConstZ, ConstZG field.Ext     // Σ γ T(z) and Σ γ' T(zg)
}

// mulU returns e·u (u² = 7).
func mulU(e field.Ext) field.Ext {
	var r field.Ext
	r.A0.SetUint64(7)
	r.A0.Mul(&r.A0, &e.A1)
	r.A1 = e.A0
	return r
}

// Draw draws the coefficients from the transcript: per column, γ then (when
// the segment has a z·g value) γ'.
func Draw(tr *transcript.Transcript, segs []Segment) Coeffs {
	var c Coeffs
	c.Z = make([][]field.Ext, len(segs))
	c.ZG = make([][]field.Ext, len(segs))
	for s, seg := range segs {
		for j := range seg.OODZ {
			g := tr.DrawExt()
			var t field.Ext
			t.Mul(&g, &seg.OODZ[j])
			c.ConstZ.Add(&c.ConstZ, &t)
			var g2 field.Ext
			if seg.OODZG != nil {
				g2 = tr.DrawExt()
				t.Mul(&g2, &seg.OODZG[j])
				c.ConstZG.Add(&c.ConstZG, &t)
			}
			if seg.Ext {
				c.Z[s] = append(c.Z[s], g, mulU(g))
				c.ZG[s] = append(c.ZG[s], g2, mulU(g2))
			} else {
				c.Z[s] = append(c.Z[s], g)
				c.ZG[s] = append(c.ZG[s], g2)
			}
		}
	}
	return c
}

// Numerators returns Σ γ T(x) − ConstZ and Σ γ' T(x) − ConstZG for one LDE
// point, given each segment's base-column values there (rows[s][c]).
func (c *Coeffs) Numerators(rows [][]field.Base) (a, b field.Ext) {
	for s, row := range rows {
		zs, zgs := c.Z[s], c.ZG[s]
		for j := range row {
			field.AddMulBase(&a, &zs[j], &row[j])
			field.AddMulBase(&b, &zgs[j], &row[j])
		}
	}
	a.Sub(&a, &c.ConstZ)
	b.Sub(&b, &c.ConstZG)
	return a, b
}
