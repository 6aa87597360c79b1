package redisstore

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lockproxy/lockproxy/lockcore"
)

// watcher delivers pub/sub messages to the watchers of a channel. Classic
// channels (every name's wakes on one Redis or Sentinel, and each sidecar's
// revocations everywhere) share one subscriber connection, subscribed to a
// channel only while someone watches it. On a Cluster, a name's sharded
// channel lives on its slot's node, so it gets a subscription of its own.
//
// Subscribing and unsubscribing are network calls, made in order by one
// goroutine (run), never under mu, so that a slow upstream holds up no
// delivery and no watch of another channel.
type watcher struct {
	rdb redis.UniversalClient
	log interface{ Warn(string, ...any) }

	mu      sync.Mutex
	subs    map[string]*subscription // guarded by mu; by channel
	pending []op                     // guarded by mu; for run, in order
	closed  bool                     // guarded by mu
	kick    chan struct{}            // run has pending ops; buffered 1
	done    chan struct{}            // closed by close
	runDone chan struct{}            // closed when run returns
	loops   sync.WaitGroup           // the receive loops

	// Owned by run; read by close once run has returned.
	ps      *redis.PubSub   // the shared classic connection, made on first use
	sharded []*redis.PubSub // every sharded connection made, to close
}

// subscription is one channel's watchers.
type subscription struct {
	channel string
	sharded bool
	fns     map[*watchFn]struct{} // guarded by watcher.mu
	ready   chan struct{}         // closed once Redis confirms the subscription
	ps      *redis.PubSub         // its own connection when sharded; owned by run
}

// watchFn is one watch's callback: a message, or (ok false) word that
// messages may have been missed.
type watchFn struct{ fn func(msg string, ok bool) }

// op is a subscription change for run to make.
type op struct {
	sub       *subscription
	subscribe bool
	// again makes a sharded subscription anew, on its slot's node now: a
	// reshard moved the slot, and Redis ended the subscription.
	again bool
}

// opTimeout bounds one subscribe or unsubscribe call. go-redis subscribes
// again by itself when its connection comes back, so a call that times out
// loses nothing for good: the waiters poll meanwhile.
const opTimeout = 2 * time.Second

type nopLog struct{}

func (nopLog) Warn(string, ...any) {}

func newWatcher(rdb redis.UniversalClient, log interface{ Warn(string, ...any) }) *watcher {
	if log == nil {
		log = nopLog{}
	}
	w := &watcher{rdb: rdb, log: log, subs: make(map[string]*subscription),
		kick: make(chan struct{}, 1), done: make(chan struct{}), runDone: make(chan struct{})}
	go w.run()
	return w
}

var errWatcherClosed = errors.New("redisstore: closed")

// watch calls fn with each message on channel, and returns once Redis
// confirms the subscription, or ctx ends. stop never blocks.
func (w *watcher) watch(ctx context.Context, channel string, sharded bool, fn func(msg string, ok bool)) (func(), error) {
	wf := &watchFn{fn}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil, errWatcherClosed
	}
	sub := w.subs[channel]
	if sub == nil {
		sub = &subscription{channel: channel, sharded: sharded, fns: make(map[*watchFn]struct{}), ready: make(chan struct{})}
		w.subs[channel] = sub
		w.enqueueLocked(op{sub: sub, subscribe: true})
	}
	sub.fns[wf] = struct{}{}
	ready := sub.ready
	w.mu.Unlock()

	stop := func() { w.unwatch(sub, wf) }
	select {
	case <-ready:
		return stop, nil
	case <-ctx.Done():
		stop()
		return nil, ctx.Err()
	}
}

func (w *watcher) unwatch(sub *subscription, wf *watchFn) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := sub.fns[wf]; !ok {
		return
	}
	delete(sub.fns, wf)
	if len(sub.fns) > 0 || w.subs[sub.channel] != sub {
		return
	}
	delete(w.subs, sub.channel)
	if !w.closed {
		w.enqueueLocked(op{sub: sub})
	}
}

// enqueueLocked hands op to run. w.mu is held.
func (w *watcher) enqueueLocked(o op) {
	w.pending = append(w.pending, o)
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// run makes the subscription changes, one at a time, in the order asked.
// A channel watched again after it was let go is unsubscribed and then
// subscribed again, which leaves it subscribed.
func (w *watcher) run() {
	defer close(w.runDone)
	for {
		select {
		case <-w.done:
			return
		case <-w.kick:
		}
		w.mu.Lock()
		ops := w.pending
		w.pending = nil
		w.mu.Unlock()
		for _, o := range ops {
			select {
			case <-w.done:
				return
			default:
			}
			w.apply(o)
		}
	}
}

// apply makes one subscription change. Only run calls it.
func (w *watcher) apply(o op) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	sub := o.sub
	var err error
	switch {
	case o.subscribe && sub.sharded:
		// Subscribe before the receive loop reads: a cluster PubSub picks
		// its node when it first connects, by the channels it has then,
		// and a read with none yet would pin it to a random node.
		sub.ps = w.rdb.SSubscribe(context.Background())
		w.sharded = append(w.sharded, sub.ps)
		err = sub.ps.SSubscribe(ctx, sub.channel)
		w.loops.Add(1)
		go w.receive(sub.ps, sub, false)
	case o.again:
		w.mu.Lock()
		current := w.subs[sub.channel] == sub
		w.mu.Unlock()
		if !current || sub.ps == nil {
			return // let go meanwhile
		}
		_ = sub.ps.Close()
		if c, ok := w.rdb.(*redis.ClusterClient); ok {
			c.ReloadState(ctx)
		}
		sub.ps = w.rdb.SSubscribe(context.Background())
		w.sharded = append(w.sharded, sub.ps)
		err = sub.ps.SSubscribe(ctx, sub.channel)
		w.loops.Add(1)
		// Wakes sent since the old subscription ended are lost: once the
		// new one is confirmed, its watchers look again.
		go w.receive(sub.ps, sub, true)
	case o.subscribe:
		if w.ps == nil {
			w.ps = w.rdb.Subscribe(context.Background())
			w.loops.Add(1)
			go w.receive(w.ps, nil, false)
		}
		err = w.ps.Subscribe(ctx, sub.channel)
	case sub.sharded:
		if sub.ps != nil {
			err = sub.ps.Close()
		}
	default:
		// A message that slips in before this lands is ignored: nobody
		// watches the channel.
		err = w.ps.Unsubscribe(ctx, sub.channel)
	}
	if err != nil && (o.subscribe || o.again) {
		// Not fatal: go-redis subscribes again when it reconnects, and the
		// waiters poll meanwhile.
		w.log.Warn("subscribing failed; go-redis subscribes again when it reconnects (waiters poll, and holders learn of revocations at their next renewal, meanwhile)", "channel", sub.channel, "err", err)
	}
}

