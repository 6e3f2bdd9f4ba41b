package circuit

import (
	"encoding/binary"
	"fmt"
	"math/big"

	"github.com/consensys/gnark-crypto/ecc/bn254"
	"github.com/consensys/gnark-crypto/ecc/bn254/fr"
	"github.com/zeebo/blake3"

	"github.com/pouwfarm/pouwfarm/backends/plonkish/ipa"
)

func bigU(v uint64) *big.Int { return new(big.Int).SetUint64(v) }

// VerifyingKey is what a verifier needs: the circuit's shape and
// constraints, and commitments to its fixed and permutation columns.
type VerifyingKey struct {
	K            int
	CS           *ConstraintSystem
	FixedCommits []bn254.G1Affine
	SigmaCommits []bn254.G1Affine
	Digest       [32]byte
	params       *ipa.Params
	omega        fr.Element
	delta        fr.Element
}

// ProvingKey adds the prover's precomputation: fixed and permutation
// polynomials in coefficient form and on the extended domain.
type ProvingKey struct {
	VK          *VerifyingKey
	dom         *domains
	fixedValues [][]fr.Element
	fixedCoeffs [][]fr.Element
	fixedExt    [][]fr.Element
	sigmaValues [][]fr.Element
	sigmaCoeffs [][]fr.Element
	sigmaExt    [][]fr.Element
	l0Ext       []fr.Element
	lLastExt    []fr.Element
}

// Keygen configures the circuit, runs its Synthesize for the fixed
// columns and copy constraints (advice values are ignored), and commits
// to the fixed and permutation polynomials. Keys are deterministic.
func Keygen(params *ipa.Params, c Circuit) (*ProvingKey, error) {
	cs := &ConstraintSystem{}
	c.Configure(cs)
	if err := cs.finalize(); err != nil {
		return nil, err
	}
	n := params.N
	a, err := newAssignment(cs, n, make([][]fr.Element, cs.NumInstance))
	if err != nil {
		return nil, err
	}
	if err := c.Synthesize(a); err != nil {
		return nil, fmt.Errorf("circuit: keygen synthesize: %w", err)
	}
	if a.err != nil {
		return nil, a.err
	}
	dom := newDomains(n, cs.degree)
	vk := &VerifyingKey{K: params.K, CS: cs, params: params, omega: dom.omega}
	vk.delta.SetUint64(5) // the generator of Fr*: the cosets delta^i H are disjoint
	pk := &ProvingKey{VK: vk, dom: dom, fixedValues: a.Fixed}

	pk.fixedCoeffs, pk.fixedExt, vk.FixedCommits, err = commitColumns(params, dom, a.Fixed, false)
	if err != nil {
		return nil, err
	}
	if err := checkCopies(cs, a.copies); err != nil {
		return nil, err
	}
	sigmas := permutationSigmas(cs, n, a.copies, dom.omega, vk.delta)
	pk.sigmaValues = sigmas
	pk.sigmaCoeffs, pk.sigmaExt, vk.SigmaCommits, err = commitColumns(params, dom, sigmas, false)
	if err != nil {
		return nil, err
	}
	unit := func(row int) []fr.Element {
		v := make([]fr.Element, n)
		v[row].SetOne()
		dom.toCoeffs(v)
		return dom.toExt(v)
	}
	pk.l0Ext, pk.lLastExt = unit(0), unit(n-1)

	h := blake3.New()
	_, _ = h.Write([]byte("pouwfarm/plonkish/vk/v1"))
	_ = binary.Write(h, binary.BigEndian, uint32(params.K))
	d := cs.digest()
	_, _ = h.Write(d[:])
	for _, cm := range append(append([]bn254.G1Affine(nil), vk.FixedCommits...), vk.SigmaCommits...) {
		b := cm.Bytes()
		_, _ = h.Write(b[:])
	}
	copy(vk.Digest[:], h.Sum(nil))
	return pk, nil
}

