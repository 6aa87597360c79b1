package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/lockproxy/lockproxy/lockcore"
)

// NewClusterClient returns a go-redis client for a Redis Cluster, from
// go-redis's cluster URL form,
//
//	redis[s]://[user:pass@]node1:7000?addr=node2:7001&addr=node3:7002
//
// (one address is enough: the client learns the others from it). As for
// NewClient, each tune adjusts the options first, and the settings the
// Store depends on come after. go-redis follows MOVED and ASK replies
// itself; every other retry is the Store's (see noRetry).
func NewClusterClient(url string, tune ...func(*redis.ClusterOptions)) (*redis.ClusterClient, error) {
	opt, err := ParseClusterURL(url)
	if err != nil {
		return nil, err
	}
	for _, f := range tune {
		f(opt)
	}
	storeSettings(&opt.MaxRetries, &opt.ContextTimeoutEnabled)
	if opt.MaxRedirects == 0 {
		// A name moving during a reshard meets ASK, then MOVED, and a
		// failover adds READONLY and a reload: more than go-redis's 3.
		opt.MaxRedirects = 8
	}
	opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return redis.NewClusterClient(opt), nil
}

// ParseClusterURL reads go-redis's cluster URL form (see
// NewClusterClient) and refuses the options that would send the Store's
// writes to replicas (read_only, route_by_latency, route_randomly) and a
// database other than 0, which a Cluster does not have. A rediss:// URL's
// TLSConfig checks each node against the host it dials, not against the
// first node's name, as go-redis sets it: one TLSConfig serves them all.
func ParseClusterURL(rawURL string) (*redis.ClusterOptions, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	q := u.Query()
	for _, name := range []string{"read_only", "route_by_latency", "route_randomly"} {
		if q.Has(name) {
			return nil, errors.New("redisstore: " + name + "= is not supported: the Store writes, so every call goes to a primary")
		}
	}
	if db := strings.Trim(u.Path, "/"); db != "" && db != "0" {
		return nil, fmt.Errorf("redisstore: a Cluster has only database 0, not %s", db)
	}
	// go-redis's cluster form takes no path at all.
	u.Path, u.RawPath = "", ""
	opt, err := redis.ParseClusterURL(u.String())
	if err != nil {
		return nil, err
	}
	if opt.TLSConfig != nil {
		opt.TLSConfig.ServerName = ""
	}
	return opt, nil
}

// IsClusterNode asks the server behind rdb whether it is a Redis
// Cluster's node (INFO's cluster_enabled:1).
func IsClusterNode(ctx context.Context, rdb redis.UniversalClient) (bool, error) {
	info, err := rdb.Info(ctx, "cluster").Result()
	if err != nil {
		return false, err
	}
	return infoField(info, "cluster_enabled") == "1", nil
}

// noRetry is a command go-redis sends once: a lost reply comes back to the
// Store, which must know whether a call may have run twice (see run).
// go-redis still follows MOVED and ASK, which say the command did not run.
type noRetry struct{ *redis.Cmd }

func (noRetry) NoRetry() bool { return true }

// evalCmd is EVALSHA (or, with src, EVAL) of sc, sent once.
func evalCmd(ctx context.Context, sc *luaScript, src string, keys []string, args []any) noRetry {
	name, payload := "evalsha", sc.sha
	if src != "" {
		name, payload = "eval", src
	}
	a := make([]any, 0, 3+len(keys)+len(args))
	a = append(a, name, payload, len(keys))
	for _, k := range keys {
		a = append(a, k)
	}
	a = append(a, args...)
	cmd := redis.NewCmd(ctx, a...)
	if len(keys) > 0 {
		cmd.SetFirstKeyPos(3)
	}
	return noRetry{cmd}
}

// busyRetry is the pause before sending again a call that Redis refused
// without running it, with TRYAGAIN (a name's keys are split between two
// nodes for a moment of a reshard) or CLUSTERDOWN (a shard failing over).
const busyRetry = 10 * time.Millisecond

// notRun reports whether err is Redis refusing a call it did not run, and
// would take a moment later.
func notRun(err error) bool {
	return redis.IsTryAgainError(err) || redis.IsClusterDownError(err) ||
		redis.HasErrorPrefix(err, "LOADING") || redis.HasErrorPrefix(err, "MASTERDOWN")
}

