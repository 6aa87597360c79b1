// Package lockclient is a Go client for lockproxy: it takes, renews and
// releases distributed locks through a lockproxy sidecar, and tells its
// caller the moment a lock is lost.
//
// An owned lock (the default) lives on a connection of its own, which stays
// open while the lock is held: lockproxy renews the lock for as long as that
// connection lives and releases it when the connection closes, so a process
// that crashes frees its locks at once. The connection speaks RESP3, so the
// sidecar's lock.lost push reaches [Lock.Lost] as soon as it is sent.
//
//	c, err := lockclient.Dial(ctx, "127.0.0.1:6380")
//	...
//	err = c.WithLock(ctx, "order:42", func(ctx context.Context) error {
//		// ctx is cancelled if the lock is lost.
//		return charge(ctx, 42)
//	}, lockclient.Wait(10*time.Second))
//
// Outcomes are sentinel errors: [ErrNotAcquired] when someone else holds the
// lock (and Wait, if given, ran out), [ErrNotHeld] when RENEW or RELEASE
// found the lock no longer held, [ErrLost] from WithLock when the lock was
// lost while fn ran. A reply of lockproxy's own, such as an upstream
// failure, is a [*ServerError] carrying the server's message.
//
// A Client is safe for concurrent use; a Lock too.
package lockclient
