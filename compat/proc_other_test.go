//go:build unix && !linux

package compat

import "syscall"

// sysProcAttr puts a child in its own process group, so that a Ctrl-C on go
// test does not kill it under a running test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
