// Package blob is the coordinator's content-addressed store of traces and
// proofs: every blob is keyed by the lowercase hex BLAKE3 of its bytes, and
// an upload is hashed while it streams in and kept only when the hash matches
// its key. Two backends: Files (the default, a directory that several
// coordinators may share on one volume) and Redis (chunked, so a blob is not
// bound by Redis' 512 MB string limit).
//
// It imports pouw only; it must not import store, api, scheduler or backends.
package blob

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/pouwfarm/pouwfarm/pouw"
)

// Sentinel errors; coordinator/api maps them to HTTP codes.
var (
	// ErrNotFound: no blob under that hash.
	ErrNotFound = errors.New("blob not found")
	// ErrHashMismatch: the uploaded bytes do not hash to the key. Nothing
	// was kept.
	ErrHashMismatch = errors.New("blob hash mismatch")
	// ErrTooLarge: the upload is longer than the limit. Nothing was kept.
	ErrTooLarge = errors.New("blob too large")
)

// Store is a content-addressed blob store.
type Store interface {
	// Put streams r into the blob h, hashing on the way; at most max bytes
	// are read (ErrTooLarge beyond, max <= 0 means no limit). When the blob
	// already exists Put returns its size with created=false without reading
	// r: content addressing makes the stored copy as good as the new one.
	Put(ctx context.Context, h pouw.Hash, r io.Reader, max int64) (size int64, created bool, err error)
	// Stat returns a blob's metadata (ErrNotFound when absent).
	Stat(ctx context.Context, h pouw.Hash) (Info, error)
	// Open returns a reader of the blob that can seek, so the API can serve
	// ranges (ErrNotFound when absent). The caller closes it.
	Open(ctx context.Context, h pouw.Hash) (Reader, Info, error)
}

// Info describes a stored blob.
type Info struct {
	Hash    pouw.Hash
	Size    int64
	ModTime time.Time
}

// Reader reads a blob.
type Reader interface {
	io.ReadSeekCloser
}
