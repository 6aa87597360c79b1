//go:build unix && !linux

package sidecarproc

import "syscall"

// SysProcAttr puts a child in its own process group, so that a Ctrl-C on go
// test does not kill it under a running test.
func SysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
