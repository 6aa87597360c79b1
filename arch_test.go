package lockproxy_test

import (
	"errors"
	"go/build"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The dependency arrows point inward: lockcore and metrics import no
// project package, resp knows nothing of locks, commands joins them, and
// internal/sidecar alone wires a sidecar, which cmd/lockproxy and
// lockproxytest both start. The client and the test helpers stand apart.
// Every package states the project packages its non-test files may
// import, so that a new package, or a new arrow, is a decision made here.
// (Tests may import what they need.)
var importRules = map[string][]string{
	// The domain and the adapters around it.
	"lockcore":            {},
	"lockcore/clocktest":  {"lockcore"},
	"lockcore/memstore":   {"lockcore"},
	"lockcore/redisstore": {"lockcore"},
	"lockcore/storetest":  {"lockcore"},
	"metrics":             {},
	"resp":                {},
	"commands":            {"lockcore", "resp"},

	// The wiring, and what starts it.
	"internal/sidecar": {"commands", "internal/logging", "lockcore", "lockcore/memstore",
		"lockcore/redisstore", "metrics", "resp"},
	"cmd/lockproxy": {"internal/sidecar"},
	"lockproxytest": {"internal/sidecar"},

	// The Go client is what applications import: nothing of the server.
	"lockclient": {},

	// Helpers, each on its own.
	"internal/docquote":    {},
	"internal/logging":     {},
	"internal/redistest":   {},
	"internal/sidecarproc": {"internal/syncbuf"},
	"internal/relay":       {},
	"internal/respclient":  {},
	"internal/safety":      {},
	"internal/syncbuf":     {},

	// The load tool drives lockproxy and a polling baseline through one
	// thin RESP client, so that it times the servers, not a client library;
	// its floor, a sidecar that does nothing, is lockproxy's own server.
	"cmd/lockbench": {"internal/respclient", "resp"},

	// Example programs are applications: the client, and the test server
	// for their recipes.
	"examples/internal/recipe": {"lockproxytest"},
	"examples/catalog":         {"examples/internal/recipe", "lockclient"},
	"examples/exports":         {"examples/internal/recipe", "lockclient"},
	"examples/inventory":       {"examples/internal/recipe", "lockclient"},
	"examples/jobs":            {"examples/internal/recipe", "lockclient"},
	"examples/leader":          {"examples/internal/recipe", "lockclient"},
	"examples/payments":        {"examples/internal/recipe", "lockclient"},
	"examples/sequential":      {"examples/internal/recipe", "lockclient"},

	// Packages of tests only.
	"":               {},
	"clients/node":   {},
	"clients/python": {},
	"compat":         {},
	"deploy/grafana": {},
	"deploy/helm":    {},
	"examples":       {},
	"faults":         {},
}

func TestImportArrows(t *testing.T) {
	const mod = "github.com/lockproxy/lockproxy"
	seen := map[string]bool{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		if name := d.Name(); path != "." && (name == "testdata" || name == "node_modules" ||
			strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
			return filepath.SkipDir
		}
		p, err := build.ImportDir(path, 0)
		var noGo *build.NoGoError
		if errors.As(err, &noGo) {
			return nil
		}
		if err != nil {
			return err
		}
		pkg := filepath.ToSlash(path)
		if pkg == "." {
			pkg = ""
		}
		seen[pkg] = true
		allowed, ok := importRules[pkg]
		if !ok {
			t.Errorf("%s has no import rule: state in arch_test.go which project packages it may import", pkg)
			return nil
		}
		for _, imp := range p.Imports {
			dep, isOurs := strings.CutPrefix(imp, mod+"/")
			if imp == mod {
				dep, isOurs = "", true
			}
			if isOurs && !slices.Contains(allowed, dep) {
				t.Errorf("%s imports %s; allowed: %v", pkg, dep, allowed)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for pkg := range importRules {
		if !seen[pkg] {
			t.Errorf("arch_test.go has a rule for %q, which is no package", pkg)
		}
	}
}
