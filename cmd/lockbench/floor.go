package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"

	"github.com/lockproxy/lockproxy/resp"
)

// The floor (-floor) is a sidecar that does the least a lock server can:
// lockproxy's own RESP server over a map of names, each with a FIFO of
// blocked connections, in memory, with no store, no upstream, no ttl and
// no checks. LOCK.ACQUIRE takes a free name, or with WAIT blocks until a
// LOCK.RELEASE hands the name to it; LOCK.RELEASE answers 1. Run beside the
// other workloads, on the sidecars' CPUs, it shows what a hop through any
// sidecar costs on this machine before it does any work: the least sidecar
// CPU per pair, and the shortest hand-off gap, that lockproxy could reach.

// floorFlag marks a run of lockbench as the floor server; the argument
// after it is the address to listen on.
const floorFlag = "-floor-server"

// serveFloor serves the floor on addr until ctx ends.
func serveFloor(ctx context.Context, addr string) error {
	srv, err := resp.Listen("tcp", addr, resp.HandlerFunc(newFloorLocks().serve), resp.Options{MaxClients: 100000})
	if err != nil {
		return err
	}
	<-ctx.Done()
	return srv.Close(context.Background())
}

// floorLocks holds, for each held name, its waiters in arrival order.
type floorLocks struct {
	mu    sync.Mutex
	names map[string][]chan struct{}
}

func newFloorLocks() *floorLocks { return &floorLocks{names: map[string][]chan struct{}{}} }

// waiting is how many wait for name.
func (f *floorLocks) waiting(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.names[name])
}

func (f *floorLocks) serve(c *resp.Conn, cmd resp.Command) {
	switch verb := cmd.Args[0]; {
	case bytes.EqualFold(verb, []byte("LOCK.ACQUIRE")) && len(cmd.Args) >= 2:
		name := string(cmd.Args[1])
		f.mu.Lock()
		waiters, held := f.names[name]
		if !held {
			f.names[name] = nil
			f.mu.Unlock()
			c.WriteBulkString("1:floor")
			return
		}
		if len(cmd.Args) < 4 {
			f.mu.Unlock()
			c.WriteNull()
			return
		}
		turn := make(chan struct{})
		f.names[name] = append(waiters, turn)
		f.mu.Unlock()
		// As lockproxy waits: watching the connection meanwhile.
		c.Block(func(context.Context) { <-turn })
		c.WriteBulkString("1:floor")
	case bytes.EqualFold(verb, []byte("LOCK.RELEASE")) && len(cmd.Args) >= 2:
		name := string(cmd.Args[1])
		f.mu.Lock()
		if waiters := f.names[name]; len(waiters) > 0 {
			f.names[name] = waiters[1:]
			f.mu.Unlock()
			close(waiters[0])
			// The waiter's reply first: on one CPU, it would otherwise wait
			// for this reply's write.
			runtime.Gosched()
			c.WriteInt(1)
			return
		}
		delete(f.names, name)
		f.mu.Unlock()
		c.WriteInt(1)
	case bytes.EqualFold(verb, []byte("PING")):
		c.WriteSimple("PONG")
	case bytes.EqualFold(verb, []byte("INFO")):
		c.WriteBulkString("")
	default:
		c.WriteError("ERR the floor server answers only LOCK.ACQUIRE, LOCK.RELEASE, PING and INFO")
	}
}

// floorServer is a running floor server.
type floorServer struct {
	addr string
	pid  int
}

// floor starts the floor server, a lockbench process of its own, on the
// sidecars' CPUs.
func (p *processes) floor(cfg config) (*floorServer, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	f := &floorServer{addr: "127.0.0.1:" + strconv.Itoa(port)}
	if err := p.start(cfg.sidecarCPU, nil, self, floorFlag, f.addr); err != nil {
		return nil, err
	}
	f.pid = p.cmds[len(p.cmds)-1].Process.Pid
	if err := waitAnswer(f.addr); err != nil {
		return nil, fmt.Errorf("floor server: %w", err)
	}
	return f, nil
}
