package lockcore

import (
	"context"
	"io"
	"time"
)

// Store keeps lock records and, for each name, a queue of waiters in
// arrival order, shared by every sidecar on the store. Every method must be
// atomic, and idempotent per token: a call repeated after a lost reply has
// the same effect as one call.
//
// A token is "<fence>:<nonce>". Renew and Release also accept a nonce-only
// token ":<nonce>", which matches whatever fence the store assigned to that
// nonce; the session uses it to clean up after an acquire whose reply was
// lost and whose fence it therefore never learned.
//
// A revoked lock (see Revoke) stays held under RevokedToken(token), which
// no client has: its old token no longer renews, releases or acquires it,
// and only the holder's sidecar, which knows the token, releases it.
//
// A waiter is an id unique among all sidecars. While a waiter is queued for
// a name, a free lock goes only to the first live waiter; a waiter stays
// live while its sidecar keeps it alive (KeepAlive), so a crashed sidecar's
// waiters drop out of every queue within their waiter ttl.
type Store interface {
	// Acquire takes req.Name for req.TTL when it is free and no earlier
	// waiter is queued. When the name is already held under req.Nonce (a
	// retried call, or a grant a release made to the waiter), it returns
	// that token as it is, with the time it has left: it does not extend
	// a grant that its sidecar may never have learned of. Otherwise a
	// request with a Waiter joins the queue (or keeps its place).
	Acquire(ctx context.Context, req AcquireRequest) (Grant, error)
	// Renew sets the ttl of req.Name to req.TTL from now if req.Token holds
	// it. A Foreign renewal may lengthen the ttl, never shorten it: the
	// holder vouches for the lock until a validity computed from the ttl it
	// set itself.
	Renew(ctx context.Context, req RenewRequest) (Renewed, error)
	// Revoke is a release by a connection that is not the holder's, when
	// the holder is a client of another sidecar, req.Holder. The lock stays
	// held, under RevokedToken(req.Token), and req.Holder is told (see
	// WatchRevokes): it ends the lease, tells its client, and then releases
	// the lock. If it never does, the lock expires by its ttl, no sooner
	// than its holder's validity. Revoke reports false when req.Token does
	// not hold the lock (or no longer does: a second revoke is false).
	Revoke(ctx context.Context, req RevokeRequest) (bool, error)
	// WatchRevokes calls revoked with each lock that Revoke took from a
	// client of sidecar id, until stop. Revocations sent while the watch
	// is broken are lost; the holder's next renewal finds the lock revoked.
	// revoked must not block.
	WatchRevokes(ctx context.Context, id string, revoked func(name, token string)) (stop func(), err error)
	// Release frees req.Name if req.Token holds it, and hands it on: to
	// req.Next in the same step when Next is the first live waiter; else,
	// when req.GrantTTL is set, to the first live waiter of another sidecar,
	// for GrantTTL until its sidecar renews it, sending that sidecar the
	// token (see Watch); else by waking that sidecar.
	Release(ctx context.Context, req ReleaseRequest) (Released, error)
	// Transfer passes a lock held by req.From straight to a waiter as
	// req.To, whose fence is From's + 1, and takes the waiter out of the
	// queue. It fails (OK false) when From no longer holds the lock.
	Transfer(ctx context.Context, req TransferRequest) (Transferred, error)
	// ReleaseAll is Release for several locks, in as few round trips as the
	// store allows. It is used when a connection closes. Results are in
	// request order; a request that failed has a zero Released and err is set.
	ReleaseAll(ctx context.Context, reqs []ReleaseRequest) ([]Released, error)
	// Leave takes waiter out of name's queue, waking the next waiter if it
	// was first and the lock is free.
	Leave(ctx context.Context, name, waiter string) error
	// KeepAlive extends the life of this sidecar's waiters on name by ttl.
	KeepAlive(ctx context.Context, name string, waiters []string, ttl time.Duration) error
	// Watch calls wake whenever the store wakes a waiter of name: after a
	// release on any sidecar, or when a try finds the lock free but
	// reserved, and with news of who is first. A zero Wake means wakes may
	// have been missed (a reconnect), so every waiter should try again.
	// Watch returns once wakes flow; stop ends them, without blocking.
	// wake must not block.
	Watch(ctx context.Context, name string, wake func(Wake)) (stop func(), err error)
	// Inspect reports who holds name, without changing anything.
	Inspect(ctx context.Context, name string) (State, error)
	// Notify sends sidecar the message a WatchRevokes of its id passes on
	// as (name, token), as a revocation would, without changing anything:
	// sidecars use it to ask each other about their holders (token "?who")
	// and to answer ("!who"). Lost when the sidecar is not watching.
	Notify(ctx context.Context, sidecar, name, token string) error
	// List reports the names held or waited for whose name match accepts,
	// at most count of them, in no promised order, looking at a bounded
	// part of the store (see ListScanBudget): an admin's view, not a
	// snapshot.
	List(ctx context.Context, match func(name string) bool, count int) ([]Listed, error)
	// Close releases the store's resources. Leases in it are left to expire.
	io.Closer
}

