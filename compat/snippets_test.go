package compat

import (
	"bufio"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the snippets in docs/clients.md from the scenario files")

const clientsDoc = "../docs/clients.md"

var (
	beginRE  = regexp.MustCompile(`^\s*(?://|#) snippet:begin ([a-z0-9-]+)\s*$`)
	endRE    = regexp.MustCompile(`^\s*(?://|#) snippet:end\s*$`)
	markerRE = regexp.MustCompile(`^<!-- snippet: ([a-z0-9-]+) -->$`)
)

var fenceLang = map[string]string{".go": "go", ".sh": "bash", ".py": "python", ".js": "js"}

// snippet is one region of a scenario file that docs/clients.md quotes.
type snippet struct {
	file string
	lang string
	text string // dedented, ending in a newline
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
	lines := strings.SplitAfter(string(doc), "\n")
	var out strings.Builder
	seen := map[string]bool{}
	for i := 0; i < len(lines); i++ {
		out.WriteString(lines[i])
		m := markerRE.FindStringSubmatch(strings.TrimRight(lines[i], "\n"))
		if m == nil {
			continue
		}
		id := m[1]
		s, ok := snippets[id]
		if !ok {
			t.Errorf("%s:%d: marker for snippet %q, which no scenario file has", clientsDoc, i+1, id)
			continue
		}
		if seen[id] {
			t.Errorf("%s:%d: snippet %q quoted twice", clientsDoc, i+1, id)
		}
		seen[id] = true
		// The fenced block right after the marker.
		want := "```" + s.lang + "\n" + s.text + "```\n"
		end := i + 1
		if end < len(lines) && strings.HasPrefix(lines[end], "```") {
			for end++; end < len(lines) && strings.TrimRight(lines[end], "\n") != "```"; end++ {
			}
			end++ // past the closing fence
		}
		got := strings.Join(lines[i+1:min(end, len(lines))], "")
		if got != want && !*update {
			t.Errorf("%s:%d: snippet %q differs from %s (go test ./compat -run TestDocSnippets -update rewrites it)\n--- doc:\n%s--- %s:\n%s",
				clientsDoc, i+2, id, s.file, got, s.file, want)
		}
		out.WriteString(want)
		i = end - 1
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
	if *update && out.String() != string(doc) {
		if err := os.WriteFile(clientsDoc, []byte(out.String()), 0o644); err != nil {
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
		lang, ok := fenceLang[filepath.Ext(path)]
		if d.IsDir() || !ok || path == "snippets_test.go" {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		var id string
		var region []string
		for n := 1; sc.Scan(); n++ {
			line := sc.Text()
			if m := beginRE.FindStringSubmatch(line); m != nil {
				if id != "" {
					t.Errorf("compat/%s:%d: snippet %q begins inside snippet %q", path, n, m[1], id)
				}
				if prev, dup := snippets[m[1]]; dup {
					t.Errorf("compat/%s:%d: snippet %q already begins in %s", path, n, m[1], prev.file)
				}
				id, region = m[1], nil
				continue
			}
			if endRE.MatchString(line) {
				if id == "" {
					t.Errorf("compat/%s:%d: snippet:end without a begin", path, n)
					continue
				}
				snippets[id] = snippet{file: "compat/" + filepath.ToSlash(path), lang: lang, text: dedent(region)}
				id = ""
				continue
			}
			if id != "" {
				region = append(region, line)
			}
		}
		if id != "" {
			t.Errorf("compat/%s: snippet %q never ends", path, id)
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(snippets) == 0 {
		t.Fatal("no snippet regions found")
	}
	return snippets
}

// dedent removes the indentation all non-blank lines share, and trailing
// blank lines.
func dedent(lines []string) string {
	for len(lines) > 0 && strings.TrimSpace(lines[len(lines)-1]) == "" {
		lines = lines[:len(lines)-1]
	}
	prefix := ""
	first := true
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		indent := l[:len(l)-len(strings.TrimLeft(l, " \t"))]
		if first {
			prefix, first = indent, false
			continue
		}
		for !strings.HasPrefix(indent, prefix) {
			prefix = prefix[:len(prefix)-1]
		}
	}
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(strings.TrimPrefix(l, prefix))
		b.WriteString("\n")
	}
	return b.String()
}
