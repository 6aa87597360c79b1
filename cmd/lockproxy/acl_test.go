package main

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/lockproxy/lockproxy/internal/redistest"
)

// aclLine is the ACL SETUSER line between docs/security.md's markers
// <!-- name:begin --> and <!-- name:end -->, as command arguments.
func aclLine(t *testing.T, name string) []any {
	t.Helper()
	doc, err := os.ReadFile("../../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(doc), "<!-- "+name+":begin -->")
	block, _, ok2 := strings.Cut(block, "<!-- "+name+":end -->")
	if !ok || !ok2 {
		t.Fatalf("docs/security.md lost its %s:begin/%s:end markers", name, name)
	}
	var args []any
	for _, l := range strings.Split(block, "\n") {
		if strings.HasPrefix(l, "ACL SETUSER") {
			for _, f := range strings.Fields(l) {
				args = append(args, f)
			}
		}
	}
	if len(args) == 0 {
		t.Fatalf("no ACL SETUSER line between the %s markers", name)
	}
	return args
}

// The upstream ACL user that docs/security.md gives is enough for every
// lock command, hand-offs between connections, restart detection and the
// start-up checks, and Redis refuses it nothing.
func TestACLUser(t *testing.T) {
	srv := redistest.Start(t)
	aclScenario(t, aclLine(t, "acl"), "redis://locker:password@"+srv.Addr()+"/0", []*redis.Client{srv.Client(t)})
}

// On a Redis Cluster, the user docs/security.md gives for one is enough,
// on every node.
func TestACLUserCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	var admins []*redis.Client
	for _, n := range cl.Nodes {
		admins = append(admins, n.Client(t))
	}
	aclScenario(t, aclLine(t, "acl-cluster"), strings.Replace(cl.URL(), "redis://", "redis://locker:password@", 1), admins)
}

// aclScenario creates the user with line on each admin's server, and runs
// lockproxy as that user on upstream through every kind of call.
func aclScenario(t *testing.T, line []any, upstream string, admins []*redis.Client) {
	ctx := context.Background()
	for _, admin := range admins {
		if err := admin.Do(ctx, line...).Err(); err != nil {
			t.Fatalf("%v: %v", line, err)
		}
		admin.Do(ctx, "ACL", "LOG", "RESET")
	}

	p := startProxy(t, map[string]string{"UPSTREAM": upstream})
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
	for _, admin := range admins {
		if n, _ := admin.Do(ctx, "ACL", "LOG").Slice(); len(n) != 0 {
			t.Errorf("Redis at %s refused the user %d time(s): %v", admin.Options().Addr, len(n), n)
		}
	}
}
