// Package docquote keeps the code that Markdown docs quote identical to the
// code itself: a marker line in a doc names a piece of code, and the fenced
// block right after the marker must hold that code, word for word. Tests
// use it to fail when a doc drifts, and to rewrite the quotes on -update.
package docquote

import (
	"fmt"
	"regexp"
	"strings"
)

// FenceLang is the fenced block's language for a file extension.
var FenceLang = map[string]string{".go": "go", ".sh": "bash", ".py": "python", ".js": "js"}

var (
	beginRE = regexp.MustCompile(`^\s*(?://|#) snippet:begin ([a-z0-9-]+)\s*$`)
	endRE   = regexp.MustCompile(`^\s*(?://|#) snippet:end\s*$`)
)

// Regions returns the regions of src between a "snippet:begin <id>" and a
// "snippet:end" comment line (// or #), by id, dedented and ending in a
// newline, with a message for each misplaced marker.
func Regions(src string) (regions map[string]string, problems []string) {
	regions = map[string]string{}
	var id string
	var body []string
	for n, line := range strings.Split(src, "\n") {
		if m := beginRE.FindStringSubmatch(line); m != nil {
			if id != "" {
				problems = append(problems, fmt.Sprintf("line %d: snippet %q begins inside snippet %q", n+1, m[1], id))
			}
			if _, dup := regions[m[1]]; dup {
				problems = append(problems, fmt.Sprintf("line %d: snippet %q begins a second time", n+1, m[1]))
			}
			id, body = m[1], nil
			continue
		}
		if endRE.MatchString(line) {
			if id == "" {
				problems = append(problems, fmt.Sprintf("line %d: snippet:end without a begin", n+1))
				continue
			}
			regions[id] = dedent(body)
			id = ""
			continue
		}
		if id != "" {
			body = append(body, line)
		}
	}
	if id != "" {
		problems = append(problems, fmt.Sprintf("snippet %q never ends", id))
	}
	return regions, problems
}

// Quote is the code a marker names, and its fence language.
type Quote struct {
	Lang, Text string // Text ends in a newline
}

// Mismatch is a marker whose fenced block does not hold what it names.
type Mismatch struct {
	Line      int      // of the fenced block, 1-based
	Match     []string // the marker's submatches
	Got, Want string   // the blocks, fences included; Want is empty when Err is set
	Err       error    // what names the code failed
}

// Sync walks doc and, after each line that marker matches, puts the fenced
// block want(match) names. It returns the doc so rewritten and each block
// that was not already so.
func Sync(doc string, marker *regexp.Regexp, want func(match []string) (Quote, error)) (string, []Mismatch) {
	lines := strings.SplitAfter(doc, "\n")
	var out strings.Builder
	var bad []Mismatch
	for i := 0; i < len(lines); i++ {
		out.WriteString(lines[i])
		m := marker.FindStringSubmatch(strings.TrimRight(lines[i], "\n"))
		if m == nil {
			continue
		}
		q, err := want(m)
		if err != nil {
			bad = append(bad, Mismatch{Line: i + 2, Match: m, Err: err})
			continue
		}
		block := "```" + q.Lang + "\n" + q.Text + "```\n"
		end := i + 1
		if end < len(lines) && strings.HasPrefix(lines[end], "```") {
			for end++; end < len(lines) && strings.TrimRight(lines[end], "\n") != "```"; end++ {
			}
			end++ // past the closing fence
		}
		got := strings.Join(lines[i+1:min(end, len(lines))], "")
		if got != block {
			bad = append(bad, Mismatch{Line: i + 2, Match: m, Got: got, Want: block})
		}
		out.WriteString(block)
		i = end - 1
	}
	return out.String(), bad
}

// dedent removes the indentation all non-blank lines share, and trailing
// blank lines, and ends each line with a newline.
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
