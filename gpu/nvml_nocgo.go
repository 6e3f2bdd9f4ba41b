//go:build !cgo

package gpu

import "log/slog"

// Open returns a Null source: go-nvml needs cgo, so a build without it has no
// GPUs. One log line says so.
func Open(logger *slog.Logger, _ ...Option) Source {
	reason := "pouw was built without cgo (go-nvml needs it)"
	if logger != nil {
		logger.Info("pouw was built without cgo; running CPU-only", "reason", reason)
	}
	return Null{Reason: reason}
}
