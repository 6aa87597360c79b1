package lockcore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// ErrQuietPeriod matches a *QuietError with errors.Is.
var ErrQuietPeriod = fmt.Errorf("lockcore: quiet period after an upstream reset")

// QuietError refuses a grant during the quiet period that follows an
// upstream reset. Until the period ends, a client that held a lock through
// the old upstream may still believe it holds it.
type QuietError struct {
	Left time.Duration
}

func (e *QuietError) Error() string {
	return fmt.Sprintf("lockcore: quiet period after an upstream reset, %v left", e.Left)
}

// Is makes errors.Is(err, ErrQuietPeriod) hold.
func (e *QuietError) Is(target error) bool { return target == ErrQuietPeriod }

// Quiet refuses new grants for d from now. It never shortens a period
// already running.
func (l *Locks) Quiet(d time.Duration) {
	if d <= 0 {
		return
	}
	until := int64(l.now().Sub(l.base) + d)
	for {
		old := l.quietUntil.Load()
		if old >= until || l.quietUntil.CompareAndSwap(old, until) {
			return
		}
	}
}

// QuietLeft is what is left of the quiet period; 0 when none runs. On a
// sharded store, it is the longest left in any shard's slots.
func (l *Locks) QuietLeft() time.Duration {
	left := l.quietLeft()
	if g := l.gates.Load(); g != nil {
		left = max(left, g.maxLeft(l.nowNS()))
	}
	return left
}

// quietLeft is what is left of the quiet period of the whole store.
func (l *Locks) quietLeft() time.Duration {
	u := l.quietUntil.Load()
	if u == 0 {
		return 0
	}
	return max(time.Duration(u)-l.now().Sub(l.base), 0)
}

// quiet returns a *QuietError while the quiet period runs for name, or
// while the locks of the upstream (or of name's shard) are being checked
// after it changed, else nil.
func (l *Locks) quiet(name string) error {
	left := l.quietLeft()
	verifying := l.verifying.Load()
	if g := l.gates.Load(); g != nil {
		if slot := l.slotOf(name); slot >= 0 {
			d, v := g.left(slot, l.nowNS())
			left, verifying = max(left, d), verifying || v
		}
	}
	if verifying {
		left = max(left, l.cfg.CheckInterval+settleMargin)
	}
	if left > 0 {
		return &QuietError{Left: left}
	}
	return nil
}

// UpstreamReset is told that the store may have forgotten every lock: it
// restarted, or another server took over. For d nothing is granted, since
// until then a holder through the old store may still believe it holds its
// lock. Every owned lease is lost (and pushed to its holder), every
// detached one ends, and every blocked acquire is answered with a
// *QuietError. It returns how many leases it declared lost.
func (l *Locks) UpstreamReset(d time.Duration, why string) int {
	// Quiet first: an acquire that lands after this point gives its grant
	// back (see Session.Acquire), so no lease outlives the reset.
	l.Quiet(d)
	return l.resetWhere(max(d, l.quietLeft()), why, nil)
}

