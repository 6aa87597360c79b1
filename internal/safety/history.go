// Package safety decides whether a recorded history of lock grants and
// fenced writes keeps lockproxy's safety promises: no two clients believe
// they hold one lock at the same moment (no more than a semaphore's limit,
// and never a writer with any reader), fences grow in grant order, and a
// fenced resource never takes a write that a newer holder has superseded.
//
// It is an observer, independent of the code it judges: it knows tokens
// only by their documented form and time only by what clients saw.
package safety

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// End is how a client stopped believing it held a lock.
type End int

// The ways a hold can end.
const (
	// Open: the client still believed it held the lock when the history
	// was checked.
	Open End = iota
	// Released: the client sent LOCK.RELEASE, and it was answered 1 (or
	// not yet answered).
	Released
	// Lost: the client was told, by a lock.lost push or a RENEW answered 0.
	Lost
	// Unknown: the lock ended at a moment the client cannot know: its
	// RELEASE answered 0 with no warning before, or its connection died.
	Unknown
)

func (e End) String() string {
	switch e {
	case Open:
		return "open"
	case Released:
		return "released"
	case Lost:
		return "lost"
	case Unknown:
		return "expired-unknown"
	}
	return "End(" + strconv.Itoa(int(e)) + ")"
}

// Hold is one grant as a client saw it: from the moment it received the
// token (Granted) to the moment it stopped believing it held the lock
// (Ended), as the client's own clock measured both.
type Hold struct {
	ID      int
	Client  string // who believed it: one connection or process
	Sidecar string // which sidecar granted it
	Name    string
	Token   string
	Fence   int64 // 0 when the token is malformed
	Kind    Kind  // what it was asked for as: zero for a lock held by one
	Granted time.Time
	Ended   time.Time // zero while Open
	End     End
	// Unprotected, when set, is the moment from which this window is
	// outside the promise: its client (or its sidecar) was deliberately
	// paused, or the scenario knows the upstream dropped the lock. Only the
	// part before it is held to mutual exclusion.
	Unprotected time.Time
	Why         string // why it is unprotected
}

// Write is one attempt of a holder to write to the fenced resource.
type Write struct {
	ID       int
	Hold     int
	Name     string
	Fence    int64
	At       time.Time // when the client sent it
	Done     bool      // answered
	Accepted bool
	// Stale marks a write the scenario made on purpose from a holder
	// paused past its validity, after a newer holder wrote: it must be
	// rejected.
	Stale bool
}

// Applied is one write the fenced resource accepted, in its own order.
type Applied struct {
	Fence int64
	Token string // the writer's token
}

// span is one pause of an actor (a client or a sidecar); to is zero while
// it lasts.
type span struct{ from, to time.Time }

// History collects what clients saw. Its methods are safe for concurrent
// use; times are passed in so that a history can also be written by hand.
type History struct {
	mu      sync.Mutex
	holds   []*Hold              // guarded by mu; index = ID
	byToken map[string]*Hold     // guarded by mu
	writes  []*Write             // guarded by mu; index = ID
	pauses  map[string][]span    // guarded by mu; by actor
	applied map[string][]Applied // guarded by mu; the resource's log by name
}

// NewHistory returns an empty history.
func NewHistory() *History {
	return &History{byToken: map[string]*Hold{}, pauses: map[string][]span{}, applied: map[string][]Applied{}}
}

// ParseFence returns the fencing token of a lock token "<fence>:<random>",
// or false when the token does not have that form.
func ParseFence(token string) (int64, bool) {
	f, rest, ok := strings.Cut(token, ":")
	if !ok || rest == "" || f == "" || f[0] == '+' || f[0] == '-' {
		return 0, false
	}
	n, err := strconv.ParseInt(f, 10, 64)
	if err != nil || n <= 0 {
		return 0, false
	}
	return n, true
}

// Kind is what a hold was asked for as: with Shared, a reader, which may
// share the name with other readers; with Limit, one of at most Limit
// holders of a semaphore. The zero Kind holds a name alone.
type Kind struct {
	Shared bool
	Limit  int
}

// Grant records that client received token for name from sidecar at at,
// and returns the hold's id. A malformed token is kept, with fence 0, and
// reported by Check.
func (h *History) Grant(client, sidecar, name, token string, at time.Time) int {
	return h.GrantAs(client, sidecar, name, token, Kind{}, at)
}

// GrantAs is Grant of a hold asked for as kind.
func (h *History) GrantAs(client, sidecar, name, token string, kind Kind, at time.Time) int {
	fence, _ := ParseFence(token)
	h.mu.Lock()
	defer h.mu.Unlock()
	g := &Hold{ID: len(h.holds), Client: client, Sidecar: sidecar, Name: name, Token: token, Fence: fence, Kind: kind, Granted: at}
	h.holds = append(h.holds, g)
	if _, dup := h.byToken[token]; !dup {
		h.byToken[token] = g
	}
	return g.ID
}

