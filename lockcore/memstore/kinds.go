package memstore

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lockproxy/lockproxy/lockcore"
)

// Names held by many (lockcore.Kind with Shared or Limit): each holder has
// a permit of its own, by nonce, with its own fence and expiry, and the
// record's kind says what they hold it as. As in the Redis store, a
// release wakes the waiters it lets in, and their own tries take their
// permits.

// permit is one holder of a name held by many.
type permit struct {
	fence   int64
	expires time.Time
	revoked bool // held by nobody until its sidecar releases it
}

func (p *permit) token(nonce string) string {
	t := lockcore.FormatToken(p.fence, nonce)
	if p.revoked {
		t = lockcore.RevokedToken(t)
	}
	return t
}

// prune drops expired permits, and the kind with the last of them.
func (r *record) prune(now time.Time) {
	for nonce, p := range r.permits {
		if !now.Before(p.expires) {
			delete(r.permits, nonce)
		}
	}
	if len(r.permits) == 0 {
		r.permits, r.kind = nil, lockcore.Kind{}
	}
}

// permitOf finds the permit a token names: "<fence>:<nonce>", its revoked
// form, or a nonce-only ":<nonce>". revoked says the token named the
// revoked form.
func (r *record) permitOf(token string) (nonce string, p *permit, revoked bool) {
	fence, rest, ok := strings.Cut(token, ":")
	if !ok {
		return "", nil, false
	}
	nonce, revoked = strings.CutSuffix(rest, "!")
	p = r.permits[nonce]
	switch {
	case p == nil:
		return "", nil, false
	case fence == "":
		// A nonce-only token names the permit as it was granted: not once
		// revoked, as with a lock held by one.
		return nonce, p, false
	case strconv.FormatInt(p.fence, 10) != fence:
		return "", nil, false
	}
	return nonce, p, revoked
}

// longest and soonest are the latest and the earliest expiry of r's permits.
func (r *record) longest(now time.Time) (d time.Duration) {
	for _, p := range r.permits {
		d = max(d, p.expires.Sub(now))
	}
	return d
}

func (r *record) soonest(now time.Time) (d time.Duration) {
	d = -1
	for _, p := range r.permits {
		if left := p.expires.Sub(now); d < 0 || left < d {
			d = left
		}
	}
	return max(d, 0)
}

// firstKind is the kind of the first live waiter other than waiter, if any.
func (r *record) firstKind(now time.Time, waiter string) (lockcore.Kind, bool) {
	r.liveHead(now)
	for _, q := range r.queue {
		if q.waiter != waiter && !now.After(q.deadline) {
			return q.kind, true
		}
	}
	return lockcore.Kind{}, false
}

// ahead is the live waiters queued before waiter (all of them when it is
// not queued).
func (r *record) ahead(now time.Time, waiter string) []queued {
	var out []queued
	for _, q := range r.queue {
		if q.waiter == waiter && waiter != "" {
			break
		}
		if !now.After(q.deadline) {
			out = append(out, q)
		}
	}
	return out
}

// admits reports whether a request of kind k, with ahead before it in the
// queue, may hold a name held by many now (or free): readers come in
// unless a writer waits ahead of them; a semaphore's permits go to the
// waiters ahead first.
func (r *record) admits(k lockcore.Kind, ahead []queued) bool {
	if k.Limit > 0 {
		return len(r.permits)+len(ahead) < k.Limit
	}
	for _, q := range ahead {
		if !q.kind.Shared {
			return false
		}
	}
	return true
}

// grantPermit gives nonce a permit of kind k for ttl. s.mu is held.
func (s *Store) grantPermit(r *record, now time.Time, k lockcore.Kind, nonce string, ttl time.Duration) string {
	s.fence = max(now.UnixMicro(), s.fence+1)
	if r.permits == nil {
		r.permits = make(map[string]*permit)
	}
	r.kind = k
	p := &permit{fence: s.fence, expires: now.Add(ttl)}
	r.permits[nonce] = p
	return p.token(nonce)
}

// acquireMany is Acquire for a request of a kind held by many, or of any
// kind on a name held by many. s.mu is held; r has been pruned.
func (s *Store) acquireMany(r *record, req lockcore.AcquireRequest, now time.Time) lockcore.Grant {
	name := req.Name
	if len(r.permits) > 0 && !req.Kind.Family(r.kind) {
		return lockcore.Grant{Mismatch: true, HeldAs: r.kind, Seq: s.next()}
	}
	if len(r.permits) == 0 {
		if k, ok := r.firstKind(now, req.Waiter); ok && !req.Kind.Family(k) {
			return lockcore.Grant{Mismatch: true, HeldAs: k, Seq: s.next()}
		}
	}
	if len(r.permits) > 0 && req.Kind.Exclusive() {
		// A writer waits for every reader.
		r.enqueue(req, now)
		return lockcore.Grant{HolderTTL: r.longest(now), First: r.liveHead(now), Seq: s.next()}
	}
	if r.admits(req.Kind, r.ahead(now, req.Waiter)) {
		r.dequeue(req.Waiter)
		token := s.grantPermit(r, now, req.Kind, req.Nonce, req.TTL)
		return lockcore.Grant{Acquired: true, Token: token, TTL: req.TTL, First: r.liveHead(now), Seq: s.next()}
	}
	r.enqueue(req, now)
	if woken := s.wakeAdmitted(name, r, now); len(woken) > 0 {
		// Room, kept for the waiters ahead, who have been nudged.
		return lockcore.Grant{Head: woken[0], First: r.liveHead(now), Seq: s.next()}
	}
	ttl := r.soonest(now)
	if req.Kind.Shared {
		ttl = r.longest(now)
	}
	return lockcore.Grant{HolderTTL: ttl, First: r.liveHead(now), Seq: s.next()}
}

