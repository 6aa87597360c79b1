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
// A name need not have one holder at a time. With [Limit](n) it is a
// counting semaphore, held by up to n callers at once, each with a Lock of
// its own; with [Shared] the caller is a reader of a read-write lock, held
// by any number of readers or, without Shared, by one writer:
//
//	// At most 4 encoders at once, across every process.
//	err = c.WithLock(ctx, "encoder", encode, lockclient.Limit(4), lockclient.Wait(time.Minute))
//
//	// Readers of the catalog exclude its writer, not each other.
//	err = c.WithLock(ctx, "catalog", read, lockclient.Shared(), lockclient.Wait(time.Minute))
//	err = c.WithLock(ctx, "catalog", write, lockclient.Wait(time.Minute))
//
// Outcomes are sentinel errors: [ErrNotAcquired] when someone else holds the
// lock (and Wait, if given, ran out), [ErrNotHeld] when RENEW or RELEASE
// found the lock no longer held, [ErrLost] from WithLock when the lock was
// lost while fn ran, [ErrWrongKind] when the name is held as another kind
// (a semaphore of another Limit; a semaphore against a lock). A reply of
// lockproxy's own, such as an upstream failure, is a [*ServerError]
// carrying the server's message.
//
// A Client is safe for concurrent use; a Lock too.
package lockclient
