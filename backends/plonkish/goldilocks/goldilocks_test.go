package goldilocks_test

import (
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/consensys/gnark-crypto/ecc/bn254/fr"

	"github.com/pouwfarm/pouwfarm/backends/plonkish/circuit"
	"github.com/pouwfarm/pouwfarm/backends/plonkish/goldilocks"
)

func TestQuotientsMatchBigIntArithmetic(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	p := new(big.Int).SetUint64(goldilocks.P)
	edge := []uint64{0, 1, 2, goldilocks.P - 1, goldilocks.P - 2, 1 << 32, 1<<32 - 1, goldilocks.P >> 1}
	for i := 0; i < 2000; i++ {
		a, b := rng.Uint64N(goldilocks.P), rng.Uint64N(goldilocks.P)
		if i < len(edge)*len(edge) {
			a, b = edge[i/len(edge)], edge[i%len(edge)]
		}
		A, B := new(big.Int).SetUint64(a), new(big.Int).SetUint64(b)
		q, c := goldilocks.MulQuo(a, b)
		got := new(big.Int).Mul(new(big.Int).SetUint64(q), p)
		got.Add(got, new(big.Int).SetUint64(c))
		if got.Cmp(new(big.Int).Mul(A, B)) != 0 || c >= goldilocks.P {
			t.Fatalf("MulQuo(%d,%d) = %d,%d", a, b, q, c)
		}
		q, c = goldilocks.AddQuo(a, b)
		got = new(big.Int).Mul(new(big.Int).SetUint64(q), p)
		got.Add(got, new(big.Int).SetUint64(c))
		if got.Cmp(new(big.Int).Add(A, B)) != 0 || c >= goldilocks.P || q > 1 {
			t.Fatalf("AddQuo(%d,%d) = %d,%d", a, b, q, c)
		}
		q, c = goldilocks.SubQuo(a, b)
		lhs := new(big.Int).Add(A, new(big.Int).Mul(new(big.Int).SetUint64(q), p))
		if lhs.Cmp(new(big.Int).Add(B, new(big.Int).SetUint64(c))) != 0 || c >= goldilocks.P || q > 1 {
			t.Fatalf("SubQuo(%d,%d) = %d,%d", a, b, q, c)
		}
	}
}

// wordCircuit holds one canonical word per row and asserts its value.
type wordCircuit struct {
	values []uint64
	forge  int // row whose limbs encode values[forge] + p (a non-canonical representative)
	table  circuit.Column
	sel    circuit.Column
	val    circuit.Column
	w      *goldilocks.Word
}

func (c *wordCircuit) Configure(cs *circuit.ConstraintSystem) {
	c.table = goldilocks.ConfigureRangeTable(cs)
	c.sel = cs.FixedColumn()
	c.val = cs.AdviceColumn()
	c.w = goldilocks.ConfigureWord(cs, "word", c.sel.Cur(), true)
	goldilocks.RangeCheck(cs, "range", c.table, c.w)
	cs.CreateGate("value", c.sel.Cur().Mul(c.w.Expr().Sub(c.val.Cur())))
}

func (c *wordCircuit) Synthesize(a *circuit.Assignment) error {
	goldilocks.AssignRangeTable(a, c.table)
	for i, v := range c.values {
		a.SetUint64(c.sel, i, 1)
		limbs := v
		if i == c.forge {
			limbs = v + goldilocks.P // still < 2^64 for small v
			// the cell holds the integer v + p (as the forger wants)
		}
		var cell fr.Element
		cell.SetUint64(limbs)
		a.Set(c.val, i, cell)
		c.w.Assign(a, i, limbs)
	}
	return nil
}

func TestCanonicalWordRejectsValuesAtOrAboveP(t *testing.T) {
	vals := []uint64{0, 1, goldilocks.P - 1, 1<<64 - 1<<32, 12345, goldilocks.P - 1<<32}
	c := &wordCircuit{values: vals, forge: -1}
	fails, err := circuit.MockProve(9, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(fails) != 0 {
		t.Fatalf("canonical values fail: %v", fails)
	}
	// 5 + p has hi = 2^32 - 1 and lo = 6: the canonicity gate must fire
	c = &wordCircuit{values: []uint64{7, 5}, forge: 1}
	fails, err = circuit.MockProve(9, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(fails) != 1 || fails[0].Name != "word.canonical" || fails[0].Row != 1 {
		t.Fatalf("non-canonical value: %v", fails)
	}
}
