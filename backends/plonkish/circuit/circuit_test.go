package circuit_test

import (
	"context"
	"errors"
	"testing"

	"github.com/consensys/gnark-crypto/ecc/bn254/fr"

	"github.com/pouwfarm/pouwfarm/backends/plonkish/circuit"
	"github.com/pouwfarm/pouwfarm/backends/plonkish/ipa"
)

// testCircuit exercises every feature: a Fibonacci gate over rotations, a
// range-checked sum (4-bit limbs looked up in a fixed table), a selector-
// weighted tuple lookup of (x, x^2) into a table of squares, and copy
// constraints tying the Fibonacci ends to instance cells.
type testCircuit struct {
	steps int
	// witness inputs and deliberate breakages
	a0, b0   uint64
	sums     [][2]uint64 // pairs to add; every sum < 256
	breakFib int         // row whose b' is off by one (-1: none)
	badLimb  bool        // assign a limb outside the table (witness still sums)
	badCopy  bool        // copy the wrong final value
	sq       []uint64    // values whose squares are looked up (each < 16)
	badSq    int         // index whose square is wrong (-1: none)

	sel, selSum, selSq, table, tblX, tblX2 circuit.Column
	a, b, x, y, z, lo, hi, v, v2           circuit.Column
	inst                                   circuit.Column
}

func (c *testCircuit) Configure(cs *circuit.ConstraintSystem) {
	c.sel, c.selSum, c.selSq = cs.FixedColumn(), cs.FixedColumn(), cs.FixedColumn()
	c.table, c.tblX, c.tblX2 = cs.FixedColumn(), cs.FixedColumn(), cs.FixedColumn()
	c.a, c.b = cs.AdviceColumn(), cs.AdviceColumn()
	c.x, c.y, c.z, c.lo, c.hi = cs.AdviceColumn(), cs.AdviceColumn(), cs.AdviceColumn(), cs.AdviceColumn(), cs.AdviceColumn()
	c.v, c.v2 = cs.AdviceColumn(), cs.AdviceColumn()
	c.inst = cs.InstanceColumn()
	cs.EnableEquality(c.a)
	cs.EnableEquality(c.b)
	cs.EnableEquality(c.inst)
	s := c.sel.Cur()
	cs.CreateGate("fib",
		s.Mul(c.a.Next().Sub(c.b.Cur())),
		s.Mul(c.b.Next().Sub(c.a.Cur()).Sub(c.b.Cur())))
	ss := c.selSum.Cur()
	cs.CreateGate("sum",
		ss.Mul(c.x.Cur().Add(c.y.Cur()).Sub(c.z.Cur())),
		ss.Mul(c.lo.Cur().Add(c.hi.Cur().Mul(circuit.Const(16))).Sub(c.z.Cur())))
	cs.AddRangeLookup("nibble", c.table, c.lo.Cur(), c.hi.Cur())
	cs.AddLookup("square", []*circuit.Expr{c.tblX.Cur(), c.tblX2.Cur()},
		circuit.LookupInput{Weight: c.selSq.Cur(), Tuple: []*circuit.Expr{c.v.Cur(), c.v2.Cur()}})
}

func (c *testCircuit) Synthesize(a *circuit.Assignment) error {
	for i := 0; i < 16; i++ {
		a.SetUint64(c.table, i, uint64(i))
		a.SetUint64(c.tblX, i, uint64(i))
		a.SetUint64(c.tblX2, i, uint64(i*i))
	}
	// fibonacci rows 0..steps, gate on rows 0..steps-1
	fa, fb := c.a0, c.b0
	for row := 0; row <= c.steps; row++ {
		if row < c.steps {
			a.SetUint64(c.sel, row, 1)
		}
		a.SetUint64(c.a, row, fa)
		a.SetUint64(c.b, row, fb)
		next := fa + fb
		if row == c.breakFib {
			next++
		}
		fa, fb = fb, next
	}
	a.Copy(c.a, 0, c.inst, 0)
	a.Copy(c.b, 0, c.inst, 1)
	if c.badCopy {
		a.Copy(c.b, c.steps-1, c.inst, 2)
	} else {
		a.Copy(c.b, c.steps, c.inst, 2)
	}
	for i, p := range c.sums {
		a.SetUint64(c.selSum, i, 1)
		z := p[0] + p[1]
		a.SetUint64(c.x, i, p[0])
		a.SetUint64(c.y, i, p[1])
		a.SetUint64(c.z, i, z)
		lo, hi := z%16, z/16
		if c.badLimb && i == 1 {
			lo, hi = z, 0 // sums, but lo is out of the 4-bit table
		}
		a.SetUint64(c.lo, i, lo)
		a.SetUint64(c.hi, i, hi)
	}
	for i, v := range c.sq {
		a.SetUint64(c.selSq, i, 1)
		a.SetUint64(c.v, i, v)
		sq := v * v
		if i == c.badSq {
			sq++
		}
		a.SetUint64(c.v2, i, sq)
	}
	return nil
}

