package main

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"time"
)

// Semaphores (-limit n) and read-write locks (-readers f). The waiting
// workload's clients then take each name as a permit of a counting
// semaphore (LOCK.ACQUIRE … LIMIT n), or as a reader (… SHARED) or a writer
// (a plain acquire) of a read-write lock. What changes with the kind: the
// work each holder does in Redis (so that Redis can still tell a broken
// rule), the rule the recorded holds are checked against, and which
// release a waiter's grant is timed from.

// holdKind is how one acquisition holds its name.
type holdKind struct {
	limit  int  // > 0: a permit of a semaphore of limit permits
	shared bool // a reader of a read-write lock
}

// args are k's LOCK.ACQUIRE options.
func (k holdKind) args() []string {
	switch {
	case k.limit > 0:
		return []string{"LIMIT", strconv.Itoa(k.limit)}
	case k.shared:
		return []string{"SHARED"}
	}
	return nil
}

// nextKind is how a client takes its name next: the run's semaphore, or a
// reader with probability cfg.readers, drawn afresh for every acquisition
// so that each client is sometimes a writer and sometimes a reader.
func nextKind(cfg config) holdKind {
	return holdKind{limit: cfg.limit, shared: cfg.readers > 0 && rand.Float64() < cfg.readers}
}

// kindDescription is the run's kind of lock for its heading line.
func kindDescription(cfg config) string {
	switch {
	case cfg.limit > 0:
		return fmt.Sprintf(", semaphores of LIMIT %d", cfg.limit)
	case cfg.readers > 0:
		return fmt.Sprintf(", read-write locks with %.0f%% readers", 100*cfg.readers)
	}
	return ""
}

// ruleName is the rule the run's holds must keep, for its failure.
func ruleName(cfg config) string {
	switch {
	case cfg.limit > 0:
		return fmt.Sprintf("counted exclusion (at most %d holds of a name at once)", cfg.limit)
	case cfg.readers > 0:
		return "read-write exclusion (no writer's hold beside any other hold)"
	}
	return "mutual exclusion"
}

// holdersKey is the gauge of a semaphore's holders beside its counter.
func holdersKey(counter string) string { return counter + ":holders" }

// update is a holder's work in Redis, chosen so that Redis itself shows a
// broken rule, apart from the clients' clocks:
//   - a plain lock's holder and a read-write lock's writer read the
//     counter, add one and write it back: a second holder at the same time
//     would lose an update, and the counter would fall short;
//   - a reader INCRs the counter: readers hold together, so their updates
//     must not be lost to each other, but a writer beside them would still
//     lose one (or lose its own);
//   - a semaphore's holder INCRs the name's holders gauge, and DECRs it as
//     it leaves (see leave). Its holders hold together, so the counter's
//     lost-update check is replaced, not kept: the gauge's count as each
//     holder came in, itself included, is returned and may not exceed the
//     limit. Two commands a hold, as for the other kinds.
func update(up *client, k holdKind, counter string) (inside int, err error) {
	switch {
	case k.limit > 0:
		v, err := up.do("INCR", holdersKey(counter))
		return int(v.Num), err
	case k.shared:
		_, err := up.do("INCR", counter)
		return 0, err
	}
	v, err := up.do("GET", counter)
	if err != nil {
		return 0, err
	}
	n, _ := strconv.Atoi(v.Str)
	_, err = up.do("SET", counter, strconv.Itoa(n+1))
	return 0, err
}

// leave undoes a semaphore holder's count in the gauge before it releases.
func leave(up *client, k holdKind, counter string) error {
	if k.limit == 0 {
		return nil
	}
	_, err := up.do("DECR", holdersKey(counter))
	return err
}

// breach is what a check of one name's holds against its rule found.
type breach struct {
	count int         // grants that broke the rule
	first acquisition // the first of them
	held  int         // the holds already in place at the first
	most  int         // the most holds at once (for a read-write lock, of readers)
}

// holdEvent is the start or the end of a hold.
type holdEvent struct {
	at    time.Duration
	start bool
	a     acquisition
}

// holdEvents are the starts and ends of as in time order, an end before a
// start at the same instant: a hold that ends as another begins does not
// overlap it. The recorded holds lie within the real ones (got is stamped
// after the grant's reply, freed before the release is sent), so holds
// that overlap here overlapped in the server too.
func holdEvents(as []acquisition) []holdEvent {
	ev := make([]holdEvent, 0, 2*len(as))
	for _, a := range as {
		ev = append(ev, holdEvent{at: a.got, start: true, a: a}, holdEvent{at: a.freed, a: a})
	}
	sort.Slice(ev, func(i, j int) bool {
		if ev[i].at != ev[j].at {
			return ev[i].at < ev[j].at
		}
		return !ev[i].start && ev[j].start
	})
	return ev
}

// countedOverlaps checks one name's holds against a semaphore of n
// permits (a plain lock is one of 1): a grant while n holds were in place
// breaks it.
func countedOverlaps(as []acquisition, n int) breach {
	var b breach
	held := 0
	for _, e := range holdEvents(as) {
		if !e.start {
			held--
			continue
		}
		if held >= n {
			b.note(e.a, held)
		}
		held++
		b.most = max(b.most, held)
	}
	return b
}

