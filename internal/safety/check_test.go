package safety

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// ms is n milliseconds into a hand-made history.
func ms(n int) time.Time {
	return time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(n) * time.Millisecond)
}

func tok(fence int64) string { return fmt.Sprintf("%d:%032x", fence, fence) }

// hold records a grant of name with fence from granted to ended (ms; a
// negative ended leaves it open) and returns its id.
func hold(h *History, client, name string, fence int64, granted, ended int) int {
	id := h.Grant(client, "sc-"+client, name, tok(fence), ms(granted))
	if ended >= 0 {
		h.End(id, Released, ms(ended))
	}
	return id
}

// write records a write of hold id at at, answered accepted. Hand-made
// holds are ended as they are made, so it records without TryWrite's check
// that the hold is still open.
func write(h *History, id, at int, accepted bool) {
	h.mu.Lock()
	w := h.writeLocked(h.holds[id], ms(at), false)
	h.mu.Unlock()
	h.WriteDone(w, accepted)
}

func rules(vs []Violation) map[Rule]int {
	m := map[Rule]int{}
	for _, v := range vs {
		m[v.Rule]++
	}
	return m
}

func expect(t *testing.T, h *History, now int, want map[Rule]int) {
	t.Helper()
	vs := h.Check(ms(now))
	got := rules(vs)
	for r, n := range want {
		if got[r] != n {
			t.Errorf("%s: %d violations, want %d", r, got[r], n)
		}
	}
	for r, n := range got {
		if _, expected := want[r]; !expected {
			t.Errorf("%s: %d unexpected violations", r, n)
		}
	}
	if t.Failed() {
		for _, v := range vs {
			t.Log(v)
		}
	}
}

// A history that keeps every rule passes; each case below breaks one rule
// of it and must be caught, so that a passing suite means something.
func TestCleanHistoryPasses(t *testing.T) {
	h := NewHistory()
	a := hold(h, "a", "n", 10, 0, 10)
	write(h, a, 1, true)
	b := hold(h, "b", "n", 11, 10, 20) // starts exactly where a ended: no overlap
	write(h, b, 12, true)
	c := hold(h, "c", "m", 5, 5, 15) // another name may overlap freely
	write(h, c, 6, true)
	h.SetApplied("n", []Applied{{10, tok(10)}, {11, tok(11)}})
	h.SetApplied("m", []Applied{{5, tok(5)}})
	expect(t, h, 100, nil)
}

func TestOverlap(t *testing.T) {
	for _, tc := range []struct {
		name  string
		build func(h *History)
		want  int
	}{
		{"partial", func(h *History) {
			hold(h, "a", "n", 1, 0, 10)
			hold(h, "b", "n", 2, 5, 15)
		}, 1},
		{"one window covers two later ones", func(h *History) {
			hold(h, "a", "n", 1, 0, 100)
			hold(h, "b", "n", 2, 10, 20)
			hold(h, "c", "n", 3, 30, 40)
		}, 2},
		{"an open hold lasts until the check", func(h *History) {
			hold(h, "a", "n", 1, 0, -1)
			hold(h, "b", "n", 2, 50, 60)
		}, 1},
		{"a lost lock's window lasts until the client was told", func(h *History) {
			h.Grant("a", "s1", "n", tok(1), ms(0))
			h.LostToken(tok(1), ms(30))
			hold(h, "b", "n", 2, 20, 40)
		}, 1},
		{"a pause after the other window is no excuse", func(h *History) {
			hold(h, "a", "n", 1, 0, 100)
			hold(h, "b", "n", 2, 10, 20)
			h.Pause("a", ms(50))
		}, 1},
		{"a pause that ended before the grant is no excuse", func(h *History) {
			h.Pause("a", ms(0))
			h.Resume("a", ms(5))
			hold(h, "a", "n", 1, 10, 100)
			hold(h, "b", "n", 2, 50, 60)
		}, 1},
		{"a paused client is excused from its pause on", func(h *History) {
			hold(h, "a", "n", 1, 0, 100)
			h.Pause("a", ms(10))
			hold(h, "b", "n", 2, 50, 60)
		}, 0},
		{"so is a paused sidecar's client", func(h *History) {
			hold(h, "a", "n", 1, 0, 100)
			h.Pause("sc-a", ms(10))
			h.Resume("sc-a", ms(90))
			hold(h, "b", "n", 2, 50, 60)
		}, 0},
		{"a grant received during the pause is excused whole", func(h *History) {
			h.Pause("sc-a", ms(0))
			hold(h, "a", "n", 1, 10, 100)
			hold(h, "b", "n", 2, 50, 60)
		}, 0},
		{"an unprotected hold is excused from then on", func(h *History) {
			a := hold(h, "a", "n", 1, 0, 100)
			h.Unprotect(a, ms(40), "evicted")
			hold(h, "b", "n", 2, 50, 60)
		}, 0},
		{"but not before", func(h *History) {
			a := hold(h, "a", "n", 1, 0, 100)
			h.Unprotect(a, ms(55), "evicted")
			hold(h, "b", "n", 2, 50, 60)
		}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := NewHistory()
			tc.build(h)
			want := map[Rule]int{}
			if tc.want > 0 {
				want[Overlap] = tc.want
			}
			expect(t, h, 200, want)
		})
	}
}