// resetWhere is UpstreamReset for the names in (nil: every name), whose
// quiet period, d, the caller has started.
func (l *Locks) resetWhere(d time.Duration, why string, in func(name string) bool) int {
	sessions := l.sessionList()
	l.mu.Lock()
	queues := l.queueList()
	l.mu.Unlock()
	// Their places in the store's queue went with the old store.
	var werr error = ErrStoreReset // with no quiet period, they may retry at once
	if d > 0 {
		werr = &QuietError{Left: d}
	}
	for _, q := range queues {
		if in == nil || in(q.name) {
			q.answerAll(werr)
		}
	}
	// One goroutine per session: telling a holder is a push, which may wait
	// for a client that reads slowly; the others must not wait for it.
	var lost atomic.Int64
	var wg sync.WaitGroup
	for _, s := range sessions {
		wg.Go(func() {
			for _, ls := range s.all() {
				if in != nil && !in(ls.name) {
					continue
				}
				// Given back by token: after a failover that kept the data
				// the lock is still there, and nobody should wait for its ttl.
				if s.lapse(ls, why, true) {
					lost.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return int(lost.Load())
}

// all returns the session's leases.
func (s *Session) all() []*lease {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*lease, 0, len(s.leases))
	for _, ls := range s.leases {
		out = append(out, ls)
	}
	return out
}

// CheckUpstream asks up, the store's upstream, who it is, and adopts any
// quiet period another sidecar announced. It tells three changes apart:
//
//   - Data changed: the store lost its data (an empty restart, or another
//     sidecar found a lock missing). Every lease is declared lost (see
//     UpstreamReset), and nothing is granted until every lease that could
//     still be outstanding has run out (see quietFor); the period is
//     announced to the other sidecars.
//   - Only the server changed: a restart that kept its files, or a
//     failover. Grants stop while this sidecar checks that the store still
//     holds every lock it acknowledged (see verify), and for one more check
//     interval, in which every other live sidecar checks too. If all are
//     there, nothing is lost and grants go on; if one is missing, the store
//     is invalidated, which turns it into the first case for every sidecar.
//   - Nothing changed.
//
// Only then does the store accept acquires again. An error leaves the store
// refusing them if it can tell.
func (l *Locks) CheckUpstream(ctx context.Context, up Upstream) error {
	l.checkMu.Lock()
	defer l.checkMu.Unlock()
	h, err := up.Health(ctx)
	if err != nil {
		return err
	}
	if h.Shards != nil {
		return l.checkShards(ctx, up, h)
	}
	l.Quiet(h.Quiet)
	if h.Outstanding >= 0 {
		l.extendHorizon(l.now().Add(h.Outstanding))
	}
	switch {
	case l.store0.ID == "":
		// The first answer: whatever came before is unknown, and any
		// period announced for it was adopted above.
	case h.Data != l.store0.Data:
		if err := l.reset(ctx, up, h, "the upstream lost its data"); err != nil {
			return err
		}
	case h.ID != l.store0.ID:
		if h, err = l.recheck(ctx, up, h); err != nil {
			return err
		}
	}
	// A check of the locks under way is over: they were found, or lost,
	// or the data they were in is gone.
	l.verifying.Store(false)
	l.store0 = h
	up.Accept(h)
	return nil
}

// recheck is CheckUpstream's answer to a server that changed but says it
// kept its data. It returns the store to accept: h, or, when a lock was
// missing, the store as it is after invalidating it.
func (l *Locks) recheck(ctx context.Context, up Upstream, h Health) (Health, error) {
	if !l.verifying.Swap(true) {
		l.log.Warn("the upstream restarted or failed over; checking that it kept every lock before granting more",
			"before", l.store0.ID, "now", h.ID)
		l.verifyStart = l.now()
	}
	missing, err := l.verify(ctx, nil)
	if err != nil {
		return h, fmt.Errorf("checking the locks after the upstream changed: %w", err)
	}
	if len(missing) > 0 {
		l.log.Error("the upstream restarted or failed over and lost locks this sidecar had granted",
			"missing", missing, "before", l.store0.ID, "now", h.ID)
		if err := up.Invalidate(ctx, ""); err != nil {
			return h, fmt.Errorf("invalidating the upstream's data: %w", err)
		}
		if h, err = up.Health(ctx); err != nil {
			return h, err
		}
		return h, l.reset(ctx, up, h, "the upstream lost locks in a restart or failover")
	}
	// Every other live sidecar checks within a check interval of the
	// change; one that finds a lock missing invalidates the store, which
	// stops every grant. Until then, grant nothing.
	settled := l.verifyStart.Add(l.cfg.CheckInterval + settleMargin)
	l.Quiet(settled.Sub(l.now()))
	l.log.Info("the upstream kept every lock this sidecar granted; granting again after the other sidecars have checked",
		"now", h.ID, "resumes_in", max(settled.Sub(l.now()), 0).String())
	return h, nil
}

// settleMargin is added to the check interval that other sidecars are
// given to report a lost lock: their health check's round trip and their
// own verify.
const settleMargin = 100 * time.Millisecond

// reset is CheckUpstream's answer to a store that may have lost locks:
// announce the quiet period to every sidecar, then declare every lease
// lost. An error means it must be done again at the next check.
func (l *Locks) reset(ctx context.Context, up Upstream, h Health, why string) error {
	d := l.quietFor()
	// Announced before the holders are told, which may take a while:
	// sidecars that never held a lock through the old upstream learn
	// of the period only from the announcement.
	l.Quiet(d)
	var aerr error
	if d > 0 {
		aerr = up.AnnounceQuiet(ctx, "", d)
	}
	lost := l.UpstreamReset(d, "upstream restarted or failed over")
	l.log.Error(why+": every lock held through it is lost, and no lock is granted during the quiet period",
		"locks_lost", lost, "quiet_period", d.String(), "before", l.store0.ID+"/"+l.store0.Data, "now", h.ID+"/"+h.Data)
	if aerr != nil {
		// Not accepted yet: the next check finds the change again and
		// announces again.
		return fmt.Errorf("announcing the quiet period: %w", aerr)
	}
	return nil
}

// quietFor is the quiet period after a loss. A fixed Config.QuietPeriod is
// used as it is. Under QuietAuto it is bounded by the horizon: the end of
// the longest lease this sidecar knows to have been granted or renewed,
// plus drift, plus one check interval for the other sidecars, which may
// know of a later one, to announce theirs.
func (l *Locks) quietFor() time.Duration {
	d := l.cfg.QuietPeriod
	h := l.horizon.Load()
	if !l.cfg.QuietAuto || !l.horizonKnown.Load() {
		return d
	}
	left := max(time.Duration(h)-l.now().Sub(l.base), 0)
	return min(d, left+Drift(left)+l.cfg.CheckInterval)
}

// extendHorizon notes that a lease may be held until t.
func (c *core) extendHorizon(t time.Time) {
	at := int64(t.Sub(c.base))
	defer c.horizonKnown.Store(true) // after the value: a reader that sees it known sees the value
	for {
		old := c.horizon.Load()
		if old >= at || c.horizon.CompareAndSwap(old, at) {
			return
		}
	}
}

// verify checks that the store still holds every lock this sidecar
// acknowledged and still counts as held, of the names in (nil: every
// name): each owned lease, and each detached lock granted here whose ttl
// has not run out. It returns the names missing. A lease whose store ttl is
// now shorter than its validity (a renewal the old server took but did not
// pass on) is renewed at once.
func (l *Locks) verify(ctx context.Context, in func(name string) bool) (missing []string, err error) {
	type check struct {
		name, token string
		s           *Session
		ls          *lease
		until       time.Time
	}
	var checks []check
	for _, s := range l.sessionList() {
		s.mu.Lock()
		for _, ls := range s.leases {
			if (ls.handover == nil || ls.handover.hasLanded()) && (in == nil || in(ls.name)) {
				checks = append(checks, check{ls.name, ls.token, s, ls, ls.validUntil})
			}
		}
		s.mu.Unlock()
	}
	for _, d := range l.detached.list() {
		if in != nil && !in(d.name) {
			continue
		}
		checks = append(checks, check{name: d.name, token: d.token, until: d.at})
	}
	var mu sync.Mutex
	var errs []error
	sem := make(chan struct{}, verifyParallel)
	var wg sync.WaitGroup
	for _, c := range checks {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			gone, err := l.verifyOne(ctx, c.name, c.token, c.s, c.ls, c.until)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			} else if gone {
				missing = append(missing, c.name)
			}
		})
	}
	wg.Wait()
	return missing, errors.Join(errs...)
}

// stillHeld reports whether this sidecar still counts the lock as held and
// not on its way out: ls still the session's and not being released, or,
// for a detached lock without a lease (s nil), token still in the set.
func (l *Locks) stillHeld(s *Session, ls *lease, token string) bool {
	if ls == nil {
		return l.detached.has(token)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leases[ls.name] == ls && !ls.releasing
}

// verifyParallel bounds the store calls verify has in flight.
const verifyParallel = 32

// verifyOne checks one lock: gone reports that the store no longer holds
// it although its holder may still believe it does.
func (l *Locks) verifyOne(ctx context.Context, name, token string, s *Session, ls *lease, until time.Time) (gone bool, err error) {
	if !l.now().Before(until) {
		return false, nil // its holder believes no longer
	}
	cctx, cancel := l.callCtx(ctx)
	st, err := l.store.Inspect(cctx, name)
	cancel()
	if err != nil {
		return false, err
	}
	if !st.Held || st.Token != token {
		// Released meanwhile (a release lands in the store before the
		// lease is dropped here), or not.
		return l.now().Before(until) && l.stillHeld(s, ls, token), nil
	}
	if ls == nil || st.TTL >= until.Sub(l.now()) {
		return false, nil
	}
	// A renewal was lost: the store would expire the lock before its
	// validity. Renew it now, before that.
	ok, err := s.renewLease(ctx, ls, ls.ttlNow(s))
	if err != nil {
		return false, err
	}
	return !ok && l.now().Before(until), nil
}
