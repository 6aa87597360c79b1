package lockproxy_test

import (
	"go/build"
	"strings"
	"testing"
)

// The dependency arrows point inward: lockcore and metrics import no
// project package, resp knows nothing of locks, and only cmd/ wires.
func TestImportArrows(t *testing.T) {
	const mod = "github.com/lockproxy/lockproxy/"
	allowed := map[string][]string{
		"lockcore":            {},
		"lockcore/memstore":   {"lockcore"},
		"lockcore/redisstore": {"lockcore"},
		"lockcore/storetest":  {"lockcore"},
		"metrics":             {},
		"resp":                {},
		"commands":            {"lockcore", "resp"},
	}
	for pkg, ok := range allowed {
		p, err := build.Import(mod+pkg, ".", 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range p.Imports {
			dep, isOurs := strings.CutPrefix(imp, mod)
			if !isOurs {
				continue
			}
			found := false
			for _, a := range ok {
				found = found || dep == a
			}
			if !found {
				t.Errorf("%s imports %s; allowed: %v", pkg, dep, ok)
			}
		}
	}
}
