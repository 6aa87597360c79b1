package redistest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// topologyTimeout bounds each wait for the sentinels and data nodes to
	// settle: the start, a failover, the promotion after a crash. A
	// failover that loses its leader election is retried only after twice
	// the failover-timeout, so this leaves room for a couple of those
	// under -race on a loaded machine.
	topologyTimeout = 30 * time.Second
	// topologyPoll is coarser than pollInterval: each check asks every
	// sentinel and every data node, and Sentinel itself moves in steps of
	// hundreds of milliseconds.
	topologyPoll = 50 * time.Millisecond
	// callTimeout bounds one command of a check, so that a killed or
	// paused node fails the check instead of hanging it; checkTimeout
	// bounds a whole check, a few commands to each server.
	callTimeout  = time.Second
	checkTimeout = 3 * time.Second
)

// sentinelDebug shortens Sentinel's internal periods (SENTINEL DEBUG,
// Redis 7.0+), which no config option reaches. With the defaults a
// topology takes seconds to discover itself and a failed-over primary
// stays a stray master for 10s or more before Sentinel turns it into a
// replica (a role change is acted on from INFO replies, every 10s, once it
// is 4 hello periods old); tests would wait on timers, not on Redis.
func sentinelDebug(downAfter time.Duration) []any {
	return []any{
		// How often each instance is pinged, and how long a lost link
		// waits to be redialled. Default 1s, which with a DownAfter
		// under it calls a healthy node down: a promotion kills every
		// client of the promoted node, the other sentinels' links
		// included, and a link not back within DownAfter is a node
		// down, failed over once more. Nor may it be under 250ms:
		// while the primary is down a replica is fit for promotion
		// only with an INFO answer at most 5 ping periods old, and
		// INFO is asked every second then, whatever info-period says.
		"ping-period", min(1000, max(250, downAfter.Milliseconds()/2)),
		// How often INFO is asked of the data nodes: role changes and
		// new replicas are seen from it. Default 10s.
		"info-period", 500,
		// How often sentinels say hello to each other through the data
		// nodes, and, times 4, how long a node reporting the wrong
		// role is left alone. Default 2s.
		"publish-period", 250,
		// How often a sentinel that sees the primary down asks the
		// others whether they agree. Default 1s.
		"ask-period", 250,
		// How long a sentinel stays passive after its timer ran late
		// (more than 2s: a stalled process) rather than act on stale
		// state. Default 30s, longer than a test waits.
		"tilt-period", 2000,
	}
}

// SentinelOptions tunes the topology started by StartSentinel. Zero values
// mean the defaults.
type SentinelOptions struct {
	Replicas   int    // replicas of the primary; default 2
	Sentinels  int    // default 3; the quorum is 2 (1 for a single sentinel)
	MasterName string // the name the sentinels monitor the primary under; default "lockproxy"
	// DownAfter is down-after-milliseconds: how long the primary may fail
	// to answer before a sentinel calls it down. Default 500ms, which is
	// also about the shortest that does not see healthy nodes down.
	DownAfter time.Duration
	// FailoverTimeout is failover-timeout: how long one failover step may
	// take, and half the wait before a failed attempt is retried.
	// Default 2s.
	FailoverTimeout time.Duration
	// DataArgs are extra arguments for every data node, e.g.
	// {"--appendonly", "yes"}.
	DataArgs []string
	// Password protects the data nodes (requirepass, and masterauth for
	// replication); the sentinels are given it with auth-pass.
	Password string
	// SentinelPassword protects the sentinels (requirepass, and
	// sentinel-pass between them); it is kept apart from Password.
	SentinelPassword string
	// PrimaryVia, when set, is called once the first primary runs, with
	// its address, and returns the "127.0.0.1:port" address that the
	// replicas replicate from and the sentinels monitor instead: a relay
	// in front of it, so that a test can cut the primary off from the
	// sentinels and replicas while its own clients still reach it
	// directly. The sentinels name that address as the primary (URL's
	// clients go through it); Primary and WaitNewPrimary map it back to
	// the node. Once the primary has been failed over, the sentinels know
	// the node by both addresses.
	PrimaryVia func(t testing.TB, primaryAddr string) string
}

