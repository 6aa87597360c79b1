package lockcore

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Config tunes Locks. A zero duration, count or fraction takes its value
// from DefaultConfig; any other value out of its range is refused by New
// (see VerifyConfig), never quietly changed.
type Config struct {
	DefaultTTL    time.Duration // ttl when a client gives none
	RenewFraction float64       // an owned lease is renewed every ttl × this; 0 < f < 1
	Retry         Backoff       // polling while a WAIT finds the lock held
	// MaxLocksPerSession bounds the leases one connection may hold (0: no bound).
	MaxLocksPerSession int
	// MaxWaitersPerName bounds the acquires this sidecar lets block on one
	// name (0: no bound).
	MaxWaitersPerName int
	// MaxDetached bounds the detached locks granted through this sidecar
	// that may still be held, counted until their ttl runs out or they are
	// released here, whether or not their connection is open (0: no bound).
	MaxDetached int
	// MaxHold caps how long an owned lease may be kept, renewals included:
	// at the cap it is released and its holder told, as for a lost lease,
	// so a client that hangs with its connection open cannot block others
	// for ever (0: no cap). A per-acquire MaxHold may only lower it.
	MaxHold time.Duration
	// QuietPeriod is how long nothing is granted after CheckUpstream finds
	// that the store restarted or failed over: long enough for every lease
	// granted through the old store to have expired, so no holder that was
	// not told can still believe it holds (0: no quiet period).
	QuietPeriod time.Duration
	// QuietAuto bounds the quiet period by what may still be outstanding:
	// the end of the longest lease granted or renewed through the store,
	// as the store and this sidecar know it, plus drift and a check
	// interval. QuietPeriod is then the most it can be, used when nothing
	// is known.
	QuietAuto bool
	// CheckInterval is how often the sidecar calls CheckUpstream. After a
	// restart or failover that kept the data, grants wait this long (and a
	// little more) for every sidecar to check its locks.
	CheckInterval time.Duration
	// UpstreamTimeout bounds each store call made for a client command.
	UpstreamTimeout time.Duration
	// WaiterTTL is how long a waiter keeps its place in the store's queue
	// without word from this sidecar, which renews it every third of that.
	// A crashed sidecar's waiters stop blocking others after it.
	WaiterTTL time.Duration
	// LocalHandoffs is how many releases in a row may hand a lock to a
	// waiter on this sidecar while a waiter on another sidecar is first in
	// the store's queue (0: strict arrival order across sidecars). A local
	// hand-off skips the upstream round trip and the wake of the other
	// sidecar; the bound keeps the passed-over waiter's extra wait to that
	// many holds, as a cohort lock does across processor sockets.
	LocalHandoffs int
	Observer      Observer     // (none)
	Logger        *slog.Logger // (discard)
	Clock         Clock        // (SystemClock)
}

// Backoff is exponential backoff with jitter: Base, then × Multiplier up to
// Max, each sleep varied by ±Jitter of itself so that waiters spread out.
type Backoff struct {
	Base       time.Duration
	Multiplier float64 // ≥ 1
	Max        time.Duration
	Jitter     float64 // 0..1; 0 (the zero Config's) means none, DefaultConfig has 0.2
}

// DefaultConfig returns lockcore's defaults, which a zero field takes. The
// sidecar writes its own (the LOCKPROXY_* defaults); a test there checks
// that the two agree.
func DefaultConfig() Config {
	return Config{
		DefaultTTL:      30 * time.Second,
		RenewFraction:   0.5,
		Retry:           Backoff{Base: 10 * time.Millisecond, Multiplier: 2, Max: 500 * time.Millisecond, Jitter: 0.2},
		UpstreamTimeout: 2 * time.Second,
		WaiterTTL:       3 * time.Second,
		CheckInterval:   500 * time.Millisecond,
	}
}

// withDefaults fills c's zero fields from DefaultConfig.
func (c Config) withDefaults() Config {
	def := DefaultConfig()
	fill := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	fill(&c.DefaultTTL, def.DefaultTTL)
	fill(&c.UpstreamTimeout, def.UpstreamTimeout)
	fill(&c.WaiterTTL, def.WaiterTTL)
	fill(&c.CheckInterval, def.CheckInterval)
	fill(&c.Retry.Base, def.Retry.Base)
	if c.Retry.Max == 0 {
		c.Retry.Max = max(def.Retry.Max, c.Retry.Base)
	}
	if c.RenewFraction == 0 {
		c.RenewFraction = def.RenewFraction
	}
	if c.Retry.Multiplier == 0 {
		c.Retry.Multiplier = def.Retry.Multiplier
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = SystemClock{}
	}
	return c
}

// VerifyConfig reports every field of c that is out of range, after zero
// fields have taken their defaults.
func VerifyConfig(c Config) error {
	c = c.withDefaults()
	var errs []error
	bad := func(field string, format string, args ...any) {
		errs = append(errs, fmt.Errorf("lockcore: Config.%s: "+format, append([]any{field}, args...)...))
	}
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"DefaultTTL", c.DefaultTTL}, {"UpstreamTimeout", c.UpstreamTimeout}, {"WaiterTTL", c.WaiterTTL},
		{"Retry.Base", c.Retry.Base}, {"MaxHold", c.MaxHold}, {"QuietPeriod", c.QuietPeriod},
		{"CheckInterval", c.CheckInterval}} {
		if f.d < 0 {
			bad(f.name, "%v is negative", f.d)
		}
	}
	if !(c.RenewFraction > 0 && c.RenewFraction < 1) {
		bad("RenewFraction", "%v is not between 0 and 1", c.RenewFraction)
	}
	if c.Retry.Multiplier < 1 {
		bad("Retry.Multiplier", "%v is below 1", c.Retry.Multiplier)
	}
	if c.Retry.Max < c.Retry.Base {
		bad("Retry.Max", "%v is below Retry.Base (%v)", c.Retry.Max, c.Retry.Base)
	}
	if c.Retry.Jitter < 0 || c.Retry.Jitter > 1 {
		bad("Retry.Jitter", "%v is not between 0 and 1", c.Retry.Jitter)
	}
	for _, f := range []struct {
		name string
		n    int
	}{{"MaxLocksPerSession", c.MaxLocksPerSession}, {"MaxWaitersPerName", c.MaxWaitersPerName},
		{"LocalHandoffs", c.LocalHandoffs}, {"MaxDetached", c.MaxDetached}} {
		if f.n < 0 {
			bad(f.name, "%d is negative", f.n)
		}
	}
	return errors.Join(errs...)
}

// Drift is the margin by which a lease's validity ends before the store's
// expiry could: 1ms for the store's millisecond clock plus 1% of the ttl for
// the rate difference between two clocks (the Redlock rule).
func Drift(ttl time.Duration) time.Duration { return time.Millisecond + ttl/100 }

// validity is the deadline after which a lease acquired or renewed by a
// call sent at sent can no longer be assumed held.
func validity(sent time.Time, ttl time.Duration) time.Time {
	return sent.Add(ttl - Drift(ttl))
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
