//go:build !linux

package scheduler

// HostMemoryBytes returns 0 (unknown) off Linux; callers then need an
// explicit memory option.
func HostMemoryBytes() int64 { return 0 }
