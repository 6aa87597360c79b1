package safety

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// Rule names one safety property.
type Rule string

// The rules Check applies.
const (
	// Overlap: two clients believed they held one name at the same moment,
	// both inside the promised part of their windows, and at least one of
	// them held it alone (a lock held by one, or a writer).
	Overlap Rule = "overlap"
	// OverLimit: more clients believed they held a semaphore's permit at
	// one moment than its limit.
	OverLimit Rule = "over-limit"
	// FenceOrder: a later grant of a name carried a fence not greater than
	// an earlier one.
	FenceOrder Rule = "fence-order"
	// BadToken: a grant's token is not "<fence>:<random>".
	BadToken Rule = "bad-token"
	// ResourceOrder: the fenced resource accepted a fence not greater than
	// one it had already accepted.
	ResourceOrder Rule = "resource-order"
	// ResourceLog: the resource's log and the writes clients saw accepted
	// disagree.
	ResourceLog Rule = "resource-log"
	// StaleAccepted: a stale holder's write was accepted.
	StaleAccepted Rule = "stale-accepted"
	// FreshRejected: a write sent while its holder was still promised the
	// lock was rejected, so a newer holder had written inside its window.
	FreshRejected Rule = "fresh-rejected"
	// WriteOutside: a holder wrote while it did not believe it held the
	// lock (and the write was not a deliberate stale one).
	WriteOutside Rule = "write-outside-window"
)

// Violation is one broken rule, with enough context to find it in logs.
type Violation struct {
	Rule Rule
	Name string
	Msg  string
}

func (v Violation) String() string { return fmt.Sprintf("%s on %q: %s", v.Rule, v.Name, v.Msg) }

// Check applies every rule to the history as of now (open holds are taken
// to last until now) and returns the violations, grouped by rule.
func (h *History) Check(now time.Time) []Violation {
	holds := h.Holds()
	writes := h.Writes()
	h.mu.Lock()
	applied := make(map[string][]Applied, len(h.applied))
	for k, v := range h.applied {
		applied[k] = v
	}
	h.mu.Unlock()

	c := checker{origin: origin(holds, now)}
	alone, many := splitByKind(holds)
	c.overlaps(alone, now)
	c.counted(many, now)
	c.fences(alone)
	c.fencesRise(many)
	c.resource(holds, writes, applied)
	return c.out
}

type checker struct {
	origin time.Time // times print relative to it
	out    []Violation
}

func (c *checker) add(rule Rule, name, format string, args ...any) {
	c.out = append(c.out, Violation{Rule: rule, Name: name, Msg: fmt.Sprintf(format, args...)})
}

// at prints a time relative to the history's first grant.
func (c *checker) at(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return "+" + t.Sub(c.origin).Round(10*time.Microsecond).String()
}

func (c *checker) describe(g Hold) string {
	s := fmt.Sprintf("#%d %s via %s fence %d granted %s", g.ID, g.Client, g.Sidecar, g.Fence, c.at(g.Granted))
	switch {
	case g.Kind.Limit > 0:
		s += fmt.Sprintf(" (a permit of %d)", g.Kind.Limit)
	case g.Kind.Shared:
		s += " (a reader)"
	}
	if g.End != Open {
		s += fmt.Sprintf(" ended %s (%s)", c.at(g.Ended), g.End)
	} else {
		s += " still open"
	}
	if !g.Unprotected.IsZero() {
		s += fmt.Sprintf(" unprotected from %s (%s)", c.at(g.Unprotected), g.Why)
	}
	return s
}

func origin(holds []Hold, now time.Time) time.Time {
	o := now
	for _, g := range holds {
		if g.Granted.Before(o) {
			o = g.Granted
		}
	}
	return o
}

// promisedEnd is where a hold's window stops counting for mutual
// exclusion: its end (now, if open), or earlier, where it became
// unprotected.
func promisedEnd(g Hold, now time.Time) time.Time {
	end := g.Ended
	if g.End == Open {
		end = now
	}
	if !g.Unprotected.IsZero() && g.Unprotected.Before(end) {
		end = g.Unprotected
	}
	return end
}

// overlaps sorts each name's promised windows by start and sweeps them,
// keeping the window that reaches furthest: any window starting before it
// ends overlaps it. Touching windows (one ends as the next starts) do not.
func (c *checker) overlaps(holds []Hold, now time.Time) {
	type window struct {
		g          Hold
		start, end time.Time
	}
	byName := map[string][]window{}
	for _, g := range holds {
		end := promisedEnd(g, now)
		if !end.After(g.Granted) {
			continue
		}
		byName[g.Name] = append(byName[g.Name], window{g, g.Granted, end})
	}
	for _, name := range sortedKeys(byName) {
		ws := byName[name]
		slices.SortStableFunc(ws, func(a, b window) int { return a.start.Compare(b.start) })
		reach := ws[0]
		for _, w := range ws[1:] {
			if w.start.Before(reach.end) {
				c.add(Overlap, name, "%s and %s overlap for %v", c.describe(reach.g), c.describe(w.g),
					earliest(reach.end, w.end).Sub(w.start))
			}
			if w.end.After(reach.end) {
				reach = w
			}
		}
	}
}

