package redisstore

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lockproxy/lockproxy/lockcore"
)

// watcher delivers wake messages for watched names. On a single Redis (or
// Sentinel) it uses one subscriber connection for the whole store,
// subscribed to a name's channel only while the name is watched. On a
// Cluster, sharded channels live on their slot's node, so each watched name
// gets its own sharded subscription.
type watcher struct {
	rdb     redis.UniversalClient
	sharded bool
	log     interface{ Warn(string, ...any) }

	mu     sync.Mutex
	ps     *redis.PubSub            // guarded by mu; the shared connection, made on first use
	subs   map[string]*subscription // guarded by mu; by channel
	closed bool                     // guarded by mu
	done   chan struct{}            // closed by close
	loops  sync.WaitGroup           // receive loops
}

// wakeFn is one watch's callback.
type wakeFn struct{ fn func(lockcore.Wake) }

// subscription is one channel's watchers.
type subscription struct {
	fns   map[*wakeFn]struct{}
	ready chan struct{} // closed once Redis confirms the subscription
	ps    *redis.PubSub // its own connection when sharded
}

type nopLog struct{}

func (nopLog) Warn(string, ...any) {}

func newWatcher(rdb redis.UniversalClient, sharded bool, log interface{ Warn(string, ...any) }) *watcher {
	if log == nil {
		log = nopLog{}
	}
	return &watcher{rdb: rdb, sharded: sharded, log: log, subs: make(map[string]*subscription), done: make(chan struct{})}
}

var errWatcherClosed = errors.New("redisstore: closed")

// watch subscribes fn to channel and returns once Redis confirms it.
func (w *watcher) watch(ctx context.Context, channel string, fn func(lockcore.Wake)) (func(), error) {
	wf := &wakeFn{fn}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil, errWatcherClosed
	}
	sub := w.subs[channel]
	if sub == nil {
		sub = &subscription{fns: make(map[*wakeFn]struct{}), ready: make(chan struct{})}
		w.subs[channel] = sub
		var err error
		if w.sharded {
			// Subscribe before the receive loop reads: a cluster PubSub picks
			// its node when it first connects, by the channels it has then,
			// and a read with none yet would pin it to a random node.
			sub.ps = w.rdb.SSubscribe(context.Background())
			err = sub.ps.SSubscribe(ctx, channel)
			w.loops.Add(1)
			go w.receive(sub.ps)
		} else {
			if w.ps == nil {
				w.ps = w.rdb.Subscribe(context.Background())
				w.loops.Add(1)
				go w.receive(w.ps)
			}
			err = w.ps.Subscribe(ctx, channel)
		}
		if err != nil {
			// Not fatal: go-redis subscribes again when it reconnects, and
			// the waiters poll meanwhile.
			w.log.Warn("subscribing to wakes failed; waiters poll until it works", "channel", channel, "err", err)
		}
	}
	sub.fns[wf] = struct{}{}
	ready := sub.ready
	w.mu.Unlock()

	stop := func() { w.unwatch(channel, sub, wf) }
	select {
	case <-ready:
		return stop, nil
	case <-ctx.Done():
		stop()
		return nil, ctx.Err()
	}
}

func (w *watcher) unwatch(channel string, sub *subscription, wf *wakeFn) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := sub.fns[wf]; !ok {
		return
	}
	delete(sub.fns, wf)
	if len(sub.fns) > 0 || w.subs[channel] != sub {
		return
	}
	delete(w.subs, channel)
	if w.closed {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if sub.ps != nil {
		_ = sub.ps.Close()
	} else {
		// A wake that slips in before this lands is ignored: nobody watches.
		_ = w.ps.Unsubscribe(ctx, channel)
	}
}

// receive reads one subscriber connection until it is closed. go-redis
// reconnects and subscribes again after an error; wakes sent meanwhile are
// lost, so every watcher is told to look again ("").
func (w *watcher) receive(ps *redis.PubSub) {
	defer w.loops.Done()
	broken := false
	for {
		msg, err := ps.Receive(context.Background())
		if err != nil {
			w.mu.Lock()
			closed := w.closed
			w.mu.Unlock()
			if closed || errors.Is(err, redis.ErrClosed) {
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
			if m.Kind != "subscribe" && m.Kind != "ssubscribe" {
				continue
			}
			w.mu.Lock()
			sub := w.subs[m.Channel]
			var fns []*wakeFn
			if sub != nil {
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
				f.fn(lockcore.Wake{})
			}
		case *redis.Message:
			broken = false
			w.mu.Lock()
			var fns []*wakeFn
			if sub := w.subs[m.Channel]; sub != nil {
				fns = listFns(sub)
			}
			w.mu.Unlock()
			wake := parseWake(m.Payload)
			for _, f := range fns {
				f.fn(wake)
			}
		}
	}
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

func listFns(sub *subscription) []*wakeFn {
	fns := make([]*wakeFn, 0, len(sub.fns))
	for f := range sub.fns {
		fns = append(fns, f)
	}
	return fns
}

// close ends every subscription and waits for the receive loops.
func (w *watcher) close() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	close(w.done)
	if w.ps != nil {
		_ = w.ps.Close()
	}
	for _, sub := range w.subs {
		if sub.ps != nil {
			_ = sub.ps.Close()
		}
	}
	w.mu.Unlock()
	w.loops.Wait()
}
