package sidecarproc

import "syscall"

// SysProcAttr puts a child in its own process group, so that a Ctrl-C on go
// test does not kill it under a running test, and takes it down with the
// test binary if that dies without running its cleanups.
func SysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
