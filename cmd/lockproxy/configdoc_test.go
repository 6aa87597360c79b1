package main

import (
	"os"
	"strings"
	"testing"

	"github.com/lockproxy/lockproxy/internal/sidecar"
)

// docs/configuration.md has a table row for every variable, with the
// default sidecar.Vars gives it (empty when it has none), and lists no
// variable the configuration does not have.
func TestConfigDoc(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(string(doc), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`LOCKPROXY_") {
			continue
		}
		name := strings.Trim(strings.TrimSpace(cells[1]), "`")
		if _, dup := rows[name]; dup {
			t.Errorf("docs/configuration.md has two rows for %s", name)
		}
		rows[name] = strings.Trim(strings.TrimSpace(cells[2]), "`")
	}
	for _, f := range sidecar.Vars() {
		want := f.Default
		if want == "" {
			want = "empty"
		}
		if got, ok := rows[f.Name]; !ok || got != want {
			t.Errorf("docs/configuration.md row for %s: default %q (present %v), want %q", f.Name, got, ok, want)
		}
		if !strings.Contains(string(doc), "**`"+f.Name+"`**") {
			t.Errorf("docs/configuration.md does not describe %s (no **`%s`** entry)", f.Name, f.Name)
		}
		delete(rows, f.Name)
	}
	for name := range rows {
		t.Errorf("docs/configuration.md lists %s, which the configuration does not have", name)
	}
}
