package lockcore

import "time"

// Observer is told what happens to leases, for metrics. Its methods must be
// cheap and safe for concurrent use. Labels are fixed sets, never names.
type Observer interface {
	// LeaseStarted: a session began holding a lease.
	LeaseStarted()
	// LeaseEnded: a session stopped holding a lease after held; lost is true
	// when the lease ended because it could not be kept (not by a release).
	LeaseEnded(held time.Duration, lost bool)
	// AutoRenewed reports one background renewal: "ok", "lost" or "error".
	AutoRenewed(result string)
	// WaitersChanged adds delta to the number of blocked acquires.
	WaitersChanged(delta int)
}

type nopObserver struct{}

func (nopObserver) LeaseStarted()                  {}
func (nopObserver) LeaseEnded(time.Duration, bool) {}
func (nopObserver) AutoRenewed(string)             {}
func (nopObserver) WaitersChanged(int)             {}