func (o SentinelOptions) withDefaults() SentinelOptions {
	if o.Replicas <= 0 {
		o.Replicas = 2
	}
	if o.Sentinels <= 0 {
		o.Sentinels = 3
	}
	if o.MasterName == "" {
		o.MasterName = "lockproxy"
	}
	if o.DownAfter <= 0 {
		o.DownAfter = 500 * time.Millisecond
	}
	if o.FailoverTimeout <= 0 {
		o.FailoverTimeout = 2 * time.Second
	}
	return o
}

// Sentinel is a Redis Sentinel topology owned by one test: data nodes, one
// of them the primary and the rest its replicas, and sentinels monitoring
// them, all on 127.0.0.1.
type Sentinel struct {
	opt       SentinelOptions
	nodes     []*Server
	sentinels []*Server
	// via maps the address PrimaryVia returned to the first primary.
	via map[string]*Server
	// Closed in t.Cleanup. A go-redis client redials on its own after a
	// node is killed and restarted.
	nodeClients     map[*Server]*redis.Client
	sentinelClients []*redis.SentinelClient
}

// StartSentinel runs a primary, its replicas and the sentinels, and returns
// once the topology is ready to fail over: every replica is online and in
// sync, and every sentinel names the primary and sees every replica and
// every other sentinel. Everything stops in t.Cleanup.
//
// Each node has a config file that Sentinel's reconfigurations rewrite, as
// in a real deployment, so that a node brought back with Restart keeps the
// role it was last given; a node killed while primary comes back as an
// empty primary, which the sentinels soon turn into a replica.
func StartSentinel(t testing.TB, opt SentinelOptions) *Sentinel {
	t.Helper()
	opt = opt.withDefaults()
	sn := &Sentinel{opt: opt, nodeClients: map[*Server]*redis.Client{}, via: map[string]*Server{}}
	t.Cleanup(sn.closeClients)

	primary := sn.startNode(t, "")
	known := primary.Addr()
	if opt.PrimaryVia != nil {
		known = opt.PrimaryVia(t, primary.Addr())
		if _, _, err := net.SplitHostPort(known); err != nil {
			t.Fatalf("redistest: PrimaryVia returned %q: %v", known, err)
		}
		if known != primary.Addr() {
			sn.via[known] = primary
		}
	}
	for range opt.Replicas {
		sn.startNode(t, known)
	}
	// The sentinels learn of the replicas from the primary's INFO, so
	// they start once the replicas are attached.
	if err := poll(func(ctx context.Context) error { return sn.replicated(ctx, primary) }); err != nil {
		t.Fatalf("redistest: replicas not in sync with %s within %v: %v\n%s", primary.Addr(), topologyTimeout, err, sn.logTails(sn.nodes))
	}
	for range opt.Sentinels {
		sn.startSentinel(t, known)
	}
	sn.waitTopology(t, primary)
	return sn
}

// startNode starts a data node, a replica of the primary at primaryAddr
// (host:port) unless that is empty.
func (sn *Sentinel) startNode(t testing.TB, primaryAddr string) *Server {
	t.Helper()
	args := []string{
		// A replica's first sync would otherwise wait 5s for others
		// to share the transfer.
		"--repl-diskless-sync-delay", "0",
	}
	if sn.opt.Password != "" {
		args = append(args, "--masterauth", sn.opt.Password)
	}
	args = append(args, sn.opt.DataArgs...)
	s, portArgs := newServer(t, []Options{{Args: args, Password: sn.opt.Password}})
	// replicaof lives in the config file, not on the command line, where
	// it would override what Sentinel rewrites there on a failover.
	conf := "# Sentinel rewrites this file when it reconfigures the node.\n"
	if primaryAddr != "" {
		host, port, _ := net.SplitHostPort(primaryAddr)
		conf += fmt.Sprintf("replicaof %s %s\n", host, port)
	}
	s.lead = []string{writeConf(t, s.dir, "redis.conf", conf)}
	s.start(t, portArgs)
	sn.nodes = append(sn.nodes, s)
	sn.nodeClients[s] = redis.NewClient(&redis.Options{
		Addr:        s.Addr(),
		Password:    sn.opt.Password,
		MaxRetries:  -1,
		DialTimeout: callTimeout,
		ReadTimeout: callTimeout,
	})
	return s
}