// receive reads one subscriber connection until it is closed: the shared
// one (sharded nil), or sharded's own. go-redis reconnects and subscribes
// again after an error; messages sent meanwhile are lost, so every watcher
// is told to look again, as it is when broken starts true.
//
// A sharded subscription ends when a reshard moves its slot away: Redis
// sends an unsolicited sunsubscribe (or, to a subscribe that reached the
// old node, MOVED). It is then made anew on the slot's new node.
func (w *watcher) receive(ps *redis.PubSub, sharded *subscription, broken bool) {
	defer w.loops.Done()
	for {
		msg, err := ps.Receive(context.Background())
		if err != nil {
			w.mu.Lock()
			closed := w.closed
			w.mu.Unlock()
			if closed || errors.Is(err, redis.ErrClosed) || (sharded != nil && errors.Is(err, net.ErrClosed)) {
				// A sharded subscription let go, or made anew.
				return
			}
			if sharded != nil && redis.HasErrorPrefix(err, "MOVED") {
				w.moved(sharded)
				return
			}
			if !broken {
				w.log.Warn("wake subscription broken; reconnecting, waiters poll meanwhile", "err", err)
				broken = true
			}
			select { // the upstream is down: do not spin
			case <-w.done:
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "sunsubscribe" && sharded != nil {
				w.moved(sharded)
				return
			}
			if m.Kind != "subscribe" && m.Kind != "ssubscribe" {
				continue
			}
			w.mu.Lock()
			var fns []*watchFn
			if sub := w.subs[m.Channel]; sub != nil {
				select {
				case <-sub.ready:
					if broken {
						fns = listFns(sub) // confirmed again after a reconnect
					}
				default:
					close(sub.ready)
				}
			}
			w.mu.Unlock()
			for _, f := range fns {
				f.fn("", false)
			}
		case *redis.Message:
			broken = false
			w.mu.Lock()
			var fns []*watchFn
			if sub := w.subs[m.Channel]; sub != nil {
				fns = listFns(sub)
			}
			w.mu.Unlock()
			for _, f := range fns {
				f.fn(m.Payload, true)
			}
		}
	}
}

// moved is told that sub's slot moved to another node: its watchers look
// again, since wakes may be lost until it is subscribed there, which run
// does next.
func (w *watcher) moved(sub *subscription) {
	w.mu.Lock()
	var fns []*watchFn
	if w.subs[sub.channel] == sub && !w.closed {
		fns = listFns(sub)
		w.enqueueLocked(op{sub: sub, again: true})
	}
	w.mu.Unlock()
	for _, f := range fns {
		f.fn("", false)
	}
}

func listFns(sub *subscription) []*watchFn {
	fns := make([]*watchFn, 0, len(sub.fns))
	for f := range sub.fns {
		fns = append(fns, f)
	}
	return fns
}

// close ends every subscription and waits for the loops.
func (w *watcher) close() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	close(w.done)
	w.mu.Unlock()
	// run may be in a call; its timeout bounds the wait. Once it has
	// returned, what it made is this goroutine's to close.
	<-w.runDone
	if w.ps != nil {
		_ = w.ps.Close()
	}
	for _, ps := range w.sharded {
		_ = ps.Close()
	}
	w.loops.Wait()
}

// parseWake reads a wake message: "<waiter>"; "<waiter> <token> <ttl ms>"
// when the release granted the lock to the waiter; or "~first <waiter>
// <now µs>", who is first after such a grant. Waiter ids are hex and
// digits, so none is "~first": a sidecar from before the news reads it as
// a grant to a waiter it does not have, and ignores it.
func parseWake(payload string) lockcore.Wake {
	f := strings.Fields(payload)
	switch {
	case len(f) == 3 && f[0] == "~first":
		seq, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil || seq == 0 {
			return lockcore.Wake{} // unreadable news: look again
		}
		return lockcore.Wake{First: f[1], Seq: seq}
	case len(f) == 3:
		ms, _ := strconv.ParseInt(f[2], 10, 64)
		return lockcore.Wake{Waiter: f[0], Token: f[1], TTL: time.Duration(ms) * time.Millisecond}
	}
	return lockcore.Wake{Waiter: payload}
}
