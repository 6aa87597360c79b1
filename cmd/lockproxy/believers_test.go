package main

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/lockproxy/lockproxy/internal/redistest"
	"github.com/lockproxy/lockproxy/internal/relay"
	"github.com/lockproxy/lockproxy/internal/respclient"
	"github.com/lockproxy/lockproxy/lockcore"
)

// Never two believers (SPEC §1): a token that left its connection lets
// another connection RENEW or RELEASE the lock, and whatever it does, nobody
// else is granted the name while the holder's connection may still list it.

// replyTimeout bounds a reply that should come at once.
const replyTimeout = 5 * time.Second

// pushed is a push frame and the moment it landed.
type pushed struct {
	v  respclient.Value
	at time.Time
}

// timedConn dials p over RESP3 with a reader of its own; pushes, if not
// nil, receives each push frame.
func timedConn(t testing.TB, p *proxy, pushes chan<- pushed) *respclient.Timed {
	t.Helper()
	var onPush func(respclient.Value, time.Time)
	if pushes != nil {
		onPush = func(v respclient.Value, at time.Time) {
			select {
			case pushes <- pushed{v, at}:
			default: // the test reads at most a few; never block the reader
			}
		}
	}
	c, err := respclient.DialTimed(p.Addr().String(), replyTimeout, onPush, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// timedDo sends one request on c and fails the test without a reply.
func timedDo(t testing.TB, c *respclient.Timed, args ...string) (respclient.Value, time.Time) {
	t.Helper()
	v, at, err := c.Do(replyTimeout, args...)
	if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return v, at
}

// timedAcquire acquires on c and returns the token and when the request
// was sent.
func timedAcquire(t testing.TB, c *respclient.Timed, args ...string) (string, time.Time) {
	t.Helper()
	sent, err := c.Send(append([]string{"LOCK.ACQUIRE"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	v, _, err := c.Next(replyTimeout)
	if err != nil || v.Kind != '$' || v.Null {
		t.Fatalf("LOCK.ACQUIRE %v = %v, %v; want a token", args, v, err)
	}
	return v.Str, sent
}

// names is an array reply's strings.
func names(v respclient.Value) []string {
	var s []string
	for _, e := range v.Elems {
		s = append(s, e.Str)
	}
	return s
}

// isLost reports whether p is `>3 lock.lost name token`.
func isLost(p pushed, name, token string) bool {
	return p.v.Kind == '>' && slices.Equal(names(p.v), []string{"lock.lost", name, token})
}

// nextPush waits until deadline for a push.
func nextPush(pushes <-chan pushed, deadline time.Time) (pushed, bool) {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case p := <-pushes:
		return p, true
	case <-timer.C:
		return pushed{}, false
	}
}

// foreignPlace is where the foreign RENEW or RELEASE is sent from: a is the
// holder's sidecar, b the one that B (the foreign token user) and C (the
// next acquirer) talk to.
type foreignPlace struct {
	name  string
	start func(t *testing.T) (a, b *proxy)
}

var foreignPlaces = []foreignPlace{
	{"embedded", func(t *testing.T) (*proxy, *proxy) {
		p := startProxy(t, nil)
		return p, p
	}},
	{"redis", func(t *testing.T) (*proxy, *proxy) {
		srv := redistest.Start(t)
		p := startProxy(t, map[string]string{"UPSTREAM": srv.URL()})
		return p, p
	}},
	{"other-sidecar", func(t *testing.T) (*proxy, *proxy) {
		srv := redistest.Start(t)
		settings := map[string]string{"UPSTREAM": srv.URL()}
		return startProxy(t, settings), startProxy(t, settings)
	}},
}

// A owns a lock; B, another connection, RENEWs or RELEASEs it with A's
// token, on A's sidecar (embedded or Redis store) or on another sidecar on
// the same Redis; C then tries to acquire it.
func TestForeignToken(t *testing.T) {
	for _, op := range []struct {
		name string
		fn   func(t *testing.T, a, b *proxy)
	}{
		{"renew", foreignRenew},
		{"release", foreignRelease},
	} {
		t.Run(op.name, func(t *testing.T) {
			for _, place := range foreignPlaces {
				t.Run(place.name, func(t *testing.T) {
					a, b := place.start(t)
					op.fn(t, a, b)
				})
			}
		})
	}
}

// foreignRenew: a foreign `LOCK.RENEW name 10 token` (the shortest ttl
// LOCKPROXY_MIN_TTL allows) answers 1 but never
// shortens the lease, so C cannot acquire the name, and A still holds it,
// lists it and renews it.
func foreignRenew(t *testing.T, pa, pb *proxy) {
	name := "believers:" + t.Name()
	pushes := make(chan pushed, 4)
	a := timedConn(t, pa, pushes)
	b := pb.conn(t, 3)
	c := timedConn(t, pb, nil)

	tok, _ := timedAcquire(t, a, name, "10000")
	mustInt(t, 1, b, "LOCK.RENEW", name, 10, tok)
	if left, _ := info(t, b, name)["ttl"].(int64); left < 5000 {
		t.Errorf("after B's LOCK.RENEW %s 10 <A's token>, LOCK.INFO ttl = %d ms: the foreign RENEW shortened A's 10000 ms lease", name, left)
	}

	// WAIT outlasts the 1 ms ttl B asked for many times over.
	got, _ := timedDo(t, c, "LOCK.ACQUIRE", name, "5000", "WAIT", "300")
	heldV, _ := timedDo(t, a, "LOCK.HELD")
	aHeld := names(heldV)
	switch {
	case !got.Null && slices.Contains(aHeld, name):
		t.Errorf("two believers: C got a token (%v) while A's LOCK.HELD listed %s (%q)", got, name, aHeld)
	case !got.Null:
		t.Errorf("C's LOCK.ACQUIRE %s 5000 WAIT 300 = %v, want null: A's lease is 10000 ms", name, got)
	case !slices.Contains(aHeld, name):
		t.Errorf("A's LOCK.HELD = %q after a foreign RENEW, want it to list %s", aHeld, name)
	}
	if v, _ := timedDo(t, a, "LOCK.RENEW", name, "10000"); v.Kind != ':' || v.Num != 1 {
		t.Errorf("A's own LOCK.RENEW %s 10000 = %v, want :1", name, v)
	}
	select {
	case p := <-pushes:
		t.Errorf("A got the push %v; a foreign RENEW must not end its lease", p.v)
	default:
	}
}

// foreignRelease: a foreign `LOCK.RELEASE name token` answers 1 and revokes
// A's lease before the waiting C is granted the name: the moment C has its
// token, A's LOCK.HELD no longer lists the name, and A is pushed lock.lost.
// The same release again answers 0.
func foreignRelease(t *testing.T, pa, pb *proxy) {
	name := "believers:" + t.Name()
	pushes := make(chan pushed, 4)
	a := timedConn(t, pa, pushes)
	b := pb.conn(t, 3)
	c := timedConn(t, pb, nil)

	tok, _ := timedAcquire(t, a, name, "10000")
	if _, err := c.Send("LOCK.ACQUIRE", name, "5000", "WAIT", "5000"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return info(t, b, name)["waiters"] == int64(1) })

	// As soon as C's reply lands, ask A what it holds.
	type afterGrant struct {
		grant   respclient.Value
		grantAt time.Time
		held    respclient.Value
		err     error
	}
	after := make(chan afterGrant, 1)
	go func() {
		var r afterGrant
		r.grant, r.grantAt, r.err = c.Next(replyTimeout + 5*time.Second)
		if r.err == nil {
			r.held, _, r.err = a.Do(replyTimeout, "LOCK.HELD")
		}
		after <- r
	}()

	mustInt(t, 1, b, "LOCK.RELEASE", name, tok)
	released := time.Now()
	r := <-after
	if r.err != nil {
		t.Fatalf("C's LOCK.ACQUIRE WAIT or A's LOCK.HELD after it: %v", r.err)
	}
	if r.grant.Kind != '$' || r.grant.Null {
		t.Errorf("C's LOCK.ACQUIRE %s 5000 WAIT 5000 = %v after the release, want a token", name, r.grant)
	} else if slices.Contains(names(r.held), name) {
		t.Errorf("two believers: C got a token while A's LOCK.HELD listed %s (%q)", name, names(r.held))
	}

	p, ok := nextPush(pushes, released.Add(time.Second))
	switch {
	case !ok:
		t.Errorf("A got no lock.lost push within 1s of B's foreign release")
	case !isLost(p, name, tok):
		t.Errorf("A's push = %v, want lock.lost %s %s", p.v, name, tok)
	default:
		// Recorded, not asserted: the lease must end before C's grant,
		// which LOCK.HELD shows; the push may trail it on the wire.
		t.Logf("A's lock.lost push landed %v after C's token (negative: before)", p.at.Sub(r.grantAt))
	}
	mustInt(t, 0, b, "LOCK.RELEASE", name, tok)
}

// A foreign release through sidecar b of a lock whose holder's sidecar a
// cannot reach Redis answers 1, but nobody is granted the name until A's
// validity would have run out (a lock-delay), and a tells A lock.lost by
// then.
func TestForeignReleaseLockDelay(t *testing.T) {
	srv := redistest.Start(t)
	r := relay.Start(t, srv.Addr())
	pa := startProxy(t, map[string]string{"UPSTREAM": "redis://" + r.Addr() + "/0", "UPSTREAM_TIMEOUT": "200ms"})
	pb := startProxy(t, map[string]string{"UPSTREAM": srv.URL()})
	name := "believers:" + t.Name()
	const ttl = 2000 * time.Millisecond

	pushes := make(chan pushed, 4)
	a := timedConn(t, pa, pushes)
	b := pb.conn(t, 3)
	c := timedConn(t, pb, nil)

	tok, sent := timedAcquire(t, a, name, strconv.FormatInt(ttl.Milliseconds(), 10))
	// Before the first renewal, at ttl/2: A's validity is the acquire's.
	r.Freeze()
	defer r.Thaw()
	validUntil := sent.Add(ttl - lockcore.Drift(ttl))

	if _, err := c.Send("LOCK.ACQUIRE", name, "5000", "WAIT", "10000"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return info(t, b, name)["waiters"] == int64(1) })
	mustInt(t, 1, b, "LOCK.RELEASE", name, tok)
	released := time.Now()

	grant, grantAt, err := c.Next(15 * time.Second)
	if err != nil || grant.Kind != '$' || grant.Null {
		t.Fatalf("C's LOCK.ACQUIRE %s 5000 WAIT 10000 = %v, %v; want a token", name, grant, err)
	}
	if grantAt.Before(validUntil) {
		t.Errorf("C was granted %s %v after A's acquire was sent (%v relative to B's release reply), before A's validity ran out at %v",
			name, grantAt.Sub(sent), grantAt.Sub(released), ttl-lockcore.Drift(ttl))
	}

	p, ok := nextPush(pushes, validUntil.Add(time.Second))
	switch {
	case !ok:
		t.Errorf("A got no lock.lost push within 1s of its validity running out")
	case !isLost(p, name, tok):
		t.Errorf("A's push = %v, want lock.lost %s %s", p.v, name, tok)
	case p.at.After(grantAt):
		t.Errorf("A's lock.lost push landed %v after C's token: two believers", p.at.Sub(grantAt))
	default:
		t.Logf("C granted %v after A's acquire; A's lock.lost %v before C's token", grantAt.Sub(sent), grantAt.Sub(p.at))
	}
}