// splitByKind sorts holds into those of names only ever held by one at a
// time, and those of names held by many (readers or a semaphore's
// permits) at some point, whose rules differ.
func splitByKind(holds []Hold) (alone, many []Hold) {
	shared := map[string]bool{}
	for _, g := range holds {
		if g.Kind != (Kind{}) {
			shared[g.Name] = true
		}
	}
	for _, g := range holds {
		if shared[g.Name] {
			many = append(many, g)
		} else {
			alone = append(alone, g)
		}
	}
	return alone, many
}

// counted sweeps each name's promised windows in time order (an end before
// a start at the same moment: touching windows do not overlap) and checks
// every moment a window opens: one held alone (a writer, or a lock held by
// one) shares it with nobody; readers share it with readers only; and no
// more hold a semaphore's permits than its limit.
func (c *checker) counted(holds []Hold, now time.Time) {
	type event struct {
		at    time.Time
		start bool
		g     Hold
	}
	byName := map[string][]event{}
	for _, g := range holds {
		end := promisedEnd(g, now)
		if !end.After(g.Granted) {
			continue
		}
		byName[g.Name] = append(byName[g.Name], event{g.Granted, true, g}, event{end, false, g})
	}
	for _, name := range sortedKeys(byName) {
		evs := byName[name]
		slices.SortStableFunc(evs, func(a, b event) int {
			if c := a.at.Compare(b.at); c != 0 {
				return c
			}
			switch {
			case a.start == b.start:
				return 0
			case !a.start:
				return -1
			}
			return 1
		})
		active := map[int]Hold{}
		for _, e := range evs {
			if !e.start {
				delete(active, e.g.ID)
				continue
			}
			active[e.g.ID] = e.g
			c.admitted(name, e.g, active)
		}
	}
}

// admitted checks the holders of name at the moment g's window opened.
func (c *checker) admitted(name string, g Hold, active map[int]Hold) {
	others := make([]Hold, 0, len(active)-1)
	for _, o := range active {
		if o.ID != g.ID {
			others = append(others, o)
		}
	}
	slices.SortFunc(others, func(a, b Hold) int { return cmp.Compare(a.ID, b.ID) })
	for _, o := range others {
		if !together(g.Kind, o.Kind) {
			c.add(Overlap, name, "%s and %s overlap", c.describe(o), c.describe(g))
			return
		}
	}
	if limit := g.Kind.Limit; limit > 0 && len(active) > limit {
		c.add(OverLimit, name, "%s made %d holders of a semaphore of %d: with %d others", c.describe(g), len(active), limit, len(others))
	}
}

// together reports whether holds of kinds a and b may overlap: two readers,
// or two permits of one semaphore (whose count is checked apart).
func together(a, b Kind) bool {
	readers := a.Shared && b.Shared && a.Limit <= 0 && b.Limit <= 0
	permits := a.Limit > 0 && a.Limit == b.Limit
	return readers || permits
}

// fencesRise checks, for names held by many, that no two grants of a name
// share a fence, and that each client's grants of a name carry rising
// fences. Holders that share a name are granted one after another, in
// fence order, but may learn of their grants in any order: a waiter told
// of its permit late can hear of it after another holder, granted later
// with a larger fence, has come and gone. What a client can see is that
// a grant it asked for after its own last hold ended is newer than that;
// and a writer, granted only once every holder before it has gone, has a
// fence above all of theirs.
func (c *checker) fencesRise(holds []Hold) {
	type key struct{ name, client string }
	byName := map[string][]Hold{}
	for _, g := range holds {
		if g.Fence <= 0 {
			c.add(BadToken, g.Name, "%s: token %q is not <fence>:<random>", c.describe(g), g.Token)
			continue
		}
		if !g.Unprotected.IsZero() && !g.Unprotected.After(g.Granted) {
			continue
		}
		byName[g.Name] = append(byName[g.Name], g)
	}
	for _, name := range sortedKeys(byName) {
		gs := byName[name]
		slices.SortStableFunc(gs, func(a, b Hold) int { return a.Granted.Compare(b.Granted) })
		seen := map[int64]Hold{}
		last := map[key]Hold{}
		var ended []Hold
		for _, g := range gs {
			if g.End != Open {
				ended = append(ended, g)
			}
		}
		slices.SortStableFunc(ended, func(a, b Hold) int { return a.Ended.Compare(b.Ended) })
		var top Hold // the largest fence of the holds ended so far
		i := 0
		for _, g := range gs {
			for ; i < len(ended) && ended[i].Ended.Before(g.Granted); i++ {
				if ended[i].Fence > top.Fence {
					top = ended[i]
				}
			}
			if g.Kind == (Kind{}) && top.Fence > 0 && g.Fence <= top.Fence {
				c.add(FenceOrder, name, "the writer %s came after %s had gone, with no larger a fence", c.describe(g), c.describe(top))
			}
		}
		for _, g := range gs {
			if o, dup := seen[g.Fence]; dup && o.Token != g.Token {
				c.add(FenceOrder, name, "%s has the fence of %s", c.describe(g), c.describe(o))
			}
			seen[g.Fence] = g
			k := key{name, g.Client}
			if p, ok := last[k]; ok && p.End != Open && !g.Granted.Before(p.Ended) && g.Fence <= p.Fence {
				c.add(FenceOrder, name, "%s came after the same client's %s, with no larger a fence", c.describe(g), c.describe(p))
			}
			last[k] = g
		}
	}
}

