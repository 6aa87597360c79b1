package lockcore

// ReadyWaiters is how many of this sidecar's waiters for name it knows the
// store has queued: those a release here can hand the lock to. A test
// reads it to know a queueing reply has been taken in, which the store's
// own state cannot show.
func (l *Locks) ReadyWaiters(name string) int {
	q := l.queue(name)
	if q == nil {
		return 0
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, w := range q.waiters {
		if w.ready() {
			n++
		}
	}
	return n
}
