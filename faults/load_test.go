//go:build linux

package faults

import (
	"bytes"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lockproxy/lockproxy/internal/respclient"
)

// raiseFileLimit makes room for n more descriptors in this process, and in
// the sidecars it starts afterwards, which inherit the limit.
func raiseFileLimit(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur >= n {
		return
	}
	if lim.Max < n {
		t.Fatalf("RLIMIT_NOFILE hard limit %d is below the %d this scenario needs: raise it (ulimit -Hn)", lim.Max, n)
	}
	lim.Cur = n
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("raising RLIMIT_NOFILE to %d: %v", n, err)
	}
}

// cycleLatency times acquire+release cycles of one uncontended name on c,
// and returns the slowest.
func cycleLatency(t *testing.T, c *client, name string, n int) time.Duration {
	t.Helper()
	var worst time.Duration
	for range n {
		start := time.Now()
		id, token := c.mustAcquire(name, "5000")
		c.mustRelease(id, name, token)
		worst = max(worst, time.Since(start))
	}
	return worst
}

// Thousands of idle connections: the sidecar stays up and keeps serving
// locks to its other clients; its memory per connection is reported.
func idleConnections(t *testing.T, r *row) {
	n := heavy(10000, 15000)
	raiseFileLimit(t, uint64(n)+2000)
	cl := newCluster(t, r)
	a := cl.sidecar("a", false, map[string]string{"MAX_CLIENTS": strconv.Itoa(n + 1000)})
	b := cl.sidecar("b", false, nil)
	wl := cl.start(workload{perSidecar: heavy(2, 4), sidecars: []*sidecar{a, b}, names: names("s11-w", 2),
		ttl: time.Second, wait: time.Second, hold: 2 * time.Millisecond})
	probe := cl.mustClient("probe", a)
	before := cycleLatency(t, probe, "s11-probe", 20)
	rssBefore := a.rss(t)

	start := time.Now()
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for d := range 32 {
		wg.Go(func() {
			for range n/32 + btoi(d < n%32) {
				c, err := net.DialTimeout("tcp", a.addr, 5*time.Second)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("opening idle connections: %v", err)
	}
	r.injections = len(conns)
	grants := wl.grants.Load()
	waitFor(t, 20*time.Second, "the sidecar counting every idle connection", func() bool {
		got, _ := strconv.Atoi(a.info(t)["connected_clients"])
		return got >= len(conns)
	})
	opened := time.Since(start)
	during := cycleLatency(t, probe, "s11-probe", 20)
	waitFor(t, 5*time.Second, "workers granted during the idle connections", func() bool { return wl.grants.Load() > grants+20 })
	rssDuring := a.rss(t)
	if during > time.Second {
		t.Errorf("acquire+release took up to %v with %d idle connections (before: %v)", during, len(conns), before)
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	waitFor(t, 20*time.Second, "idle connections gone", func() bool {
		got, _ := strconv.Atoi(a.info(t)["connected_clients"])
		return got < 100
	})
	if !a.running() {
		t.Fatal("sidecar a died")
	}
	wl.stop()
	cl.finish()
	r.note("%d idle connections opened in %v; RSS %d MiB → %d MiB (%.1f KiB each); slowest acquire+release %v before, %v during",
		r.injections, opened.Round(time.Millisecond), rssBefore>>20, rssDuring>>20,
		float64(rssDuring-rssBefore)/1024/float64(r.injections), before.Round(time.Millisecond), during.Round(time.Millisecond))
}

// Slowloris clients trickle one request a byte a second. Each is cut off
// LOCKPROXY_REQUEST_TIMEOUT after its first byte, with an error saying so,
// while the other clients are served as usual.
func slowloris(t *testing.T, r *row) {
	const timeout = time.Second
	cl := newCluster(t, r)
	a := cl.sidecar("a", false, map[string]string{"REQUEST_TIMEOUT": timeout.String()})
	b := cl.sidecar("b", false, nil)
	wl := cl.start(workload{perSidecar: heavy(2, 4), sidecars: []*sidecar{a, b}, names: names("s12-w", 2),
		ttl: time.Second, wait: time.Second, hold: 2 * time.Millisecond})
	probe := cl.mustClient("probe", a)
	before := cycleLatency(t, probe, "s12-probe", 10)
	k := heavy(20, 200)
	type result struct {
		took time.Duration
		got  string
		err  error
	}
	results := make(chan result, k)
	grants := wl.grants.Load()
	for range k {
		go func() {
			nc, err := net.Dial("tcp", a.addr)
			if err != nil {
				results <- result{err: err}
				return
			}
			defer nc.Close()
			closed := make(chan struct{})
			var got []byte
			go func() {
				got, _ = io.ReadAll(nc)
				close(closed)
			}()
			req := respclient.AppendRequest(nil, "PING")
			first := time.Now()
			tick := time.NewTicker(time.Second) // the attack's pace
			defer tick.Stop()
			for _, c := range req {
				if _, err := nc.Write([]byte{c}); err != nil {
					break
				}
				select {
				case <-closed:
				case <-tick.C:
					continue
				}
				break
			}
			select {
			case <-closed:
				results <- result{took: time.Since(first), got: string(got)}
			case <-time.After(10 * time.Second):
				results <- result{err: errors.New("still connected 10s after the first byte")}
			}
		}()
	}
	during := cycleLatency(t, probe, "s12-probe", 10)
	var worst time.Duration
	for range k {
		res := <-results
		switch {
		case res.err != nil:
			t.Errorf("slowloris: %v", res.err)
		case res.got != "-ERR Protocol error: request timeout (LOCKPROXY_REQUEST_TIMEOUT)\r\n":
			t.Errorf("slowloris got %q before the close; want the request timeout error", res.got)
		case res.took < timeout-100*time.Millisecond || res.took > timeout+1500*time.Millisecond:
			t.Errorf("slowloris cut off %v after its first byte; LOCKPROXY_REQUEST_TIMEOUT is %v", res.took, timeout)
		}
		worst = max(worst, res.took)
	}
	r.injections = k
	if wl.grants.Load() <= grants {
		t.Error("no worker was granted a lock during the slowloris")
	}
	if during > time.Second {
		t.Errorf("acquire+release took up to %v during the slowloris (before: %v)", during, before)
	}
	wl.stop()
	cl.finish()
	r.detect, r.detectWhat = worst, "first byte → cut off"
	r.note("%d slow clients cut off with the request-timeout error (timeout %v); slowest acquire+release %v before, %v during; %d worker grants meanwhile",
		k, timeout, before.Round(time.Millisecond), during.Round(time.Millisecond), wl.grants.Load()-grants)
}

// frame is one malformed (or hostile) input and where it came from.
type frame struct {
	from string
	data []byte
}

// corpus gathers frames: the reader's fuzz seeds and stored corpus from
// resp/, a hand-written list, hostile commands against a lock held by
// another connection, and seeded random garbage.
func corpus(t *testing.T, held, token string) []frame {
	t.Helper()
	var out []frame
	add := func(from string, s string) { out = append(out, frame{from, []byte(s)}) }
	for _, s := range fuzzSeeds(t, filepath.Join("..", "resp", "reader_fuzz_test.go")) {
		add("fuzz seed", s)
	}
	files, _ := filepath.Glob(filepath.Join("..", "resp", "testdata", "fuzz", "FuzzReader", "*"))
	for _, f := range files {
		if s, ok := corpusEntry(t, f); ok {
			add("fuzz corpus "+filepath.Base(f), s)
		}
	}
	hand := []string{
		"*1\r\n$3\r\nPING\r\n",                // bulk shorter than its data
		"*1\r\n$5\r\nPING\r\n",                // bulk longer than its data
		"*2\r\n$3\r\nGET\r\n$10\r\nk\r\n",     // never completed
		"*-5\r\n", "*-1\r\n", "*1\r\n$-3\r\n", // negative counts
		"$-1\r\n", "*0\r\n", // a null, an empty array
		"*1\r\n$2147483648\r\n",                // huge bulk length
		"*1\r\n$9223372036854775807\r\n",       // int64 max
		"*1\r\n$99999999999999999999999\r\n",   // past int64
		"*9223372036854775807\r\n",             // huge count
		"*2000\r\n",                            // over LOCKPROXY_MAX_ARGS
		"*1\r\n$70000\r\n",                     // over LOCKPROXY_MAX_BULK_BYTES
		"*" + strings.Repeat("1", 40) + "\r\n", // header line too long
		"*1\r\n$" + strings.Repeat("9", 40) + "\r\n",
		"*1\r\n$4\r\nPING",               // unterminated
		"*1", "*1\r", "*1\r\n$4", "PING", // cut mid-line
		"*1\r$4\r\nPING\r\n",         // CR without LF
		"*1\n$4\nPING\n",             // LF without CR
		"*1\r\n*1\r\n$4\r\nPING\r\n", // nested arrays
		"*2\r\n*1\r\n:1\r\n$1\r\na\r\n",
		"*1\r\n:1\r\n", "*1\r\n+PING\r\n", // non-bulk arguments
		"%1\r\n+a\r\n+b\r\n", ">1\r\n$1\r\na\r\n", // RESP3 types as requests
		"~1\r\n$1\r\na\r\n", "_\r\n", ",1.5\r\n", "#t\r\n", "(1\r\n", "=7\r\ntxt:abc\r\n",
		"+OK\r\n", "-ERR x\r\n", ":1\r\n",
		"ECHO \"unbalanced\r\n", "ECHO 'x\r\n",
		strings.Repeat("A", 70000), // inline too long
		strings.Repeat("*1\r\n$4\r\nPING\r\n", 3) + "\x00\xff garbage after valid ones",
		"\x00\x00\x00\x00", "\xff\xfe\xfd\r\n", "\r\n\r\n\r\n",
		"*3\r\n$12\r\nLOCK.ACQUIRE\r\n$" + strconv.Itoa(len(held)) + "\r\n" + held + "\r\n$2\r\n-1\r\n",
		"*2\r\n$12\r\nLOCK.ACQUIRE\r\n$0\r\n\r\n",
		"LOCK.ACQUIRE " + strings.Repeat("n", 2000) + "\r\n",
		"LOCK.ACQUIRE " + held + " 99999999999999999999\r\n",
		"LOCK.ACQUIRE " + held + " 1000 WAIT -1\r\n",
		"LOCK.ACQUIRE " + held + " 1000 MAXHOLD 0 DETACHED DETACHED\r\n",
	}
	for _, s := range hand {
		add("hand-written", s)
	}
	// Hostile but well-formed: another connection going for the held lock.
	fence, _, _ := strings.Cut(token, ":")
	for _, s := range []string{
		"LOCK.RELEASE " + held + "\r\n",
		"LOCK.RELEASE " + held + " " + fence + ":00000000000000000000000000000000\r\n",
		"LOCK.RELEASE " + held + " " + fence + "\r\n",
		"LOCK.RENEW " + held + " 1 " + fence + ":ffffffffffffffffffffffffffffffff\r\n",
		"LOCK.ACQUIRE " + held + " 1000\r\n",
		"RESET\r\nLOCK.RELEASE " + held + "\r\n",
	} {
		add("hostile command", s)
	}
	rng := rand.New(rand.NewPCG(13, 13))
	for range heavy(40, 400) {
		b := make([]byte, 1+rng.IntN(200))
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		if rng.IntN(2) == 0 {
			b[0] = "*$+-:"[rng.IntN(5)]
		}
		out = append(out, frame{"random", b})
	}
	return out
}

// fuzzSeeds reads the string literals of the seeds slice in the reader's
// fuzz test, so that the suite follows that list as it grows.
func fuzzSeeds(t *testing.T, path string) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		t.Fatalf("reading the fuzz seeds: %v", err)
	}
	var seeds []string
	ast.Inspect(f, func(n ast.Node) bool {
		as, ok := n.(*ast.AssignStmt)
		if !ok || len(as.Lhs) != 1 || len(as.Rhs) != 1 {
			return true
		}
		if id, ok := as.Lhs[0].(*ast.Ident); !ok || id.Name != "seeds" {
			return true
		}
		lit, ok := as.Rhs[0].(*ast.CompositeLit)
		if !ok {
			return true
		}
		for _, e := range lit.Elts {
			if s, ok := stringValue(e); ok {
				seeds = append(seeds, s)
			}
		}
		return false
	})
	if len(seeds) == 0 {
		t.Fatalf("no seeds found in %s", path)
	}
	return seeds
}

// stringValue evaluates a string literal or strings.Repeat(literal, n).
func stringValue(e ast.Expr) (string, bool) {
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind == token.STRING {
			s, err := strconv.Unquote(e.Value)
			return s, err == nil
		}
	case *ast.CallExpr:
		sel, ok := e.Fun.(*ast.SelectorExpr)
		if !ok || sel.Sel.Name != "Repeat" || len(e.Args) != 2 {
			return "", false
		}
		s, ok := stringValue(e.Args[0])
		n, isLit := e.Args[1].(*ast.BasicLit)
		if !ok || !isLit {
			return "", false
		}
		count, err := strconv.Atoi(n.Value)
		return strings.Repeat(s, count), err == nil
	}
	return "", false
}

// corpusEntry reads the []byte of a "go test fuzz v1" file.
func corpusEntry(t *testing.T, path string) (string, bool) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if inner, ok := strings.CutPrefix(line, "[]byte("); ok {
			s, err := strconv.Unquote(strings.TrimSuffix(inner, ")"))
			return s, err == nil
		}
	}
	return "", false
}

