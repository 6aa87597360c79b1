// Package python_test runs the Python client's tests (clients/python/tests,
// with pytest) against real sidecars: one on the embedded store, and one on
// a redis-server of the test's own that requires a password, which the
// client then takes from the URL. The tests run under Debian's
// /usr/bin/python3 with its python3-redis (redis-py 4.3) and python3-pytest:
// the packages a Debian or Ubuntu machine has without pip.
package python_test

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lockproxy/lockproxy/internal/redistest"
	"github.com/lockproxy/lockproxy/internal/sidecarproc"
)

const (
	// python is Debian's interpreter, the one python3-redis and
	// python3-pytest install into (not a virtualenv's, nor pip's).
	python = "/usr/bin/python3"
	// install says how to get what python needs.
	install = "install them with `sudo apt-get install -y python3 python3-redis python3-pytest`, or run `make deps`"
	// pytestTimeout bounds one run of the suite, which takes about 10 s.
	pytestTimeout = 5 * time.Minute
)

// lockproxyBin is the binary TestMain builds once for every test.
var lockproxyBin string

func TestMain(m *testing.M) { sidecarproc.Main(m, "clients/python", &lockproxyBin) }

func TestPythonClient(t *testing.T) {
	requirePython(t)
	t.Run("embedded", func(t *testing.T) {
		t.Parallel()
		runPytest(t, "redis://"+startSidecar(t))
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		// Characters a URL must escape, which redis-py unescapes.
		const password = "p@ss:w/rd?"
		addr := startSidecar(t, "LOCKPROXY_UPSTREAM="+redistest.Start(t).URL(), "LOCKPROXY_PASSWORD="+password)
		runPytest(t, (&url.URL{Scheme: "redis", User: url.UserPassword("", password), Host: addr}).String())
	})
}

// requirePython fails the test, never skips it, when python cannot run the
// suite: a missing client would otherwise pass for a working one.
func requirePython(t *testing.T) {
	t.Helper()
	if !sidecarproc.FileExists(python) {
		t.Fatalf("%s not found: %s", python, install)
	}
	const check = `import redis, pytest
v = tuple(int(x) for x in redis.__version__.split(".")[:2])
assert v >= (4, 3), "redis-py " + redis.__version__ + " is older than 4.3"`
	if out, err := exec.Command(python, "-c", check).CombinedOutput(); err != nil {
		t.Fatalf("%s cannot run the Python client's tests (%v): %s\n%s", python, err, install, out)
	}
}

// passed is pytest -q's summary line when every test ran and passed.
var passed = regexp.MustCompile(`^\d+ passed(, \d+ warnings?)? in `)

// runPytest runs the suite against the sidecar at lockproxyURL, and fails
// with pytest's output when a test failed or did not run.
func runPytest(t *testing.T, lockproxyURL string) {
	t.Helper()
	src, err := filepath.Abs("src")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), pytestTimeout)
	defer cancel()
	// --tb=native: pytest 7.2's own traceback formatter fails on Python
	// 3.11 ("AST constructor recursion depth mismatch") and hides the error.
	cmd := exec.CommandContext(ctx, python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--tb=native", "-rfEs", "tests")
	cmd.Env = append(os.Environ(),
		"LOCKPROXY_URL="+lockproxyURL,
		"PYTHONPATH="+src,
		"PYTHONDONTWRITEBYTECODE=1", // no __pycache__ in the source tree
		"PYTHONNOUSERSITE=1",        // Debian's redis-py, not one in ~/.local
	)
	cmd.SysProcAttr = sidecarproc.SysProcAttr()
	// On timeout, kill pytest's process group: the worker processes too.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("pytest did not finish within %v:\n%s", pytestTimeout, out)
	}
	if err != nil {
		t.Fatalf("pytest failed (%v):\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	summary := lines[len(lines)-1]
	if !passed.MatchString(summary) {
		t.Fatalf("pytest exited 0 but did not pass every test (none may be skipped): %q\n%s", summary, out)
	}
	t.Log(summary)
}

// startSidecar runs the lockproxy binary with extra environment, stopped
// at cleanup, and returns its address (see sidecarproc.Start).
func startSidecar(t *testing.T, env ...string) string {
	t.Helper()
	return sidecarproc.Start(t, lockproxyBin, env...).Addr
}
