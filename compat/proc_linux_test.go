package compat

import "syscall"

// sysProcAttr puts a child in its own process group, so that a Ctrl-C on go
// test does not kill it under a running test, and takes it down with the
// test binary if that dies without running its cleanups.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
