package redistest

import "syscall"

func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		// Own process group, so a Ctrl-C on `go test` does not kill the
		// server under a still-running test and bury the real outcome in
		// connection errors; the server's life follows the test binary.
		Setpgid: true,
		// If the test binary dies without running cleanups (a -timeout
		// panic, SIGKILL), take the server with it instead of leaking it.
		// Linux ties this to the forking OS thread, which the Go runtime
		// keeps alive unless a goroutine exits while locked to it.
		Pdeathsig: syscall.SIGKILL,
	}
}
