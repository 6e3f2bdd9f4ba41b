//go:build !linux

package trace_test

import "time"

// threadCPU is not measured off Linux (cpu-MB/s is then not reported).
func threadCPU() time.Duration { return 0 }
