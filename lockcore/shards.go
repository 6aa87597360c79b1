package lockcore

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// ErrSomeShards matches the error of a check of a sharded store in which
// some shards could not be checked, but not all: the others, and the names
// in them, go on.
var ErrSomeShards = errors.New("lockcore: some shards of the upstream could not be checked")

// gates are the per-slot grant stops of a sharded store: a quiet period
// after one shard lost data, and the check of a shard that restarted or
// failed over, each stop only the names in that shard's slots.
type gates struct {
	until  [Slots]atomic.Int64 // ns since base; no grant before it
	verify [Slots]atomic.Bool  // the slot's shard changed and its locks are being checked
}

// quietUntil stops grants in slots until at (ns since base). It never
// shortens a period already running.
func (g *gates) quietUntil(slots []SlotRange, at int64) {
	for _, r := range slots {
		for i := r.First; i <= r.Last && i < Slots; i++ {
			for {
				old := g.until[i].Load()
				if old >= at || g.until[i].CompareAndSwap(old, at) {
					break
				}
			}
		}
	}
}

func (g *gates) setVerify(slots []SlotRange, on bool) {
	for _, r := range slots {
		for i := r.First; i <= r.Last && i < Slots; i++ {
			g.verify[i].Store(on)
		}
	}
}

// left is the stop on slot at now (ns since base), and whether its shard
// is being checked.
func (g *gates) left(slot int, now int64) (time.Duration, bool) {
	return max(time.Duration(g.until[slot].Load()-now), 0), g.verify[slot].Load()
}

// maxLeft is the longest quiet period running in any slot.
func (g *gates) maxLeft(now int64) time.Duration {
	var m int64
	for i := range g.until {
		m = max(m, g.until[i].Load())
	}
	return max(time.Duration(m-now), 0)
}

// slotOf is name's hash slot, or -1 when the store is not sharded.
func (c *core) slotOf(name string) int {
	if sl, ok := c.store.(Slotter); ok {
		return sl.Slot(name)
	}
	return -1
}

// inSlots reports whether name's slot is in slots.
func (c *core) inSlots(slots []SlotRange) func(name string) bool {
	return func(name string) bool {
		slot := c.slotOf(name)
		for _, r := range slots {
			if slot >= r.First && slot <= r.Last {
				return true
			}
		}
		return false
	}
}

// nowNS is the clock as ns since base, the unit of the quiet periods.
func (c *core) nowNS() int64 { return int64(c.now().Sub(c.base)) }

// ensureGates returns the per-slot gates, made on the first sharded check.
func (l *Locks) ensureGates() *gates {
	if g := l.gates.Load(); g != nil {
		return g
	}
	g := new(gates)
	l.gates.Store(g)
	return g
}

// checkShards is CheckUpstream for a sharded store: each shard is dealt
// with as a whole store would be, in its own slots only. A shard seen for
// the first time is compared with the one that had its slots before: its
// own earlier self; else a node of its group that was primary then (a
// failover); else a primary that has gone (its slots were taken over).
// Slots that came from a primary that is still one moved by migration,
// keys and all: nothing is lost, and the shard is adopted as it is.
//
// A shard that cannot be checked keeps what was last accepted of it; the
// others go on. The error joins every shard's.
func (l *Locks) checkShards(ctx context.Context, up Upstream, h Health) error {
	g := l.ensureGates()
	first := l.shards == nil
	primaries := make(map[string]bool, len(h.Shards))
	for _, sh := range h.Shards {
		primaries[sh.Node] = true
	}
	next := make(map[string]Shard, len(h.Shards))
	var errs []error
	for _, sh := range h.Shards {
		keep := func(err error) {
			errs = append(errs, fmt.Errorf("shard %s: %w", sh.Node, err))
			if p, ok := l.shards[sh.Node]; ok {
				p.Slots, p.Group = sh.Slots, sh.Group
				next[sh.Node] = p
			}
		}
		if sh.Err != nil {
			keep(sh.Err)
			continue
		}
		g.quietUntil(sh.Slots, l.nowNS()+int64(sh.Quiet))
		if sh.Outstanding >= 0 {
			l.extendHorizon(l.now().Add(sh.Outstanding))
		}
		base, known := l.baseOf(sh, primaries)
		var err error
		switch {
		case first || !known:
		case sh.Data != base.Data:
			err = l.resetShard(ctx, up, sh, "a shard of the upstream lost its data")
		case sh.ID != base.ID:
			sh, err = l.recheckShard(ctx, up, sh, base)
		}
		if err != nil {
			keep(err)
			continue
		}
		delete(l.verifyStarts, sh.Node)
		g.setVerify(sh.Slots, false)
		next[sh.Node] = sh
	}
	l.shards = next
	l.shardsOK.Store(int64(len(h.Shards) - len(errs)))
	l.shardsFailing.Store(int64(len(errs)))
	accepted := make([]Shard, 0, len(next))
	for _, sh := range next {
		accepted = append(accepted, sh)
	}
	up.Accept(Health{Shards: accepted})
	if len(errs) > 0 && len(errs) < len(h.Shards) {
		return fmt.Errorf("%w: %w", ErrSomeShards, errors.Join(errs...))
	}
	return errors.Join(errs...)
}

