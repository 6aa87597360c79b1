package lockcore

import (
	"context"
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

// QuietLeft is what is left of the quiet period; 0 when none runs.
func (l *Locks) QuietLeft() time.Duration {
	u := l.quietUntil.Load()
	if u == 0 {
		return 0
	}
	return max(time.Duration(u)-l.now().Sub(l.base), 0)
}

// quiet returns a *QuietError while the quiet period runs, else nil.
func (l *Locks) quiet() error {
	if left := l.QuietLeft(); left > 0 {
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
	l.mu.Lock()
	sessions := make([]*Session, 0, len(l.sessions))
	for s := range l.sessions {
		sessions = append(sessions, s)
	}
	queues := l.queueList()
	l.mu.Unlock()
	// Their places in the store's queue went with the old store.
	var werr error = ErrStoreReset // with no quiet period, they may retry at once
	if left := l.QuietLeft(); left > 0 {
		werr = &QuietError{Left: left}
	}
	for _, q := range queues {
		q.answerAll(werr)
	}
	// One goroutine per session: telling a holder is a push, which may wait
	// for a client that reads slowly; the others must not wait for it.
	var lost atomic.Int64
	var wg sync.WaitGroup
	for _, s := range sessions {
		wg.Go(func() {
			for _, ls := range s.all() {
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
// quiet period another sidecar announced. When the upstream is no longer
// the one the last check found, it restarted or failed over and may have
// forgotten locks: every lease is declared lost (see UpstreamReset), the
// quiet period is announced to the other sidecars, and only then does the
// store accept acquires again. An error leaves the store refusing them if
// it can tell.
func (l *Locks) CheckUpstream(ctx context.Context, up Upstream) error {
	l.checkMu.Lock()
	defer l.checkMu.Unlock()
	h, err := up.Health(ctx)
	if err != nil {
		return err
	}
	l.Quiet(h.Quiet)
	if l.storeID != "" && h.ID != l.storeID {
		d := l.cfg.QuietPeriod
		// Announced before the holders are told, which may take a while:
		// sidecars that never held a lock through the old upstream learn
		// of the period only from the announcement.
		l.Quiet(d)
		var aerr error
		if d > 0 {
			aerr = up.AnnounceQuiet(ctx, d)
		}
		lost := l.UpstreamReset(d, "upstream restarted or failed over")
		l.log.Error("the upstream restarted or failed over and may have lost its locks: every lock held through it is lost, and no lock is granted during the quiet period",
			"locks_lost", lost, "quiet_period", d.String(), "before", l.storeID, "now", h.ID)
		if aerr != nil {
			// Not accepted yet: the next check finds the change again and
			// announces again.
			return fmt.Errorf("announcing the quiet period: %w", aerr)
		}
	}
	l.storeID = h.ID
	up.Accept(h.ID)
	return nil
}
