package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// report prints each workload's figures side by side and, when there are
// two, the second's over the first's.
func report(w io.Writer, cfg config, rs []*result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	header := "\t"
	for _, r := range rs {
		header += r.name + "\t"
	}
	if len(rs) == 2 {
		header += rs[1].name + " ÷ " + rs[0].name + "\t"
	}
	fmt.Fprintln(tw, header)
	row := func(label string, f func(r *result) string, ratio func(a, b *result) string) {
		line := label + "\t"
		for _, r := range rs {
			line += f(r) + "\t"
		}
		if len(rs) == 2 && ratio != nil {
			line += ratio(rs[0], rs[1]) + "\t"
		}
		fmt.Fprintln(tw, line)
	}
	durRatio := func(get func(*result) time.Duration) func(a, b *result) string {
		return func(a, b *result) string {
			if get(a) <= 0 {
				return "-"
			}
			return fmt.Sprintf("%.1f×", float64(get(b))/float64(get(a)))
		}
	}
	row("acquisitions", func(r *result) string { return fmt.Sprint(r.acquisitions) }, nil)
	row("throughput /s", func(r *result) string {
		return fmt.Sprintf("%.0f", float64(r.acquisitions)/r.duration.Seconds())
	}, func(a, b *result) string {
		return fmt.Sprintf("%.2f×", float64(b.acquisitions)/b.duration.Seconds()/(float64(a.acquisitions)/a.duration.Seconds()))
	})
	row("cycle (time per acquisition)", func(r *result) string { return us(r.cycle) }, nil)
	row("mean hold", func(r *result) string { return us(r.meanHold) }, nil)
	if label, holders := utilisation(cfg); holders > 0 {
		row(label, func(r *result) string {
			if r.meanHold == 0 {
				return "-"
			}
			return fmt.Sprintf("%.0f%%", 100*float64(r.acquisitions)/r.duration.Seconds()*r.meanHold.Seconds()/float64(cfg.names*holders))
		}, nil)
	}
	row("wait p50", func(r *result) string { return us(pct(r.wait, 50)) }, durRatio(func(r *result) time.Duration { return pct(r.wait, 50) }))
	row("wait p99", func(r *result) string { return us(pct(r.wait, 99)) }, durRatio(func(r *result) time.Duration { return pct(r.wait, 99) }))
	row("wait p99 ÷ (clients/names × cycle)", func(r *result) string {
		if r.cycle == 0 {
			return "-"
		}
		per := float64(cfg.clients) / float64(cfg.names)
		return fmt.Sprintf("%.2f", float64(pct(r.wait, 99))/(per*float64(r.cycle)))
	}, nil)
	if cfg.readers > 0 {
		row("writers' share of acquisitions", func(r *result) string {
			return fmt.Sprintf("%.0f%%", 100*float64(len(r.waitWriters))/float64(max(r.acquisitions, 1)))
		}, nil)
		row("writers' wait p50", func(r *result) string { return us(pct(r.waitWriters, 50)) }, nil)
		row("writers' wait p99", func(r *result) string { return us(pct(r.waitWriters, 99)) }, nil)
		row("readers' wait p50", func(r *result) string { return us(pct(r.waitReaders, 50)) }, nil)
		row("readers' wait p99", func(r *result) string { return us(pct(r.waitReaders, 99)) }, nil)
	}
	row("idle PING round trip p50", func(r *result) string { return us(r.ping) }, nil)
	row("hand-off gap p50", func(r *result) string { return us(pct(r.gap, 50)) }, durRatio(func(r *result) time.Duration { return pct(r.gap, 50) }))
	row("hand-off gap p99", func(r *result) string { return us(pct(r.gap, 99)) }, durRatio(func(r *result) time.Duration { return pct(r.gap, 99) }))
	if len(rs[0].gapAcross) > 0 {
		row("  of which across sidecars: share", func(r *result) string {
			return fmt.Sprintf("%.0f%%", 100*float64(len(r.gapAcross))/float64(max(len(r.gap), 1)))
		}, nil)
		row("  across sidecars: gap p50 / p99", func(r *result) string { return us(pct(r.gapAcross, 50)) + " / " + us(pct(r.gapAcross, 99)) }, nil)
		row("  within a sidecar: gap p50 / p99", func(r *result) string { return us(pct(r.gapWithin, 50)) + " / " + us(pct(r.gapWithin, 99)) }, nil)
	}
	if cfg.readers > 0 {
		row("  to a writer: gap p50 / p99", func(r *result) string { return us(pct(r.gapToWriters, 50)) + " / " + us(pct(r.gapToWriters, 99)) }, nil)
		row("  to a reader: gap p50 / p99", func(r *result) string { return us(pct(r.gapToReaders, 50)) + " / " + us(pct(r.gapToReaders, 99)) }, nil)
	}
	if kindFlag(cfg) == "" {
		// A lock held by one at a time sits free between holds; a
		// semaphore's or readers' holds overlap, and this does not apply.
		row("free while others waited p50", func(r *result) string { return us(pct(r.idle, 50)) }, durRatio(func(r *result) time.Duration { return pct(r.idle, 50) }))
		row("free while others waited p99", func(r *result) string { return us(pct(r.idle, 99)) }, durRatio(func(r *result) time.Duration { return pct(r.idle, 99) }))
		row("free while others waited mean", func(r *result) string { return us(mean(r.idle)) }, durRatio(func(r *result) time.Duration { return mean(r.idle) }))
	}
	if rs[0].handOffs != nil {
		// From the sidecars' counters: the whole run, warm-up included.
		row("hand-offs local / ahead / upstream / remote", func(r *result) string {
			h := r.handOffs
			if h == nil {
				return "-"
			}
			total := max(h["local"]+h["local_ahead"]+h["upstream"]+h["remote"], 1)
			pc := func(how string) string { return fmt.Sprintf("%.0f", 100*float64(h[how])/float64(total)) }
			return pc("local") + " / " + pc("local_ahead") + " / " + pc("upstream") + " / " + pc("remote") + " %"
		}, nil)
	}
	switch {
	case cfg.limit > 0:
		row("most holds of a name at once (records / Redis gauge)", func(r *result) string { return fmt.Sprintf("%d / %d", r.most, r.mostCounted) }, nil)
	case cfg.readers > 0:
		row("most readers of a name at once", func(r *result) string { return fmt.Sprint(r.most) }, nil)
	default:
		row("self re-acquire share", func(r *result) string { return fmt.Sprintf("%.1f%%", 100*r.selfShare) }, nil)
	}
	row("fairness (max/min per client)", func(r *result) string { return fmt.Sprintf("%.2f", r.fairness()) }, nil)
	row("upstream commands / acquisition", func(r *result) string { return fmt.Sprintf("%.2f", r.commands) }, nil)
	row(violationsLabel(cfg), func(r *result) string { return fmt.Sprint(r.violations) }, nil)
	tw.Flush()
	if note := gapNote(cfg); note != "" {
		fmt.Fprintln(w, note)
	}
	for _, r := range rs {
		for _, e := range r.problems {
			fmt.Fprintf(w, "%s: %s\n", r.name, e)
		}
	}
}

