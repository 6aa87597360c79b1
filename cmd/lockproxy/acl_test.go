package main

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/lockproxy/lockproxy/internal/redistest"
)

// The upstream ACL user that docs/security.md gives is enough for every
// lock command, hand-offs between connections, restart detection and the
// start-up checks, and Redis refuses it nothing.
func TestACLUser(t *testing.T) {
	doc, err := os.ReadFile("../../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(doc), "<!-- acl:begin -->")
	block, _, ok2 := strings.Cut(block, "<!-- acl:end -->")
	if !ok || !ok2 {
		t.Fatal("docs/security.md lost its acl:begin/acl:end markers")
	}
	var line string
	for _, l := range strings.Split(block, "\n") {
		if strings.HasPrefix(l, "ACL SETUSER") {
			line = l
		}
	}
	if line == "" {
		t.Fatal("no ACL SETUSER line between the markers")
	}
	srv := redistest.Start(t)
	admin := srv.Client(t)
	ctx := context.Background()
	var args []any
	for _, f := range strings.Fields(line) {
		args = append(args, f)
	}
	if err := admin.Do(ctx, args...).Err(); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	admin.Do(ctx, "ACL", "LOG", "RESET")

	p := startProxy(t, map[string]string{"UPSTREAM": "redis://locker:password@" + srv.Addr() + "/0"})
	a, b := p.conn(t, 3), p.conn(t, 2)
	tok := mustToken(t, a, "acl", 60000)
	done := make(chan string, 1)
	go func() {
		v, _ := b.Do(ctx, "LOCK.ACQUIRE", "acl", 60000, "WAIT", 10000).Text()
		done <- v
	}()
	waitFor(t, func() bool { return info(t, a, "acl")["waiters"] == int64(1) })
	mustInt(t, 1, a, "LOCK.RELEASE", "acl", tok)
	if got := <-done; got == "" {
		t.Fatal("the waiter did not get the lock")
	}
	mustInt(t, 1, b, "LOCK.RENEW", "acl", 30000)
	det := mustToken(t, a, "acl-detached", 60000, "DETACHED")
	mustInt(t, 1, p.conn(t, 2), "LOCK.RELEASE", "acl-detached", det)
	if got := infoField(t, a, "upstream_risks"); got != "no_persistence" {
		t.Errorf("upstream_risks = %q: the user cannot read the settings", got)
	}
	if n, _ := admin.Do(ctx, "ACL", "LOG").Slice(); len(n) != 0 {
		t.Errorf("Redis refused the user %d time(s): %v", len(n), n)
	}
}
