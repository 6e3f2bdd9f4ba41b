package redistest

import "syscall"

// sysProcAttr kills the server when the test binary dies, so a crashed or
// timed-out test run leaves no redis-server behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
