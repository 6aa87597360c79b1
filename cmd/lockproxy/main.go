// Command lockproxy is a sidecar that gives distributed locks to any
// program with a Redis client: LOCK.ACQUIRE, LOCK.RENEW, LOCK.RELEASE over
// RESP, stored in an upstream Redis or an embedded store, with each lock
// renewed while its client's connection lives and released when it closes.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		// The default action returns before shutdown begins, so a second
		// signal stops the process at once instead of waiting for it.
		signal.Stop(sigs)
		cancel()
	}()
	if err := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "lockproxy:", err)
		os.Exit(1)
	}
}