// troubled has go-redis look at the Cluster again, in the background,
// after a call failed: a node that does not answer may have been failed
// over, and since the Store's calls are sent once, go-redis would not
// find out by itself for up to 10 seconds. MOVED, which go-redis follows,
// and script errors say nothing of the topology.
func (s *Store) troubled(err error) {
	if s.cluster == nil || err == nil || errors.Is(err, redis.Nil) || errors.Is(err, context.Canceled) {
		return
	}
	var rerr redis.Error
	if errors.As(err, &rerr) && !notRun(err) && !redis.HasErrorPrefix(err, "READONLY") {
		return
	}
	s.cluster.rdb.ReloadState(context.Background())
}

// crc16 is CRC-16/XMODEM, Redis Cluster's key hash.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// keySlot is the hash slot of a key, hash tags included.
func keySlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16(key) % lockcore.Slots)
}

// tagFor returns a short hash tag whose keys land in slot.
func tagFor(slot int) string {
	for i := 0; ; i++ {
		tag := strconv.FormatInt(int64(i), 36)
		if int(crc16(tag)%lockcore.Slots) == slot {
			return tag
		}
	}
}

// Slot implements lockcore.Slotter: every key of name is in this slot.
func (s *Store) Slot(name string) int { return keySlot(s.keys(name).lock) }

// shardKeys are the keys of one shard's own, in one of its slots: its
// epoch, its state hash (see note_state in lib.lua) and its announced
// quiet period. Every sidecar picks the same slot, the shard's highest:
// reshards (redis-cli's, at least) take a shard's slots from its lowest
// up, so the keys move last. skip passes over that many slots below it,
// for when it is migrating.
type shardKeys struct{ epoch, state, quiet string }

func (s *Store) shardKeys(slots []lockcore.SlotRange, skip int) shardKeys {
	hi := -1
	for _, r := range slots {
		hi = max(hi, r.Last)
	}
	for ; skip > 0 && hi >= 0; skip-- {
		hi = prevSlot(slots, hi)
	}
	if hi < 0 {
		return shardKeys{}
	}
	p := s.prefix + "shard:{" + tagFor(hi) + "}:"
	return shardKeys{epoch: p + "epoch", state: p + "state", quiet: p + "quiet"}
}

// prevSlot is the highest slot of slots below slot, or -1.
func prevSlot(slots []lockcore.SlotRange, slot int) int {
	best := -1
	for _, r := range slots {
		if r.First < slot {
			best = max(best, min(r.Last, slot-1))
		}
	}
	return best
}

// view is the Cluster as CheckUpstream last accepted it: which shard owns
// each slot, and what a grant there is checked against.
type view struct {
	ranges []ownedRange // sorted by First
	byNode map[string]*shardView
}

type ownedRange struct {
	lockcore.SlotRange
	shard *shardView
}

// shardView is one accepted shard: its primary, and its epoch key and the
// epoch accepted in it, which every grant checks in the same script.
type shardView struct {
	node  string
	keys  shardKeys
	epoch string
}

func newView(shards []lockcore.Shard, keys func(lockcore.Shard) shardKeys) *view {
	v := &view{byNode: make(map[string]*shardView, len(shards))}
	for _, sh := range shards {
		sv := &shardView{node: sh.Node, keys: keys(sh), epoch: sh.Data}
		v.byNode[sh.Node] = sv
		for _, r := range sh.Slots {
			v.ranges = append(v.ranges, ownedRange{r, sv})
		}
	}
	sort.Slice(v.ranges, func(i, j int) bool { return v.ranges[i].First < v.ranges[j].First })
	return v
}

// owner is the accepted shard of slot, or nil.
func (v *view) owner(slot int) *shardView {
	i := sort.Search(len(v.ranges), func(i int) bool { return v.ranges[i].Last >= slot })
	if i < len(v.ranges) && v.ranges[i].First <= slot {
		return v.ranges[i].shard
	}
	return nil
}

// shardArgs are the acquire script's cluster arguments for sv (ARGV[9]
// to ARGV[12] in acquire.lua): the primary it must run on, its epoch key
// and accepted epoch, and its state hash.
func shardArgs(sv *shardView) []any {
	return []any{sv.node, sv.keys.epoch, sv.epoch, sv.keys.state}
}

// stateArg is the state hash argument of a script that only records in
// it (renew, release, transfer): "" when name's shard is not known yet;
// none but on a Cluster, where the hash is not among the script's keys.
func (s *Store) stateArg(name string) []any {
	if s.cluster == nil {
		return nil
	}
	if v := s.view.Load(); v != nil {
		if sv := v.owner(s.Slot(name)); sv != nil {
			return []any{sv.keys.state}
		}
	}
	return []any{""}
}

