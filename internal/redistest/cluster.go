package redistest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// ClusterOptions shape a Cluster.
type ClusterOptions struct {
	Masters  int // ≥ 1; default 3
	Replicas int // replicas of each master
	// NodeTimeout is cluster-node-timeout: how long a master may not answer
	// before its replica takes over. Default 2s.
	NodeTimeout time.Duration
	Args        []string // more redis-server arguments, for every node
	// PortArgs are more port arguments for every node, each given a free
	// port of its own (see Options.PortArgs): {"--tls-port"} for a Cluster
	// over TLS, with "--tls-cluster", "yes" in Args.
	PortArgs []string
}

// Cluster is a Redis Cluster of masters and their replicas, each a Server
// owned by one test.
type Cluster struct {
	// Nodes are the masters, in slot order, then the replicas, as started:
	// a failover changes which is which.
	Nodes []*Server
	opt   ClusterOptions
	ids   map[*Server]string
}

// clusterSlots is how many hash slots a Redis Cluster has.
const clusterSlots = 16384

// StartCluster runs n redis-server masters (n ≥ 1) with cluster mode on,
// splits the hash slots between them, joins them, and returns once every
// node says the cluster is ok. The nodes stop in t.Cleanup.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	return StartClusterWith(t, ClusterOptions{Masters: n})
}

// StartClusterWith runs a Cluster shaped by opt: the masters split the
// slots, each replica follows its master (replica i the master i modulo
// their number), and it returns once every node says the cluster is ok
// and every master counts its replicas as online.
func StartClusterWith(t testing.TB, opt ClusterOptions) *Cluster {
	t.Helper()
	if opt.Masters <= 0 {
		opt.Masters = 3
	}
	if opt.NodeTimeout <= 0 {
		opt.NodeTimeout = 2 * time.Second
	}
	c := &Cluster{opt: opt, ids: map[*Server]string{}}
	total := opt.Masters * (1 + opt.Replicas)
	for range total {
		c.Nodes = append(c.Nodes, Start(t, Options{PortArgs: opt.PortArgs, Args: append([]string{
			"--cluster-enabled", "yes",
			// Relative to the server's own --dir, so it survives Restart.
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", strconv.FormatInt(opt.NodeTimeout.Milliseconds(), 10),
			// A replica's first sync should not wait 5 s for more replicas.
			"--repl-diskless-sync-delay", "0",
		}, opt.Args...)}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), topologyTimeout)
	defer cancel()
	for _, s := range c.Nodes {
		c.ids[s] = c.do(t, ctx, s, "CLUSTER", "MYID").(string)
	}
	for i, s := range c.Nodes[:opt.Masters] {
		lo, hi := i*clusterSlots/opt.Masters, (i+1)*clusterSlots/opt.Masters-1
		c.do(t, ctx, s, "CLUSTER", "ADDSLOTSRANGE", lo, hi)
	}
	// Over TLS (tls-cluster), a node's bus listens 10,000 above its TLS
	// port, which MEET is then given.
	meetPort := c.Nodes[0].port
	if i := slices.Index(opt.Args, "--tls-cluster"); i >= 0 && i+1 < len(opt.Args) && opt.Args[i+1] == "yes" {
		meetPort = c.Nodes[0].Port("--tls-port")
	}
	for _, s := range c.Nodes[1:] {
		c.do(t, ctx, s, "CLUSTER", "MEET", "127.0.0.1", meetPort)
	}
	// A replica can follow its master once gossip has told it of it.
	for i, s := range c.Nodes[opt.Masters:] {
		master := c.Nodes[i%opt.Masters]
		c.await(t, "replica "+s.Addr()+" follows "+master.Addr(), func(ctx context.Context) error {
			return s.do(ctx, "CLUSTER", "REPLICATE", c.ids[master]).Err()
		})
	}
	c.WaitHealthy(t)
	return c
}

// do runs one command on s and fails the test on error.
func (c *Cluster) do(t testing.TB, ctx context.Context, s *Server, args ...any) any {
	t.Helper()
	v, err := s.do(ctx, args...).Result()
	if err != nil {
		t.Fatalf("redistest: %v on %s: %v", args, s.Addr(), err)
	}
	return v
}

// do runs one command on s with a throwaway connection.
func (s *Server) do(ctx context.Context, args ...any) *redis.Cmd {
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr(), Password: s.pass, MaxRetries: -1})
	defer rdb.Close()
	return rdb.Do(ctx, args...)
}

