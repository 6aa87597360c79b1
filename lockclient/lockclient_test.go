package lockclient_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/lockproxy/lockproxy/lockclient"
	"github.com/lockproxy/lockproxy/lockproxytest"
)

// Every goroutine of the client and of the test server must be gone once
// the tests have closed what they opened.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func dial(t *testing.T, addr string, opts ...lockclient.DialOption) *lockclient.Client {
	t.Helper()
	c, err := lockclient.Dial(t.Context(), addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitFor polls cond: the number of queued waiters is a state of the
// server that sends no event, so it can only be looked at.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func waiters(t *testing.T, c *lockclient.Client, name string) func() bool {
	return func() bool {
		info, err := c.Info(t.Context(), name)
		if err != nil {
			t.Error(err)
			return true
		}
		return info.Waiters > 0
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestAcquireRelease(t *testing.T) {
	ctx := t.Context()
	c := dial(t, lockproxytest.Start(t))

	l, err := c.Acquire(ctx, "order:1", lockclient.TTL(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	fence, random, _ := strings.Cut(l.Token(), ":")
	if l.Name() != "order:1" || l.Fence() <= 0 || fence != strconv.FormatInt(l.Fence(), 10) || len(random) != 16+1+32 {
		t.Fatalf("lock %q token %q fence %d", l.Name(), l.Token(), l.Fence())
	}
	info, err := c.Info(ctx, "order:1")
	if err != nil || !info.Held || info.Fence != l.Fence() || info.TTL <= 0 || info.TTL > 30*time.Second {
		t.Fatalf("info while held: %+v, %v", info, err)
	}

	// A second acquire, from another connection of the same client, is
	// refused: the lock belongs to l's connection.
	if _, err := c.Acquire(ctx, "order:1"); !errors.Is(err, lockclient.ErrNotAcquired) {
		t.Fatalf("second acquire: %v, want ErrNotAcquired", err)
	}
	if isClosed(l.Lost()) {
		t.Fatal("Lost closed while held")
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if !isClosed(l.Lost()) {
		t.Fatal("Lost not closed after Release")
	}
	if err := l.Release(ctx); !errors.Is(err, lockclient.ErrNotHeld) {
		t.Fatalf("second release: %v, want ErrNotHeld", err)
	}
	if err := l.Renew(ctx, time.Second); !errors.Is(err, lockclient.ErrNotHeld) {
		t.Fatalf("renew after release: %v, want ErrNotHeld", err)
	}
	if info, err := c.Info(ctx, "order:1"); err != nil || info.Held {
		t.Fatalf("info after release: %+v, %v", info, err)
	}

	l2, err := c.Acquire(ctx, "order:1")
	if err != nil {
		t.Fatal(err)
	}
	if l2.Fence() <= l.Fence() {
		t.Fatalf("fence %d after %d: not increasing", l2.Fence(), l.Fence())
	}
	if err := l2.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestWaitHandsOver(t *testing.T) {
	ctx := t.Context()
	c := dial(t, lockproxytest.Start(t))
	a, err := c.Acquire(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *lockclient.Lock, 1)
	errc := make(chan error, 1)
	go func() {
		l, err := c.Acquire(ctx, "w", lockclient.Wait(time.Minute))
		got <- l
		errc <- err
	}()
	waitFor(t, "the waiter to queue", waiters(t, c, "w"))
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := <-got, <-errc
	if err != nil {
		t.Fatal(err)
	}
	if b.Fence() <= a.Fence() {
		t.Fatalf("waiter's fence %d not above %d", b.Fence(), a.Fence())
	}
	if err := b.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestWaitRunsOut(t *testing.T) {
	ctx := t.Context()
	c := dial(t, lockproxytest.Start(t))
	a, err := c.Acquire(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release(ctx)
	if _, err := c.Acquire(ctx, "w", lockclient.Wait(20*time.Millisecond)); !errors.Is(err, lockclient.ErrNotAcquired) {
		t.Fatalf("got %v, want ErrNotAcquired", err)
	}
}

// Cancelling ctx while blocked in WAIT returns at once, and the sidecar
// never grants the abandoned request: once the holder releases, the lock
// is free.
func TestCancelAbandonsWait(t *testing.T) {
	ctx := t.Context()
	c := dial(t, lockproxytest.Start(t))
	a, err := c.Acquire(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Acquire(wctx, "w", lockclient.Wait(5*time.Minute))
		errc <- err
	}()
	waitFor(t, "the waiter to queue", waiters(t, c, "w"))
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("abandoned acquire: %v, want context.Canceled", err)
	}
	waitFor(t, "the waiter to leave", func() bool { return !waiters(t, c, "w")() })
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if info, err := c.Info(ctx, "w"); err != nil || info.Held {
		t.Fatalf("after the release: %+v, %v: the abandoned waiter got it", info, err)
	}
}

// Closing the client closes the lock's connection: Lost fires, and the
// sidecar hands the lock to the next waiter.
func TestCloseReleases(t *testing.T) {
	ctx := t.Context()
	addr := lockproxytest.Start(t)
	holder, other := dial(t, addr), dial(t, addr)
	a, err := holder.Acquire(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		l, err := other.Acquire(ctx, "c", lockclient.Wait(time.Minute))
		if err == nil {
			err = l.Release(ctx)
		}
		got <- err
	}()
	waitFor(t, "the waiter to queue", waiters(t, other, "c"))
	if err := holder.Close(); err != nil {
		t.Fatal(err)
	}
	<-a.Lost()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if err := a.Release(ctx); !errors.Is(err, lockclient.ErrNotHeld) {
		t.Fatalf("release after Close: %v, want ErrNotHeld", err)
	}
	if _, err := holder.Acquire(ctx, "c"); !errors.Is(err, lockclient.ErrClosed) {
		t.Fatalf("acquire after Close: %v, want ErrClosed", err)
	}
	if err := holder.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
}

// MAXHOLD makes the sidecar release the lock and push lock.lost while the
// connection stays open.
func TestLostPush(t *testing.T) {
	ctx := t.Context()
	c := dial(t, lockproxytest.Start(t))
	l, err := c.Acquire(ctx, "m", lockclient.MaxHold(30*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("no lock.lost push")
	}
	if err := l.Renew(ctx, time.Second); !errors.Is(err, lockclient.ErrNotHeld) {
		t.Fatalf("renew after lost: %v, want ErrNotHeld", err)
	}
	if err := l.Release(ctx); !errors.Is(err, lockclient.ErrNotHeld) {
		t.Fatalf("release after lost: %v, want ErrNotHeld", err)
	}
	// The connection went back to the client and serves the next lock.
	l2, err := c.Acquire(ctx, "m")
	if err != nil {
		t.Fatal(err)
	}
	if err := l2.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// The server stopping closes every connection: held locks are lost.
func TestServerStopLosesLocks(t *testing.T) {
	addr, stop, err := lockproxytest.StartServer()
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	c := dial(t, addr)
	l, err := c.Acquire(t.Context(), "s")
	if err != nil {
		t.Fatal(err)
	}
	stop()
	<-l.Lost()
	if _, err := c.Acquire(t.Context(), "s"); err == nil {
		t.Fatal("acquire succeeded with the server stopped")
	}
}

func TestRenewOwned(t *testing.T) {
	ctx := t.Context()
	c := dial(t, lockproxytest.Start(t))
	l, err := c.Acquire(ctx, "r", lockclient.TTL(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Renew(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	if info, err := c.Info(ctx, "r"); err != nil || info.TTL <= 2*time.Second {
		t.Fatalf("after Renew(1m): %+v, %v", info, err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestDetached(t *testing.T) {
	ctx := t.Context()
	addr := lockproxytest.Start(t)
	c := dial(t, addr)
	if _, err := c.Acquire(ctx, "d", lockclient.Detached()); err == nil {
		t.Fatal("a detached lock without a TTL was accepted")
	}
	l, err := c.Acquire(ctx, "d", lockclient.Detached(), lockclient.TTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	// The connection it was taken on is closed; the lock lives on, and
	// its token renews and releases it from any connection.
	if info, err := c.Info(ctx, "d"); err != nil || !info.Held {
		t.Fatalf("detached lock not held: %+v, %v", info, err)
	}
	if err := l.Renew(ctx, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	if info, err := c.Info(ctx, "d"); err != nil || info.TTL <= time.Minute {
		t.Fatalf("after Renew(2m): %+v, %v", info, err)
	}
	// A second acquire through the same client must not be handed the
	// same lock by a reused connection.
	if _, err := c.Acquire(ctx, "d"); !errors.Is(err, lockclient.ErrNotAcquired) {
		t.Fatalf("acquire of a held detached lock: %v, want ErrNotAcquired", err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if info, err := c.Info(ctx, "d"); err != nil || info.Held {
		t.Fatalf("after release: %+v, %v", info, err)
	}
}

// A detached lock's Lost fires when its ttl runs out; Renew then refuses.
func TestDetachedExpires(t *testing.T) {
	ctx := t.Context()
	c := dial(t, lockproxytest.Start(t))
	sent := time.Now()
	l, err := c.Acquire(ctx, "e", lockclient.Detached(), lockclient.TTL(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	<-l.Lost()
	if d := time.Since(sent); d > 50*time.Millisecond+time.Second {
		t.Fatalf("Lost fired after %v", d)
	}
	if err := l.Renew(ctx, time.Second); !errors.Is(err, lockclient.ErrNotHeld) {
		t.Fatalf("renew after expiry: %v, want ErrNotHeld", err)
	}
	// A waiter gets it once the sidecar has expired it.
	l2, err := c.Acquire(ctx, "e", lockclient.Wait(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if l2.Fence() <= l.Fence() {
		t.Fatalf("fence %d after %d", l2.Fence(), l.Fence())
	}
	l2.Release(ctx)
}

func TestWithLock(t *testing.T) {
	ctx := t.Context()
	c := dial(t, lockproxytest.Start(t))
	ran := false
	err := c.WithLock(ctx, "wl", func(ctx context.Context) error {
		ran = true
		info, err := c.Info(ctx, "wl")
		if err != nil || !info.Held {
			t.Errorf("inside fn: %+v, %v", info, err)
		}
		return nil
	})
	if err != nil || !ran {
		t.Fatalf("WithLock: %v, ran %v", err, ran)
	}
	if info, err := c.Info(ctx, "wl"); err != nil || info.Held {
		t.Fatalf("after WithLock: %+v, %v", info, err)
	}

	boom := errors.New("boom")
	if err := c.WithLock(ctx, "wl", func(context.Context) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("fn's error: got %v", err)
	}
	if info, err := c.Info(ctx, "wl"); err != nil || info.Held {
		t.Fatalf("not released after fn failed: %+v, %v", info, err)
	}

	// Held elsewhere: fn does not run.
	other, err := c.Acquire(ctx, "wl")
	if err != nil {
		t.Fatal(err)
	}
	err = c.WithLock(ctx, "wl", func(context.Context) error { t.Error("fn ran"); return nil })
	if !errors.Is(err, lockclient.ErrNotAcquired) {
		t.Fatalf("got %v, want ErrNotAcquired", err)
	}
	other.Release(ctx)
}

// A lock lost while fn runs cancels fn's context with ErrLost, and WithLock
// reports it.
func TestWithLockLost(t *testing.T) {
	c := dial(t, lockproxytest.Start(t))
	err := c.WithLock(t.Context(), "lost", func(ctx context.Context) error {
		<-ctx.Done()
		if !errors.Is(context.Cause(ctx), lockclient.ErrLost) {
			t.Errorf("cause %v, want ErrLost", context.Cause(ctx))
		}
		return nil
	}, lockclient.MaxHold(20*time.Millisecond))
	if !errors.Is(err, lockclient.ErrLost) {
		t.Fatalf("got %v, want ErrLost", err)
	}
}

// Many goroutines through one client never hold one lock at once.
func TestWithLockExcludes(t *testing.T) {
	ctx := t.Context()
	c := dial(t, lockproxytest.Start(t))
	var inside, overlaps, runs atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			err := c.WithLock(ctx, "x", func(context.Context) error {
				if inside.Add(1) > 1 {
					overlaps.Add(1)
				}
				runtime.Gosched() // give a second holder, if any, its chance
				runs.Add(1)
				inside.Add(-1)
				return nil
			}, lockclient.Wait(time.Minute))
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if runs.Load() != 20 || overlaps.Load() != 0 {
		t.Fatalf("%d runs, %d with another holder inside", runs.Load(), overlaps.Load())
	}
}

func TestServerErrors(t *testing.T) {
	ctx := t.Context()
	c := dial(t, lockproxytest.Start(t))
	_, err := c.Acquire(ctx, strings.Repeat("n", 2000))
	var se *lockclient.ServerError
	if !errors.As(err, &se) || se.Code() != "ERR" || !strings.Contains(se.Msg, "invalid lock name") {
		t.Fatalf("got %v, want the server's invalid lock name error", err)
	}
	_, err = c.Acquire(ctx, "x", lockclient.TTL(48*time.Hour))
	if !errors.As(err, &se) || !strings.Contains(se.Msg, "invalid ttl") {
		t.Fatalf("got %v, want the server's invalid ttl error", err)
	}
	// The connection is still good.
	l, err := c.Acquire(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	l.Release(ctx)
}

func TestPassword(t *testing.T) {
	ctx := t.Context()
	addr := lockproxytest.Start(t, lockproxytest.WithPassword("s3cret"))
	var se *lockclient.ServerError
	if _, err := lockclient.Dial(ctx, addr); !errors.As(err, &se) || se.Code() != "NOAUTH" {
		t.Fatalf("no password: %v, want NOAUTH", err)
	}
	if _, err := lockclient.Dial(ctx, addr, lockclient.WithPassword("wrong")); !errors.As(err, &se) || se.Code() != "WRONGPASS" {
		t.Fatalf("wrong password: %v, want WRONGPASS", err)
	}
	c := dial(t, addr, lockclient.WithPassword("s3cret"))
	l, err := c.Acquire(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	l.Release(ctx)
}

func TestTLS(t *testing.T) {
	ctx := t.Context()
	serverConf, pool := selfSigned(t)
	addr := lockproxytest.Start(t, lockproxytest.WithTLS(serverConf))
	c := dial(t, addr, lockclient.WithTLS(&tls.Config{RootCAs: pool}))
	l, err := c.Acquire(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	l.Release(ctx)
	if _, err := lockclient.Dial(ctx, addr, lockclient.WithTLS(&tls.Config{})); err == nil {
		t.Fatal("an unknown certificate was accepted")
	}
}

// A server that hangs up at once fails the dial. (A listener that hangs up,
// not a closed port: another test's server could take a freed port.)
func TestDialFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if _, err := lockclient.Dial(t.Context(), ln.Addr().String()); err == nil {
		t.Fatal("dial of a server that hangs up succeeded")
	}
}

// selfSigned returns a server config for 127.0.0.1 and a pool trusting it.
func selfSigned(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "lockproxytest"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, pool
}