func TestFenceOrder(t *testing.T) {
	h := NewHistory()
	hold(h, "a", "n", 5, 0, 10)
	hold(h, "b", "n", 3, 20, 30) // lower than before
	hold(h, "c", "n", 6, 40, 50)
	hold(h, "d", "n", 6, 60, 70) // equal is not strictly greater
	hold(h, "e", "m", 1, 0, 10)  // another name starts its own order
	expect(t, h, 100, map[Rule]int{FenceOrder: 2})

	// A hold unprotected from its grant is left out; one unprotected
	// later is not.
	h = NewHistory()
	hold(h, "a", "n", 5, 0, 10)
	b := hold(h, "b", "n", 3, 20, 30)
	h.Unprotect(b, ms(20), "evicted")
	c := hold(h, "c", "n", 4, 40, 50)
	h.Unprotect(c, ms(45), "evicted")
	expect(t, h, 100, map[Rule]int{FenceOrder: 1})

	// Order is by grant time, not by the order of recording.
	h = NewHistory()
	hold(h, "b", "n", 6, 20, 30)
	hold(h, "a", "n", 5, 0, 10)
	expect(t, h, 100, nil)
}

func TestBadToken(t *testing.T) {
	for _, token := range []string{"", "abc", "12", "12:", ":ab", "-3:ab", "+3:ab", "0:ab", "x1:ab", "99999999999999999999:ab"} {
		h := NewHistory()
		h.Grant("a", "s", "n", token, ms(0))
		expect(t, h, 10, map[Rule]int{BadToken: 1})
	}
}

func TestParseFence(t *testing.T) {
	for token, want := range map[string]int64{"1:a": 1, "1795739279425022:ae97": 1795739279425022, "7:a:b": 7} {
		if got, ok := ParseFence(token); !ok || got != want {
			t.Errorf("ParseFence(%q) = %d, %v; want %d", token, got, ok, want)
		}
	}
}

func TestResourceOrder(t *testing.T) {
	h := NewHistory()
	a := hold(h, "a", "n", 5, 0, 10)
	write(h, a, 1, true)
	b := hold(h, "b", "n", 6, 20, 30)
	write(h, b, 21, true)
	// The resource took 6, then 5 again: its own check failed.
	h.SetApplied("n", []Applied{{5, tok(5)}, {6, tok(6)}, {5, tok(5)}})
	expect(t, h, 100, map[Rule]int{ResourceOrder: 1, ResourceLog: 1})
}

func TestResourceLogDisagrees(t *testing.T) {
	h := NewHistory()
	a := hold(h, "a", "n", 5, 0, 10)
	write(h, a, 1, true) // seen accepted, missing from the log
	b := hold(h, "b", "n", 6, 20, 30)
	write(h, b, 21, false) // rejected, yet in the log (and rejected while fresh)
	h.SetApplied("n", []Applied{{6, tok(6)}})
	expect(t, h, 100, map[Rule]int{ResourceLog: 2, FreshRejected: 1})
}

