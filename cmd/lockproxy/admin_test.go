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

// listEntries is LOCK.LIST's reply, each entry and holder a map whichever
// protocol the client speaks.
func listEntries(t *testing.T, c doer, args ...any) []map[string]any {
	t.Helper()
	v, err := do(t, c, append([]any{"LOCK.LIST"}, args...)...).Slice()
	if err != nil {
		t.Fatalf("LOCK.LIST %v: %v", args, err)
	}
	var out []map[string]any
	for _, e := range v {
		out = append(out, asMap(t, e))
	}
	return out
}

// LOCK.LIST shows the names held through every sidecar on the upstream,
// with each holder's fence, kind, sidecar and ttl, its client's name and
// address (asked of the holder's sidecar when it is another), and the
// waiters.
func TestListAcrossSidecars(t *testing.T) {
	srv := redistest.Start(t)
	settings := map[string]string{"UPSTREAM": srv.URL(), "ADMIN_PASSWORD": "s3cret"}
	p1, p2 := startProxy(t, settings), startProxy(t, settings)
	a, b, c := p1.conn(t, 2), p2.conn(t, 3), p2.conn(t, 2)
	do(t, a, "CLIENT", "SETNAME", "billing-1")
	do(t, b, "CLIENT", "SETNAME", "export-1")
	do(t, c, "CLIENT", "SETNAME", "export-2")
	ta := mustToken(t, a, "lst:orders", 60000)
	mustToken(t, b, "lst:exports", 60000, "LIMIT", 3)
	mustToken(t, c, "lst:exports", 60000, "LIMIT", 3)
	waiting := p2.conn(t, 2)
	go do(t, waiting, "LOCK.ACQUIRE", "lst:orders", 60000, "WAIT", 10000)
	mustToken(t, p1.conn(t, 2), "other:x", 60000)

	admin := p1.conn(t, 3)
	if err := do(t, admin, "LOCK.LIST").Err(); err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
		t.Errorf("before AUTH admin: %v; want NOPERM", err)
	}
	do(t, admin, "AUTH", "admin", "s3cret")
	waitFor(t, func() bool {
		for _, e := range listEntries(t, admin, "MATCH", "lst:orders") {
			return e["waiters"] == int64(1)
		}
		return false
	})
	entries := listEntries(t, admin, "MATCH", "lst:*")
	if len(entries) != 2 {
		t.Fatalf("LOCK.LIST MATCH lst:* = %v; want orders and exports", entries)
	}
	byName := map[string]map[string]any{}
	for _, e := range entries {
		byName[e["name"].(string)] = e
	}
	orders, exports := byName["lst:orders"], byName["lst:exports"]
	if orders["kind"] != "exclusive" || orders["waiters"] != int64(1) {
		t.Errorf("lst:orders = %v; want exclusive with a waiter", orders)
	}
	if hs := orders["holders"].([]any); len(hs) != 1 {
		t.Errorf("lst:orders holders %v", hs)
	} else if h := asMap(t, hs[0]); h["fence"] != fence(t, ta) || h["client"] != "billing-1" || h["local"] != int64(1) ||
		!strings.HasPrefix(h["addr"].(string), "127.0.0.1:") || h["ttl"].(int64) <= 0 {
		t.Errorf("lst:orders holder %v; want billing-1 on this sidecar with fence %d", h, fence(t, ta))
	}
	if exports["kind"] != "semaphore" || exports["limit"] != int64(3) || len(exports["holders"].([]any)) != 2 {
		t.Errorf("lst:exports = %v; want 2 holders of a semaphore of 3", exports)
	}
	// Holders on the other sidecar: that sidecar was asked who they are.
	clients := map[any]bool{}
	for _, x := range exports["holders"].([]any) {
		h := asMap(t, x)
		if h["local"] != int64(0) || h["sidecar"] == "" || !strings.HasPrefix(h["addr"].(string), "127.0.0.1:") {
			t.Errorf("a holder on the other sidecar: %v; want its sidecar's id and its address", h)
		}
		clients[h["client"]] = true
	}
	srvInfo, _ := do(t, c, "INFO", "server").Text()
	for _, x := range exports["holders"].([]any) {
		if sc := asMap(t, x)["sidecar"].(string); !strings.Contains(srvInfo, "sidecar_id:"+sc+"\r\n") {
			t.Errorf("holder's sidecar %s is not the INFO sidecar_id of the sidecar serving it:\n%s", sc, srvInfo)
		}
	}
	if !clients["export-1"] || !clients["export-2"] {
		t.Errorf("the other sidecar's holders are %v; want export-1 and export-2", clients)
	}
	if got := listEntries(t, admin, "MATCH", "lst:*", "COUNT", 1); len(got) != 1 {
		t.Errorf("COUNT 1 gave %d entries", len(got))
	}
	for _, args := range [][]any{{"COUNT", 0}, {"COUNT", 1001}, {"MATCH"}, {"BOGUS", 1}} {
		if err := do(t, admin, append([]any{"LOCK.LIST"}, args...)...).Err(); err == nil {
			t.Errorf("LOCK.LIST %v accepted", args)
		}
	}
}
