package boltstore_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/pouwfarm/pouwfarm/clock"
	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/coordinator/store/boltstore"
	"github.com/pouwfarm/pouwfarm/pouw"
)

// benchStore opens a store in a temp dir with n macro jobs pending, a funded
// pool and the given provers registered.
func benchStore(b *testing.B, n int, provers int) *boltstore.Store {
	b.Helper()
	ctx := context.Background()
	clk := clock.NewFake(epoch)
	s, err := boltstore.Open(filepath.Join(b.TempDir(), "pouw.db"), store.Options{}, clk, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	if _, err := s.Deposit(ctx, pouw.MaxAmount, "bench"); err != nil {
		b.Fatal(err)
	}
	for p := range provers {
		if err := s.RegisterProver(ctx, store.Prover{ID: fmt.Sprintf("p%d", p), TokenHash: hash(7, p)}); err != nil {
			b.Fatal(err)
		}
	}
	// Concurrent enqueues share commits (bbolt batches), so a deep queue is
	// quick to set up.
	const loaders = 16
	var wg sync.WaitGroup
	for l := range loaders {
		wg.Go(func() {
			for i := l; i < n; i += loaders {
				r := enqueueReq(clk, 0)
				binary.BigEndian.PutUint64(r.IntentID[8:], uint64(i))
				r.DeadlineMs += int64(i % 1000)
				if _, _, err := s.Enqueue(ctx, r); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	return s
}

// BenchmarkBoltClaimSubmit measures full claim -> BeginVerify -> Complete
// cycles (three durable bbolt transactions) with 1 and 8 concurrent workers.
// The baseline, BenchmarkBoltClaimSubmit/baseline=empty-update, is one empty
// bbolt read-write transaction on a file of the same store: the floor of a
// durable commit on this disk; a cycle costs at least three of them.
func BenchmarkBoltClaimSubmit(b *testing.B) {
	for _, workers := range []int{1, 8} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			s := benchStore(b, b.N, workers)
			ctx := context.Background()
			var wg sync.WaitGroup
			b.ResetTimer()
			cpu0 := cpuTime(b)
			per := b.N / workers
			for w := range workers {
				todo := per
				if w == 0 {
					todo += b.N % workers
				}
				wg.Go(func() {
					me := fmt.Sprintf("p%d", w)
					req := store.ClaimRequest{ProverID: me, Tiers: []pouw.JobTier{pouw.TierMacro}, Backends: []string{"stark"}}
					for range todo {
						l, err := s.Claim(ctx, req)
						if err != nil {
							b.Error(err)
							return
						}
						ref := store.LeaseRef{JobID: l.Job.JobID, ProverID: me, Token: l.Token}
						if _, err := s.BeginVerify(ctx, ref, time.Minute); err != nil {
							b.Error(err)
							return
						}
						if _, err := s.Complete(ctx, ref, "proofs/x"); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			reportCPU(b, cpu0)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "cycles/s")
		})
	}
	b.Run("baseline=empty-update", func(b *testing.B) {
		db, err := bolt.Open(filepath.Join(b.TempDir(), "empty.db"), 0o600, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		err = db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucketIfNotExists([]byte("b")); return err })
		if err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		cpu0 := cpuTime(b)
		for i := range b.N {
			err := db.Update(func(tx *bolt.Tx) error {
				return tx.Bucket([]byte("b")).Put([]byte("k"), []byte{byte(i)})
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, cpu0)
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tx/s")
	})
}

// BenchmarkBoltClaim measures one claim (and a release, so the queue keeps
// its depth) at different queue depths: the cost must not grow with depth.
func BenchmarkBoltClaim(b *testing.B) {
	for _, depth := range []int{100, 10_000} {
		b.Run(fmt.Sprintf("depth=%d", depth), func(b *testing.B) {
			s := benchStore(b, depth, 1)
			ctx := context.Background()
			req := store.ClaimRequest{ProverID: "p0", Tiers: []pouw.JobTier{pouw.TierMacro}, Backends: []string{"stark"}}
			b.ResetTimer()
			cpu0 := cpuTime(b)
			for range b.N {
				l, err := s.Claim(ctx, req)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := s.Release(ctx, store.LeaseRef{JobID: l.Job.JobID, ProverID: "p0", Token: l.Token}, ""); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, cpu0)
		})
	}
}

// cpuTime is the CPU time (user + system) this process has used: on a shared,
// noisy machine with a slow disk it shows what an operation costs beside the
// wall time that fsync dominates.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64((cpuTime(b)-start).Microseconds())/float64(b.N), "cpu-µs/op")
}
