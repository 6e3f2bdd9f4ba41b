package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/zeebo/blake3"

	"github.com/pouwfarm/pouwfarm/pouw"
)

func blobHash(b []byte) pouw.Hash { return pouw.Hash(blake3.Sum256(b)) }

func blobPath(h pouw.Hash) string { return v1 + "/blobs/" + h.String() }

// UploadBlob stores data under its BLAKE3 (admin) and returns the hash.
func (c *Client) UploadBlob(ctx context.Context, data []byte) (pouw.BlobInfo, error) {
	return c.UploadBlobFrom(ctx, blobHash(data), bytes.NewReader(data), int64(len(data)))
}

// UploadBlobFrom streams size bytes of r as the blob h (admin). r is rewound
// for each try; uploads are idempotent (content addressing), so they are
// retried. The coordinator refuses bytes that do not hash to h
// (ErrHashMismatch).
func (c *Client) UploadBlobFrom(ctx context.Context, h pouw.Hash, r io.ReadSeeker, size int64) (pouw.BlobInfo, error) {
	resp, err := c.send(ctx, request{method: "PUT", path: blobPath(h), bodyFrom: r, bodySize: size,
		contentType: "application/octet-stream", mode: retrySafe})
	if err != nil {
		return pouw.BlobInfo{}, err
	}
	defer resp.Body.Close()
	var out pouw.BlobInfo
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return out, fmt.Errorf("client: decoding the upload answer: %w", err)
	}
	return out, nil
}

// DownloadBlob writes the blob h to w, checking its BLAKE3 on the way, and
// returns its size. A transfer that breaks off resumes where it stopped
// (Range with If-Range on the blob's ETag). On ErrHashMismatch, w has
// received bytes that must be discarded.
func (c *Client) DownloadBlob(ctx context.Context, h pouw.Hash, w io.Writer) (int64, error) {
	hasher := blake3.New()
	var n int64
	etag := `"` + h.String() + `"`
	var lastErr error
	for try := 0; try <= c.opts.MaxRetries; try++ {
		if try > 0 {
			if err := c.sleep(ctx, try); err != nil {
				return n, errors.Join(lastErr, err)
			}
		}
		rq := request{method: "GET", path: blobPath(h), mode: retrySafe}
		if n > 0 {
			rq.header = http.Header{"Range": {"bytes=" + strconv.FormatInt(n, 10) + "-"}, "If-Range": {etag}}
		}
		resp, err := c.send(ctx, rq)
		if err != nil {
			return n, err
		}
		if n > 0 && resp.StatusCode != http.StatusPartialContent {
			// The server sent it whole: start over.
			hasher.Reset()
			n = 0
			if s, ok := w.(io.Seeker); ok {
				if _, err := s.Seek(0, io.SeekStart); err != nil {
					resp.Body.Close()
					return 0, err
				}
			} else {
				resp.Body.Close()
				return 0, fmt.Errorf("client: download of %s restarted and the writer cannot rewind", h)
			}
		}
		m, err := io.Copy(io.MultiWriter(w, hasher), resp.Body)
		resp.Body.Close()
		n += m
		if err != nil {
			if ctx.Err() != nil {
				return n, err
			}
			lastErr = err
			continue
		}
		var got pouw.Hash
		copy(got[:], hasher.Sum(nil))
		if got != h {
			return n, fmt.Errorf("%w: downloaded %d bytes hashing to %s, want %s", ErrHashMismatch, n, got, h)
		}
		return n, nil
	}
	return n, lastErr
}
