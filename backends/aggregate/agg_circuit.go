package aggregate

import (
	"fmt"
	"math/big"

	"github.com/consensys/gnark/constraint"
	"github.com/consensys/gnark/frontend"
	"github.com/consensys/gnark/std/algebra/native/sw_bls12377"
	"github.com/consensys/gnark/std/hash/mimc"
	"github.com/consensys/gnark/std/math/emulated"
	stdgroth16 "github.com/consensys/gnark/std/recursion/groth16"
)

type (
	innerProof = stdgroth16.Proof[sw_bls12377.G1Affine, sw_bls12377.G2Affine]
	innerVK    = stdgroth16.VerifyingKey[sw_bls12377.G1Affine, sw_bls12377.G2Affine, sw_bls12377.GT]
	innerFr    = sw_bls12377.ScalarField
)

// aggCircuit verifies K intent proofs made with one intent key, which is
// part of the circuit (a constant), and exposes one public input: the MiMC
// commitment (over BW6-761's scalar field) to the batch binding and the K
// intent digests in order.
type aggCircuit struct {
	Commitment frontend.Variable `gnark:",public"`
	// Bind is batchBind of the aggregation's job: private, and bound
	// because the public commitment hashes it.
	Bind frontend.Variable

	Proofs  []innerProof
	Digests []emulated.Element[innerFr]

	vk     innerVK `gnark:"-"`
	params Params
}

func newAggCircuit(p Params, intentCS constraint.ConstraintSystem, vk innerVK) *aggCircuit {
	c := &aggCircuit{
		Proofs:  make([]innerProof, p.K),
		Digests: make([]emulated.Element[innerFr], p.K),
		vk:      vk,
		params:  p,
	}
	for i := range c.Proofs {
		c.Proofs[i] = stdgroth16.PlaceholderProof[sw_bls12377.G1Affine, sw_bls12377.G2Affine](intentCS)
	}
	return c
}

func (c *aggCircuit) Define(api frontend.API) error {
	p := c.params
	if len(c.Proofs) != p.K || len(c.Digests) != p.K {
		return fmt.Errorf("aggregate: circuit sized for k=%d", p.K)
	}
	v, err := stdgroth16.NewVerifier[innerFr, sw_bls12377.G1Affine, sw_bls12377.G2Affine, sw_bls12377.GT](api)
	if err != nil {
		return err
	}
	fr, err := emulated.NewField[innerFr](api)
	if err != nil {
		return err
	}
	h, err := mimc.NewMiMC(api)
	if err != nil {
		return err
	}
	h.Write(batchTag, paramsTag(p), c.Bind)
	for i := range p.K {
		w := stdgroth16.Witness[innerFr]{Public: []emulated.Element[innerFr]{c.Digests[i]}}
		// Proof points are checked to lie in their subgroups: the native
		// verifier does so when it decodes a proof, and the pairing
		// argument assumes it.
		if err := v.AssertProof(c.vk, c.Proofs[i], w, stdgroth16.WithSubgroupCheck()); err != nil {
			return fmt.Errorf("child %d: %w", i, err)
		}
		// The digest enters the commitment as its canonical integer, so a
		// non-reduced representative cannot pass for another statement.
		d := fr.ReduceStrict(&c.Digests[i])
		var acc frontend.Variable = 0
		for j := len(d.Limbs) - 1; j >= 0; j-- {
			acc = api.Add(api.Mul(acc, new(big.Int).Lsh(big.NewInt(1), innerFr{}.BitsPerLimb())), d.Limbs[j])
		}
		h.Write(acc)
	}
	api.AssertIsEqual(h.Sum(), c.Commitment)
	return nil
}
