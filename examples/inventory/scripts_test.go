package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lockproxy/lockproxy/lockproxytest"
)

// The Python and Node.js versions of this recipe, run as subprocesses
// against an in-process lockproxy (it serves real TCP), print what the Go
// Example prints. A missing interpreter or client library fails the test
// with how to install it: `make deps` installs them all.

// wantScriptOutput is what python/inventory.py and node/inventory.js print.
const wantScriptOutput = `blue-shirt: sold 5 of 5, 0 left, oversold: false
red-shirt: sold 10 of 10, 0 left, oversold: false
`

// debianPython is the interpreter Debian's python3-redis belongs to; a
// python3 earlier on PATH (pyenv, a venv) would not see it.
const debianPython = "/usr/bin/python3"

func TestPython(t *testing.T) {
	if _, err := os.Stat(debianPython); err != nil {
		t.Fatalf("%s not found: `sudo apt-get install -y python3 python3-redis`, or `make deps`", debianPython)
	}
	if out, err := exec.Command(debianPython, "-c", "import redis").CombinedOutput(); err != nil {
		t.Fatalf("%s cannot import redis (%v: %s): `sudo apt-get install -y python3-redis`, or `make deps`",
			debianPython, err, strings.TrimSpace(string(out)))
	}
	runScript(t, debianPython, filepath.Join("python", "inventory.py"))
}

func TestNode(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node not found: `sudo apt-get install -y nodejs npm`, or `make deps`")
	}
	ioredis := filepath.Join("..", "..", "compat", "node", "node_modules", "ioredis", "package.json")
	if _, err := os.Stat(ioredis); err != nil {
		t.Fatalf("%s is missing: run `npm ci --prefix compat/node`, or `make deps`", filepath.Dir(ioredis))
	}
	runScript(t, node, filepath.Join("node", "inventory.js"))
}

// runScript runs script with interp against a lockproxy of its own, and
// checks that it exits 0 and prints wantScriptOutput.
func runScript(t *testing.T, interp, script string) {
	addr := lockproxytest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, interp, script)
	cmd.Env = append(os.Environ(), "LOCKPROXY_ADDR="+addr)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", interp, script, err, &stdout, &stderr)
	}
	if got := stdout.String(); got != wantScriptOutput {
		t.Errorf("%s %s printed\n%s\nwant\n%s\nstderr:\n%s", interp, script, got, wantScriptOutput, &stderr)
	}
}
