//go:build !unix

package aggregate

// lockFile is a no-op where flock is missing: concurrent setups of one
// cache directory still never expose a half-written key set (LoadOrSetup
// renames a complete one into place), they only duplicate the work.
func lockFile(string) (unlock func(), err error) { return func() {}, nil }