func TestStaleWrites(t *testing.T) {
	h := NewHistory()
	a := hold(h, "a", "n", 5, 0, -1)
	write(h, a, 1, true)
	h.Pause("a", ms(2))
	b := hold(h, "b", "n", 6, 20, 30)
	write(h, b, 21, true)
	h.LostToken(tok(5), ms(40))
	w := h.StaleWrite(a, ms(40))
	h.WriteDone(w, false) // rejected, as it must be
	h.SetApplied("n", []Applied{{5, tok(5)}, {6, tok(6)}})
	expect(t, h, 100, nil)

	w = h.StaleWrite(a, ms(50))
	h.WriteDone(w, true)
	h.SetApplied("n", []Applied{{5, tok(5)}, {6, tok(6)}, {5, tok(5)}})
	expect(t, h, 100, map[Rule]int{StaleAccepted: 1, ResourceOrder: 1})
}

func TestFreshRejected(t *testing.T) {
	h := NewHistory()
	a := hold(h, "a", "n", 5, 0, 10)
	write(h, a, 5, false)
	expect(t, h, 100, map[Rule]int{FreshRejected: 1})

	// Once unprotected (paused), a rejection is what fencing is for.
	h = NewHistory()
	a = hold(h, "a", "n", 5, 0, 10)
	h.Pause("a", ms(3))
	write(h, a, 5, false)
	expect(t, h, 100, nil)
}

func TestWriteOutsideWindow(t *testing.T) {
	h := NewHistory()
	a := hold(h, "a", "n", 5, 10, 20)
	write(h, a, 30, true)
	write(h, a, 5, true)
	expect(t, h, 100, map[Rule]int{WriteOutside: 2})
}

func TestEndsAndWrites(t *testing.T) {
	h := NewHistory()
	a := h.Grant("a", "s", "n", tok(1), ms(0))
	if !h.Believes(a) {
		t.Fatal("a fresh hold is not believed")
	}
	if !h.LostToken(tok(1), ms(5)) {
		t.Fatal("LostToken did not end the open hold")
	}
	if h.End(a, Released, ms(6)) || h.LostToken(tok(1), ms(7)) {
		t.Error("a second end counted")
	}
	if _, ok := h.TryWrite(a, ms(8)); ok {
		t.Error("TryWrite recorded a write after the hold ended")
	}
	if h.LostToken("9:unknown", ms(9)) {
		t.Error("LostToken matched an unknown token")
	}
	g := h.Holds()[a]
	if g.End != Lost || !g.Ended.Equal(ms(5)) {
		t.Errorf("hold = %+v, want lost at +5ms", g)
	}
	b := hold(h, "b", "n", 2, 10, 20)
	h.Reclassify(b, Unknown)
	if g := h.Holds()[b]; g.End != Unknown || !g.Ended.Equal(ms(20)) {
		t.Errorf("reclassified hold = %+v, want expired-unknown at +20ms", g)
	}
	s := h.Summary()
	if s.Grants != 2 || s.Ends[Lost] != 1 || s.Ends[Unknown] != 1 {
		t.Errorf("summary = %+v", s)
	}
}

// Violations name the holds involved, so that a failure can be traced.
func TestViolationMessages(t *testing.T) {
	h := NewHistory()
	hold(h, "alice", "n", 1, 0, 10)
	hold(h, "bob", "n", 2, 5, 15)
	vs := h.Check(ms(100))
	if len(vs) != 1 {
		t.Fatalf("violations: %v", vs)
	}
	msg := vs[0].String()
	for _, want := range []string{"overlap", `"n"`, "alice", "bob", "fence 1", "fence 2", "+5ms", "overlap for 5ms"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q lacks %q", msg, want)
		}
	}
}

// Recording from many goroutines is safe, and a history made under a real
// mutex passes while one made without it does not.
func TestConcurrentRecording(t *testing.T) {
	for _, locked := range []bool{true, false} {
		h := NewHistory()
		var mu sync.Mutex
		var fence int64
		var wg sync.WaitGroup
		for c := range 8 {
			wg.Go(func() {
				for range 200 {
					if locked {
						mu.Lock()
					}
					f := func() int64 { // the fence service is atomic either way
						mu.Lock()
						defer mu.Unlock()
						fence++
						return fence
					}
					if locked {
						fence++
						f = func() int64 { return fence }
					}
					id := h.Grant(fmt.Sprint(c), "s", "n", tok(f()), time.Now())
					if w, ok := h.TryWrite(id, time.Now()); ok {
						h.WriteDone(w, true)
					}
					time.Sleep(10 * time.Microsecond) // a hold long enough to collide in
					h.End(id, Released, time.Now())
					if locked {
						mu.Unlock()
					}
				}
			})
		}
		wg.Wait()
		got := rules(h.Check(time.Now()))
		if locked && len(got) > 0 {
			t.Errorf("under a mutex: %v", got)
		}
		if !locked && got[Overlap] == 0 {
			t.Error("without a mutex: no overlap found")
		}
	}
}

