package blob_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/zeebo/blake3"

	"github.com/pouwfarm/pouwfarm/coordinator/blob"
	"github.com/pouwfarm/pouwfarm/internal/redistest"
	"github.com/pouwfarm/pouwfarm/pouw"
)

func hashOf(b []byte) pouw.Hash { return pouw.Hash(blake3.Sum256(b)) }

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// conformance runs the rules every backend must keep. leftovers reports
// whether an upload left anything behind (temporary data) after it ended.
func conformance(t *testing.T, s blob.Store, leftovers func() int) {
	ctx := context.Background()

	t.Run("UploadIsKeptUnderItsHashAndReadsBack", func(t *testing.T) {
		data := randomBytes(t, 3*4096+17)
		h := hashOf(data)
		n, created, err := s.Put(ctx, h, bytes.NewReader(data), 1<<20)
		if err != nil || !created || n != int64(len(data)) {
			t.Fatalf("Put = %d, %v, %v", n, created, err)
		}
		r, info, err := s.Open(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if info.Size != int64(len(data)) || info.Hash != h {
			t.Fatalf("info = %+v", info)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read back %d bytes, err %v", len(got), err)
		}
		// Ranges: seek into the middle of a chunk and across a boundary.
		for _, off := range []int64{0, 1, 4095, 4096, 8000, int64(len(data) - 1)} {
			if _, err := r.Seek(off, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			part := make([]byte, 200)
			m, err := io.ReadFull(r, part)
			want := data[off:min(off+200, int64(len(data)))]
			if !bytes.Equal(part[:m], want) || (err != nil && !errors.Is(err, io.ErrUnexpectedEOF)) {
				t.Fatalf("range at %d: got %d bytes, err %v", off, m, err)
			}
		}
		if end, _ := r.Seek(0, io.SeekEnd); end != int64(len(data)) {
			t.Fatalf("SeekEnd = %d", end)
		}
	})

	t.Run("SecondUploadOfSameHashIsNotRead", func(t *testing.T) {
		data := randomBytes(t, 100)
		h := hashOf(data)
		if _, _, err := s.Put(ctx, h, bytes.NewReader(data), 0); err != nil {
			t.Fatal(err)
		}
		n, created, err := s.Put(ctx, h, errReader{}, 0)
		if err != nil || created || n != 100 {
			t.Fatalf("re-Put = %d, %v, %v", n, created, err)
		}
	})

	t.Run("MismatchedUploadIsRejectedAndNothingKept", func(t *testing.T) {
		data := randomBytes(t, 5000)
		wrong := hashOf([]byte("something else"))
		_, _, err := s.Put(ctx, wrong, bytes.NewReader(data), 0)
		if !errors.Is(err, blob.ErrHashMismatch) {
			t.Fatalf("err = %v, want ErrHashMismatch", err)
		}
		if _, err := s.Stat(ctx, wrong); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("Stat after mismatch = %v", err)
		}
		if _, err := s.Stat(ctx, hashOf(data)); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("the data's own hash was stored: %v", err)
		}
		if n := leftovers(); n != 0 {
			t.Fatalf("%d temporary objects left", n)
		}
	})

	t.Run("OversizeUploadIsRejectedAndNothingKept", func(t *testing.T) {
		data := randomBytes(t, 10_000)
		h := hashOf(data)
		_, _, err := s.Put(ctx, h, bytes.NewReader(data), 9_999)
		if !errors.Is(err, blob.ErrTooLarge) {
			t.Fatalf("err = %v, want ErrTooLarge", err)
		}
		if _, err := s.Stat(ctx, h); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("Stat = %v", err)
		}
		if n := leftovers(); n != 0 {
			t.Fatalf("%d temporary objects left", n)
		}
		// Exactly at the limit is fine.
		if _, _, err := s.Put(ctx, h, bytes.NewReader(data), 10_000); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("UnknownBlobIsNotFound", func(t *testing.T) {
		h := hashOf([]byte("never uploaded"))
		if _, _, err := s.Open(ctx, h); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("Open = %v", err)
		}
	})

	t.Run("EmptyBlob", func(t *testing.T) {
		h := hashOf(nil)
		n, _, err := s.Put(ctx, h, bytes.NewReader(nil), 0)
		if err != nil || n != 0 {
			t.Fatalf("Put empty = %d, %v", n, err)
		}
		r, _, err := s.Open(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if b, err := io.ReadAll(r); err != nil || len(b) != 0 {
			t.Fatalf("read %d, %v", len(b), err)
		}
	})
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("must not be read") }

func TestFiles(t *testing.T) {
	dir := t.TempDir()
	s, err := blob.NewFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	conformance(t, s, func() int {
		ents, err := os.ReadDir(filepath.Join(dir, "tmp"))
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	})
}

func TestRedis(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { c.Close() })
	// A small chunk size so the tests cross chunk boundaries.
	s := blob.NewRedis(c, blob.RedisOptions{Prefix: "blobtest", ChunkSize: 4096})
	conformance(t, s, func() int {
		keys, err := c.Keys(context.Background(), "*:tmp:*").Result()
		if err != nil {
			t.Fatal(err)
		}
		return len(keys)
	})
}
