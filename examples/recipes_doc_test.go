// Package examples holds the check that docs/recipes.md quotes the
// recipes' code as it is.
package examples

import (
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

	"github.com/lockproxy/lockproxy/internal/docquote"
)

var update = flag.Bool("update", false, "rewrite the quotes in docs/recipes.md from the recipes")

const recipesDoc = "../docs/recipes.md"

var (
	// <!-- code: inventory/main.go Buy --> quotes the declaration Buy of a
	// Go file (with its doc comment); <!-- code: inventory/python/inventory.py python-buy -->
	// quotes the region between "snippet:begin python-buy" and
	// "snippet:end" comments of any other file.
	markerRE = regexp.MustCompile(`^<!-- code: (\S+) (\S+) -->$`)
)

// recipes must each be quoted at least once.
var recipes = []string{"payments", "inventory", "jobs", "leader", "sequential", "exports", "catalog"}

// TestRecipesDoc checks that every <!-- code: file name --> marker of
// docs/recipes.md is followed by that region of the file, verbatim, in a
// fenced block; that every snippet region of the Python and Node.js
// recipes is quoted; and that every recipe is. -update rewrites the quotes.
func TestRecipesDoc(t *testing.T) {
	doc, err := os.ReadFile(recipesDoc)
	if err != nil {
		t.Fatal(err)
	}
	quoted := map[string]bool{}
	out, bad := docquote.Sync(string(doc), markerRE, func(m []string) (docquote.Quote, error) {
		file, name := m[1], m[2]
		quoted[file+" "+name] = true
		quoted[strings.Split(file, "/")[0]] = true
		text, err := region(file, name)
		return docquote.Quote{Lang: docquote.FenceLang[filepath.Ext(file)], Text: text}, err
	})
	for _, b := range bad {
		switch {
		case b.Err != nil:
			t.Errorf("%s:%d: %v", recipesDoc, b.Line-1, b.Err)
		case !*update:
			t.Errorf("%s:%d: the quote of %s %s differs from the code (go test ./examples -run TestRecipesDoc -update rewrites it)\n--- doc:\n%s--- examples/%s:\n%s",
				recipesDoc, b.Line, b.Match[1], b.Match[2], b.Got, b.Match[1], b.Want)
		}
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
	if *update && out != string(doc) {
		if err := os.WriteFile(recipesDoc, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote %s", recipesDoc)
	}
}

// region returns the quoted text of name in file (relative to examples/),
// ending in a newline: a Go declaration, or a snippet region of any other
// file.
func region(file, name string) (string, error) {
	src, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	if filepath.Ext(file) == ".go" {
		return goDecl(file, src, name)
	}
	regions, problems := docquote.Regions(string(src))
	if len(problems) > 0 {
		return "", fmt.Errorf("examples/%s: %s", file, strings.Join(problems, "; "))
	}
	text, ok := regions[name]
	if !ok {
		return "", fmt.Errorf("examples/%s has no snippet region %q", file, name)
	}
	return text, nil
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
				regions, _ := docquote.Regions(string(src)) // region reports problems
				for id := range regions {
					ids = append(ids, filepath.ToSlash(file)+" "+id)
				}
			}
		}
	}
	return ids
}
