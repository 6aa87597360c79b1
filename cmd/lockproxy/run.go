package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/lockproxy/lockproxy/internal/sidecar"
)

// run is lockproxy's whole life: read the flags and the environment, run
// the sidecar until ctx ends, shut it down. started, if not nil, is called
// once it serves.
func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer, started func(*sidecar.Sidecar)) error {
	fs := flag.NewFlagSet("lockproxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() { printHelp(stdout) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: lockproxy takes its settings from LOCKPROXY_* environment variables only (lockproxy -h lists them)", fs.Args())
	}
	if *showVersion {
		fmt.Fprintln(stdout, "lockproxy", sidecar.Version())
		return nil
	}
	cfg, err := sidecar.LoadConfig(environ)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	s, err := sidecar.Start(cfg, sidecar.Options{Log: stderr})
	if err != nil {
		return err
	}
	for _, u := range unknownVars(environ) {
		// The name is in the message, not only in an attribute: the
		// throttle lets one message through per 10 s, and each name counts.
		args := []any{"variable", u.name}
		if u.closest != "" {
			args = append(args, "did_you_mean", u.closest)
		}
		s.Logger().Warn(u.name+" is not a lockproxy setting; it is ignored", args...)
	}
	if started != nil {
		started(s)
	}
	<-ctx.Done()
	return s.Shutdown()
}

// printHelp writes the usage and the variable table.
func printHelp(w io.Writer) {
	fmt.Fprintf(w, `lockproxy: distributed locks for any Redis client.

Usage: lockproxy [-h] [-version]

Point a Redis client (or redis-cli -p 6380) at it and send LOCK.ACQUIRE,
LOCK.RENEW, LOCK.RELEASE, LOCK.INFO, LOCK.HELD. It is configured by these
environment variables (durations in Go syntax: 250ms, 30s, 1h):

`)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIABLE\tDEFAULT\tMEANING")
	for _, f := range sidecar.Vars() {
		def := f.Default
		if def == "" {
			def = "(empty)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", f.Name, def, f.Help)
	}
	tw.Flush()
}

// unknownVar is a LOCKPROXY_* variable that is no setting, and the setting
// it is probably a misspelling of ("" when none is close).
type unknownVar struct{ name, closest string }

// unknownVars lists environ's LOCKPROXY_* variables that are no setting,
// in environ's order. A misspelt variable is otherwise ignored in silence,
// and its default used instead of what was meant.
func unknownVars(environ []string) []unknownVar {
	known := map[string]bool{}
	for _, f := range sidecar.Vars() {
		known[f.Name] = true
	}
	var out []unknownVar
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, sidecar.EnvPrefix) || known[name] || serviceLink(name) {
			continue
		}
		out = append(out, unknownVar{name, closestVar(name)})
	}
	return out
}

// serviceLink reports whether name is one of the variables Kubernetes puts
// in every pod for a Service named lockproxy (LOCKPROXY_SERVICE_HOST,
// LOCKPROXY_PORT_6380_TCP and the like): set by the cluster, not misspelt.
func serviceLink(name string) bool {
	rest := strings.TrimPrefix(name, sidecar.EnvPrefix)
	return rest == "SERVICE_HOST" || rest == "PORT" ||
		strings.HasPrefix(rest, "SERVICE_PORT") || strings.HasPrefix(rest, "PORT_")
}

// closestVar is the setting that name most likely misspells: the same but
// for case and underscores, or else the only one within two edits.
func closestVar(name string) string {
	squash := func(s string) string { return strings.ToUpper(strings.ReplaceAll(s, "_", "")) }
	best, bestDist, ties := "", 3, 0
	for _, f := range sidecar.Vars() {
		if squash(f.Name) == squash(name) {
			return f.Name
		}
		switch d := editDistance(f.Name, strings.ToUpper(name)); {
		case d < bestDist:
			best, bestDist, ties = f.Name, d, 0
		case d == bestDist:
			ties++
		}
	}
	if ties > 0 {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev, cur := make([]int, len(b)+1), make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
