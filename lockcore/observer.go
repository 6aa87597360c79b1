package lockcore

import "time"

// Observer is told what happens to leases, for metrics. Its methods must be
// cheap and safe for concurrent use. Labels are fixed sets, never names.
type Observer interface {
	// LeaseStarted: a session began holding a lease of kind (Kind.Mode:
	// exclusive, shared or semaphore).
	LeaseStarted(kind string)
	// LeaseEnded: a session stopped holding a lease of kind after held; lost is true
	// when the lease ended because it could not be kept (not by a release).
	LeaseEnded(kind string, held time.Duration, lost bool)
	// AutoRenewed reports one background renewal: "ok", "lost" or "error".
	AutoRenewed(result string)
	// WaitersChanged adds delta to the number of blocked acquires.
	WaitersChanged(delta int)
	// DetachedChanged adds delta to the number of detached locks granted
	// through this sidecar that may still be held (see Config.MaxDetached).
	DetachedChanged(delta int)
	// HandedOff reports a lock passed by a release straight to a waiter of
	// this sidecar, by how (one of HandOffKinds): "local", released here to
	// the store's first waiter, without a round trip on the waiter's path;
	// "local_ahead", the same to a waiter not known to be first, so possibly
	// ahead of an earlier waiter on another sidecar
	// (Config.LocalHandoffs); "upstream", by the release script, in the
	// release's round trip; "remote", by a release on another sidecar, whose
	// grant came in a wake message.
	HandedOff(how string)
}

type nopObserver struct{}

func (nopObserver) LeaseStarted(string)                    {}
func (nopObserver) LeaseEnded(string, time.Duration, bool) {}
func (nopObserver) AutoRenewed(string)                     {}
func (nopObserver) WaitersChanged(int)                     {}
func (nopObserver) DetachedChanged(int)                    {}
func (nopObserver) HandedOff(string)                       {}