// viewChanged returns a channel closed by the next Accept.
func (s *Store) viewChanged() <-chan struct{} {
	s.viewMu.Lock()
	defer s.viewMu.Unlock()
	return s.nextView
}

// acceptShards implements Accept on a Cluster.
func (s *Store) acceptShards(h lockcore.Health) {
	s.cluster.mu.Lock()
	v := newView(h.Shards, func(sh lockcore.Shard) shardKeys {
		if seen, ok := s.cluster.seen[sh.Node]; ok {
			return seen.keys // where Health read its epoch
		}
		return s.shardKeys(sh.Slots, 0)
	})
	s.view.Store(v)
	for _, sh := range h.Shards {
		s.cluster.accepted[sh.Node] = sh.ID
	}
	for node := range s.cluster.accepted {
		if _, ok := v.byNode[node]; !ok {
			delete(s.cluster.accepted, node)
		}
	}
	for node, id := range s.cluster.changed {
		if s.cluster.accepted[node] == id {
			delete(s.cluster.changed, node)
		}
	}
	s.cluster.mu.Unlock()
	s.viewMu.Lock()
	close(s.nextView)
	s.nextView = make(chan struct{})
	s.viewMu.Unlock()
}

// clusterState is what the Store keeps of a Cluster between checks.
type clusterState struct {
	rdb *redis.ClusterClient

	mu sync.Mutex
	// accepted is each accepted primary's run_id, by node id; nodeAt the
	// node last seen at each address; changed, by node id, the run_id a
	// new connection to it found when it was not the accepted one: that
	// primary restarted, and grants through it wait for CheckUpstream.
	accepted map[string]string
	nodeAt   map[string]string
	changed  map[string]string
	// seen is what Health last read of each primary, by node id.
	seen map[string]epochSeen
}

// epochSeen is one primary's epoch as Health last read it, and where.
type epochSeen struct {
	keys         shardKeys
	value, runID string
}

func newClusterState(rdb *redis.ClusterClient) *clusterState {
	return &clusterState{rdb: rdb, accepted: map[string]string{}, nodeAt: map[string]string{},
		changed: map[string]string{}, seen: map[string]epochSeen{}}
}

// checkNode notes a new connection to addr that finds a primary's process
// other than the accepted one: it restarted.
func (c *clusterState) checkNode(ctx context.Context, addr string, cn *redis.Conn, onReset func()) {
	c.mu.Lock()
	node, ok := c.nodeAt[addr]
	want, accepted := c.accepted[node]
	c.mu.Unlock()
	if !ok || !accepted {
		return
	}
	info, err := cn.Info(ctx, "server").Result()
	if err != nil {
		return
	}
	if id := infoField(info, "run_id"); id != "" && id != want {
		c.mu.Lock()
		_, was := c.changed[node]
		c.changed[node] = id
		c.mu.Unlock()
		if !was {
			onReset()
		}
	}
}

// restarted reports whether sv's primary was found restarted since it was
// accepted.
func (c *clusterState) restarted(sv *shardView) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.changed[sv.node]
	return ok
}

// clusterHealth is Health on a Cluster: CLUSTER SHARDS for who owns what,
// then each primary's run_id and epoch, in one round trip per primary,
// all at once.
func (s *Store) clusterHealth(ctx context.Context) (lockcore.Health, error) {
	c := s.cluster
	shards, err := c.rdb.ClusterShards(ctx).Result()
	if err != nil {
		return lockcore.Health{}, fmt.Errorf("CLUSTER SHARDS: %w", err)
	}
	out := make([]lockcore.Shard, 0, len(shards))
	for _, cs := range shards {
		if len(cs.Slots) == 0 {
			continue
		}
		sh := lockcore.Shard{}
		for _, r := range cs.Slots {
			sh.Slots = append(sh.Slots, lockcore.SlotRange{First: int(r.Start), Last: int(r.End)})
		}
		var primary *redis.Node
		for i, n := range cs.Nodes {
			sh.Group = append(sh.Group, n.ID)
			if n.Role == "master" {
				primary = &cs.Nodes[i]
			}
		}
		if primary == nil {
			sh.Err = errors.New("no primary")
		} else {
			sh.Node = primary.ID
		}
		out = append(out, sh)
	}
	var wg sync.WaitGroup
	for i := range out {
		if out[i].Err != nil {
			continue
		}
		wg.Go(func() { s.shardHealth(ctx, &out[i]) })
	}
	wg.Wait()
	checked := 0
	for _, sh := range out {
		if sh.Err == nil {
			checked++
		}
	}
	if checked == 0 && len(out) > 0 {
		err := fmt.Errorf("no shard of the Cluster answered: %w", out[0].Err)
		msg := err.Error()
		s.lastHealthErr.Store(&msg)
		return lockcore.Health{}, err
	}
	s.lastHealthErr.Store(nil)
	return lockcore.Health{Shards: out}, nil
}