// commitColumns interpolates, extends and commits columns. Keygen commits
// coefficients (lagrange false): a verifier then never pays for the
// Lagrange-basis generators, which only the prover's many witness
// columns repay.
func commitColumns(params *ipa.Params, dom *domains, values [][]fr.Element, lagrange bool) (coeffs, ext [][]fr.Element, commits []bn254.G1Affine, err error) {
	coeffs = make([][]fr.Element, len(values))
	ext = make([][]fr.Element, len(values))
	commits = make([]bn254.G1Affine, len(values))
	errs := make([]error, len(values))
	parallelEach(len(values), func(i int) {
		c := append([]fr.Element(nil), values[i]...) // commitColumns must not touch its input
		dom.toCoeffs(c)
		coeffs[i] = c
		ext[i] = dom.toExt(c)
		if lagrange {
			commits[i], errs[i] = params.CommitLagrange(values[i])
		} else {
			commits[i], errs[i] = params.Commit(c)
		}
	})
	for _, err := range errs {
		if err != nil {
			return nil, nil, nil, err
		}
	}
	return coeffs, ext, commits, nil
}

// permutationSigmas turns copy constraints into the permutation: cells
// joined by copies form cycles, and sigma maps each cell to the next one
// of its cycle, encoded as delta^column * omega^row.
func permutationSigmas(cs *ConstraintSystem, n int, copies [][2]cell, omega, delta fr.Element) [][]fr.Element {
	m := len(cs.Perm)
	parent := make([]int, m*n)
	for i := range parent {
		parent[i] = i
	}
	find := func(x int) int {
		for parent[x] != x {
			parent[x] = parent[parent[x]]
			x = parent[x]
		}
		return x
	}
	for _, cp := range copies {
		a, okA := cs.permIndex[cp[0].col]
		b, okB := cs.permIndex[cp[1].col]
		if !okA || !okB {
			continue // reported by the MockProver; the argument then fails
		}
		ra, rb := find(a*n+cp[0].row), find(b*n+cp[1].row)
		if ra != rb {
			parent[max(ra, rb)] = min(ra, rb)
		}
	}
	// cells in index order per cycle; sigma(cell) = next cell of its cycle
	next := make([]int, m*n)
	first := make(map[int]int)
	last := make(map[int]int)
	for i := 0; i < m*n; i++ {
		r := find(i)
		if l, ok := last[r]; ok {
			next[l] = i
		} else {
			first[r] = i
		}
		last[r] = i
	}
	for r, l := range last {
		next[l] = first[r]
	}
	omegas := make([]fr.Element, n)
	omegas[0].SetOne()
	for i := 1; i < n; i++ {
		omegas[i].Mul(&omegas[i-1], &omega)
	}
	deltas := make([]fr.Element, m)
	if m > 0 {
		deltas[0].SetOne()
	}
	for i := 1; i < m; i++ {
		deltas[i].Mul(&deltas[i-1], &delta)
	}
	sig := make([][]fr.Element, m)
	for c := 0; c < m; c++ {
		sig[c] = make([]fr.Element, n)
		for row := 0; row < n; row++ {
			t := next[c*n+row]
			sig[c][row].Mul(&deltas[t/n], &omegas[t%n])
		}
	}
	return sig
}

// ErrCopy is returned (wrapped) when a copy names a column without equality.
func checkCopies(cs *ConstraintSystem, copies [][2]cell) error {
	for _, cp := range copies {
		for _, c := range cp {
			if _, ok := cs.permIndex[c.col]; !ok {
				return fmt.Errorf("%w: copy of %s, which has no EnableEquality", ErrConfig, c.col)
			}
		}
	}
	return nil
}

// WarmProver derives what only the prover needs (the Lagrange-basis
// generators) ahead of the first proof.
func (pk *ProvingKey) WarmProver() { pk.VK.params.WarmLagrange() }