// End records that hold id stopped being believed at at, and how. Only the
// first end counts: it reports false if the hold had already ended.
func (h *History) End(id int, how End, at time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.endLocked(h.holds[id], how, at)
}

func (h *History) endLocked(g *Hold, how End, at time.Time) bool {
	if g.End != Open {
		return false
	}
	g.End, g.Ended = how, at
	return true
}

// Reclassify changes how an ended hold ended, keeping when: a RELEASE sent
// (ending the belief) and then answered 0 tells the client it had lost the
// lock at some earlier, unknown moment.
func (h *History) Reclassify(id int, how End) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if g := h.holds[id]; g.End != Open {
		g.End = how
	}
}

// LostToken ends, as Lost at at, the open hold with token, for a lock.lost
// push. It reports whether such a hold was open.
func (h *History) LostToken(token string, at time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	g := h.byToken[token]
	return g != nil && h.endLocked(g, Lost, at)
}

// Believes reports whether hold id is still open.
func (h *History) Believes(id int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.holds[id].End == Open
}

// TryWrite records a write attempt of hold id at at if, and only if, the
// hold is still open at that moment, so that a push ending the hold cannot
// slip between the check and the record. It returns the write's id.
func (h *History) TryWrite(id int, at time.Time) (int, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	g := h.holds[id]
	if g.End != Open {
		return 0, false
	}
	return h.writeLocked(g, at, false), true
}

// StaleWrite records a write attempt of hold id at at that the scenario
// makes on purpose after the hold's validity: Check requires it rejected.
func (h *History) StaleWrite(id int, at time.Time) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.writeLocked(h.holds[id], at, true)
}

func (h *History) writeLocked(g *Hold, at time.Time, stale bool) int {
	w := &Write{ID: len(h.writes), Hold: g.ID, Name: g.Name, Fence: g.Fence, At: at, Stale: stale}
	h.writes = append(h.writes, w)
	return w.ID
}

// WriteDone records the resource's answer to write w.
func (h *History) WriteDone(w int, accepted bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.writes[w].Done, h.writes[w].Accepted = true, accepted
}

// Pause records that actor (a client or a sidecar id) was deliberately
// paused from at: holds of that actor open then, or granted while it is
// paused, are outside the promise from then on.
func (h *History) Pause(actor string, at time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pauses[actor] = append(h.pauses[actor], span{from: at})
}

// Resume ends actor's current pause at at.
func (h *History) Resume(actor string, at time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s := h.pauses[actor]; len(s) > 0 && s[len(s)-1].to.IsZero() {
		s[len(s)-1].to = at
	}
}

// Unprotect puts hold id outside the promise from from on, for why: a
// fault the promise does not cover took its lock away (eviction, for one).
func (h *History) Unprotect(id int, from time.Time, why string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	g := h.holds[id]
	if g.Unprotected.IsZero() || from.Before(g.Unprotected) {
		g.Unprotected, g.Why = from, why
	}
}

// SetApplied records the fenced resource's log of accepted writes for
// name, in the order it accepted them.
func (h *History) SetApplied(name string, log []Applied) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.applied[name] = append([]Applied(nil), log...)
}

// Holds returns a copy of every hold, with pauses folded into Unprotected.
func (h *History) Holds() []Hold {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Hold, len(h.holds))
	for i, g := range h.holds {
		out[i] = h.withPausesLocked(g)
	}
	return out
}

// Writes returns a copy of every write attempt.
func (h *History) Writes() []Write {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Write, len(h.writes))
	for i, w := range h.writes {
		out[i] = *w
	}
	return out
}

// withPausesLocked returns g with Unprotected moved earlier to the start of
// any pause of its client or sidecar that overlaps its window.
func (h *History) withPausesLocked(g *Hold) Hold {
	c := *g
	for _, actor := range []string{g.Client, g.Sidecar} {
		for _, p := range h.pauses[actor] {
			if !g.Ended.IsZero() && !p.from.Before(g.Ended) {
				continue // paused after the hold ended
			}
			if !p.to.IsZero() && !p.to.After(g.Granted) {
				continue // resumed before it was granted
			}
			from := p.from
			if from.Before(g.Granted) {
				from = g.Granted
			}
			if c.Unprotected.IsZero() || from.Before(c.Unprotected) {
				c.Unprotected, c.Why = from, fmt.Sprintf("%s was paused", actor)
			}
		}
	}
	return c
}