// utilisation is the label of the throughput against what the names could
// pass if held back to back, and how many hold a name at once for it; none
// for a read-write lock, whose readers have no such ceiling.
func utilisation(cfg config) (string, int) {
	switch {
	case cfg.limit > 0:
		return "throughput ÷ (names × limit / mean hold)", cfg.limit
	case cfg.readers > 0:
		return "", 0
	}
	return "throughput ÷ (names / mean hold)", 1
}

// violationsLabel names the checks whose failures the last row counts.
func violationsLabel(cfg config) string {
	switch {
	case cfg.limit > 0:
		return "holds over the limit (records, Redis gauge)"
	case cfg.readers > 0:
		return "lost updates, overlaps with a writer"
	}
	return "lost updates, overlaps"
}

// gapNote says what the hand-off gap is where it is not the time between
// one holder's release and the next holder's grant.
func gapNote(cfg config) string {
	switch {
	case cfg.limit > 0:
		return "hand-off gap: from a release to the grant of its permit to a client that had asked before it (permits matched to grants in order)"
	case cfg.readers > 0:
		return "hand-off gap: to a writer from the last release before its grant, to a reader from the last writer's, when it had asked before that release"
	}
	return ""
}

func us(d time.Duration) string {
	switch {
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%d µs", d.Microseconds())
	}
}
