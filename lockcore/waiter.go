package lockcore

import (
	"fmt"
	"time"
)

// waiter is one blocked acquire. Its fields after result are guarded by
// its queue's mu.
type waiter struct {
	id     string // unique among all sidecars: "<sidecar id>:<n>"
	nonce  string
	ttl    time.Duration
	kind   Kind
	q      *queue
	result chan outcome // gets the one outcome; buffered, so a send never blocks

	state   waitState
	due     bool      // the store named it first: its try goes next (while waiting)
	seen    time.Time // when the last call that found it queued was sent
	granted string    // the token it was answered with, if any
}

type outcome struct {
	g   grant
	err error
}

// waitState is where a waiter stands. Moves other than these are bugs
// (set panics on them):
//
//	from \ to  | queued             | answered        | left
//	-----------+--------------------+-----------------+---------------------
//	joined     | a call queued it   | its outcome     | it stopped waiting
//	queued     | a call found it    | its outcome     | it stopped waiting
//	answered   |                    |                 |
//	left       |                    |                 |
//
// A waiter that stops waiting after its outcome was sent stays answered:
// whoever took it out of the queue deals with the outcome (see abandon).
type waitState uint8

const (
	// joined: it waits on this sidecar; no store call has queued it yet.
	joined waitState = iota
	// queued: the store has it in the name's queue.
	queued
	// answered: its outcome, a grant or an error, has been sent.
	answered
	// left: it stopped waiting before an outcome: its WAIT ran out, its
	// client went away, or Shutdown began.
	left
)

var waitStateNames = [...]string{"joined", "queued", "answered", "left"}

func (s waitState) String() string { return waitStateNames[s] }

// canMove is the transition table above.
func canMove(from, to waitState) bool {
	switch from {
	case joined, queued:
		return to == queued || to == answered || to == left
	}
	return false
}

// set moves w to state to. q.mu is held.
func (w *waiter) set(to waitState) {
	if !canMove(w.state, to) {
		panic(fmt.Sprintf("lockcore: waiter %s cannot go from %v to %v", w.id, w.state, to))
	}
	w.state = to
	if to != queued {
		w.due = false
	}
}

// waiting reports whether w still waits for an outcome. q.mu is held.
func (w *waiter) waiting() bool { return w.state == joined || w.state == queued }

// ready reports whether w can be given the lock: the store has queued it
// and it still waits. q.mu is held.
func (w *waiter) ready() bool { return w.state == queued }