// Upstream is the supervision side of a store: who it is, and what can
// make it lose locks. CheckUpstream uses it; a store that can tell it
// restarted implements it.
type Upstream interface {
	// Health reports who the store is now, and any quiet period a sidecar
	// has announced (see AnnounceQuiet). A changed ID means the store
	// restarted or another server took over: it may have forgotten locks.
	Health(ctx context.Context) (Health, error)
	// Accept is told that the caller has dealt with the store being the
	// one h describes (it has checked that the store kept this sidecar's
	// locks, or declared them lost). A store that can tell may refuse
	// grants while its data is not h.Data.
	Accept(h Health)
	// Invalidate marks the store's data as lost for every sidecar: it gets
	// a new Health Data, so each stops granting until it has dealt with
	// that. A sidecar calls it when it finds a lock it acknowledged missing
	// after a restart or failover that claimed to keep the data. shard is
	// the Node of the one Shard whose data it means, "" for a whole store.
	Invalidate(ctx context.Context, shard string) error
	// AnnounceQuiet tells every sidecar, including ones started later, that
	// no lock may be granted for d: in shard (a Shard's Node), or in the
	// whole store when shard is "".
	AnnounceQuiet(ctx context.Context, shard string, d time.Duration) error
	// Risks reports settings of the store that can lose locks.
	Risks(ctx context.Context) ([]Risk, error)
	// Persistence says what of its data the store keeps across a restart:
	// aof-always (every acknowledged write, even after kill -9),
	// aof-everysec, aof-no, rdb, none, unknown (it would not say), or
	// embedded (the process is the store).
	Persistence(ctx context.Context) (string, error)
}

// Health is what Upstream.Health reports.
type Health struct {
	// ID is the server: it changes when the store restarts or fails over,
	// whether or not the data survived.
	ID string
	// Data is the data set: it changes when the store lost its data (an
	// empty restart, or Invalidate). "" when the store cannot tell.
	Data  string
	Quiet time.Duration // what is left of an announced quiet period; 0: none
	// Outstanding is the longest that any lease granted or renewed through
	// the store may still run, by its clock; negative when it cannot tell.
	// After a loss, no holder can believe longer than this.
	Outstanding time.Duration
	// Shards is set by a store split into shards by hash slot (Redis
	// Cluster): each shard's own health, checked on its own, so that a
	// restart or failover of one stops grants only in its slots. The fields
	// above are then unused. Such a store implements Slotter.
	Shards []Shard
}

// Shard is one shard of a sharded store, as Health found it.
type Shard struct {
	// Health is the shard's own: ID names its primary's process, which
	// changes when it restarts or another node takes over; Data its data
	// set; Quiet and Outstanding are as for a whole store.
	Health
	// Node identifies the primary across checks, restarts included. Group
	// is every node of the shard, its replicas too: one of them may have
	// been its primary at an earlier check (a failover).
	Node  string
	Group []string
	Slots []SlotRange
	// Err says the shard could not be checked this time; only Node, Group
	// and Slots are set.
	Err error
}

// SlotRange is the hash slots First to Last, both included.
type SlotRange struct{ First, Last int }

// Slots is how many hash slots a sharded store has, as Redis Cluster.
const Slots = 16384

// Slotter is a store whose names live in hash slots (see Health.Shards).
type Slotter interface {
	// Slot is the hash slot of name's records, in [0, Slots).
	Slot(name string) int
}

// Risk is a store setting that can lose locks.
type Risk struct {
	Kind   string // "eviction", "no_persistence", or "unknown" when the settings could not be read
	Detail string
}

// AcquireRequest is one try for a lock.
type AcquireRequest struct {
	Name  string
	Nonce string
	TTL   time.Duration
	// Waiter, when set, queues the request if it cannot have the lock now,
	// and lets it take a lock reserved for it.
	Waiter    string
	WaiterTTL time.Duration // how long the queue entry lives without KeepAlive
	// Kind is what the request asks to hold: with Shared or Limit, a name
	// held by other requests of that kind may be granted to this one too.
	Kind Kind
}

