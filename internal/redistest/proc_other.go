//go:build unix && !linux

package redistest

import "syscall"

func sysProcAttr() *syscall.SysProcAttr {
	// Own process group, so a Ctrl-C on `go test` does not kill the server
	// under a still-running test and bury the real outcome in connection
	// errors.
	return &syscall.SysProcAttr{Setpgid: true}
}
