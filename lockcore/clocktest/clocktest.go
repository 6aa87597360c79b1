// Package clocktest is a manual clock for tests of lockcore: time moves
// only when the test advances it, and timers due by then fire in order,
// so a test of renewals, deadlines or polls never sleeps.
package clocktest

import (
	"slices"
	"sync"
	"time"

	"github.com/lockproxy/lockproxy/lockcore"
)

// Fake is a lockcore.Clock that moves only on Advance.
type Fake struct {
	mu     sync.Mutex
	now    time.Time
	timers []*timer // guarded by mu; pending, in no particular order
	seq    int      // guarded by mu; orders timers due at the same time
}

var _ lockcore.Clock = (*Fake)(nil)

// New returns a Fake reading start.
func New(start time.Time) *Fake { return &Fake{now: start} }

// Now implements lockcore.Clock.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

type timer struct {
	f   *Fake
	at  time.Time
	seq int
	fn  func()
}

// AfterFunc implements lockcore.Clock. A timer due now or earlier fires on
// the next Advance, even Advance(0).
func (f *Fake) AfterFunc(d time.Duration, fn func()) lockcore.Timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	t := &timer{f: f, at: f.now.Add(d), seq: f.seq, fn: fn}
	f.timers = append(f.timers, t)
	return t
}

// Stop implements lockcore.Timer.
func (t *timer) Stop() bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	i := slices.Index(t.f.timers, t)
	if i < 0 {
		return false
	}
	t.f.timers = slices.Delete(t.f.timers, i, i+1)
	return true
}

// Advance moves the clock d forward, firing every timer due on the way in
// order of its deadline, each with the clock reading its deadline. A timer
// runs in the calling goroutine, so when Advance returns its work is done;
// one that arms another timer due within d sees that one fire too.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	end := f.now.Add(d)
	for {
		i := f.nextDue(end)
		if i < 0 {
			break
		}
		t := f.timers[i]
		f.timers = slices.Delete(f.timers, i, i+1)
		if t.at.After(f.now) {
			f.now = t.at
		}
		f.mu.Unlock()
		t.fn()
		f.mu.Lock()
	}
	if end.After(f.now) {
		f.now = end
	}
	f.mu.Unlock()
}

// nextDue is the index of the earliest timer due by end, or -1. f.mu is
// held.
func (f *Fake) nextDue(end time.Time) int {
	best := -1
	for i, t := range f.timers {
		if t.at.After(end) {
			continue
		}
		if best < 0 || t.at.Before(f.timers[best].at) || (t.at.Equal(f.timers[best].at) && t.seq < f.timers[best].seq) {
			best = i
		}
	}
	return best
}

// Pending reports how many timers wait to fire.
func (f *Fake) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.timers)
}