// startSentinel starts a sentinel monitoring the primary at primaryAddr.
func (sn *Sentinel) startSentinel(t testing.TB, primaryAddr string) {
	t.Helper()
	name := sn.opt.MasterName
	host, port, _ := net.SplitHostPort(primaryAddr)
	var b strings.Builder
	fmt.Fprintf(&b, "sentinel monitor %s %s %s %d\n", name, host, port, min(2, sn.opt.Sentinels))
	fmt.Fprintf(&b, "sentinel down-after-milliseconds %s %d\n", name, sn.opt.DownAfter.Milliseconds())
	fmt.Fprintf(&b, "sentinel failover-timeout %s %d\n", name, sn.opt.FailoverTimeout.Milliseconds())
	// All replicas follow the new primary at once: on loopback a sync is
	// quick, and one at a time would make a failover slower for nothing.
	fmt.Fprintf(&b, "sentinel parallel-syncs %s %d\n", name, sn.opt.Replicas)
	if sn.opt.Password != "" {
		fmt.Fprintf(&b, "sentinel auth-pass %s %s\n", name, strconv.Quote(sn.opt.Password))
	}
	if sn.opt.SentinelPassword != "" {
		// The sentinels ask each other whether the primary is down;
		// without it they would be refused and never agree.
		fmt.Fprintf(&b, "sentinel sentinel-pass %s\n", strconv.Quote(sn.opt.SentinelPassword))
	}
	s, _ := newServer(t, []Options{{Password: sn.opt.SentinelPassword}})
	// Sentinel rewrites its config file with what it learns, so the file
	// is its own, in its own dir.
	s.lead = []string{writeConf(t, s.dir, "sentinel.conf", b.String()), "--sentinel"}
	s.start(t, nil)
	sn.sentinels = append(sn.sentinels, s)
	c := redis.NewSentinelClient(&redis.Options{
		Addr:        s.Addr(),
		Password:    sn.opt.SentinelPassword,
		MaxRetries:  -1,
		DialTimeout: callTimeout,
		ReadTimeout: callTimeout,
	})
	sn.sentinelClients = append(sn.sentinelClients, c)

	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	cmd := redis.NewStatusCmd(ctx, append([]any{"SENTINEL", "DEBUG"}, sentinelDebug(sn.opt.DownAfter)...)...)
	if err := c.Process(ctx, cmd); err != nil {
		t.Fatalf("redistest: SENTINEL DEBUG on %s (Redis 7.0 or later needed): %v", s.Addr(), err)
	}
}

func writeConf(t testing.TB, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatalf("redistest: write %s: %v", path, err)
	}
	return path
}

func (sn *Sentinel) closeClients() {
	for _, c := range sn.nodeClients {
		c.Close()
	}
	for _, c := range sn.sentinelClients {
		c.Close()
	}
}

// URL is go-redis's failover URL for the topology, as accepted by
// redis.ParseFailoverURL: the first sentinel as the host, the others as
// addr parameters. It carries no credentials.
func (sn *Sentinel) URL() string {
	addrs := sn.SentinelAddrs()
	var b strings.Builder
	b.WriteString("redis://" + addrs[0] + "?master_name=" + url.QueryEscape(sn.opt.MasterName))
	for _, a := range addrs[1:] {
		b.WriteString("&addr=" + a)
	}
	return b.String()
}

// SentinelAddrs are the sentinels' host:port addresses.
func (sn *Sentinel) SentinelAddrs() []string {
	addrs := make([]string, len(sn.sentinels))
	for i, s := range sn.sentinels {
		addrs[i] = s.Addr()
	}
	return addrs
}

// MasterName is the name the sentinels monitor the primary under.
func (sn *Sentinel) MasterName() string { return sn.opt.MasterName }

// Nodes are the data nodes, the primary first as started; failovers do not
// reorder them.
func (sn *Sentinel) Nodes() []*Server { return append([]*Server(nil), sn.nodes...) }

