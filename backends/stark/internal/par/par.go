// Package par runs loops over index ranges on all cores, checking a context
// between chunks so that a cancelled proof stops within one chunk's work
// (well under a second). It imports nothing of this module.
package par

import (
	"context"
	"runtime"
	"sync"
)

// Workers is the number of goroutines a loop uses: GOMAXPROCS.
func Workers() int { return runtime.GOMAXPROCS(0) }

// For calls fn(lo, hi) over [0, n) split into chunks of at most chunk
// indices, on Workers() goroutines. It returns ctx.Err() if the context was
// cancelled before all chunks ran.
func For(ctx context.Context, n, chunk int, fn func(lo, hi int)) error {
	if n <= 0 {
		return ctx.Err()
	}
	if chunk < 1 {
		chunk = 1
	}
	chunks := (n + chunk - 1) / chunk
	w := min(Workers(), chunks)
	if w <= 1 {
		for lo := 0; lo < n; lo += chunk {
			if err := ctx.Err(); err != nil {
				return err
			}
			fn(lo, min(lo+chunk, n))
		}
		return ctx.Err()
	}
	var (
		mu   sync.Mutex
		next int
		wg   sync.WaitGroup
	)
	for range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				mu.Lock()
				lo := next
				next += chunk
				mu.Unlock()
				if lo >= n {
					return
				}
				fn(lo, min(lo+chunk, n))
			}
		}()
	}
	wg.Wait()
	return ctx.Err()
}

// Each calls fn(i) for i in [0, n) on Workers() goroutines, one index at a
// time; for coarse tasks such as one FFT per column.
func Each(ctx context.Context, n int, fn func(i int)) error {
	return For(ctx, n, 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			fn(i)
		}
	})
}
