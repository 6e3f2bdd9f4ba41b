package scheduler

import "syscall"

// HostMemoryBytes returns the physical memory of this host (0 when unknown).
func HostMemoryBytes() int64 {
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err != nil {
		return 0
	}
	return int64(si.Totalram) * int64(si.Unit)
}
