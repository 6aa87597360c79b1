package compat

import (
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/lockproxy/lockproxy/internal/docquote"
)

var update = flag.Bool("update", false, "rewrite the snippets in docs/clients.md from the scenario files")

const clientsDoc = "../docs/clients.md"

var markerRE = regexp.MustCompile(`^<!-- snippet: ([a-z0-9-]+) -->$`)

// snippet is one region of a scenario file that docs/clients.md quotes.
type snippet struct {
	file string
	docquote.Quote
}

// TestDocSnippets checks that docs/clients.md quotes every snippet region
// of the scenarios verbatim, right after its <!-- snippet: id --> marker,
// and nothing that is not one; -update rewrites the quotes.
func TestDocSnippets(t *testing.T) {
	snippets := findSnippets(t)
	doc, err := os.ReadFile(clientsDoc)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	out, bad := docquote.Sync(string(doc), markerRE, func(m []string) (docquote.Quote, error) {
		s, ok := snippets[m[1]]
		if !ok {
			return docquote.Quote{}, fmt.Errorf("marker for snippet %q, which no scenario file has", m[1])
		}
		if seen[m[1]] {
			return docquote.Quote{}, fmt.Errorf("snippet %q quoted twice", m[1])
		}
		seen[m[1]] = true
		return s.Quote, nil
	})
	for _, b := range bad {
		switch {
		case b.Err != nil:
			t.Errorf("%s:%d: %v", clientsDoc, b.Line-1, b.Err)
		case !*update:
			file := snippets[b.Match[1]].file
			t.Errorf("%s:%d: snippet %q differs from %s (go test ./compat -run TestDocSnippets -update rewrites it)\n--- doc:\n%s--- %s:\n%s",
				clientsDoc, b.Line, b.Match[1], file, b.Got, file, b.Want)
		}
	}
	var missing []string
	for id := range snippets {
		if !seen[id] {
			missing = append(missing, fmt.Sprintf("%s (%s)", id, snippets[id].file))
		}
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Errorf("%s does not quote snippet %s: add a line <!-- snippet: %s --> where it belongs",
			clientsDoc, m, strings.Fields(m)[0])
	}
	if *update && out != string(doc) {
		if err := os.WriteFile(clientsDoc, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote %s", clientsDoc)
	}
}

// findSnippets reads every snippet region of the scenario files.
func findSnippets(t *testing.T) map[string]snippet {
	t.Helper()
	snippets := map[string]snippet{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "node_modules" {
			return filepath.SkipDir
		}
		lang, ok := docquote.FenceLang[filepath.Ext(path)]
		if d.IsDir() || !ok || path == "snippets_test.go" {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		file := "compat/" + filepath.ToSlash(path)
		regions, problems := docquote.Regions(string(src))
		for _, p := range problems {
			t.Errorf("%s: %s", file, p)
		}
		for id, text := range regions {
			if prev, dup := snippets[id]; dup {
				t.Errorf("%s: snippet %q already begins in %s", file, id, prev.file)
			}
			snippets[id] = snippet{file: file, Quote: docquote.Quote{Lang: lang, Text: text}}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(snippets) == 0 {
		t.Fatal("no snippet regions found")
	}
	return snippets
}
