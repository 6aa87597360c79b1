package docquote

import (
	"regexp"
	"testing"
)

func TestRegions(t *testing.T) {
	src := "x\n  // snippet:begin a\n    if ok {\n      go()\n    }\n\n  // snippet:end\n# snippet:end\n"
	r, problems := Regions(src)
	if r["a"] != "if ok {\n  go()\n}\n" {
		t.Errorf("region a = %q", r["a"])
	}
	if len(problems) != 1 {
		t.Errorf("problems = %q, want the stray end", problems)
	}
	if _, p := Regions("// snippet:begin b\n"); len(p) != 1 {
		t.Errorf("an unended region: problems %q", p)
	}
}

func TestSync(t *testing.T) {
	marker := regexp.MustCompile(`^<!-- q: (\w+) -->$`)
	want := func(m []string) (Quote, error) { return Quote{Lang: "go", Text: m[1] + "()\n"}, nil }
	good := "a\n<!-- q: f -->\n```go\nf()\n```\nb\n"
	if out, bad := Sync(good, marker, want); out != good || len(bad) != 0 {
		t.Errorf("an up-to-date doc: %q, %v", out, bad)
	}
	stale := "<!-- q: f -->\n```go\ng()\n```\n<!-- q: h -->\nb\n"
	out, bad := Sync(stale, marker, want)
	if len(bad) != 2 || bad[0].Line != 2 || bad[1].Got != "" {
		t.Errorf("a stale doc: %+v", bad)
	}
	if wantOut := "<!-- q: f -->\n```go\nf()\n```\n<!-- q: h -->\n```go\nh()\n```\nb\n"; out != wantOut {
		t.Errorf("rewritten:\n%s\nwant:\n%s", out, wantOut)
	}
}