// Primary is the data node every sentinel currently names as the primary.
// It waits while the sentinels disagree, as they do in the middle of a
// failover.
func (sn *Sentinel) Primary(t testing.TB) *Server {
	t.Helper()
	var primary *Server
	err := poll(func(ctx context.Context) (err error) {
		primary, err = sn.agreedPrimary(ctx)
		return err
	})
	if err != nil {
		t.Fatalf("redistest: no primary agreed on within %v: %v\n%s", topologyTimeout, err, sn.logTails(sn.sentinels))
	}
	return primary
}

// ReplicaServers are the data nodes other than Primary, in Nodes order,
// whether or not they are running.
func (sn *Sentinel) ReplicaServers(t testing.TB) []*Server {
	t.Helper()
	primary := sn.Primary(t)
	var replicas []*Server
	for _, s := range sn.nodes {
		if s != primary {
			replicas = append(replicas, s)
		}
	}
	return replicas
}

// Failover has a sentinel fail the primary over (SENTINEL FAILOVER, which
// needs no agreement) and returns once the topology has settled again:
// every sentinel names the new primary, the old primary and every other
// running node replicate it in sync, and every sentinel sees them all.
func (sn *Sentinel) Failover(t testing.TB) (old, new *Server) {
	t.Helper()
	old = sn.Primary(t)
	start := time.Now()
	err := poll(func(ctx context.Context) error {
		err := sn.sentinelClients[0].Failover(ctx, sn.opt.MasterName).Err()
		if err != nil && strings.HasPrefix(err.Error(), "INPROG") {
			// An earlier attempt of ours that timed out got through.
			return nil
		}
		// NOGOODSLAVE while the sentinel has yet to hear from a
		// replica; retried.
		return err
	})
	if err != nil {
		t.Fatalf("redistest: SENTINEL FAILOVER %s: %v\n%s", sn.opt.MasterName, err, sn.logTails(sn.sentinels))
	}
	new = sn.WaitNewPrimary(t, old)
	sn.waitTopology(t, new)
	if testing.Verbose() {
		t.Logf("redistest: failover from %s to %s settled in %v", old.Addr(), new.Addr(), time.Since(start).Round(time.Millisecond))
	}
	return old, new
}