func goodCircuit() *testCircuit {
	return &testCircuit{steps: 10, a0: 1, b0: 1, sums: [][2]uint64{{3, 4}, {100, 55}, {200, 55}}, breakFib: -1, sq: []uint64{3, 15, 0, 7}, badSq: -1}
}

func instanceFor(c *testCircuit) [][]fr.Element {
	fa, fb := c.a0, c.b0
	for i := 0; i < c.steps; i++ {
		fa, fb = fb, fa+fb
	}
	v := make([]fr.Element, 3)
	v[0].SetUint64(c.a0)
	v[1].SetUint64(c.b0)
	v[2].SetUint64(fb)
	return [][]fr.Element{v}
}

const testK = 5

func keys(t *testing.T) (*ipa.Params, *circuit.ProvingKey) {
	t.Helper()
	var gs ipa.Generators
	params, err := gs.Params(testK)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := circuit.Keygen(params, goodCircuit())
	if err != nil {
		t.Fatal(err)
	}
	return params, pk
}

func prove(t *testing.T, pk *circuit.ProvingKey, c *testCircuit, inst [][]fr.Element) ([]byte, error) {
	t.Helper()
	tr := ipa.NewTranscript("test")
	tr.AppendBytes("statement", []byte("s1"))
	p, err := circuit.Prove(context.Background(), pk, c, inst, tr)
	if err != nil {
		return nil, err
	}
	return p.Encode(pk.VK.K), nil
}

func verify(vk *circuit.VerifyingKey, inst [][]fr.Element, proof []byte, statement string) error {
	p, err := vk.DecodeProof(proof)
	if err != nil {
		return err
	}
	tr := ipa.NewTranscript("test")
	tr.AppendBytes("statement", []byte(statement))
	return circuit.Verify(vk, inst, p, tr)
}

func TestMockProverAcceptsGoodWitness(t *testing.T) {
	c := goodCircuit()
	fails, err := circuit.MockProve(testK, c, instanceFor(c))
	if err != nil {
		t.Fatal(err)
	}
	if len(fails) != 0 {
		t.Fatalf("good witness fails: %v", fails)
	}
}

func TestMockProverNamesFailingConstraintAndRow(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*testCircuit)
		want   circuit.Failure
	}{
		{"fib gate", func(c *testCircuit) { c.breakFib = 6 }, circuit.Failure{Kind: "gate", Name: "fib", Poly: 1, Row: 6}},
		{"range lookup", func(c *testCircuit) { c.badLimb = true }, circuit.Failure{Kind: "lookup", Name: "nibble", Poly: 0, Row: 1}},
		{"tuple lookup", func(c *testCircuit) { c.badSq = 2 }, circuit.Failure{Kind: "lookup", Name: "square", Poly: 0, Row: 2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := goodCircuit()
			tc.mutate(c)
			fails, err := circuit.MockProve(testK, c, instanceFor(goodCircuit()))
			if err != nil {
				t.Fatal(err)
			}
			if len(fails) == 0 {
				t.Fatal("broken witness passes")
			}
			f := fails[0]
			f.Info = ""
			if f != tc.want {
				t.Fatalf("first failure %v, want %v", fails[0], tc.want)
			}
		})
	}
	c := goodCircuit()
	c.badCopy = true
	fails, err := circuit.MockProve(testK, c, instanceFor(goodCircuit()))
	if err != nil {
		t.Fatal(err)
	}
	if len(fails) != 1 || fails[0].Kind != "copy" || fails[0].Row != c.steps-1 {
		t.Fatalf("copy failure not reported: %v", fails)
	}
}

func TestProofVerifiesAndIsDeterministic(t *testing.T) {
	params, pk := keys(t)
	c := goodCircuit()
	inst := instanceFor(c)
	proof, err := prove(t, pk, c, inst)
	if err != nil {
		t.Fatal(err)
	}
	if len(proof) != pk.VK.ProofSize() {
		t.Fatalf("proof %d bytes, ProofSize %d", len(proof), pk.VK.ProofSize())
	}
	if err := verify(pk.VK, inst, proof, "s1"); err != nil {
		t.Fatalf("honest proof rejected: %v", err)
	}
	pk2, err := circuit.Keygen(params, goodCircuit())
	if err != nil {
		t.Fatal(err)
	}
	if pk2.VK.Digest != pk.VK.Digest {
		t.Fatal("keygen is not deterministic")
	}
	proof2, err := prove(t, pk2, goodCircuit(), inst)
	if err != nil {
		t.Fatal(err)
	}
	if string(proof2) != string(proof) {
		t.Fatal("proving is not deterministic")
	}
}