// await runs check until it succeeds (see poll), and fails the test with
// what and the last error if it does not.
func (c *Cluster) await(t testing.TB, what string, check func(ctx context.Context) error) {
	t.Helper()
	if err := poll(check); err != nil {
		t.Fatalf("redistest: %s: not within %v: %v\n%s", what, topologyTimeout, err, c.logTails())
	}
}

// WaitHealthy returns once every running node says the cluster is ok,
// every running node agrees on who owns each slot, and each primary counts
// every running replica of its shard as online.
func (c *Cluster) WaitHealthy(t testing.TB) {
	t.Helper()
	c.await(t, "cluster healthy", c.healthy)
}

func (c *Cluster) healthy(ctx context.Context) error {
	var want string
	for _, s := range c.running() {
		info, err := s.do(ctx, "CLUSTER", "INFO").Text()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "cluster_state:ok") {
			return fmt.Errorf("%s: not ok: %s", s.Addr(), info)
		}
		owners, err := c.owners(ctx, s)
		if err != nil {
			return err
		}
		if want == "" {
			want = owners
		} else if owners != want {
			return fmt.Errorf("%s sees owners %s, another node %s", s.Addr(), owners, want)
		}
	}
	for _, s := range c.running() {
		info, err := s.do(ctx, "INFO", "replication").Text()
		if err != nil {
			return err
		}
		f := infoFields(info)
		switch f["role"] {
		case "master":
			n := 0
			for _, r := range c.running() {
				if r != s && c.shardOfNode(ctx, r) == c.ids[s] {
					n++
				}
			}
			if online := strings.Count(info, ",state=online,"); online < n {
				return fmt.Errorf("%s has %d of %d replicas online", s.Addr(), online, n)
			}
		case "slave":
			if f["master_link_status"] != "up" {
				return fmt.Errorf("replica %s: link to its master is %s", s.Addr(), f["master_link_status"])
			}
		}
	}
	return nil
}

// shardOfNode is the id of the master s replicates, or s's own when it is
// one ("" when unknown).
func (c *Cluster) shardOfNode(ctx context.Context, s *Server) string {
	v, err := s.do(ctx, "ROLE").Slice()
	if err != nil || len(v) == 0 {
		return ""
	}
	if v[0] == "master" {
		return c.ids[s]
	}
	if len(v) >= 3 {
		addr := fmt.Sprintf("%v:%v", v[1], v[2])
		for srv, id := range c.ids {
			if srv.Addr() == addr {
				return id
			}
		}
	}
	return ""
}

// owners is s's view of who owns which slots, as text to compare.
func (c *Cluster) owners(ctx context.Context, s *Server) (string, error) {
	shards, err := clusterShards(ctx, s)
	if err != nil {
		return "", err
	}
	var parts []string
	for _, sh := range shards {
		for _, n := range sh.Nodes {
			if n.Role == "master" && len(sh.Slots) > 0 {
				parts = append(parts, fmt.Sprintf("%v=%s", sh.Slots, n.ID))
			}
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, " "), nil
}

func clusterShards(ctx context.Context, s *Server) ([]redis.ClusterShard, error) {
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr(), Password: s.pass, MaxRetries: -1})
	defer rdb.Close()
	return rdb.ClusterShards(ctx).Result()
}

// running are the nodes not killed.
func (c *Cluster) running() []*Server {
	var out []*Server
	for _, s := range c.Nodes {
		if s.running() {
			out = append(out, s)
		}
	}
	return out
}

// ID is s's cluster node id.
func (c *Cluster) ID(s *Server) string { return c.ids[s] }

// Primary is the node that serves slot now, as the first running node
// sees it.
func (c *Cluster) Primary(t testing.TB, slot int) *Server {
	t.Helper()
	var p *Server
	c.await(t, "primary of slot "+strconv.Itoa(slot), func(ctx context.Context) error {
		shards, err := clusterShards(ctx, c.running()[0])
		if err != nil {
			return err
		}
		for _, sh := range shards {
			for _, r := range sh.Slots {
				if int(r.Start) <= slot && slot <= int(r.End) {
					for _, n := range sh.Nodes {
						if n.Role == "master" {
							if p = c.byID(n.ID); p != nil {
								return nil
							}
						}
					}
				}
			}
		}
		return fmt.Errorf("no primary for slot %d", slot)
	})
	return p
}

