// Package lockcore holds lockproxy's lock semantics: acquiring, renewing and
// releasing leases, fencing tokens, waiting, and the per-connection sessions
// that own leases. It talks to storage only through the Store interface, so
// the same rules hold on Redis and on the embedded in-process store.
//
// The safety rule the package is built around: a session never reports a
// lease as held after the moment the store could have expired it. Each lease
// keeps a validity deadline computed from the time the last successful
// acquire or renew was *sent*, minus a drift margin, and every answer checks
// it.
package lockcore
