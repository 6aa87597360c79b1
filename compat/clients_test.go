package compat

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lockproxy/lockproxy/internal/sidecarproc"
)

// The clients that are not Go run their scenario as a subprocess. Each
// missing tool fails the test with the command that installs it.

func runRedisCLI(t *testing.T, addr string) (*stepResults, string) {
	need(t, "redis-cli", "redis-cli not found: `sudo apt-get install -y redis-tools`, or `make deps`")
	need(t, "bash", "bash not found: `sudo apt-get install -y bash`")
	return runScript(t, addr, "bash", filepath.Join("cli", "scenario.sh"))
}

// debianPython is the interpreter Debian's python3-redis belongs to; a
// python3 earlier on PATH (pyenv, a venv) would not see it.
const debianPython = "/usr/bin/python3"

func runRedisPy(t *testing.T, addr string) (*stepResults, string) {
	if !sidecarproc.FileExists(debianPython) {
		t.Fatalf("%s not found: `sudo apt-get install -y python3 python3-redis`, or `make deps`", debianPython)
	}
	if out, err := exec.Command(debianPython, "-c", "import redis").CombinedOutput(); err != nil {
		t.Fatalf("%s cannot import redis (%v: %s): `sudo apt-get install -y python3-redis`, or `make deps`",
			debianPython, err, strings.TrimSpace(string(out)))
	}
	return runScript(t, addr, debianPython, filepath.Join("python", "scenario.py"))
}

func runNode(script string) func(t *testing.T, addr string) (*stepResults, string) {
	return func(t *testing.T, addr string) (*stepResults, string) {
		need(t, "node", "node not found: `sudo apt-get install -y nodejs npm`, or `make deps`")
		for _, pkg := range []string{"ioredis", "redis"} {
			if !sidecarproc.FileExists(filepath.Join("node", "node_modules", pkg, "package.json")) {
				t.Fatalf("compat/node/node_modules/%s is missing: run `npm ci --prefix compat/node`, or `make deps`", pkg)
			}
		}
		return runScript(t, addr, "node", filepath.Join("node", script))
	}
}

func need(t *testing.T, tool, howToGet string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Fatal(howToGet)
	}
}