// SlotsOf are the slot ranges, first and last, that primary serves now.
func (c *Cluster) SlotsOf(t testing.TB, primary *Server) [][2]int {
	t.Helper()
	var out [][2]int
	c.await(t, "slots of "+primary.Addr(), func(ctx context.Context) error {
		out = out[:0]
		shards, err := clusterShards(ctx, primary)
		if err != nil {
			return err
		}
		for _, sh := range shards {
			for _, n := range sh.Nodes {
				if n.ID == c.ids[primary] && n.Role == "master" {
					for _, r := range sh.Slots {
						out = append(out, [2]int{int(r.Start), int(r.End)})
					}
				}
			}
		}
		if len(out) == 0 {
			return errors.New("it serves none")
		}
		return nil
	})
	return out
}

// Primaries are the nodes that are masters with slots now.
func (c *Cluster) Primaries(t testing.TB) []*Server {
	t.Helper()
	var out []*Server
	c.await(t, "primaries", func(ctx context.Context) error {
		out = out[:0]
		shards, err := clusterShards(ctx, c.running()[0])
		if err != nil {
			return err
		}
		for _, sh := range shards {
			for _, n := range sh.Nodes {
				if n.Role == "master" && len(sh.Slots) > 0 {
					out = append(out, c.byID(n.ID))
				}
			}
		}
		return nil
	})
	return out
}

// ReplicaOf is a running replica of primary.
func (c *Cluster) ReplicaOf(t testing.TB, primary *Server) *Server {
	t.Helper()
	var r *Server
	c.await(t, "a replica of "+primary.Addr(), func(ctx context.Context) error {
		for _, s := range c.running() {
			if s != primary && c.shardOfNode(ctx, s) == c.ids[primary] {
				r = s
				return nil
			}
		}
		return errors.New("none")
	})
	return r
}

func (c *Cluster) byID(id string) *Server {
	for s, sid := range c.ids {
		if sid == id {
			return s
		}
	}
	return nil
}

// Failover has replica take over from its master with CLUSTER FAILOVER (a
// coordinated one: the master stops taking writes until the replica has
// all of them), and returns once the cluster is healthy again.
func (c *Cluster) Failover(t testing.TB, replica *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	defer cancel()
	c.do(t, ctx, replica, "CLUSTER", "FAILOVER")
	asked := time.Now()
	c.await(t, replica.Addr()+" takes over", func(ctx context.Context) error {
		if id := c.shardOfNode(ctx, replica); id != c.ids[replica] {
			if time.Since(asked) > manualFailoverTimeout {
				// Redis gave the request up (on a loaded machine the
				// replica may not catch up in time): ask again.
				if err := replica.do(ctx, "CLUSTER", "FAILOVER").Err(); err != nil {
					return err
				}
				asked = time.Now()
			}
			return fmt.Errorf("%s still follows %s", replica.Addr(), id)
		}
		return c.healthy(ctx)
	})
}

// manualFailoverTimeout is a little over the time Redis gives a CLUSTER
// FAILOVER before it aborts it (CLUSTER_MF_TIMEOUT, 5 s).
const manualFailoverTimeout = 6 * time.Second

// WaitTakeover returns the node that took over old's slots after old was
// killed, once the running nodes agree on it and the cluster is ok.
func (c *Cluster) WaitTakeover(t testing.TB, old *Server) *Server {
	t.Helper()
	var took *Server
	c.await(t, "a replica takes over from "+old.Addr(), func(ctx context.Context) error {
		for _, s := range c.running() {
			info, err := s.do(ctx, "INFO", "replication").Text()
			if err != nil {
				return err
			}
			if infoFields(info)["role"] == "master" && c.hadReplicaOf(s, old) {
				took = s
				return c.healthy(ctx)
			}
		}
		return errors.New("no replica of it is a master yet")
	})
	return took
}

// hadReplicaOf reports whether s was started as a replica of old's shard.
func (c *Cluster) hadReplicaOf(s, old *Server) bool {
	i, j := slices.Index(c.Nodes, s), slices.Index(c.Nodes, old)
	return i != j && i%c.opt.Masters == j%c.opt.Masters
}

// Restart restarts s on its port and waits for the cluster to be
// healthy again. Without persistence, which these servers run without,
// s comes back empty but for its cluster config (nodes.conf).
func (c *Cluster) Restart(t testing.TB, s *Server) {
	t.Helper()
	s.Restart(t)
	c.WaitHealthy(t)
}

