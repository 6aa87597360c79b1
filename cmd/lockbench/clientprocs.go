package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"
)

// Clients as processes (-procs). Goroutines of one process share one Go
// runtime, whose sleeping goroutines wake together: an idle Go process
// waits for its next timer with millisecond resolution, and any network
// event (a release's reply, say) fires every timer already due. A polling
// client's retries then bunch up just after other clients' releases, which
// separate application instances, each with its own timers, would not do.
// Each client in its own process removes that coupling, for both
// workloads alike.

// clientFlag marks a run of lockbench as one client process of a parent
// lockbench; the argument after it is the clientSpec, in JSON.
const clientFlag = "-client-process"

// clientSpec is what a client process needs to run its loop.
type clientSpec struct {
	Workload string   // "lockproxy" or "polling"
	Sidecars []string // for lockproxy
	Redis    string
	Retry    time.Duration // the baseline's retry interval
	Client   int
	Names    int
	Hold     time.Duration
	Think    time.Duration
	Limit    int     // -limit
	Readers  float64 // -readers
}

// clientRecord is one acquisition as a client process reports it, in ns
// since the run began.
type clientRecord struct {
	Asked, Got, Freed int64
	Shared            bool `json:",omitempty"`
	Inside            int  `json:",omitempty"`
}

// processReadyTimeout bounds how long the client processes may take to
// start and connect; the run begins once all of them have.
const processReadyTimeout = 30 * time.Second

// runProcesses runs each client as a lockbench process of its own, and
// returns each one's acquisitions and how long the run took. Each process
// says "ready" once connected; then every one is told the same start and
// end, so none misses the run however long the others took to start.
func runProcesses(ctx context.Context, cfg config, redisAddr string, w workload) ([][]acquisition, time.Duration, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, 0, err
	}
	// One client's failure ends the run: the others may be blocked for the
	// lock it held, so they are killed.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmds := make([]*exec.Cmd, cfg.clients)
	outs := make([]*bufio.Reader, cfg.clients)
	ins := make([]io.WriteCloser, cfg.clients)
	kill := func(upTo int) {
		for _, c := range cmds[:upTo] {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	}
	for i := range cmds {
		spec, err := json.Marshal(clientSpec{Workload: w.name, Sidecars: w.sidecarAddrs, Redis: redisAddr, Retry: cfg.retry,
			Client: i, Names: cfg.names, Hold: cfg.hold, Think: cfg.think, Limit: cfg.limit, Readers: cfg.readers})
		if err != nil {
			kill(i)
			return nil, 0, err
		}
		// Killed with the context; the processes inherit this one's CPUs.
		cmds[i] = exec.CommandContext(ctx, self, clientFlag, string(spec))
		cmds[i].Stderr = os.Stderr
		stdout, err := cmds[i].StdoutPipe()
		if err == nil {
			ins[i], err = cmds[i].StdinPipe()
		}
		if err == nil {
			err = cmds[i].Start()
		}
		if err != nil {
			kill(i)
			return nil, 0, err
		}
		outs[i] = bufio.NewReader(stdout)
	}
	ready := make(chan error, cfg.clients)
	for i := range cmds {
		go func() {
			line, err := outs[i].ReadString('\n')
			if err == nil && line != "ready\n" {
				err = fmt.Errorf("client process %d said %q, not ready", i, line)
			}
			ready <- err
		}()
	}
	timeout := time.NewTimer(processReadyTimeout)
	defer timeout.Stop()
	for range cmds {
		select {
		case err = <-ready:
		case <-timeout.C:
			err = fmt.Errorf("client processes not ready within %v", processReadyTimeout)
		}
		if err != nil {
			kill(len(cmds))
			return nil, 0, err
		}
	}
	start := time.Now().Add(10 * time.Millisecond)
	for _, in := range ins {
		_, _ = fmt.Fprintf(in, "%d %d\n", start.UnixNano(), start.Add(cfg.duration).UnixNano())
		in.Close()
	}
	records := make([][]acquisition, cfg.clients)
	var first firstError
	var wg sync.WaitGroup
	for i, c := range cmds {
		wg.Go(func() {
			var rs []clientRecord
			out, err := io.ReadAll(outs[i])
			if werr := c.Wait(); err == nil {
				err = werr
			}
			if err == nil {
				err = json.Unmarshal(out, &rs)
			}
			if err != nil {
				first.set(fmt.Errorf("client process %d: %w", i, err))
				cancel()
				return
			}
			for _, r := range rs {
				records[i] = append(records[i], acquisition{client: i, name: i % cfg.names,
					asked: time.Duration(r.Asked), got: time.Duration(r.Got), freed: time.Duration(r.Freed),
					shared: r.Shared, inside: r.Inside})
			}
		})
	}
	wg.Wait()
	var last time.Duration
	for _, rs := range records {
		for _, a := range rs {
			last = max(last, a.freed)
		}
	}
	return records, last, first.get()
}

// runClientProcess is the child side: it runs one client's loop and prints
// its acquisitions as JSON.
func runClientProcess(ctx context.Context, arg string, stdout *os.File) error {
	var spec clientSpec
	if err := json.Unmarshal([]byte(arg), &spec); err != nil {
		return err
	}
	var w workload
	switch spec.Workload {
	case "lockproxy", "floor":
		w = lockproxyWorkload(spec.Sidecars)
		w.name = spec.Workload
	case "polling":
		w = pollingWorkload(spec.Redis, spec.Retry)
	default:
		return fmt.Errorf("unknown workload %q", spec.Workload)
	}
	l, err := w.newLocker(spec.Client)
	if err != nil {
		return err
	}
	defer l.Close()
	up, err := dial(spec.Redis)
	if err != nil {
		return err
	}
	defer up.Close()
	if _, err := fmt.Fprintln(stdout, "ready"); err != nil {
		return err
	}
	var startNs, endNs int64
	if _, err := fmt.Fscanln(os.Stdin, &startNs, &endNs); err != nil {
		return fmt.Errorf("reading the run's start and end: %w", err)
	}
	start, end := time.Unix(0, startNs), time.Unix(0, endNs)
	time.Sleep(time.Until(start))
	cfg := config{names: spec.Names, hold: spec.Hold, think: spec.Think, limit: spec.Limit, readers: spec.Readers}
	acqs, err := loop(ctx, cfg, spec.Client, l, up, counterKey(spec.Workload), start, end)
	if err != nil {
		return err
	}
	rs := make([]clientRecord, len(acqs))
	for i, a := range acqs {
		rs[i] = clientRecord{Asked: int64(a.asked), Got: int64(a.got), Freed: int64(a.freed), Shared: a.shared, Inside: a.inside}
	}
	return json.NewEncoder(stdout).Encode(rs)
}
