// Package recipe is the command line the recipes in examples/ share: it
// finds the lockproxy to use (-addr, $LOCKPROXY_ADDR, 127.0.0.1:6380) or
// starts one in-process (-embedded), and runs the recipe until it ends or
// SIGINT.
package recipe

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/lockproxy/lockproxy/lockproxytest"
)

// DefaultAddr is where a sidecar listens unless told otherwise.
const DefaultAddr = "127.0.0.1:6380"

// Func is a recipe: it uses the lockproxy at addr and writes its story to
// out.
type Func func(ctx context.Context, addr string, out io.Writer) error

// Main runs fn from the command line and exits 1 on error.
func Main(fn Func) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := Run(ctx, os.Args[0], os.Args[1:], os.Getenv, os.Stdout, os.Stderr, fn); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		stop()
		os.Exit(1)
	}
}

// Run parses args and runs fn; Main's testable part.
func Run(ctx context.Context, name string, args []string, getenv func(string) string, stdout, stderr io.Writer, fn Func) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := getenv("LOCKPROXY_ADDR")
	if def == "" {
		def = DefaultAddr
	}
	addr := fs.String("addr", def, "lockproxy's address, host:port or unix:/path (env LOCKPROXY_ADDR)")
	embedded := fs.Bool("embedded", false, "start an in-process lockproxy instead of using -addr")
	timeout := fs.Duration("timeout", time.Minute, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *embedded {
		a, stop, err := lockproxytest.StartServer()
		if err != nil {
			return err
		}
		defer stop()
		*addr = a
		fmt.Fprintln(stdout, "using an in-process lockproxy on", a)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	return fn(ctx, *addr, stdout)
}
