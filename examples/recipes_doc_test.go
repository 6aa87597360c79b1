// Package examples holds the check that docs/recipes.md quotes the
// recipes' code as it is.
package examples

import (
	"bufio"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the quotes in docs/recipes.md from the recipes")

const recipesDoc = "../docs/recipes.md"

var (
	// <!-- code: inventory/main.go Buy --> quotes the declaration Buy of a
	// Go file (with its doc comment); <!-- code: inventory/python/inventory.py python-buy -->
	// quotes the region between "snippet:begin python-buy" and
	// "snippet:end" comments of any other file.
	markerRE = regexp.MustCompile(`^<!-- code: (\S+) (\S+) -->$`)
	beginRE  = regexp.MustCompile(`^\s*(?://|#) snippet:begin ([a-z0-9-]+)\s*$`)
	endRE    = regexp.MustCompile(`^\s*(?://|#) snippet:end\s*$`)
)

var fenceLang = map[string]string{".go": "go", ".py": "python", ".js": "js"}

// recipes must each be quoted at least once.
var recipes = []string{"payments", "inventory", "jobs", "leader", "sequential"}

// TestRecipesDoc checks that every <!-- code: file name --> marker of
// docs/recipes.md is followed by that region of the file, verbatim, in a
// fenced block; that every snippet region of the Python and Node.js
// recipes is quoted; and that every recipe is. -update rewrites the quotes.
func TestRecipesDoc(t *testing.T) {
	doc, err := os.ReadFile(recipesDoc)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(doc), "\n")
	var out strings.Builder
	quoted := map[string]bool{}
	for i := 0; i < len(lines); i++ {
		out.WriteString(lines[i])
		m := markerRE.FindStringSubmatch(strings.TrimRight(lines[i], "\n"))
		if m == nil {
			continue
		}
		file, name := m[1], m[2]
		quoted[file+" "+name] = true
		quoted[strings.Split(file, "/")[0]] = true
		text, err := region(file, name)
		if err != nil {
			t.Errorf("%s:%d: %v", recipesDoc, i+1, err)
			continue
		}
		want := "```" + fenceLang[filepath.Ext(file)] + "\n" + text + "```\n"
		end := i + 1
		if end < len(lines) && strings.HasPrefix(lines[end], "```") {
			for end++; end < len(lines) && strings.TrimRight(lines[end], "\n") != "```"; end++ {
			}
			end++ // past the closing fence
		}
		got := strings.Join(lines[i+1:min(end, len(lines))], "")
		if got != want && !*update {
			t.Errorf("%s:%d: the quote of %s %s differs from the code (go test ./examples -run TestRecipesDoc -update rewrites it)\n--- doc:\n%s--- examples/%s:\n%s",
				recipesDoc, i+2, file, name, got, file, want)
		}
		out.WriteString(want)
		i = end - 1
	}
	for _, r := range recipes {
		if !quoted[r] {
			t.Errorf("%s quotes no code of examples/%s", recipesDoc, r)
		}
	}
	for _, s := range snippetIDs(t) {
		if !quoted[s] {
			t.Errorf("%s does not quote %s: add <!-- code: %s --> where it belongs", recipesDoc, s, s)
		}
	}
	if *update && out.String() != string(doc) {
		if err := os.WriteFile(recipesDoc, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote %s", recipesDoc)
	}
}

// region returns the quoted text of name in file (relative to examples/),
// ending in a newline.
func region(file, name string) (string, error) {
	src, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	if filepath.Ext(file) == ".go" {
		return goDecl(file, src, name)
	}
	var body []string
	in, found := false, false
	sc := bufio.NewScanner(strings.NewReader(string(src)))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case beginRE.MatchString(line) && beginRE.FindStringSubmatch(line)[1] == name:
			in, found = true, true
		case in && endRE.MatchString(line):
			in = false
		case in:
			body = append(body, line)
		}
	}
	if !found {
		return "", fmt.Errorf("examples/%s has no snippet region %q", file, name)
	}
	return strings.Join(body, "\n") + "\n", nil
}

// goDecl returns the top-level declaration name of a Go file, from its doc
// comment to its end. A method is found by its name alone.
func goDecl(file string, src []byte, name string) (string, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, src, parser.ParseComments)
	if err != nil {
		return "", err
	}
	for _, d := range f.Decls {
		var doc *ast.CommentGroup
		match := false
		switch d := d.(type) {
		case *ast.FuncDecl:
			doc, match = d.Doc, d.Name.Name == name
		case *ast.GenDecl:
			doc = d.Doc
			for _, s := range d.Specs {
				switch s := s.(type) {
				case *ast.TypeSpec:
					match = match || s.Name.Name == name
				case *ast.ValueSpec:
					for _, n := range s.Names {
						match = match || n.Name == name
					}
				}
			}
		}
		if !match {
			continue
		}
		start := d.Pos()
		if doc != nil {
			start = doc.Pos()
		}
		return string(src[fset.Position(start).Offset:fset.Position(d.End()).Offset]) + "\n", nil
	}
	return "", fmt.Errorf("examples/%s declares no %s", file, name)
}

// snippetIDs lists "file id" for every snippet region of the recipes'
// Python and Node.js files.
func snippetIDs(t *testing.T) []string {
	t.Helper()
	var ids []string
	for _, r := range recipes {
		for _, pattern := range []string{r + "/python/*.py", r + "/node/*.js"} {
			files, err := filepath.Glob(pattern)
			if err != nil {
				t.Fatal(err)
			}
			for _, file := range files {
				src, err := os.ReadFile(file)
				if err != nil {
					t.Fatal(err)
				}
				for _, line := range strings.Split(string(src), "\n") {
					if m := beginRE.FindStringSubmatch(line); m != nil {
						ids = append(ids, filepath.ToSlash(file)+" "+m[1])
					}
				}
			}
		}
	}
	return ids
}