// fences checks that, per name, fences strictly increase in the order in
// which clients received their grants. A hold unprotected from its very
// grant (given while a fault the promise does not cover had taken the
// lock) is left out: its fence may come from the state the fault broke.
func (c *checker) fences(holds []Hold) {
	byName := map[string][]Hold{}
	for _, g := range holds {
		if g.Fence <= 0 {
			c.add(BadToken, g.Name, "%s: token %q is not <fence>:<random>", c.describe(g), g.Token)
			continue
		}
		if !g.Unprotected.IsZero() && !g.Unprotected.After(g.Granted) {
			continue
		}
		byName[g.Name] = append(byName[g.Name], g)
	}
	for _, name := range sortedKeys(byName) {
		gs := byName[name]
		slices.SortStableFunc(gs, func(a, b Hold) int { return a.Granted.Compare(b.Granted) })
		for i := 1; i < len(gs); i++ {
			if gs[i].Fence <= gs[i-1].Fence {
				c.add(FenceOrder, name, "%s came after %s", c.describe(gs[i]), c.describe(gs[i-1]))
			}
		}
	}
}

// resource checks the fenced resource's log and every write attempt
// against what the holds say.
func (c *checker) resource(holds []Hold, writes []Write, applied map[string][]Applied) {
	for _, name := range sortedKeys(applied) {
		log := applied[name]
		for i := 1; i < len(log); i++ {
			if log[i].Fence <= log[i-1].Fence {
				c.add(ResourceOrder, name, "accepted fence %d (token %s) after fence %d", log[i].Fence, log[i].Token, log[i-1].Fence)
			}
		}
	}

	type entry struct {
		name  string
		token string
	}
	accepted := map[entry]int{}
	for _, w := range writes {
		g := holds[w.Hold]
		switch {
		case w.Stale:
			if w.Done && w.Accepted {
				c.add(StaleAccepted, w.Name, "write #%d with fence %d, sent %s by the stale %s, was accepted",
					w.ID, w.Fence, c.at(w.At), c.describe(g))
			}
		case w.At.Before(g.Granted) || (g.End != Open && w.At.After(g.Ended)):
			c.add(WriteOutside, w.Name, "write #%d sent %s outside %s", w.ID, c.at(w.At), c.describe(g))
		case w.Done && !w.Accepted && (g.Unprotected.IsZero() || w.At.Before(g.Unprotected)):
			c.add(FreshRejected, w.Name, "write #%d with fence %d, sent %s while %s believed it held the lock, was rejected",
				w.ID, w.Fence, c.at(w.At), c.describe(g))
		}
		if w.Done && w.Accepted {
			accepted[entry{w.Name, g.Token}]++
		}
	}
	for _, name := range sortedKeys(applied) {
		for _, a := range applied[name] {
			e := entry{name, a.Token}
			if accepted[e] == 0 {
				c.add(ResourceLog, name, "the resource accepted fence %d (token %s), which no client saw accepted", a.Fence, a.Token)
				continue
			}
			accepted[e]--
		}
	}
	var unlogged []entry
	for e, n := range accepted {
		if _, logged := applied[e.name]; logged && n > 0 {
			unlogged = append(unlogged, e)
		}
	}
	slices.SortFunc(unlogged, func(a, b entry) int { return cmp.Or(cmp.Compare(a.name, b.name), cmp.Compare(a.token, b.token)) })
	for _, e := range unlogged {
		c.add(ResourceLog, e.name, "a write by token %s was seen accepted but is not in the resource's log", e.token)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// Summary counts a history's holds and writes, for reports.
type Summary struct {
	Grants   int
	Ends     map[End]int
	Writes   int
	Accepted int
	Rejected int
}

// Summary counts the history as it stands.
func (h *History) Summary() Summary {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := Summary{Grants: len(h.holds), Ends: map[End]int{}, Writes: len(h.writes)}
	for _, g := range h.holds {
		s.Ends[g.End]++
	}
	for _, w := range h.writes {
		if w.Done && w.Accepted {
			s.Accepted++
		} else if w.Done {
			s.Rejected++
		}
	}
	return s
}