// WaitNewPrimary waits until every sentinel names a primary other than old
// and is done failing over to it, and that node answers ROLE as a master,
// and returns it; the test fails with the sentinels' logs if that takes
// longer than a failover should. It is for tests that crash (Kill) or
// freeze (Pause) the primary themselves. The other replicas may still be
// syncing with the new primary when it returns.
func (sn *Sentinel) WaitNewPrimary(t testing.TB, old *Server) *Server {
	t.Helper()
	var primary *Server
	err := poll(func(ctx context.Context) (err error) {
		if primary, err = sn.agreedPrimary(ctx); err != nil {
			return err
		}
		if primary == old {
			return fmt.Errorf("the sentinels still name %s", old.Addr())
		}
		// The leader names the promoted replica while it still
		// reconfigures the others; bringing old back then (Restart)
		// would land in the middle of the failover.
		for i, c := range sn.sentinelClients {
			if err := sn.masterHealthy(ctx, c); err != nil {
				return fmt.Errorf("sentinel %s: %w", sn.sentinels[i].Addr(), err)
			}
		}
		role, err := sn.role(ctx, primary)
		if err != nil {
			return err
		}
		if role.role != "master" {
			return fmt.Errorf("%s, named primary, answers ROLE %s", primary.Addr(), role.role)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("redistest: no new primary in place of %s within %v: %v\n%s", old.Addr(), topologyTimeout, err, sn.logTails(sn.sentinels))
	}
	return primary
}

// waitTopology waits until every other data node replicates primary in
// sync and every sentinel names primary and sees every replica and every
// other sentinel in good health: the state in which a failover can start
// at once.
func (sn *Sentinel) waitTopology(t testing.TB, primary *Server) {
	t.Helper()
	err := poll(func(ctx context.Context) error {
		if err := sn.replicated(ctx, primary); err != nil {
			return err
		}
		for i, c := range sn.sentinelClients {
			if err := sn.sentinelReady(ctx, c, primary); err != nil {
				return fmt.Errorf("sentinel %s: %w", sn.sentinels[i].Addr(), err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("redistest: sentinel topology around %s not ready within %v: %v\n%s",
			primary.Addr(), topologyTimeout, err, sn.logTails(append(sn.Nodes(), sn.sentinels...)))
	}
}

// replicated checks that every other running data node is an online
// replica of primary that has caught up with it. A node that a test has
// killed is left out, so that a failover can follow a replica's crash.
func (sn *Sentinel) replicated(ctx context.Context, primary *Server) error {
	info, err := sn.nodeClients[primary].Info(ctx, "replication").Result()
	if err != nil {
		return fmt.Errorf("INFO replication on %s: %w", primary.Addr(), err)
	}
	fields := infoFields(info)
	if fields["role"] != "master" {
		return fmt.Errorf("%s has role:%s", primary.Addr(), fields["role"])
	}
	online := map[string]bool{}
	for k, v := range fields {
		// slave0:ip=127.0.0.1,port=6380,state=online,offset=42,lag=0
		if !strings.HasPrefix(k, "slave") || !strings.Contains(v, "state=online") {
			continue
		}
		var ip, port string
		for kv := range strings.SplitSeq(v, ",") {
			switch k, v, _ := strings.Cut(kv, "="); k {
			case "ip":
				ip = v
			case "port":
				port = v
			}
		}
		online[net.JoinHostPort(ip, port)] = true
	}
	offset, _ := strconv.ParseInt(fields["master_repl_offset"], 10, 64)
	for _, s := range sn.nodes {
		if s == primary || !s.running() {
			continue
		}
		if !online[s.Addr()] {
			return fmt.Errorf("%s is not an online replica of %s:\n%s", s.Addr(), primary.Addr(), info)
		}
		role, err := sn.role(ctx, s)
		if err != nil {
			return err
		}
		if role.role != "slave" || sn.node(role.primary) != primary || role.state != "connected" {
			return fmt.Errorf("%s answers ROLE %+v, want a connected replica of %s", s.Addr(), role, primary.Addr())
		}
		if role.offset < offset {
			return fmt.Errorf("%s is at offset %d, behind %s at %d", s.Addr(), role.offset, primary.Addr(), offset)
		}
	}
	return nil
}

// sentinelReady checks one sentinel's view: it names primary, and sees
// every other running data node as a replica of it with a working link
// and every other sentinel, none of them down.
func (sn *Sentinel) sentinelReady(ctx context.Context, c *redis.SentinelClient, primary *Server) error {
	name := sn.opt.MasterName
	addr, err := c.GetMasterAddrByName(ctx, name).Result()
	if err != nil {
		return err
	}
	if len(addr) != 2 || sn.node(net.JoinHostPort(addr[0], addr[1])) != primary {
		return fmt.Errorf("names %v as primary, want %s", addr, primary.Addr())
	}
	if err := sn.masterHealthy(ctx, c); err != nil {
		return err
	}
	replicas, err := c.Replicas(ctx, name).Result()
	if err != nil {
		return err
	}
	seen := map[string]map[string]string{}
	for _, r := range replicas {
		seen[r["name"]] = r
	}
	for _, s := range sn.nodes {
		if s == primary || !s.running() {
			continue
		}
		r := seen[s.Addr()]
		if r == nil {
			return fmt.Errorf("does not know replica %s yet", s.Addr())
		}
		if r["flags"] != "slave" || r["master-link-status"] != "ok" || sn.node(net.JoinHostPort(r["master-host"], r["master-port"])) != primary {
			return fmt.Errorf("sees replica %s as flags=%s master-link-status=%s master=%s:%s",
				s.Addr(), r["flags"], r["master-link-status"], r["master-host"], r["master-port"])
		}
	}
	others, err := c.Sentinels(ctx, name).Result()
	if err != nil {
		return err
	}
	healthy := 0
	for _, o := range others {
		if o["flags"] == "sentinel" {
			healthy++
		}
	}
	if healthy != len(sn.sentinels)-1 {
		return fmt.Errorf("sees %d healthy other sentinels of %d known, want %d", healthy, len(others), len(sn.sentinels)-1)
	}
	return nil
}

// masterHealthy checks that a sentinel sees the primary up and is not
// failing it over: its flags are "master" alone, without s_down, o_down or
// failover_in_progress.
func (sn *Sentinel) masterHealthy(ctx context.Context, c *redis.SentinelClient) error {
	m, err := c.Master(ctx, sn.opt.MasterName).Result()
	if err != nil {
		return err
	}
	if m["flags"] != "master" {
		return fmt.Errorf("sees the primary %s:%s with flags %s", m["ip"], m["port"], m["flags"])
	}
	return nil
}

// agreedPrimary is the data node that every sentinel names as the primary.
func (sn *Sentinel) agreedPrimary(ctx context.Context) (*Server, error) {
	var agreed string
	for i, c := range sn.sentinelClients {
		addr, err := c.GetMasterAddrByName(ctx, sn.opt.MasterName).Result()
		if err != nil {
			return nil, fmt.Errorf("sentinel %s: %w", sn.sentinels[i].Addr(), err)
		}
		if len(addr) != 2 {
			return nil, fmt.Errorf("sentinel %s: get-master-addr-by-name answered %v", sn.sentinels[i].Addr(), addr)
		}
		a := net.JoinHostPort(addr[0], addr[1])
		if i > 0 && a != agreed {
			return nil, fmt.Errorf("sentinels disagree: %s names %s, %s names %s", sn.sentinels[0].Addr(), agreed, sn.sentinels[i].Addr(), a)
		}
		agreed = a
	}
	if s := sn.node(agreed); s != nil {
		return s, nil
	}
	return nil, fmt.Errorf("sentinels name %s, which is none of the data nodes", agreed)
}

// node is the data node at addr, its own address or the one PrimaryVia
// returned for it; nil if none.
func (sn *Sentinel) node(addr string) *Server {
	if s := sn.via[addr]; s != nil {
		return s
	}
	for _, s := range sn.nodes {
		if s.Addr() == addr {
			return s
		}
	}
	return nil
}

// role is a data node's answer to ROLE.
type role struct {
	role    string // "master" or "slave"
	primary string // a replica's primary, host:port
	state   string // a replica's link: "connected" once in sync
	offset  int64  // a replica's replication offset
}

func (sn *Sentinel) role(ctx context.Context, s *Server) (role, error) {
	v, err := sn.nodeClients[s].Do(ctx, "ROLE").Slice()
	if err != nil {
		return role{}, fmt.Errorf("ROLE on %s: %w", s.Addr(), err)
	}
	if len(v) == 0 {
		return role{}, fmt.Errorf("ROLE on %s: empty answer", s.Addr())
	}
	r := role{role: fmt.Sprint(v[0])}
	if r.role == "slave" && len(v) >= 5 {
		r.primary = net.JoinHostPort(fmt.Sprint(v[1]), fmt.Sprint(v[2]))
		r.state = fmt.Sprint(v[3])
		r.offset, _ = strconv.ParseInt(fmt.Sprint(v[4]), 10, 64)
	}
	return r, nil
}

// infoFields parses the "key:value" lines of an INFO answer.
func infoFields(info string) map[string]string {
	fields := map[string]string{}
	for line := range strings.Lines(info) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			fields[k] = v
		}
	}
	return fields
}

// poll runs check every topologyPoll, each try within checkTimeout, until
// it succeeds or topologyTimeout passes, and returns check's last error.
func poll(check func(ctx context.Context) error) error {
	deadline := time.Now().Add(topologyTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
		err := check(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(topologyPoll)
	}
}

// logTails is the end of each server's logs, for failure messages.
func (sn *Sentinel) logTails(servers []*Server) string {
	var b strings.Builder
	for _, s := range servers {
		kind := "data node"
		for _, st := range sn.sentinels {
			if st == s {
				kind = "sentinel"
			}
		}
		fmt.Fprintf(&b, "=== %s %s ===\n%s", kind, s.Addr(), s.logTail())
	}
	return b.String()
}
