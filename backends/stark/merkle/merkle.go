// Package merkle builds BLAKE3 Merkle trees over the rows of a STARK's
// low-degree extensions and FRI layers, and proves and checks batch
// openings (multiproofs) of several leaves at once.
//
// Hashing: leaf = BLAKE3(0x00 || leaf bytes), node = BLAKE3(left || right)
// (64 bytes: one BLAKE3 compression). Leaves of this STARK are multiples of
// 8 bytes, so a leaf's input (8k+1 bytes) never has a node's length, and
// the tree has a power-of-two number of leaves and a fixed depth known to
// both sides.
// It imports nothing of this module but the parallel helper.
package merkle

import (
	"context"
	"errors"
	"fmt"
	"math/bits"

	"github.com/zeebo/blake3"

	"github.com/pouwfarm/pouwfarm/backends/stark/internal/par"
)

// Digest is a 32-byte BLAKE3 digest.
type Digest [32]byte

// ErrBadProof is returned when an opening does not lead to the root.
var ErrBadProof = errors.New("merkle: opening does not match the root")

// Tree is a complete binary tree in heap order: nodes[1] is the root and
// nodes[x] for x < leaves the internal nodes. Leaf hashes are not stored
// (that would double the tree's memory); they are recomputed from the leaf
// bytes when an opening needs them.
type Tree struct {
	nodes   []Digest
	leaves  int
	leafLen int
	leaf    func(i int, dst []byte)
	root    Digest
}

func (t *Tree) leafHash(i int, buf []byte) Digest {
	buf[0] = 0
	t.leaf(i, buf[1:])
	return hashLeafBuf(buf)
}

// HashLeaf returns BLAKE3(0x00 || data).
func HashLeaf(data []byte) Digest {
	h := blake3.New()
	_, _ = h.Write([]byte{0})
	_, _ = h.Write(data)
	var d Digest
	h.Sum(d[:0])
	return d
}

// hashLeafBuf hashes buf, whose first byte the caller has set to 0x00.
func hashLeafBuf(buf []byte) Digest { return blake3.Sum256(buf) }

// HashNode returns BLAKE3(l || r).
func HashNode(l, r *Digest) Digest {
	var buf [64]byte
	copy(buf[:], l[:])
	copy(buf[32:], r[:])
	return blake3.Sum256(buf[:])
}

// Build hashes n leaves (n a power of two ≥ 1) in parallel. leaf(i, dst)
// writes the bytes of leaf i into dst (of leafLen bytes); the tree keeps
// leaf to recompute leaf hashes for openings, so the bytes it reads must
// not change afterwards.
func Build(ctx context.Context, n, leafLen int, leaf func(i int, dst []byte)) (*Tree, error) {
	if n < 1 || n&(n-1) != 0 {
		return nil, fmt.Errorf("merkle: %d leaves is not a power of two", n)
	}
	t := &Tree{nodes: make([]Digest, n), leaves: n, leafLen: leafLen, leaf: leaf}
	if n == 1 {
		t.root = t.leafHash(0, make([]byte, 1+leafLen))
		return t, ctx.Err()
	}
	// Leaves are hashed in pairs straight into their parents.
	err := par.For(ctx, n/2, 1<<11, func(lo, hi int) {
		buf := make([]byte, 1+leafLen)
		for i := lo; i < hi; i++ {
			l := t.leafHash(2*i, buf)
			r := t.leafHash(2*i+1, buf)
			t.nodes[n/2+i] = HashNode(&l, &r)
		}
	})
	if err != nil {
		return nil, err
	}
	for lvl := n / 4; lvl >= 1; lvl /= 2 {
		err := par.For(ctx, lvl, 1<<12, func(lo, hi int) {
			for i := lvl + lo; i < lvl+hi; i++ {
				t.nodes[i] = HashNode(&t.nodes[2*i], &t.nodes[2*i+1])
			}
		})
		if err != nil {
			return nil, err
		}
	}
	t.root = t.nodes[1]
	return t, nil
}

// Root is the commitment.
func (t *Tree) Root() Digest { return t.root }

// Leaves is the number of leaves.
func (t *Tree) Leaves() int { return t.leaves }

// node returns node x (heap order), recomputing it when it is a leaf.
func (t *Tree) node(x int, buf []byte) Digest {
	if x >= t.leaves {
		return t.leafHash(x-t.leaves, buf)
	}
	return t.nodes[x]
}

// Prove returns the sibling nodes needed to recompute the root from the
// leaves at idx (sorted ascending, unique), in the order Verify consumes
// them.
func (t *Tree) Prove(idx []int) []Digest {
	cur := make([]int, len(idx))
	for i, x := range idx {
		cur[i] = t.leaves + x
	}
	var out []Digest
	buf := make([]byte, 1+t.leafLen)
	for len(cur) > 0 && cur[0] > 1 {
		next := cur[:0:0]
		for i := 0; i < len(cur); i++ {
			x := cur[i]
			if x&1 == 0 && i+1 < len(cur) && cur[i+1] == x+1 {
				i++ // both children known
			} else {
				out = append(out, t.node(x^1, buf))
			}
			if len(next) == 0 || next[len(next)-1] != x/2 {
				next = append(next, x/2)
			}
		}
		cur = next
	}
	return out
}

// Verify checks that the leaves with hashes leafHashes at positions idx
// (sorted ascending, unique, < leaves) belong to the tree with the given
// root and number of leaves, using exactly the nodes of proof.
func Verify(root Digest, leaves int, idx []int, leafHashes []Digest, proof []Digest) error {
	if leaves < 1 || leaves&(leaves-1) != 0 || len(idx) == 0 || len(idx) != len(leafHashes) {
		return fmt.Errorf("%w: malformed opening", ErrBadProof)
	}
	type node struct {
		pos int
		h   Digest
	}
	cur := make([]node, len(idx))
	for i, x := range idx {
		if x < 0 || x >= leaves || (i > 0 && x <= idx[i-1]) {
			return fmt.Errorf("%w: leaf positions not sorted and in range", ErrBadProof)
		}
		cur[i] = node{leaves + x, leafHashes[i]}
	}
	depth := bits.TrailingZeros(uint(leaves))
	for range depth {
		next := cur[:0:0]
		for i := 0; i < len(cur); i++ {
			x := cur[i]
			var l, r Digest
			switch {
			case x.pos&1 == 0 && i+1 < len(cur) && cur[i+1].pos == x.pos+1:
				l, r = x.h, cur[i+1].h
				i++
			case len(proof) == 0:
				return fmt.Errorf("%w: too few nodes", ErrBadProof)
			case x.pos&1 == 0:
				l, r = x.h, proof[0]
				proof = proof[1:]
			default:
				l, r = proof[0], x.h
				proof = proof[1:]
			}
			next = append(next, node{x.pos / 2, HashNode(&l, &r)})
		}
		cur = next
	}
	if len(proof) != 0 {
		return fmt.Errorf("%w: %d unused nodes", ErrBadProof, len(proof))
	}
	if len(cur) != 1 || cur[0].h != root {
		return ErrBadProof
	}
	return nil
}
