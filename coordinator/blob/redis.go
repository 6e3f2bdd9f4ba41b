package blob

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/zeebo/blake3"

	"github.com/pouwfarm/pouwfarm/pouw"
)

// DefaultChunkSize is the size of one Redis value of a chunked blob.
const DefaultChunkSize = 1 << 20

// Redis keeps blobs in Redis as chunks of ChunkSize bytes, so a blob is not
// bound by the 512 MB string limit and no single command moves more than a
// chunk. All keys of one blob share a hash tag ({prefix:blob:<hex>}), so the
// commit (RENAME of each chunk, then the meta hash) works on a cluster too.
// The meta hash is written last: a blob exists once its meta does, and an
// interrupted upload leaves only temporary chunks that expire.
type Redis struct {
	rdb       redis.UniversalClient
	prefix    string
	chunkSize int
	// tmpTTL bounds how long the chunks of an interrupted upload live.
	tmpTTL time.Duration
}

// RedisOptions configure NewRedis.
type RedisOptions struct {
	// Prefix of every key (the deployment prefix), e.g. "pouw".
	Prefix string
	// ChunkSize in bytes; DefaultChunkSize when 0.
	ChunkSize int
}

// NewRedis returns a Redis blob store on rdb.
func NewRedis(rdb redis.UniversalClient, opts RedisOptions) *Redis {
	if opts.Prefix == "" {
		opts.Prefix = "pouw"
	}
	if opts.ChunkSize <= 0 {
		opts.ChunkSize = DefaultChunkSize
	}
	return &Redis{rdb: rdb, prefix: opts.Prefix, chunkSize: opts.ChunkSize, tmpTTL: time.Hour}
}

func (s *Redis) tag(h pouw.Hash) string { return "{" + s.prefix + ":blob:" + h.String() + "}" }
func (s *Redis) metaKey(h pouw.Hash) string {
	return s.tag(h) + ":meta"
}
func (s *Redis) chunkKey(h pouw.Hash, i int) string {
	return s.tag(h) + ":c:" + strconv.Itoa(i)
}

// Put implements Store.
func (s *Redis) Put(ctx context.Context, h pouw.Hash, r io.Reader, max int64) (int64, bool, error) {
	if info, err := s.Stat(ctx, h); err == nil {
		return info.Size, false, nil
	} else if !errors.Is(err, ErrNotFound) {
		return 0, false, err
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmpPrefix := s.tag(h) + ":tmp:" + hex.EncodeToString(rnd[:]) + ":"
	var tmpKeys []string
	committed := false
	defer func() {
		if !committed && len(tmpKeys) > 0 {
			// Best effort with a fresh context: the request's may be gone.
			// The TTL removes what this misses.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = s.rdb.Del(dctx, tmpKeys...).Err()
		}
	}()

	hasher := blake3.New()
	src := r
	if max > 0 {
		src = io.LimitReader(r, max+1)
	}
	buf := make([]byte, s.chunkSize)
	var n int64
	for i := 0; ; i++ {
		if err := ctx.Err(); err != nil {
			return 0, false, err
		}
		m, err := io.ReadFull(src, buf)
		if m > 0 {
			n += int64(m)
			if max > 0 && n > max {
				return 0, false, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, max)
			}
			_, _ = hasher.Write(buf[:m])
			k := tmpPrefix + strconv.Itoa(i)
			tmpKeys = append(tmpKeys, k)
			if err := s.rdb.Set(ctx, k, buf[:m], s.tmpTTL).Err(); err != nil {
				return 0, false, fmt.Errorf("blob: redis write chunk %d of %s: %w", i, h, err)
			}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return 0, false, fmt.Errorf("blob: upload %s: %w", h, err)
		}
	}
	var got pouw.Hash
	copy(got[:], hasher.Sum(nil))
	if got != h {
		return 0, false, fmt.Errorf("%w: the %d bytes uploaded hash to %s, not %s", ErrHashMismatch, n, got, h)
	}
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range tmpKeys {
			p.Rename(ctx, k, s.chunkKey(h, i))
			p.Persist(ctx, s.chunkKey(h, i))
		}
		p.HSet(ctx, s.metaKey(h), "size", n, "chunks", len(tmpKeys), "chunk_size", s.chunkSize,
			"mod_ms", time.Now().UnixMilli())
		return nil
	})
	if err != nil {
		return 0, false, fmt.Errorf("blob: redis commit %s: %w", h, err)
	}
	committed = true
	return n, true, nil
}

type redisMeta struct {
	size      int64
	chunkSize int64
	mod       time.Time
}

func (s *Redis) meta(ctx context.Context, h pouw.Hash) (redisMeta, error) {
	m, err := s.rdb.HGetAll(ctx, s.metaKey(h)).Result()
	if err != nil {
		return redisMeta{}, fmt.Errorf("blob: redis stat %s: %w", h, err)
	}
	if len(m) == 0 {
		return redisMeta{}, fmt.Errorf("%w: %s", ErrNotFound, h)
	}
	size, err1 := strconv.ParseInt(m["size"], 10, 64)
	cs, err2 := strconv.ParseInt(m["chunk_size"], 10, 64)
	mod, err3 := strconv.ParseInt(m["mod_ms"], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil || cs <= 0 {
		return redisMeta{}, fmt.Errorf("blob: corrupt meta of %s: %v", h, err)
	}
	return redisMeta{size: size, chunkSize: cs, mod: time.UnixMilli(mod)}, nil
}

// Stat implements Store.
func (s *Redis) Stat(ctx context.Context, h pouw.Hash) (Info, error) {
	m, err := s.meta(ctx, h)
	if err != nil {
		return Info{}, err
	}
	return Info{Hash: h, Size: m.size, ModTime: m.mod}, nil
}

// Open implements Store.
func (s *Redis) Open(ctx context.Context, h pouw.Hash) (Reader, Info, error) {
	m, err := s.meta(ctx, h)
	if err != nil {
		return nil, Info{}, err
	}
	return &redisReader{s: s, ctx: ctx, h: h, m: m, cur: -1}, Info{Hash: h, Size: m.size, ModTime: m.mod}, nil
}

// redisReader reads a chunked blob one chunk at a time, keeping the current
// chunk so sequential reads cost one GET per chunk.
type redisReader struct {
	s    *Redis
	ctx  context.Context
	h    pouw.Hash
	m    redisMeta
	off  int64
	cur  int64
	data []byte
}

func (r *redisReader) Read(p []byte) (int, error) {
	if r.off >= r.m.size {
		return 0, io.EOF
	}
	idx := r.off / r.m.chunkSize
	if idx != r.cur {
		b, err := r.s.rdb.Get(r.ctx, r.s.chunkKey(r.h, int(idx))).Bytes()
		if err != nil {
			return 0, fmt.Errorf("blob: redis read chunk %d of %s: %w", idx, r.h, err)
		}
		r.cur, r.data = idx, b
	}
	within := r.off - idx*r.m.chunkSize
	if within >= int64(len(r.data)) {
		return 0, fmt.Errorf("blob: chunk %d of %s is short", idx, r.h)
	}
	n := copy(p, r.data[within:])
	r.off += int64(n)
	return n, nil
}

func (r *redisReader) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = r.off + offset
	case io.SeekEnd:
		abs = r.m.size + offset
	default:
		return 0, errors.New("blob: bad whence")
	}
	if abs < 0 {
		return 0, errors.New("blob: negative position")
	}
	r.off = abs
	return abs, nil
}

func (r *redisReader) Close() error { r.data = nil; return nil }