// Grant is the outcome of Store.Acquire.
type Grant struct {
	Acquired bool
	Token    string        // set when Acquired
	TTL      time.Duration // when Acquired: the time the lock has left in the store
	// HolderTTL is the current holder's time left, when someone holds it.
	HolderTTL time.Duration
	// Head is set when the lock is free but reserved for the first live
	// waiter, Head, whose sidecar has been woken.
	Head string
	// First is the first live waiter in the queue after the call, if any.
	First string
	// Seq orders what replies say of the queue: of two replies, the one
	// with the larger Seq saw it later. 0: the reply says nothing of it.
	Seq int64
	// Mismatch says the name is held, or waited for, as HeldAs, of another
	// family than the request's Kind (see Kind): nothing was written.
	Mismatch bool
	HeldAs   Kind
}

// Wake tells a sidecar that its waiter is first for a lock, or, with Seq
// set, who is first in its queue.
type Wake struct {
	Waiter string
	// Token, when set, is the lock already granted to Waiter, held in the
	// store for TTL until its sidecar renews it.
	Token string
	TTL   time.Duration
	// First, when Seq is set, is the store's first live waiter ("" for none)
	// as of Seq (see Released): a release that granted the lock to a waiter
	// tells every sidecar who is next, in the same Wake or in one of its
	// own (Waiter "").
	First string
	Seq   int64
}

// ReleaseRequest is one release, with the waiter to hand the lock to.
type ReleaseRequest struct {
	Name  string
	Token string
	Next  *Candidate // nil: none waits here
	// GrantTTL, when set, lets the release grant the lock to another
	// sidecar's first waiter, for at most this long until it is renewed.
	GrantTTL time.Duration
	// Self is the prefix of this sidecar's waiter ids: its own waiters are
	// never granted that way (it hands them locks itself).
	Self string
}

// Candidate is a local waiter that may take a lock in the same step as its
// release, if it is first in the store's queue.
type Candidate struct {
	Waiter string
	Nonce  string
	TTL    time.Duration
}

// Released is the outcome of Store.Release.
type Released struct {
	Released bool
	// Next is the token granted to the candidate, if it took the lock.
	Next string
	// Repeated says the call was sent again after a lost reply, so an
	// earlier send may have granted the candidate a lock whose token this
	// reply does not carry; the candidate's own acquire (same nonce) finds it.
	Repeated bool
	// First is the first live waiter in the queue after the call, if any.
	First string
	Seq   int64 // as in Grant
}

// TransferRequest passes a lock from one token to a waiter of the same
// sidecar without it ever being free.
type TransferRequest struct {
	Name   string
	From   string // the token that holds the lock
	To     string // the waiter's token: From's fence + 1, and the waiter's nonce
	Waiter string
	TTL    time.Duration
}

// Transferred is the outcome of Store.Transfer.
type Transferred struct {
	OK    bool
	First string // the first live waiter in the queue afterwards, if any
	Seq   int64  // as in Grant
}

// RenewRequest is one renewal.
type RenewRequest struct {
	Name  string
	Token string
	TTL   time.Duration
	// Foreign says the caller is not the lease's holder: the ttl may grow,
	// never shrink.
	Foreign bool
}

// Renewed is the outcome of Store.Renew.
type Renewed struct {
	OK bool // the token holds the lock, now for at least the ttl asked
	// Revoked says the token held the lock until Revoke took it: its
	// holder's sidecar should release it with RevokedToken.
	Revoked bool
}

// RevokeRequest is a release of another sidecar's client's lock.
type RevokeRequest struct {
	Name   string
	Token  string
	Holder string // the holder's sidecar (see TokenSidecar)
}

// State is what Store.Inspect sees of one name.
type State struct {
	Held  bool
	Token string // the holder's token, when Held; never shown to clients
	// Revoked says Token's lock was revoked: it is held, but by nobody.
	Revoked bool
	// Fence is the holder's fence when Held, otherwise the last fence issued
	// for the name while the store still remembers it, or 0.
	Fence  int64
	TTL    time.Duration // time left when Held
	Queued int           // waiters queued for it, on every sidecar
	// Kind is how it is held; with Shared or Limit, Holders lists every
	// holder, Token is "", Fence is the largest holder's and TTL the
	// longest time left.
	Kind    Kind
	Holders []Holder
}

// Listed is one name Store.List found, as Inspect would report it.
type Listed struct {
	Name string
	State
}

// ListScanBudget bounds how many keys a store's List looks at, whatever
// it finds: on a large keyspace an admin's listing must not stall the
// upstream.
const ListScanBudget = 100_000

// holder finds token among st's holders, the one of a name held by one
// included.
func (st State) holder(token string) (Holder, bool) {
	if !st.Held {
		return Holder{}, false
	}
	if len(st.Holders) == 0 {
		return Holder{Token: st.Token, Fence: st.Fence, TTL: st.TTL, Revoked: st.Revoked}, st.Token == token
	}
	for _, h := range st.Holders {
		if h.Token == token {
			return h, true
		}
	}
	return Holder{}, false
}