// outcome of sending one frame on a fresh connection.
const (
	outErrorClose = "error+close" // a protocol error, then the close
	outClose      = "close"       // closed without a reply
	outError      = "error reply" // an error reply, connection kept (a well-formed bad command)
	outReply      = "reply"       // only ordinary replies (the input was valid)
	outIgnored    = "ignored"     // nothing, and the connection still answers PING
	outHung       = "hung"        // nothing, and PING unanswered: a failure
)

// sendFrame sends f on a fresh connection to addr and classifies what the
// server did. Silence is only judged after the request timeout had time to
// cut a partial request.
func sendFrame(addr string, f []byte, quiet time.Duration) (string, string) {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return outHung, err.Error()
	}
	defer nc.Close()
	_, _ = nc.Write(f) // the server may hang up mid-write on oversized input
	var got []byte
	buf := make([]byte, 4096)
	closed := false
	for {
		_ = nc.SetReadDeadline(time.Now().Add(quiet))
		n, err := nc.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			var ne net.Error
			closed = !(errors.As(err, &ne) && ne.Timeout())
			break
		}
	}
	isErr := bytes.HasPrefix(got, []byte("-")) || bytes.Contains(got, []byte("\r\n-"))
	switch {
	case closed && isErr:
		return outErrorClose, string(got)
	case closed:
		return outClose, string(got)
	case isErr:
		return outError, string(got)
	case len(got) > 0:
		return outReply, string(got)
	}
	_ = nc.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := nc.Write(respclient.AppendRequest(nil, "PING")); err != nil {
		return outHung, err.Error()
	}
	n, _ := nc.Read(buf)
	if strings.HasSuffix(string(buf[:n]), "+PONG\r\n") {
		return outIgnored, ""
	}
	return outHung, string(buf[:n])
}

