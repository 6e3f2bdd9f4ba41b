package merkle_test

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/pouwfarm/pouwfarm/backends/stark/merkle"
)

func leafBytes(i int) []byte {
	b := make([]byte, 24)
	binary.LittleEndian.PutUint64(b, uint64(i)*0x9e3779b97f4a7c15)
	return b
}

func build(t *testing.T, n int) *merkle.Tree {
	t.Helper()
	tr, err := merkle.Build(context.Background(), n, 24, func(i int, dst []byte) { copy(dst, leafBytes(i)) })
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestMultiproofOpensAnySubsetOfLeaves(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{1, 2, 8, 64, 1024} {
		tr := build(t, n)
		for range 30 {
			k := 1 + r.IntN(min(n, 20))
			set := map[int]bool{}
			for len(set) < k {
				set[r.IntN(n)] = true
			}
			var idx []int
			for i := range set {
				idx = append(idx, i)
			}
			slices.Sort(idx)
			hashes := make([]merkle.Digest, len(idx))
			for j, i := range idx {
				hashes[j] = merkle.HashLeaf(leafBytes(i))
			}
			proof := tr.Prove(idx)
			if err := merkle.Verify(tr.Root(), n, idx, hashes, proof); err != nil {
				t.Fatalf("n=%d idx=%v: %v", n, idx, err)
			}
			// Every single change is caught.
			bad := slices.Clone(hashes)
			bad[r.IntN(len(bad))][0] ^= 1
			if err := merkle.Verify(tr.Root(), n, idx, bad, proof); !errors.Is(err, merkle.ErrBadProof) {
				t.Fatalf("tampered leaf accepted: %v", err)
			}
			if len(proof) > 0 {
				p2 := slices.Clone(proof)
				p2[r.IntN(len(p2))][5] ^= 0x10
				if err := merkle.Verify(tr.Root(), n, idx, hashes, p2); err == nil {
					t.Fatal("tampered node accepted")
				}
				if err := merkle.Verify(tr.Root(), n, idx, hashes, proof[:len(proof)-1]); err == nil {
					t.Fatal("short proof accepted")
				}
			}
			if err := merkle.Verify(tr.Root(), n, idx, hashes, append(slices.Clone(proof), merkle.Digest{})); err == nil {
				t.Fatal("proof with an extra node accepted")
			}
			if n > 1 {
				moved := slices.Clone(idx)
				moved[0] = (moved[0] + 1) % n
				if !slices.Contains(idx, moved[0]) && slices.IsSorted(moved) {
					if err := merkle.Verify(tr.Root(), n, moved, hashes, proof); err == nil {
						t.Fatal("leaf at another position accepted")
					}
				}
			}
		}
	}
}

func TestBuildStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := merkle.Build(ctx, 1<<14, 8, func(int, []byte) {}); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}
