package redistest

import (
	"path/filepath"
	"runtime"
	"testing"
)

const fakeTimeNotFoundMsg = "libfaketime not found: install it with " +
	"`sudo apt-get install -y libfaketime`, or run `make deps` (or `make test`), which installs it"

// FakeTime returns the environment, for Options.Env, that runs a
// redis-server with its wall clock shifted by offset, libfaketime's
// relative form: "-1h" for an hour behind, "+90s" for ahead. Redis's TIME,
// its key expiry and its logs follow the shifted clock; its monotonic clock,
// which drives its timers and timeouts, stays real, as it would on a host
// whose wall clock is simply set wrong.
//
// It fails the test, never skips it, when libfaketime is missing: a clock
// skew test that silently skips proves nothing.
func FakeTime(t testing.TB, offset string) []string {
	t.Helper()
	return fakeTime(t, "/", offset)
}

// fakeTime is FakeTime looking for the libraries under root, so that a test
// can see the missing-library failure.
func fakeTime(t testing.TB, root, offset string) []string {
	t.Helper()
	lib := findLib(root, "faketime/libfaketime.so.1")
	if lib == "" {
		t.Fatalf("%s", fakeTimeNotFoundMsg)
	}
	// Debian's redis-server allocates with jemalloc, whose first
	// allocation reads the clock before libfaketime has initialised, and
	// libfaketime's initialisation allocates in turn: the two deadlock
	// before main (libfaketime issue #130, unfixed). glibc's
	// libc_malloc_debug, preloaded, takes over malloc and friends and
	// hands them to glibc's own allocator, which never reads the clock;
	// the server then allocates with glibc instead of jemalloc, which
	// makes no difference to a test.
	mallocDebug := findLib(root, "libc_malloc_debug.so.0")
	if mallocDebug == "" {
		t.Fatalf("redistest: libc_malloc_debug.so.0 (glibc 2.34 or later) not found: " +
			"libfaketime deadlocks a jemalloc redis-server without it")
	}
	return []string{
		"LD_PRELOAD=" + mallocDebug + ":" + lib,
		"FAKETIME=" + offset,
		// Without it libfaketime makes CLOCK_MONOTONIC, which Redis's
		// timers run on, read the shifted wall clock. The first name is
		// the documented one; the second is its older spelling, which
		// Debian's 0.9.10 still honours.
		"FAKETIME_DONT_FAKE_MONOTONIC=1",
		"DONT_FAKE_MONOTONIC=1",
	}
}

// multiarch is Debian's library directory name for each GOARCH, tried first
// so that a multiarch host with, say, i386 libraries too picks the native
// ones.
var multiarch = map[string]string{
	"amd64":   "x86_64-linux-gnu",
	"arm64":   "aarch64-linux-gnu",
	"386":     "i386-linux-gnu",
	"arm":     "arm-linux-gnueabihf",
	"ppc64le": "powerpc64le-linux-gnu",
	"s390x":   "s390x-linux-gnu",
	"riscv64": "riscv64-linux-gnu",
}

// findLib looks for a shared library by its path below a library directory:
// Debian's multiarch directories first, then the plain ones.
func findLib(root, name string) string {
	var patterns []string
	if triplet, ok := multiarch[runtime.GOARCH]; ok {
		patterns = append(patterns, "usr/lib/"+triplet, "lib/"+triplet)
	}
	patterns = append(patterns, "usr/lib/*", "lib/*", "usr/lib64", "lib64", "usr/lib", "usr/local/lib")
	for _, dir := range patterns {
		matches, _ := filepath.Glob(filepath.Join(root, dir, name))
		if len(matches) > 0 {
			return matches[0]
		}
	}
	return ""
}