// ShardsChecked reports, for a sharded store, how many shards the last
// check found fine and how many it could not check; 0, 0 for one that is
// not sharded.
func (l *Locks) ShardsChecked() (ok, failing int) {
	return int(l.shardsOK.Load()), int(l.shardsFailing.Load())
}

// baseOf is what sh is compared with: see checkShards.
func (l *Locks) baseOf(sh Shard, primaries map[string]bool) (Shard, bool) {
	if p, ok := l.shards[sh.Node]; ok {
		return p, true
	}
	for _, id := range sh.Group {
		if p, ok := l.shards[id]; ok && !primaries[id] {
			return p, true
		}
	}
	for _, p := range l.shards {
		if !primaries[p.Node] && overlap(p.Slots, sh.Slots) {
			return p, true
		}
	}
	return Shard{}, false
}

func overlap(a, b []SlotRange) bool {
	for _, x := range a {
		for _, y := range b {
			if x.First <= y.Last && y.First <= x.Last {
				return true
			}
		}
	}
	return false
}

// recheckShard is recheck for one shard: grants in its slots stop while
// this sidecar checks that the shard kept every lock it acknowledged there,
// and for one more check interval, in which the other sidecars check
// theirs. A lock missing invalidates the shard, which resets it for every
// sidecar.
func (l *Locks) recheckShard(ctx context.Context, up Upstream, sh, base Shard) (Shard, error) {
	g := l.gates.Load()
	start, ok := l.verifyStarts[sh.Node]
	if !ok {
		l.log.Warn("a shard of the upstream restarted or failed over; checking that it kept every lock before granting more in its slots",
			"shard", sh.Node, "before", base.Node+"/"+base.ID, "now", sh.ID)
		start = l.now()
		l.verifyStarts[sh.Node] = start
		g.setVerify(sh.Slots, true)
	}
	missing, err := l.verify(ctx, l.inSlots(sh.Slots))
	if err != nil {
		return sh, fmt.Errorf("checking the locks after the shard changed: %w", err)
	}
	if len(missing) > 0 {
		l.log.Error("a shard of the upstream restarted or failed over and lost locks this sidecar had granted",
			"shard", sh.Node, "missing", missing)
		if err := up.Invalidate(ctx, sh.Node); err != nil {
			return sh, fmt.Errorf("invalidating the shard's data: %w", err)
		}
		h, err := up.Health(ctx)
		if err != nil {
			return sh, err
		}
		for _, now := range h.Shards {
			if now.Node == sh.Node && now.Err == nil {
				return now, l.resetShard(ctx, up, now, "a shard of the upstream lost locks in a restart or failover")
			}
		}
		return sh, fmt.Errorf("shard %s is gone from the upstream after it was invalidated", sh.Node)
	}
	settled := start.Add(l.cfg.CheckInterval + settleMargin)
	g.quietUntil(sh.Slots, int64(settled.Sub(l.base)))
	l.log.Info("the shard kept every lock this sidecar granted; granting again in its slots after the other sidecars have checked",
		"shard", sh.Node, "resumes_in", max(settled.Sub(l.now()), 0).String())
	return sh, nil
}

// resetShard is reset for one shard: a quiet period in its slots,
// announced to every sidecar, and every lease in them declared lost.
func (l *Locks) resetShard(ctx context.Context, up Upstream, sh Shard, why string) error {
	d := l.quietFor()
	l.gates.Load().quietUntil(sh.Slots, l.nowNS()+int64(d))
	var aerr error
	if d > 0 {
		aerr = up.AnnounceQuiet(ctx, sh.Node, d)
	}
	lost := l.resetWhere(d, "upstream shard restarted or failed over", l.inSlots(sh.Slots))
	l.log.Error(why+": every lock held in its slots is lost, and none is granted there during the quiet period",
		"shard", sh.Node, "locks_lost", lost, "quiet_period", d.String(), "now", sh.ID+"/"+sh.Data)
	if aerr != nil {
		return fmt.Errorf("announcing the quiet period: %w", aerr)
	}
	return nil
}