// readWriteOverlaps checks one name's holds against a read-write lock: a
// writer granted beside any hold, or a reader beside a writer, breaks it;
// readers beside readers do not.
func readWriteOverlaps(as []acquisition) breach {
	var b breach
	var readers, writers int
	for _, e := range holdEvents(as) {
		switch {
		case !e.start && e.a.shared:
			readers--
		case !e.start:
			writers--
		case e.a.shared:
			if writers > 0 {
				b.note(e.a, readers+writers)
			}
			readers++
			b.most = max(b.most, readers)
		default:
			if readers+writers > 0 {
				b.note(e.a, readers+writers)
			}
			writers++
		}
	}
	return b
}

// note counts a grant that broke the rule, keeping the first.
func (b *breach) note(a acquisition, held int) {
	if b.count == 0 {
		b.first, b.held = a, held
	}
	b.count++
}

// checkHolds checks one name's recorded holds against the run's rule,
// counting each grant that broke it and describing the first.
func (r *result) checkHolds(cfg config, name int, as []acquisition) {
	var b breach
	switch {
	case cfg.limit > 0:
		b = countedOverlaps(as, cfg.limit)
	case cfg.readers > 0:
		b = readWriteOverlaps(as)
	default:
		b = countedOverlaps(as, 1)
	}
	r.most = max(r.most, b.most)
	if b.count == 0 {
		return
	}
	r.violations += b.count
	role := "a holder"
	switch {
	case cfg.readers > 0 && b.first.shared:
		role = "a reader"
	case cfg.readers > 0:
		role = "a writer"
	}
	r.problems = append(r.problems, fmt.Sprintf("name %d: %d grants broke %s; the first, client %d as %s at %v, came while %d holds were in place",
		name, b.count, ruleName(cfg), b.first.client, role, b.first.got, b.held))
}

// checkGauge checks what a semaphore's holders counted in Redis as they
// came in: never more than the limit.
func (r *result) checkGauge(cfg config, acqs []acquisition) {
	over := make([]int, cfg.names)
	for _, a := range acqs {
		r.mostCounted = max(r.mostCounted, a.inside)
		if a.inside > cfg.limit {
			over[a.name]++
		}
	}
	for n, k := range over {
		if k > 0 {
			r.problems = append(r.problems, fmt.Sprintf("name %d: %d holders found more than %d holders in the Redis gauge", n, k, cfg.limit))
			r.violations += k
		}
	}
}

// handOff records the gap from from's release to to's grant.
func (r *result) handOff(from, to acquisition, sidecars int) time.Duration {
	gap := to.got - from.freed
	r.gap = append(r.gap, gap)
	if sidecars > 1 && from.client%sidecars != to.client%sidecars {
		r.gapAcross = append(r.gapAcross, gap)
	} else if sidecars > 1 {
		r.gapWithin = append(r.gapWithin, gap)
	}
	return gap
}

// permitGaps times a semaphore's hand-offs on one name (as in grant order).
// Each grant took a permit: one nobody had held yet (the name's first limit
// grants), else the oldest one that a release had freed and nobody had
// taken since, as a FIFO semaphore gives a release's permit to its first
// waiter. A grantee that had asked before that release waited for it, and
// its gap runs from that release. (Timing each grant from the latest
// release before it instead would time two waiters let in by releases
// closer together than a hand-off takes both from the second, flattering
// the gap.) A misjudged match, from the clients' clocks, stays local: each
// grant takes one permit and each release frees one.
func (r *result) permitGaps(cfg config, sidecars int, as []acquisition) {
	byFreed := slices.Clone(as)
	sort.Slice(byFreed, func(i, j int) bool { return byFreed[i].freed < byFreed[j].freed })
	unused := cfg.limit
	var free []acquisition // released permits not taken yet, oldest first
	next := 0              // byFreed[next:] are released after the grant looked at
	for _, a := range as {
		for ; next < len(byFreed) && byFreed[next].freed <= a.got; next++ {
			free = append(free, byFreed[next])
		}
		if unused > 0 {
			unused--
			continue
		}
		if len(free) == 0 {
			continue // more holds than permits: checkHolds reports it
		}
		from := free[0]
		free = free[1:]
		if a.asked >= cfg.warmup && a.asked < from.freed {
			r.handOff(from, a, sidecars)
		}
	}
}

// readWriteGaps times a read-write lock's hand-offs on one name. A writer
// waits for every hold before it to end, so it was let in by the last
// release before its grant; a reader waits only for writers (holding, or
// queued ahead of it), so it was let in by the last writer's release
// before its grant, and readers let in together are each timed from it.
// Either waited for that release if it asked before it.
func (r *result) readWriteGaps(cfg config, sidecars int, as []acquisition) {
	all := slices.Clone(as)
	sort.Slice(all, func(i, j int) bool { return all[i].freed < all[j].freed })
	writers := slices.DeleteFunc(slices.Clone(all), func(a acquisition) bool { return a.shared })
	for _, a := range as {
		if a.asked < cfg.warmup {
			continue
		}
		from := all
		if a.shared {
			from = writers
		}
		i := sort.Search(len(from), func(i int) bool { return from[i].freed > a.got }) - 1
		// A client's own release is never what it waited for: it asks
		// after it.
		if i < 0 || a.asked >= from[i].freed || from[i].client == a.client {
			continue
		}
		gap := r.handOff(from[i], a, sidecars)
		if a.shared {
			r.gapToReaders = append(r.gapToReaders, gap)
		} else {
			r.gapToWriters = append(r.gapToWriters, gap)
		}
	}
}