// holdAs is hold of a kind held by many.
func holdAs(h *History, client, name string, kind Kind, fence int64, granted, ended int) int {
	id := h.GrantAs(client, "sc-"+client, name, tok(fence), kind, ms(granted))
	if ended >= 0 {
		h.End(id, Released, ms(ended))
	}
	return id
}

// Counted exclusion: up to a semaphore's limit may overlap, readers may
// overlap each other, and each case that breaks a rule is caught.
func TestCountedExclusion(t *testing.T) {
	two, reader := Kind{Limit: 2}, Kind{Shared: true}
	t.Run("clean", func(t *testing.T) {
		h := NewHistory()
		holdAs(h, "a", "s", two, 10, 0, 20)
		holdAs(h, "b", "s", two, 11, 5, 25)
		holdAs(h, "c", "s", two, 12, 20, 30) // a's place, as a left: still two at once
		holdAs(h, "r1", "rw", reader, 20, 0, 10)
		holdAs(h, "r2", "rw", reader, 21, 2, 12)
		holdAs(h, "w", "rw", Kind{}, 22, 12, 20) // after both readers
		holdAs(h, "r3", "rw", reader, 23, 20, -1)
		expect(t, h, 40, nil)
	})
	t.Run("over-limit", func(t *testing.T) {
		h := NewHistory()
		holdAs(h, "a", "s", two, 10, 0, 20)
		holdAs(h, "b", "s", two, 11, 5, 25)
		holdAs(h, "c", "s", two, 12, 10, 30)
		expect(t, h, 40, map[Rule]int{OverLimit: 1})
	})
	t.Run("writer-with-reader", func(t *testing.T) {
		h := NewHistory()
		holdAs(h, "r", "rw", reader, 10, 0, 20)
		holdAs(h, "w", "rw", Kind{}, 11, 10, 30)
		expect(t, h, 40, map[Rule]int{Overlap: 1})
	})
	t.Run("limits-disagree", func(t *testing.T) {
		h := NewHistory()
		holdAs(h, "a", "s", two, 10, 0, 20)
		holdAs(h, "b", "s", Kind{Limit: 3}, 11, 5, 25)
		expect(t, h, 40, map[Rule]int{Overlap: 1})
	})
	t.Run("fences-told-out-of-order", func(t *testing.T) {
		// c was granted 11 before b's 12 but heard of it after b had gone:
		// holders of many may learn of their grants in any order.
		h := NewHistory()
		holdAs(h, "a", "s", two, 10, 0, 5)
		holdAs(h, "b", "s", two, 12, 1, 4)
		holdAs(h, "c", "s", two, 11, 5, 8)
		expect(t, h, 40, nil)
	})
	t.Run("a-client's-fence-falls", func(t *testing.T) {
		h := NewHistory()
		holdAs(h, "a", "s", two, 10, 0, 5)
		holdAs(h, "a", "s", two, 9, 6, 8) // its own next hold, asked after the first ended
		expect(t, h, 40, map[Rule]int{FenceOrder: 1})
	})
	t.Run("writer-below-a-reader-gone", func(t *testing.T) {
		h := NewHistory()
		holdAs(h, "r", "rw", reader, 12, 0, 5)
		holdAs(h, "w", "rw", Kind{}, 11, 6, 8)
		expect(t, h, 40, map[Rule]int{FenceOrder: 1})
	})
	t.Run("a-fence-twice", func(t *testing.T) {
		h := NewHistory()
		holdAs(h, "a", "s", two, 10, 0, 5)
		h.GrantAs("b", "sc-b", "s", tok(10)+"x", two, ms(6)) // another token, the same fence
		expect(t, h, 40, map[Rule]int{FenceOrder: 1})
	})
}
