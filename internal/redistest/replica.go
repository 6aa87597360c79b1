package redistest

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// StartReplica runs a redis-server replicating primary (with opts' extra
// arguments and environment, a FakeTime clock say) and returns once the
// primary counts it as an online replica, so that a WAIT on the primary can
// be met. The primary's diskless sync delay is set to 0 first: its default
// of 5 s would hold the replica's first sync back that long.
func StartReplica(t testing.TB, primary *Server, opts ...Options) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	prc := primary.Client(t)
	if err := prc.ConfigSet(ctx, "repl-diskless-sync-delay", "0").Err(); err != nil {
		t.Fatalf("redistest: CONFIG SET repl-diskless-sync-delay on %s: %v", primary.Addr(), err)
	}
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	host, port, _ := net.SplitHostPort(primary.Addr())
	o.Args = append([]string{"--replicaof", host, port}, o.Args...)
	if primary.pass != "" {
		o.Args = append(o.Args, "--masterauth", primary.pass)
	}
	r := Start(t, o)
	want := "port=" + strconv.Itoa(r.port) + ",state=online"
	for {
		info, err := prc.Info(ctx, "replication").Result()
		if err == nil && strings.Contains(info, want) {
			return r
		}
		select {
		case <-ctx.Done():
			t.Fatalf("redistest: %s not an online replica of %s within %v: %v\n%s", r.Addr(), primary.Addr(), readyTimeout, err, info)
		case <-time.After(pollInterval):
		}
	}
}
