package aggregate

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
)

// CacheDir is the key directory of p under a cache root: one subdirectory
// per parameter set.
func CacheDir(root string, p Params) string {
	return filepath.Join(root, fmt.Sprintf("s%d-l%d-k%d", p.LogSteps, p.ProgLen, p.K))
}

// LoadOrSetup returns the key set of p cached under root (CacheDir), setting
// it up when it is missing, unreadable or made for other circuits than this
// binary's (CheckCircuits). setup reports whether a Setup ran.
//
// Setup takes minutes, so several processes (test binaries, a dev farm)
// may ask at once: an exclusive lock on root/.lock serialises them, and a
// new key set is written to a temporary directory and renamed into place,
// so a reader never sees a half-written one.
//
// The keys are single-party (TRUSTED, see Setup): for development and
// tests only.
func LoadOrSetup(ctx context.Context, p Params, root string, log *slog.Logger) (keys *Keys, setup bool, err error) {
	if err := p.Validate(); err != nil {
		return nil, false, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir := CacheDir(root, p)
	if k, err := loadChecked(dir, p); err == nil {
		return k, false, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, false, err
	}
	unlock, err := lockFile(filepath.Join(root, ".lock"))
	if err != nil {
		return nil, false, err
	}
	defer unlock()
	// Another process may have set it up while this one waited.
	if k, err := loadChecked(dir, p); err == nil {
		return k, false, nil
	}
	// Setups only write under the lock, so any setup directory left now is
	// from a process that died mid-setup.
	if stale, err := filepath.Glob(filepath.Join(root, ".setup-*")); err == nil {
		for _, d := range stale {
			_ = os.RemoveAll(d)
		}
	}
	tmp, err := os.MkdirTemp(root, ".setup-*")
	if err != nil {
		return nil, false, err
	}
	defer os.RemoveAll(tmp)
	log.Info("setting up aggregate keys once; this takes minutes (single-party keys: for development only)",
		"params", p.String(), "dir", dir)
	k, _, err := Setup(ctx, p, tmp, log)
	if err != nil {
		return nil, false, err
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, false, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, false, err
	}
	k.dir = dir
	return k, true, nil
}

func loadChecked(dir string, p Params) (*Keys, error) {
	k, err := LoadKeys(dir)
	if err != nil {
		return nil, err
	}
	if k.Params != p {
		return nil, fmt.Errorf("%w: %s holds keys for %v, want %v", ErrKeyMismatch, dir, k.Params, p)
	}
	if err := k.CheckCircuits(); err != nil {
		return nil, err
	}
	return k, nil
}

// DefaultTestKeysRoot is where tests cache their key sets when
// $POUW_AGGREGATE_TEST_KEYS is unset: pouw-aggregate-test-keys in the user's
// cache directory (the temp dir when there is none).
func DefaultTestKeysRoot() string {
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	return filepath.Join(base, "pouw-aggregate-test-keys")
}
