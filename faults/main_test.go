//go:build linux

package faults

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lockproxy/lockproxy/internal/respclient"
)

var (
	// lockproxyBin is the lockproxy binary TestMain builds once, so that
	// every sidecar is a real process that signals really reach.
	lockproxyBin string

	long = flag.Bool("faults.long", false, "also run the heavier fault variants (more clients, connections, time), and the ones that find violations in some runs, as evidence of what is not promised: split-brain-min-replicas, sentinel-failover and sentinel-failover-acks")
)

// Environment of the test binary re-executed as a client process (procEnv
// holds the sidecar's address, resourceEnv the fenced resource's).
const (
	procEnv     = "FAULTS_PROC_SIDECAR"
	resourceEnv = "FAULTS_PROC_RESOURCE"
)

func TestMain(m *testing.M) {
	if addr := os.Getenv(procEnv); addr != "" {
		os.Exit(clientProcess(addr, os.Getenv(resourceEnv)))
	}
	if n, err := strconv.Atoi(os.Getenv(hogEnv)); err == nil && n > 0 {
		os.Exit(hogProcess(n))
	}
	flag.Parse()
	dir, err := os.MkdirTemp("", "faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		os.Exit(1)
	}
	lockproxyBin, err = buildLockproxy(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildLockproxy builds ./cmd/lockproxy of this module into dir. `go test`
// puts its own go first in PATH, so the binary matches the toolchain.
func buildLockproxy(dir string) (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "lockproxy")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/lockproxy")
	cmd.Dir = filepath.Dir(wd) // the module root: tests run in their package dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/lockproxy: %v\n%s", err, out)
	}
	return bin, nil
}

// clientProcess is the test binary running as one lock client in a process
// of its own, so that SIGKILL and SIGSTOP hit a real client. It speaks
// RESP3 to the sidecar and obeys stdin, one line each:
//
//	cmd ARG...                  send a command; prints "reply SENT RECV VALUE"
//	fenced NAME FENCE TOKEN     write to the fenced resource; prints "fenced SENT RECV 1|0|ERR"
//
// and prints "push RECV NAME TOKEN" for each lock.lost push. Times are Unix
// nanoseconds, from the same clock as the parent's.
func clientProcess(sidecar, resourceAddr string) int {
	var outMu sync.Mutex
	say := func(format string, args ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintf(os.Stdout, format+"\n", args...)
	}
	ns := func(t time.Time) int64 { return t.UnixNano() }
	c, err := respclient.DialTimed(sidecar, 5*time.Second, func(v respclient.Value, at time.Time) {
		if name, token, ok := lostPush(v); ok {
			say("push %d %s %s", ns(at), name, token)
		}
	}, nil)
	if err != nil {
		say("error %v", err)
		return 1
	}
	rdb := redis.NewClient(&redis.Options{Addr: resourceAddr})
	defer rdb.Close()
	res := newResource(rdb)
	say("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "cmd":
			sent, err := c.Send(f[1:]...)
			if err != nil {
				say("error %v", err)
				return 1
			}
			v, recv, err := c.Next(time.Minute)
			if err != nil {
				say("error %v", err)
				return 1
			}
			say("reply %d %d %s", ns(sent), ns(recv), strings.ReplaceAll(v.String(), "\n", " "))
		case "fenced":
			fence, _ := strconv.ParseInt(f[2], 10, 64)
			sent := time.Now()
			ok, err := res.write(context.Background(), f[1], fence, f[3])
			recv := time.Now()
			answer := "0"
			switch {
			case err != nil:
				answer = "ERR " + err.Error()
			case ok:
				answer = "1"
			}
			say("fenced %d %d %s", ns(sent), ns(recv), answer)
		}
	}
	return 0
}
