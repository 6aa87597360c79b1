package redistest_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lockproxy/lockproxy/internal/redistest"
	"github.com/lockproxy/lockproxy/internal/relay"
)

// failoverClient connects through the sentinels, as lockproxy does,
// closed in t.Cleanup.
func failoverClient(t *testing.T, opt *redis.FailoverOptions) *redis.Client {
	t.Helper()
	c := redis.NewFailoverClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

// setEventually writes through a failover client until a write lands: the
// first after a failover may still meet the old primary, now a read-only
// replica, on a pooled connection, until the client hears +switch-master.
func setEventually(t *testing.T, c *redis.Client, key, value string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := c.Set(context.Background(), key, value, 0).Err()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("SET %s through the sentinels: %v", key, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func get(t *testing.T, s *redistest.Server, key string) string {
	t.Helper()
	v, err := s.Client(t).Get(context.Background(), key).Result()
	if err != nil {
		t.Fatalf("GET %s on %s: %v", key, s.Addr(), err)
	}
	return v
}

func role(t *testing.T, s *redistest.Server) string {
	t.Helper()
	v, err := s.Client(t).Do(context.Background(), "ROLE").Slice()
	if err != nil || len(v) == 0 {
		t.Fatalf("ROLE on %s: %v, %v", s.Addr(), v, err)
	}
	return v[0].(string)
}

// A failover moves the primary to a replica that has the data, the old
// primary follows it, and a failover client writes to the new one.
func TestSentinelFailover(t *testing.T) {
	t.Parallel()
	sn := redistest.StartSentinel(t, redistest.SentinelOptions{DataArgs: []string{"--appendonly", "yes"}})
	ctx := context.Background()

	opt, err := redis.ParseFailoverURL(sn.URL())
	if err != nil {
		t.Fatalf("ParseFailoverURL(%q): %v", sn.URL(), err)
	}
	if opt.MasterName != "lockproxy" || !slices.Equal(opt.SentinelAddrs, sn.SentinelAddrs()) || len(opt.SentinelAddrs) != 3 {
		t.Fatalf("URL %q parses to master %q sentinels %v; want lockproxy %v", sn.URL(), opt.MasterName, opt.SentinelAddrs, sn.SentinelAddrs())
	}
	if sn.MasterName() != "lockproxy" || len(sn.Nodes()) != 3 {
		t.Fatalf("MasterName() = %q, %d nodes; want lockproxy, 3", sn.MasterName(), len(sn.Nodes()))
	}
	for _, s := range sn.Nodes() {
		aof, err := s.Client(t).ConfigGet(ctx, "appendonly").Result()
		if err != nil || aof["appendonly"] != "yes" {
			t.Fatalf("DataArgs not applied on %s: appendonly = %v, %v", s.Addr(), aof, err)
		}
	}
	rdb := failoverClient(t, opt)
	if err := rdb.Set(ctx, "before", "1", 0).Err(); err != nil {
		t.Fatalf("SET through the sentinels: %v", err)
	}
	primary := sn.Primary(t)
	if primary != sn.Nodes()[0] || get(t, primary, "before") != "1" {
		t.Fatalf("Primary() = %s, want the first node %s holding the write", primary.Addr(), sn.Nodes()[0].Addr())
	}
	if r := sn.ReplicaServers(t); len(r) != 2 || slices.Contains(r, primary) {
		t.Fatalf("ReplicaServers() = %v", r)
	}

	old, newPrimary := sn.Failover(t)
	if old != primary || newPrimary == old || sn.Primary(t) != newPrimary {
		t.Fatalf("Failover() = %s, %s; Primary() = %s; want away from %s", old.Addr(), newPrimary.Addr(), sn.Primary(t).Addr(), primary.Addr())
	}
	if r := role(t, newPrimary); r != "master" {
		t.Fatalf("new primary %s has ROLE %s", newPrimary.Addr(), r)
	}
	if r := role(t, old); r != "slave" {
		t.Fatalf("old primary %s has ROLE %s, want a replica", old.Addr(), r)
	}
	if get(t, newPrimary, "before") != "1" {
		t.Fatal("the write before the failover is lost")
	}
	setEventually(t, rdb, "after", "2")
	if get(t, newPrimary, "after") != "2" {
		t.Fatal("the failover client's write did not land on the new primary")
	}
	if v, err := rdb.Get(ctx, "before").Result(); err != nil || v != "1" {
		t.Fatalf("GET before through the sentinels = %q, %v", v, err)
	}
}

// After a kill -9 of the primary the sentinels agree on a replica, which
// has the data; the old primary, restarted empty, is made a replica.
func TestSentinelKillPrimary(t *testing.T) {
	t.Parallel()
	sn := redistest.StartSentinel(t, redistest.SentinelOptions{})
	ctx := context.Background()
	rdb := failoverClient(t, &redis.FailoverOptions{MasterName: sn.MasterName(), SentinelAddrs: sn.SentinelAddrs()})
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	old := sn.Primary(t)
	// Both replicas have the write before the crash.
	if n, err := old.Client(t).Wait(ctx, 2, 5*time.Second).Result(); err != nil || n != 2 {
		t.Fatalf("WAIT 2 = %d, %v", n, err)
	}

	start := time.Now()
	old.Kill(t)
	newPrimary := sn.WaitNewPrimary(t, old)
	t.Logf("kill -9 to an agreed new primary: %v", time.Since(start).Round(time.Millisecond))
	if newPrimary == old || get(t, newPrimary, "k") != "v" {
		t.Fatalf("new primary %s (old %s) lacks the write", newPrimary.Addr(), old.Addr())
	}
	setEventually(t, rdb, "k2", "v2")
	if get(t, newPrimary, "k2") != "v2" {
		t.Fatal("the failover client's write did not land on the new primary")
	}

	// Restarted, it comes back as an empty primary until the sentinels
	// convert it.
	old.Restart(t)
	deadline := time.Now().Add(15 * time.Second)
	for {
		v, err := old.Client(t).Get(ctx, "k2").Result()
		if err == nil && v == "v2" && role(t, old) == "slave" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarted old primary %s: ROLE %s, GET k2 = %q, %v; want a replica of %s with the data", old.Addr(), role(t, old), v, err, newPrimary.Addr())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The sentinels and the data nodes have passwords of their own, and a
// failover client with both gets through, before and after a crash that
// the sentinels must agree on among themselves.
func TestSentinelPasswordsKeptApart(t *testing.T) {
	t.Parallel()
	const dataPW, sentinelPW = "data secret", "sentinel-secret"
	sn := redistest.StartSentinel(t, redistest.SentinelOptions{Password: dataPW, SentinelPassword: sentinelPW, MasterName: "pw"})
	ctx := context.Background()
	if strings.Contains(sn.URL(), "secret") {
		t.Fatalf("URL() = %q carries a password", sn.URL())
	}

	pingSentinel := func(password string) error {
		c := redis.NewSentinelClient(&redis.Options{Addr: sn.SentinelAddrs()[0], Password: password, MaxRetries: -1})
		defer c.Close()
		return c.Ping(ctx).Err()
	}
	primary := sn.Primary(t)
	pingNode := func(password string) error {
		c := redis.NewClient(&redis.Options{Addr: primary.Addr(), Password: password, MaxRetries: -1})
		defer c.Close()
		return c.Ping(ctx).Err()
	}
	for _, tc := range []struct {
		what string
		err  error
	}{
		{"sentinel without a password", pingSentinel("")},
		{"sentinel with the data password", pingSentinel(dataPW)},
		{"data node without a password", pingNode("")},
		{"data node with the sentinel password", pingNode(sentinelPW)},
	} {
		if tc.err == nil {
			t.Errorf("%s: PING succeeded", tc.what)
		}
	}
	if err := pingSentinel(sentinelPW); err != nil {
		t.Errorf("sentinel with its password: %v", err)
	}
	if err := pingNode(dataPW); err != nil {
		t.Errorf("data node with its password: %v", err)
	}

	wrong := failoverClient(t, &redis.FailoverOptions{MasterName: "pw", SentinelAddrs: sn.SentinelAddrs(), Password: sentinelPW, SentinelPassword: dataPW, MaxRetries: -1})
	if err := wrong.Ping(ctx).Err(); err == nil {
		t.Error("a failover client with the passwords swapped got through")
	}
	rdb := failoverClient(t, &redis.FailoverOptions{MasterName: "pw", SentinelAddrs: sn.SentinelAddrs(), Password: dataPW, SentinelPassword: sentinelPW})
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET through the sentinels with both passwords: %v", err)
	}
	if get(t, primary, "k") != "v" {
		t.Fatal("the write did not land on the primary")
	}

	// Agreeing that the primary is down takes sentinel-pass between the
	// sentinels, promoting a replica takes auth-pass.
	primary.Kill(t)
	newPrimary := sn.WaitNewPrimary(t, primary)
	setEventually(t, rdb, "k2", "v2")
	if get(t, newPrimary, "k2") != "v2" {
		t.Fatal("the failover client's write did not land on the new primary")
	}
}

// With PrimaryVia the sentinels and the replicas reach the first primary
// through a relay; frozen, it cuts the primary off from them alone: they
// promote a replica while the old primary, reached directly, still takes
// writes. Thawed, the old primary is made a replica of the new one and its
// stray writes are gone.
func TestSentinelPrimaryVia(t *testing.T) {
	t.Parallel()
	var rl *relay.Relay
	sn := redistest.StartSentinel(t, redistest.SentinelOptions{
		PrimaryVia: func(t testing.TB, primaryAddr string) string {
			rl = relay.Start(t, primaryAddr)
			return rl.Addr()
		}})
	ctx := context.Background()
	old := sn.Nodes()[0]
	if p := sn.Primary(t); p != old {
		t.Fatalf("Primary() = %s, want the first node %s", p.Addr(), old.Addr())
	}
	for _, a := range sn.SentinelAddrs() {
		c := redis.NewSentinelClient(&redis.Options{Addr: a})
		addr, err := c.GetMasterAddrByName(ctx, sn.MasterName()).Result()
		c.Close()
		if err != nil || len(addr) != 2 || addr[0]+":"+addr[1] != rl.Addr() {
			t.Fatalf("sentinel %s names %v, %v as primary; want the relay %s", a, addr, err, rl.Addr())
		}
	}
	for _, r := range sn.Nodes()[1:] {
		v, err := r.Client(t).Do(ctx, "ROLE").Slice()
		if err != nil || len(v) < 3 || v[0] != "slave" || fmt.Sprintf("%v:%v", v[1], v[2]) != rl.Addr() {
			t.Fatalf("replica %s: ROLE = %v, %v; want a replica of the relay %s", r.Addr(), v, err, rl.Addr())
		}
	}
	rdb := failoverClient(t, &redis.FailoverOptions{MasterName: sn.MasterName(), SentinelAddrs: sn.SentinelAddrs(),
		MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})
	if err := rdb.Set(ctx, "before", "1", 0).Err(); err != nil {
		t.Fatalf("SET through the sentinels: %v", err)
	}
	if get(t, old, "before") != "1" {
		t.Fatal("the write through the sentinels did not land on the primary")
	}
	if n, err := old.Client(t).Wait(ctx, 2, 5*time.Second).Result(); err != nil || n != 2 {
		t.Fatalf("WAIT 2 = %d, %v", n, err)
	}

	start := time.Now()
	rl.Freeze()
	newPrimary := sn.WaitNewPrimary(t, old)
	t.Logf("relay frozen to an agreed new primary: %v", time.Since(start).Round(time.Millisecond))
	if newPrimary == old || get(t, newPrimary, "before") != "1" {
		t.Fatalf("new primary %s (old %s) lacks the write", newPrimary.Addr(), old.Addr())
	}
	// Split brain: the old primary, cut off, still takes writes.
	if r := role(t, old); r != "master" {
		t.Fatalf("the cut-off primary has ROLE %s", r)
	}
	if err := old.Client(t).Set(ctx, "stray", "1", 0).Err(); err != nil {
		t.Fatalf("SET on the cut-off primary: %v", err)
	}
	if n, err := old.Client(t).Wait(ctx, 1, 200*time.Millisecond).Result(); err != nil || n != 0 {
		t.Fatalf("WAIT 1 on the cut-off primary = %d, %v; want 0", n, err)
	}
	setEventually(t, rdb, "after", "2")
	if get(t, newPrimary, "after") != "2" {
		t.Fatal("the failover client's write did not land on the new primary")
	}

	rl.Thaw()
	deadline := time.Now().Add(15 * time.Second)
	for {
		v, err := old.Client(t).Do(ctx, "ROLE").Slice()
		after, _ := old.Client(t).Get(ctx, "after").Result()
		stray, strayErr := old.Client(t).Get(ctx, "stray").Result()
		if err == nil && len(v) >= 4 && v[0] == "slave" && fmt.Sprintf("%v:%v", v[1], v[2]) == newPrimary.Addr() &&
			v[3] == "connected" && after == "2" && errors.Is(strayErr, redis.Nil) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("old primary %s after the thaw: ROLE %v, %v; GET after = %q; GET stray = %q, %v; want a synced replica of %s without the stray write",
				old.Addr(), v, err, after, stray, strayErr, newPrimary.Addr())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("relay frozen to the old primary a replica of the new one: %v", time.Since(start).Round(time.Millisecond))
	if p := sn.Primary(t); p != newPrimary {
		t.Fatalf("Primary() = %s after the thaw, want %s", p.Addr(), newPrimary.Addr())
	}
}

// A server started with FakeTime("-1h") answers TIME an hour behind a
// normal one, and its timers, which run on the real monotonic clock, still
// keep time.
func TestFakeTime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	normal := redistest.Start(t).Client(t)
	behind := redistest.Start(t, redistest.Options{Env: redistest.FakeTime(t, "-1h")}).Client(t)

	tNormal, err := normal.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	tBehind, err := behind.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if skew := tNormal.Sub(tBehind); skew < 59*time.Minute || skew > 61*time.Minute {
		t.Fatalf("TIME is %v behind a normal server, want an hour", skew)
	}

	start := time.Now()
	// go-redis rounds a BLPop timeout up to whole seconds.
	if err := behind.Do(ctx, "BLPOP", "nothing", "0.2").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("BLPOP with a 200ms timeout = %v, want a timeout", err)
	}
	if d := time.Since(start); d < 190*time.Millisecond || d > 5*time.Second {
		t.Fatalf("BLPOP with a 200ms timeout returned after %v", d)
	}
	if err := behind.Set(ctx, "k", "v", 300*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	if ttl, err := behind.PTTL(ctx, "k").Result(); err != nil || ttl <= 0 || ttl > 300*time.Millisecond {
		t.Fatalf("PTTL right after SET PX 300 = %v, %v", ttl, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := behind.Exists(ctx, "k").Result()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a key set with PX 300 has not expired after 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d := time.Since(start); d < 450*time.Millisecond {
		t.Fatalf("the 300ms key expired early (%v since the BLPOP started)", d)
	}
}

func TestFakeTimeMissingFailsWithInstallHint(t *testing.T) {
	t.Parallel()
	f := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		redistest.FakeTimeUnder(f, t.TempDir(), "-1h")
		f.msg = "FakeTime returned"
	}()
	<-done
	if f.skipped {
		t.Fatal("FakeTime skipped instead of failing")
	}
	if !strings.Contains(f.msg, "apt-get install -y libfaketime") || !strings.Contains(f.msg, "make deps") {
		t.Fatalf("Fatalf message = %q, want the install hint", f.msg)
	}
}
