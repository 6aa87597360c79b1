package python_test

import "syscall"

// sysProcAttr puts a child in its own process group, so that a Ctrl-C on go
// test does not kill it under a running test and a timeout can kill all of
// it, and takes it down with the test binary if that dies without running
// its cleanups.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
