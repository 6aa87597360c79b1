package commands

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The docs that list the commands allowed before AUTH list exactly those
// the table lets through.
func TestNoAuthCommandsDocumented(t *testing.T) {
	var want []string
	for _, cmd := range (&Handler{}).commands() {
		if cmd.noAuth {
			want = append(want, strings.ToUpper(cmd.name))
		}
	}
	slices.Sort(want)
	list := regexp.MustCompile("`AUTH`(?:, `[A-Z]+`)*,? and `[A-Z]+`")
	name := regexp.MustCompile("`([A-Z]+)`")
	for _, f := range []string{"../docs/security.md", "../docs/PROTOCOL.md", "../docs/troubleshooting.md"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		text := strings.Join(strings.Fields(string(b)), " ") // lists may wrap
		lists := list.FindAllString(text, -1)
		if len(lists) == 0 {
			t.Errorf("%s lists no commands allowed before AUTH", f)
		}
		for _, l := range lists {
			var got []string
			for _, m := range name.FindAllStringSubmatch(l, -1) {
				got = append(got, m[1])
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("%s: %q; the commands allowed before AUTH are %v", f, l, want)
			}
		}
	}
}
