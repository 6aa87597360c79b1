package lockproxytest_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/lockproxy/lockproxy/lockclient"
	"github.com/lockproxy/lockproxy/lockproxytest"
)

// chargeOnce is the code under test in the guide: it charges an order at
// most once, however many times it is retried, under the order's lock.
func chargeOnce(ctx context.Context, locks *lockclient.Client, paid map[string]bool, charge func(string)) func(orderID string) error {
	return func(orderID string) error {
		return locks.WithLock(ctx, "order:"+orderID, func(ctx context.Context) error {
			if paid[orderID] {
				return nil
			}
			charge(orderID)
			paid[orderID] = true
			return nil
		}, lockclient.Wait(10*time.Second))
	}
}

func TestChargeOnce(t *testing.T) {
	addr := lockproxytest.Start(t) // stopped when the test ends
	locks, err := lockclient.Dial(t.Context(), addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { locks.Close() })

	var charges atomic.Int32
	pay := chargeOnce(t.Context(), locks, map[string]bool{}, func(string) { charges.Add(1) })

	var wg sync.WaitGroup
	for range 10 { // ten retries of one order, at once
		wg.Go(func() {
			if err := pay("42"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := charges.Load(); n != 1 {
		t.Fatalf("order 42 charged %d times, want 1", n)
	}
}

func TestSharedServer(t *testing.T) {
	locks, err := lockclient.Dial(t.Context(), lockproxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer locks.Close()
	lock, err := locks.Acquire(t.Context(), t.Name()) // unique names: the server is shared
	if err != nil {
		t.Fatal(err)
	}
	if err := lock.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// stop releases locks, closes connections and leaves no goroutine behind.
func TestStopCleansUp(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	addr, stop, err := lockproxytest.StartServer()
	if err != nil {
		t.Fatal(err)
	}
	c, err := lockclient.Dial(t.Context(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	lock, err := c.Acquire(t.Context(), "held at stop")
	if err != nil {
		t.Fatal(err)
	}
	waiting := make(chan error, 1)
	go func() {
		_, err := c.Acquire(t.Context(), "held at stop", lockclient.Wait(time.Minute))
		waiting <- err
	}()
	for {
		info, err := c.Info(t.Context(), "held at stop")
		if err != nil {
			t.Fatal(err)
		}
		if info.Waiters == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	stop()
	<-lock.Lost()
	if err := <-waiting; err == nil {
		t.Fatal("a waiter was granted the lock during shutdown")
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Fatal("still accepting after stop")
	}
	stop() // twice is fine
}

func TestPasswordAndTLS(t *testing.T) {
	addr := lockproxytest.Start(t, lockproxytest.WithPassword("pw"))
	var se *lockclient.ServerError
	if _, err := lockclient.Dial(t.Context(), addr); !errors.As(err, &se) || se.Code() != "NOAUTH" {
		t.Fatalf("without a password: %v, want NOAUTH", err)
	}
	c, err := lockclient.Dial(t.Context(), addr, lockclient.WithPassword("pw"))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()

	// A TLS listener refuses plain RESP.
	addr = lockproxytest.Start(t, lockproxytest.WithTLS(&tls.Config{}))
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := lockclient.Dial(ctx, addr); err == nil {
		t.Fatal("plain RESP to a TLS server succeeded")
	}
}

// Each ```go block of docs/testing.md is code of this package's tests, so
// that the guide compiles and runs.
func TestGuideIsCompiled(t *testing.T) {
	guide, err := os.ReadFile("../docs/testing.md")
	if err != nil {
		t.Fatal(err)
	}
	var src strings.Builder
	for _, f := range []string{"main_test.go", "lockproxytest_test.go"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src.Write(b)
	}
	blocks := regexp.MustCompile("(?s)```go\n(.*?)```").FindAllStringSubmatch(string(guide), -1)
	if len(blocks) == 0 {
		t.Fatal("no go blocks in docs/testing.md")
	}
	for _, b := range blocks {
		if !strings.Contains(src.String(), b[1]) {
			t.Errorf("docs/testing.md has code that is not in lockproxytest's tests:\n%s", b[1])
		}
	}
}

func ExampleStartServer() {
	addr, stop, err := lockproxytest.StartServer()
	if err != nil {
		log.Fatal(err)
	}
	defer stop()

	ctx := context.Background()
	locks, err := lockclient.Dial(ctx, addr)
	if err != nil {
		log.Fatal(err)
	}
	defer locks.Close()
	lock, err := locks.Acquire(ctx, "example")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("acquired:", lock.Fence() > 0)
	// Output:
	// acquired: true
}