// Malformed frames, each on its own connection, at a live sidecar: each is
// answered with an error or a close (or served, when it happens to be
// valid), the sidecar stays up, and a lock another connection holds all
// along is never lost or touched.
func malformedFrames(t *testing.T, r *row) {
	const timeout = time.Second
	cl := newCluster(t, r)
	a := cl.sidecar("a", false, map[string]string{"REQUEST_TIMEOUT": timeout.String()})
	b := cl.sidecar("b", false, nil)
	wl := cl.start(workload{perSidecar: heavy(2, 4), sidecars: []*sidecar{a, b}, names: names("s13-w", 2),
		ttl: time.Second, wait: time.Second, hold: 2 * time.Millisecond})
	holder := cl.mustClient("holder", a)
	const held = "s13-held"
	hid, token := holder.mustAcquire(held, "1000") // renewed every 500ms throughout
	fence, _ := strconv.ParseInt(strings.Split(token, ":")[0], 10, 64)

	frames := corpus(t, held, token)
	r.injections = len(frames)
	counts := map[string]int{}
	var mu sync.Mutex
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for i, f := range frames {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			out, detail := sendFrame(a.addr, f.data, timeout+500*time.Millisecond)
			mu.Lock()
			defer mu.Unlock()
			counts[out]++
			if out == outHung {
				t.Errorf("frame %d (%s) %q: no reply, no close, and PING unanswered: %q", i, f.from, shorten(string(f.data)), detail)
			}
		})
	}
	wg.Wait()
	if !a.running() {
		t.Fatalf("sidecar a died: %v", a.exitErr)
	}
	if v, _, err := holder.Do(5*time.Second, "PING"); err != nil || v.Str != "PONG" {
		t.Errorf("PING after the frames = %v, %v", v, err)
	}
	if !cl.hist.Believes(hid) {
		t.Errorf("the holder of %s was told its lock was lost", held)
	}
	if in := lockInfo(t, holder.Timed, held); in["owner"].Str != "self" || in["fence"].Num != fence {
		t.Errorf("LOCK.INFO %s after the frames = %v; want owner self, fence %d", held, in, fence)
	}
	if v, err := holder.renew(5*time.Second, hid, held, token, "1000"); err != nil || v.Num != 1 {
		t.Errorf("RENEW %s after the frames = %v, %v; want 1", held, v, err)
	}
	holder.mustRelease(hid, held, token)
	wl.stop()
	cl.finish()
	var parts []string
	for _, k := range []string{outErrorClose, outClose, outError, outReply, outIgnored, outHung} {
		if counts[k] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[k], k))
		}
	}
	slices.Sort(parts)
	r.note("%d frames (%d fuzz seeds and corpus, hand-written, hostile and random): %s; sidecar up, the lock held throughout untouched",
		len(frames), countFrom(frames, "fuzz"), strings.Join(parts, ", "))
}

func countFrom(fs []frame, prefix string) int {
	n := 0
	for _, f := range fs {
		if strings.HasPrefix(f.from, prefix) {
			n++
		}
	}
	return n
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
