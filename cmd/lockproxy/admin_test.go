package main

import (
	"strings"
	"testing"
	"time"

	"github.com/lockproxy/lockproxy/internal/redistest"
)

// LOCK.FORCERELEASE is off without LOCKPROXY_ADMIN_PASSWORD, and refused
// to anyone but the admin user.
func TestForceReleaseNeedsAdmin(t *testing.T) {
	off := startProxy(t, nil).conn(t, 2)
	if err := do(t, off, "LOCK.FORCERELEASE", "x").Err(); err == nil || !strings.HasPrefix(err.Error(), "ERR LOCK.FORCERELEASE is off") {
		t.Errorf("without an admin password: %v", err)
	}
	if err := do(t, off, "AUTH", "admin", "anything").Err(); err == nil || !strings.HasPrefix(err.Error(), "WRONGPASS") {
		t.Errorf("AUTH admin without an admin password: %v; want WRONGPASS (no admin user)", err)
	}
	p := startProxy(t, map[string]string{"ADMIN_PASSWORD": "s3cret", "PASSWORD": "client-pw"})
	c := p.conn(t, 2)
	mustOK := func(args ...any) {
		t.Helper()
		if err := do(t, c, args...).Err(); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	mustOK("AUTH", "client-pw")
	mustToken(t, c, "held", 60000)
	if err := do(t, c, "LOCK.FORCERELEASE", "held").Err(); err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
		t.Errorf("as the default user: %v; want NOPERM", err)
	}
	if err := do(t, c, "AUTH", "admin", "wrong").Err(); err == nil || !strings.HasPrefix(err.Error(), "WRONGPASS") {
		t.Errorf("AUTH admin with a wrong password: %v", err)
	}
	if in := info(t, c, "held"); in["owner"] != "self" {
		t.Errorf("a refused force release touched the lock: %v", in)
	}
	// The admin user is authenticated too, where clients need a password.
	admin := p.conn(t, 2)
	if err := do(t, admin, "AUTH", "admin", "s3cret").Err(); err != nil {
		t.Fatal(err)
	}
	mustInt(t, 1, admin, "LOCK.FORCERELEASE", "held")
	mustInt(t, 0, admin, "LOCK.FORCERELEASE", "held")
	if !strings.Contains(p.logs.String(), "force release") {
		t.Errorf("the force release was not logged:\n%s", p.logs)
	}
}

// A force release revokes every holder, on any sidecar, each told by a
// lock.lost push; then the name is anyone's.
func TestForceReleaseEveryHolder(t *testing.T) {
	srv := redistest.Start(t)
	settings := map[string]string{"UPSTREAM": srv.URL(), "ADMIN_PASSWORD": "s3cret", "LOG_LEVEL": "info"}
	p1, p2 := startProxy(t, settings), startProxy(t, settings)
	pushes := make(chan pushed, 8)
	a, b, c := timedConn(t, p1, pushes), timedConn(t, p2, pushes), timedConn(t, p2, pushes)
	timedDo(t, a, "HELLO", "3")
	timedDo(t, b, "HELLO", "3")
	timedDo(t, c, "HELLO", "3")
	ta, _ := timedAcquire(t, a, "one", "60000")
	tb, _ := timedAcquire(t, b, "many", "60000", "LIMIT", "2")
	tc, _ := timedAcquire(t, c, "many", "60000", "LIMIT", "2")

	admin := p1.conn(t, 3)
	if err := do(t, admin, "AUTH", "admin", "s3cret").Err(); err != nil {
		t.Fatal(err)
	}
	mustInt(t, 1, admin, "LOCK.FORCERELEASE", "one")
	mustInt(t, 2, admin, "LOCK.FORCERELEASE", "many")
	told := map[string]bool{}
	deadline := time.Now().Add(10 * time.Second)
	for len(told) < 3 {
		push, ok := nextPush(pushes, deadline)
		if !ok {
			t.Fatalf("told %v within 10s; want every holder told", told)
		}
		told[strings.Join(names(push.v), " ")] = true
	}
	for _, want := range []string{"lock.lost one " + ta, "lock.lost many " + tb, "lock.lost many " + tc} {
		if !told[want] {
			t.Errorf("no push %q; got %v", want, told)
		}
	}
	other := p2.conn(t, 2)
	mustToken(t, other, "one", 60000, "WAIT", 5000)
	mustToken(t, other, "many", 60000, "LIMIT", 2, "WAIT", 5000)
	if !strings.Contains(p1.logs.String(), `holders_revoked=2`) {
		t.Errorf("the force release of many was not logged with its count:\n%s", p1.logs)
	}
}