func TestTamperedProofsAndStatementsAreRejected(t *testing.T) {
	_, pk := keys(t)
	c := goodCircuit()
	inst := instanceFor(c)
	proof, err := prove(t, pk, c, inst)
	if err != nil {
		t.Fatal(err)
	}
	for pos := 0; pos < len(proof); pos += 7 {
		bad := append([]byte(nil), proof...)
		bad[pos] ^= 0x01 << (pos % 8)
		if err := verify(pk.VK, inst, bad, "s1"); !errors.Is(err, circuit.ErrVerify) {
			t.Fatalf("flip at byte %d: got %v", pos, err)
		}
	}
	if err := verify(pk.VK, inst, proof, "s2"); !errors.Is(err, circuit.ErrVerify) {
		t.Fatalf("other statement: got %v", err)
	}
	other := instanceFor(c)
	other[0][2].SetUint64(12345)
	if err := verify(pk.VK, other, proof, "s1"); !errors.Is(err, circuit.ErrVerify) {
		t.Fatalf("changed public value: got %v", err)
	}
	for _, n := range []int{0, 5, len(proof) - 1, len(proof) + 1} {
		b := make([]byte, n)
		copy(b, proof)
		if err := verify(pk.VK, inst, b, "s1"); !errors.Is(err, circuit.ErrVerify) {
			t.Fatalf("%d-byte proof: got %v", n, err)
		}
	}
	// a commitment replaced by another valid point
	p, err := pk.VK.DecodeProof(proof)
	if err != nil {
		t.Fatal(err)
	}
	p.Advice[0], p.Advice[1] = p.Advice[1], p.Advice[0]
	if err := verify(pk.VK, inst, p.Encode(pk.VK.K), "s1"); !errors.Is(err, circuit.ErrVerify) {
		t.Fatalf("swapped commitments: got %v", err)
	}
}

func TestBrokenWitnessesAreRefusedOrRejected(t *testing.T) {
	_, pk := keys(t)
	inst := instanceFor(goodCircuit())
	// lookups and copies are checked while proving: the prover refuses
	for name, mutate := range map[string]func(*testCircuit){
		"limb outside table": func(c *testCircuit) { c.badLimb = true },
		"wrong square":       func(c *testCircuit) { c.badSq = 1 },
	} {
		c := goodCircuit()
		mutate(c)
		if _, err := prove(t, pk, c, inst); !errors.Is(err, circuit.ErrUnsatisfied) {
			t.Fatalf("%s: prover returned %v, want ErrUnsatisfied", name, err)
		}
	}
	// a public value the witness does not match breaks a copy constraint
	wrong := instanceFor(goodCircuit())
	wrong[0][2].SetUint64(7)
	if _, err := prove(t, pk, goodCircuit(), wrong); !errors.Is(err, circuit.ErrUnsatisfied) {
		t.Fatalf("wrong public value: prover returned %v, want ErrUnsatisfied", err)
	}
	// a failing gate yields a quotient that is no polynomial: rejected
	c := goodCircuit()
	c.breakFib = 3
	bad := instanceFor(c) // consistent copies: only the gate is wrong
	fa, fb := c.a0, c.b0
	for i := 0; i < c.steps; i++ {
		next := fa + fb
		if i == 3 {
			next++
		}
		fa, fb = fb, next
	}
	bad[0][2].SetUint64(fb)
	proof, err := prove(t, pk, c, bad)
	if err != nil {
		t.Fatalf("prover: %v", err)
	}
	if err := verify(pk.VK, bad, proof, "s1"); !errors.Is(err, circuit.ErrVerify) {
		t.Fatalf("gate-violating witness: got %v", err)
	}
}

func FuzzDecodeProof(f *testing.F) {
	var gs ipa.Generators
	params, err := gs.Params(testK)
	if err != nil {
		f.Fatal(err)
	}
	pk, err := circuit.Keygen(params, goodCircuit())
	if err != nil {
		f.Fatal(err)
	}
	c := goodCircuit()
	inst := instanceFor(c)
	tr := ipa.NewTranscript("test")
	p, err := circuit.Prove(context.Background(), pk, c, inst, tr)
	if err != nil {
		f.Fatal(err)
	}
	good := p.Encode(testK)
	f.Add(good)
	f.Add(good[:100])
	f.Add([]byte{})
	f.Add([]byte("PLK\x01\x05"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := pk.VK.DecodeProof(b)
		if err != nil {
			if !errors.Is(err, circuit.ErrVerify) {
				t.Fatalf("decode error does not wrap ErrVerify: %v", err)
			}
			return
		}
		if string(p.Encode(testK)) != string(b) {
			t.Fatal("decode/encode is not the identity")
		}
		err = circuit.Verify(pk.VK, inst, p, ipa.NewTranscript("test"))
		if err != nil && !errors.Is(err, circuit.ErrVerify) {
			t.Fatalf("verify error does not wrap ErrVerify: %v", err)
		}
	})
}