// wakeAdmitted wakes each waiter, in queue order, whose try would be
// granted now, and returns them: nobody while the name is held by one;
// when it is free, an exclusive first waiter alone; else readers up to the
// first writer, or a semaphore's waiters up to its free permits. s.mu is
// held; r has been pruned.
func (s *Store) wakeAdmitted(name string, r *record, now time.Time) []string {
	var woken []string
	for _, q := range r.admitted(now) {
		woken = append(woken, q.waiter)
		s.wakeLocked(name, lockcore.Wake{Waiter: q.waiter})
	}
	return woken
}

// admitted is the waiters wakeAdmitted wakes, in queue order.
func (r *record) admitted(now time.Time) []queued {
	if r.held(now) != "" {
		return nil
	}
	var in []queued
	for _, q := range r.queue {
		if now.After(q.deadline) {
			continue
		}
		if q.kind.Exclusive() {
			if len(r.permits) == 0 && len(in) == 0 {
				in = append(in, q)
			}
			break
		}
		if (len(r.permits) > 0 && !q.kind.Family(r.kind)) || !r.admits(q.kind, in) {
			break
		}
		in = append(in, q)
	}
	return in
}

// grantAdmitted is wakeAdmitted for a release with grantTTL set: each
// waiter it would wake is granted at once (a writer the lock, when the
// last reader has gone), for at most grantTTL until its sidecar renews it,
// and the wake carries the token, as the Redis store's does. s.mu is held;
// r has been pruned.
func (s *Store) grantAdmitted(name string, r *record, now time.Time, grantTTL time.Duration) {
	if grantTTL <= 0 {
		s.wakeAdmitted(name, r, now)
		return
	}
	for _, q := range r.admitted(now) {
		r.dequeue(q.waiter)
		ttl := min(q.ttl, grantTTL)
		var token string
		if q.kind.Exclusive() {
			token = s.grant(r, now, q.nonce, ttl) // the writer, the last reader gone
		} else {
			token = s.grantPermit(r, now, q.kind, q.nonce, ttl)
		}
		s.wakeLocked(name, lockcore.Wake{Waiter: q.waiter, Token: token, TTL: ttl})
	}
}

// releasePermit frees the permit req.Token names, and wakes those it lets
// in. s.mu is held; r has been pruned.
func (s *Store) releasePermit(r *record, req lockcore.ReleaseRequest, now time.Time) lockcore.Released {
	nonce, p, revoked := r.permitOf(req.Token)
	if p == nil || revoked != p.revoked {
		return lockcore.Released{}
	}
	delete(r.permits, nonce)
	r.prune(now)
	s.grantAdmitted(req.Name, r, now, req.GrantTTL)
	if r.idle(now) {
		delete(s.names, req.Name)
	}
	return lockcore.Released{Released: true, First: r.liveHead(now), Seq: s.next()}
}

// renewPermit is Renew for a name held by many. s.mu is held.
func (s *Store) renewPermit(r *record, req lockcore.RenewRequest, now time.Time) lockcore.Renewed {
	_, p, revoked := r.permitOf(req.Token)
	switch {
	case p == nil || revoked:
		return lockcore.Renewed{}
	case p.revoked:
		return lockcore.Renewed{Revoked: true}
	}
	if expires := now.Add(req.TTL); !req.Foreign || expires.After(p.expires) {
		p.expires = expires
	}
	return lockcore.Renewed{OK: true}
}

// revokePermit is Revoke for a name held by many. s.mu is held.
func (s *Store) revokePermit(r *record, req lockcore.RevokeRequest) bool {
	nonce, p, revoked := r.permitOf(req.Token)
	if p == nil || revoked || p.revoked || p.token(nonce) != req.Token {
		return false
	}
	p.revoked = true
	for w := range s.revokes[req.Holder] {
		s.post(func() { w.revoke(req.Name, req.Token) })
	}
	return true
}

// inspectMany fills st for a name held by many.
func (r *record) inspectMany(st *lockcore.State, now time.Time) {
	st.Held, st.Kind = true, r.kind
	for nonce, p := range r.permits {
		st.Holders = append(st.Holders, lockcore.Holder{Token: lockcore.FormatToken(p.fence, nonce), Fence: p.fence,
			TTL: p.expires.Sub(now), Revoked: p.revoked})
		st.Fence, st.TTL = max(st.Fence, p.fence), max(st.TTL, p.expires.Sub(now))
	}
	slices.SortFunc(st.Holders, func(a, b lockcore.Holder) int { return cmp.Compare(a.Fence, b.Fence) })
}
