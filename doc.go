// Package lockproxy is the root of the lockproxy module: a sidecar that
// gives distributed locks to any program with a Redis client. The command
// is in cmd/lockproxy; this package only holds module-wide tests.
package lockproxy
