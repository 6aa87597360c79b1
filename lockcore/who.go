package lockcore

import (
	"context"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Who holds what, across sidecars: an admin's listing (Locks.List) knows
// every holder's token, hence its sidecar, from the store, but only that
// sidecar knows the connection. It asks: a message on the sidecar's own
// channel, the one revocations use (Store.Notify), with the "token"
// whoAsk; the holder's sidecar answers on the asker's channel with
// whoAnswer. Nothing of it is on the path of a lock, and a sidecar that
// does not answer (an older version ignores the question; a dead one
// cannot) leaves its holders' clients unknown after whoWait.
//
//	ask:    "<request> <asker's id> <name in hex>:<token> ..."
//	answer: "<request> <token>:<client name in hex>:<address in hex> ..."

const (
	whoAsk    = "?who"
	whoAnswer = "!who"
	// whoWait bounds how long a listing waits for other sidecars' answers.
	whoWait = 300 * time.Millisecond
)

// whoRequests are this sidecar's questions still waiting for answers.
type whoRequests struct {
	mu      sync.Mutex
	next    uint64
	pending map[string]*whoRequest // guarded by mu; by request id
}

type whoRequest struct {
	mu      sync.Mutex
	clients map[string]Client // guarded by mu; by token
	waiting int               // guarded by mu; sidecars yet to answer
	done    chan struct{}     // closed when waiting reaches 0
}

// askWho asks each sidecar in tokens (sidecar id -> name -> tokens) who
// holds them, and returns the answers that came within whoWait.
func (l *Locks) askWho(ctx context.Context, tokens map[string]map[string][]string) map[string]Client {
	if len(tokens) == 0 {
		return nil
	}
	r := &whoRequest{clients: map[string]Client{}, waiting: len(tokens), done: make(chan struct{})}
	w := &l.who
	w.mu.Lock()
	if w.pending == nil {
		w.pending = map[string]*whoRequest{}
	}
	w.next++
	id := strconv.FormatUint(w.next, 36)
	w.pending[id] = r
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		delete(w.pending, id)
		w.mu.Unlock()
	}()
	for sidecar, byName := range tokens {
		var b strings.Builder
		b.WriteString(id + " " + l.id)
		for name, toks := range byName {
			for _, t := range toks {
				b.WriteString(" " + hex.EncodeToString([]byte(name)) + ":" + t)
			}
		}
		if err := l.store.Notify(ctx, sidecar, b.String(), whoAsk); err != nil {
			r.answered(nil)
		}
	}
	t := time.NewTimer(whoWait)
	defer t.Stop()
	select {
	case <-r.done:
	case <-t.C:
	case <-ctx.Done():
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]Client, len(r.clients))
	for k, v := range r.clients {
		out[k] = v
	}
	return out
}

// answered records one sidecar's answer.
func (r *whoRequest) answered(clients map[string]Client) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, v := range clients {
		r.clients[k] = v
	}
	if r.waiting--; r.waiting == 0 {
		close(r.done)
	}
}

// answerWho answers another sidecar's question about its holders.
func (l *Locks) answerWho(msg string) {
	f := strings.Fields(msg)
	if len(f) < 2 {
		return
	}
	req, asker := f[0], f[1]
	var b strings.Builder
	b.WriteString(req)
	for _, q := range f[2:] {
		nameHex, token, ok := strings.Cut(q, ":")
		name, err := hex.DecodeString(nameHex)
		if !ok || err != nil {
			continue
		}
		if h, ok := l.heldBy(string(name), token); ok {
			c := h.s.clientInfo()
			b.WriteString(" " + token + ":" + hex.EncodeToString([]byte(c.Name)) + ":" + hex.EncodeToString([]byte(c.Addr)))
		}
	}
	ctx, cancel := context.WithTimeout(l.ctx, l.cfg.UpstreamTimeout)
	defer cancel()
	if err := l.store.Notify(ctx, asker, b.String(), whoAnswer); err != nil && l.ctx.Err() == nil {
		l.log.Warn("could not answer another sidecar's LOCK.LIST", "sidecar", asker, "err", err)
	}
}

// takeWho takes in another sidecar's answer.
func (l *Locks) takeWho(msg string) {
	f := strings.Fields(msg)
	if len(f) < 1 {
		return
	}
	l.who.mu.Lock()
	r := l.who.pending[f[0]]
	l.who.mu.Unlock()
	if r == nil {
		return // it came after the listing gave up on it
	}
	clients := map[string]Client{}
	for _, a := range f[1:] {
		parts := strings.Split(a, ":")
		// A token is "<fence>:<nonce>": the answer has two fields more.
		if len(parts) != 4 {
			continue
		}
		name, err1 := hex.DecodeString(parts[2])
		addr, err2 := hex.DecodeString(parts[3])
		if err1 == nil && err2 == nil {
			clients[parts[0]+":"+parts[1]] = Client{Name: string(name), Addr: string(addr)}
		}
	}
	r.answered(clients)
}