// MigrateSlots moves slots to the primary to, one slot at a time as
// redis-cli --cluster reshard does: the target imports, the source
// migrates, keys move in batches of 10 with MIGRATE, and every primary is
// told the new owner. between, when set, runs after each batch of keys, so
// a test can act while a slot is half moved.
func (c *Cluster) MigrateSlots(t testing.TB, slots []int, to *Server, between func()) {
	t.Helper()
	// Each call gets its own deadline: the whole takes as long as the
	// machine needs, which under load is long.
	call := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), migrateCallTimeout)
	}
	ctx, cancel := call()
	owner := map[int]*Server{}
	primaries := c.Primaries(t)
	shards, err := clusterShards(ctx, to)
	cancel()
	if err != nil {
		t.Fatalf("redistest: CLUSTER SHARDS on %s: %v", to.Addr(), err)
	}
	for _, sh := range shards {
		for _, n := range sh.Nodes {
			if n.Role != "master" {
				continue
			}
			for _, r := range sh.Slots {
				for i := r.Start; i <= r.End; i++ {
					owner[int(i)] = c.byID(n.ID)
				}
			}
		}
	}
	clients := map[*Server]*redis.Client{}
	rc := func(s *Server) *redis.Client {
		if clients[s] == nil {
			clients[s] = redis.NewClient(&redis.Options{Addr: s.Addr(), Password: s.pass, MaxRetries: -1})
		}
		return clients[s]
	}
	defer func() {
		for _, r := range clients {
			r.Close()
		}
	}()
	do := func(s *Server, args ...any) *redis.Cmd {
		ctx, cancel := call()
		defer cancel()
		return rc(s).Do(ctx, args...)
	}
	must := func(s *Server, args ...any) any {
		v, err := do(s, args...).Result()
		if err != nil && !errors.Is(err, redis.Nil) && err.Error() != "NOKEY" {
			t.Fatalf("redistest: %v on %s: %v", args, s.Addr(), err)
		}
		return v
	}
	toID := c.ids[to]
	for _, slot := range slots {
		from := owner[slot]
		if from == nil || from == to {
			continue
		}
		must(to, "CLUSTER", "SETSLOT", slot, "IMPORTING", c.ids[from])
		must(from, "CLUSTER", "SETSLOT", slot, "MIGRATING", toID)
		for {
			keys, err := do(from, "CLUSTER", "GETKEYSINSLOT", slot, 10).StringSlice()
			if err != nil {
				t.Fatalf("redistest: GETKEYSINSLOT %d on %s: %v", slot, from.Addr(), err)
			}
			if len(keys) == 0 {
				break
			}
			args := []any{"MIGRATE", "127.0.0.1", to.port, "", 0, 5000}
			if from.pass != "" {
				args = append(args, "AUTH", from.pass)
			}
			args = append(args, "KEYS")
			for _, k := range keys {
				args = append(args, k)
			}
			must(from, args...)
			if between != nil {
				between()
			}
		}
		// The target first, so that the source's MOVED points where the
		// keys are; then every other primary, as redis-cli does.
		must(to, "CLUSTER", "SETSLOT", slot, "NODE", toID)
		// A source that gave away its last slot may already have turned
		// into the target's replica (cluster-allow-replica-migration),
		// which takes no SETSLOT: it knows.
		if err := do(from, "CLUSTER", "SETSLOT", slot, "NODE", toID).Err(); err != nil && !strings.Contains(err.Error(), "only with masters") {
			t.Fatalf("redistest: SETSLOT %d NODE on %s: %v", slot, from.Addr(), err)
		}
		for _, s := range primaries {
			if s != to && s != from {
				_ = do(s, "CLUSTER", "SETSLOT", slot, "NODE", toID).Err()
			}
		}
		owner[slot] = to
	}
}

// migrateCallTimeout bounds each call of MigrateSlots.
const migrateCallTimeout = 10 * time.Second

// Addrs are every node's host:port address, replicas too.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		addrs[i] = s.Addr()
	}
	return addrs
}

// URL is go-redis's cluster URL form for lockproxy's LOCKPROXY_UPSTREAM:
// the first node, and the others as addr= options.
func (c *Cluster) URL() string {
	q := url.Values{}
	for _, a := range c.Addrs()[1:] {
		q.Add("addr", a)
	}
	u := url.URL{Scheme: "redis", Host: c.Nodes[0].Addr(), RawQuery: q.Encode()}
	return u.String()
}

// Client returns a cluster client, closed in t.Cleanup.
func (c *Cluster) Client(t testing.TB) *redis.ClusterClient {
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// logTails is the end of each node's log, for failure messages.
func (c *Cluster) logTails() string {
	var b strings.Builder
	for _, s := range c.Nodes {
		fmt.Fprintf(&b, "=== node %s ===\n%s", s.Addr(), s.logTail())
	}
	return b.String()
}