// shardHealth reads one shard's primary: who it is, its epoch (carried to
// its new key when the key's slot moved away from a primary that did not
// restart), its announced quiet period and its state hash. When the slot
// of those keys is migrating, the next slot down serves.
func (s *Store) shardHealth(ctx context.Context, sh *lockcore.Shard) {
	for skip := 0; ; skip++ {
		moved := s.readShard(ctx, sh, s.shardKeys(sh.Slots, skip))
		if !moved || skip == 3 {
			return
		}
		sh.Err = nil
	}
}

// readShard is one try of shardHealth, with keys; moved reports that
// their slot is migrating or gone.
func (s *Store) readShard(ctx context.Context, sh *lockcore.Shard, keys shardKeys) (moved bool) {
	c := s.cluster
	if keys.epoch == "" {
		sh.Err = errors.New("no slot to keep its epoch in")
		return false
	}
	node, err := c.rdb.MasterForKey(ctx, keys.epoch)
	if err != nil {
		sh.Err = err
		s.troubled(err)
		return false
	}
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	c.mu.Lock()
	prev, seen := c.seen[sh.Node]
	c.mu.Unlock()
	var info, myID, epoch *redis.StringCmd
	var quiet *redis.DurationCmd
	var state *redis.SliceCmd
	var now *redis.TimeCmd
	_, err = node.Pipelined(ctx, func(p redis.Pipeliner) error {
		info = p.Info(ctx, "server", "replication")
		myID = p.ClusterMyID(ctx)
		p.SetNX(ctx, keys.epoch, hex.EncodeToString(nonce[:]), 0)
		epoch = p.Get(ctx, keys.epoch)
		quiet = p.PTTL(ctx, keys.quiet)
		state = p.HMGet(ctx, keys.state, "fence", "hwm")
		now = p.Time(ctx)
		return nil
	})
	if err == nil && myID.Val() != sh.Node {
		// go-redis has not followed the change yet.
		c.rdb.ReloadState(ctx)
		err = fmt.Errorf("the client reached node %s for the slots of primary %s", myID.Val(), sh.Node)
	}
	if err != nil {
		sh.Err = err
		s.troubled(err)
		if redis.HasErrorPrefix(err, "MOVED") {
			// The slot has another owner than go-redis thinks: a failover.
			c.rdb.ReloadState(ctx)
			return false
		}
		return redis.HasErrorPrefix(err, "ASK") || redis.HasErrorPrefix(err, "TRYAGAIN")
	}
	runID := infoField(info.Val(), "run_id")
	value := epoch.Val()
	if seen && prev.keys.epoch != keys.epoch && prev.runID == runID && prev.value != value {
		// The slot of its epoch key moved away and the primary did not
		// restart, so its data set is the one it was: say so in its new
		// key, where every sidecar reads it from now on.
		if err := node.Set(ctx, keys.epoch, prev.value, 0).Err(); err != nil {
			sh.Err = err
			return false
		}
		value = prev.value
	}
	c.mu.Lock()
	c.seen[sh.Node] = epochSeen{keys: keys, value: value, runID: runID}
	c.nodeAt[node.Options().Addr] = sh.Node
	c.mu.Unlock()
	sh.ID, sh.Data = runID, value
	s.readQuietAndState(&sh.Health, quiet, state, now)
	return false
}

// shardOf is the accepted shard with node id, for Invalidate and
// AnnounceQuiet.
func (s *Store) shardOf(node string) (*shardView, error) {
	if v := s.view.Load(); v != nil {
		if sv := v.byNode[node]; sv != nil {
			return sv, nil
		}
	}
	return nil, fmt.Errorf("redisstore: no accepted shard has primary %s", node)
}

// clusterClient wires a ClusterClient's node clients to the Store: each
// new connection checks the primary behind it (see checkNode).
func (s *Store) watchNodes(rdb *redis.ClusterClient) {
	rdb.OnNewNode(func(node *redis.Client) {
		o := node.Options()
		addr, prev := o.Addr, o.OnConnect
		o.OnConnect = func(ctx context.Context, cn *redis.Conn) error {
			if prev != nil {
				if err := prev(ctx, cn); err != nil {
					return err
				}
			}
			s.cluster.checkNode(ctx, addr, cn, s.onReset)
			return nil
		}
	})
}
