package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/zeebo/blake3"

	"github.com/pouwfarm/pouwfarm/pouw"
)

// Files keeps blobs as files under a directory: <dir>/<h[0:2]>/<hex>. An
// upload goes to a temporary file in <dir>/tmp, hashed as it is written, and
// is renamed into place only when complete and matching — readers never see a
// partial blob, and a crashed upload leaves only a temporary file.
type Files struct {
	dir string
}

// NewFiles returns a file store rooted at dir, creating it when missing.
func NewFiles(dir string) (*Files, error) {
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		return nil, fmt.Errorf("blob: create %s: %w", dir, err)
	}
	return &Files{dir: dir}, nil
}

func (f *Files) path(h pouw.Hash) string {
	s := h.String()
	return filepath.Join(f.dir, s[:2], s)
}

// Put implements Store.
func (f *Files) Put(ctx context.Context, h pouw.Hash, r io.Reader, max int64) (int64, bool, error) {
	if info, err := f.Stat(ctx, h); err == nil {
		return info.Size, false, nil
	} else if !errors.Is(err, ErrNotFound) {
		return 0, false, err
	}
	tmp, err := os.CreateTemp(filepath.Join(f.dir, "tmp"), "upload-*")
	if err != nil {
		return 0, false, fmt.Errorf("blob: temp file: %w", err)
	}
	keep := false
	defer func() {
		if !keep {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	hasher := blake3.New()
	src := r
	if max > 0 {
		src = io.LimitReader(r, max+1)
	}
	n, err := io.Copy(io.MultiWriter(tmp, hasher), ctxReader{ctx, src})
	if err != nil {
		return 0, false, fmt.Errorf("blob: upload %s: %w", h, err)
	}
	if max > 0 && n > max {
		return 0, false, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, max)
	}
	var got pouw.Hash
	copy(got[:], hasher.Sum(nil))
	if got != h {
		return 0, false, fmt.Errorf("%w: the %d bytes uploaded hash to %s, not %s", ErrHashMismatch, n, got, h)
	}
	if err := tmp.Sync(); err != nil {
		return 0, false, fmt.Errorf("blob: sync: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return 0, false, fmt.Errorf("blob: close: %w", err)
	}
	final := f.path(h)
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return 0, false, fmt.Errorf("blob: %w", err)
	}
	// Rename is atomic; a concurrent upload of the same hash renames
	// identical bytes over it, which is harmless.
	if err := os.Rename(tmp.Name(), final); err != nil {
		return 0, false, fmt.Errorf("blob: commit %s: %w", h, err)
	}
	keep = true
	return n, true, nil
}

// Stat implements Store.
func (f *Files) Stat(_ context.Context, h pouw.Hash) (Info, error) {
	st, err := os.Stat(f.path(h))
	if errors.Is(err, fs.ErrNotExist) {
		return Info{}, fmt.Errorf("%w: %s", ErrNotFound, h)
	}
	if err != nil {
		return Info{}, fmt.Errorf("blob: stat %s: %w", h, err)
	}
	return Info{Hash: h, Size: st.Size(), ModTime: st.ModTime()}, nil
}

// Open implements Store.
func (f *Files) Open(_ context.Context, h pouw.Hash) (Reader, Info, error) {
	fh, err := os.Open(f.path(h))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, Info{}, fmt.Errorf("%w: %s", ErrNotFound, h)
	}
	if err != nil {
		return nil, Info{}, fmt.Errorf("blob: open %s: %w", h, err)
	}
	st, err := fh.Stat()
	if err != nil {
		_ = fh.Close()
		return nil, Info{}, fmt.Errorf("blob: stat %s: %w", h, err)
	}
	return fh, Info{Hash: h, Size: st.Size(), ModTime: st.ModTime()}, nil
}

// ctxReader stops a long copy when the context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
