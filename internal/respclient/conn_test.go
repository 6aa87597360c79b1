package respclient

import (
	"errors"
	"testing"
	"time"

	"github.com/lockproxy/lockproxy/internal/redistest"
)

func TestConnDo(t *testing.T) {
	srv := redistest.Start(t)
	c, err := Dial(srv.Addr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, step := range []struct {
		args []string
		want string
	}{
		{[]string{"SET", "respclient:k", "v v"}, "+OK"},
		{[]string{"GET", "respclient:k"}, "$v v"},
		{[]string{"GET", "respclient:none"}, "(nil)"},
		{[]string{"INCR", "respclient:k"}, "-ERR value is not an integer or out of range"},
		{[]string{"RPUSH", "respclient:l", "a", "b"}, ":2"},
		{[]string{"LRANGE", "respclient:l", "0", "-1"}, "*[$a $b]"},
	} {
		v, err := c.Do(step.args...)
		if err != nil || v.String() != step.want {
			t.Errorf("%q = %v, %v; want %s", step.args, v, err, step.want)
		}
	}
}

// A push that lands while the client is idle reaches the callback at once,
// timed, and the replies around it are not disturbed.
func TestTimedPush(t *testing.T) {
	srv := redistest.Start(t)
	pushes := make(chan time.Time, 1)
	c, err := DialTimed(srv.Addr(), 5*time.Second, func(v Value, at time.Time) {
		if len(v.Elems) == 2 && v.Elems[0].Str == "invalidate" {
			pushes <- at
		}
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if v, _, err := c.Do(5*time.Second, "CLIENT", "TRACKING", "ON"); err != nil || v.Str != "OK" {
		t.Fatalf("CLIENT TRACKING ON = %v, %v", v, err)
	}
	if v, _, err := c.Do(5*time.Second, "GET", "respclient:tracked"); err != nil || !v.Null {
		t.Fatalf("GET = %v, %v", v, err)
	}
	other, err := Dial(srv.Addr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	before := time.Now()
	if _, err := other.Do("SET", "respclient:tracked", "1"); err != nil {
		t.Fatal(err)
	}
	select {
	case at := <-pushes:
		if at.Before(before) {
			t.Errorf("push timed %v before the write that caused it", before.Sub(at))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no invalidate push")
	}
	sent, err := c.Send("PING")
	if err != nil {
		t.Fatal(err)
	}
	v, at, err := c.Next(5 * time.Second)
	if err != nil || v.Str != "PONG" || at.Before(sent) {
		t.Errorf("PING = %v at %v (sent %v), %v", v, at, sent, err)
	}
}

func TestTimedPipeline(t *testing.T) {
	srv := redistest.Start(t)
	c, err := DialTimed(srv.Addr(), 5*time.Second, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	vs, ats, err := c.Pipeline(5*time.Second, []string{"INCR", "respclient:n"}, []string{"INCR", "respclient:n"})
	if err != nil || len(vs) != 2 || vs[0].Num != 1 || vs[1].Num != 2 || ats[1].Before(ats[0]) {
		t.Errorf("pipeline = %v %v, %v", vs, ats, err)
	}
}

// A reply that does not come in time leaves the connection out of step:
// it ends, and says so through Done and onClose.
func TestTimedTimeout(t *testing.T) {
	srv := redistest.Start(t)
	closed := make(chan time.Time, 1)
	c, err := DialTimed(srv.Addr(), 5*time.Second, nil, func(at time.Time) { closed <- at })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, _, err := c.Do(50*time.Millisecond, "BLPOP", "respclient:empty", "0"); !errors.Is(err, ErrTimeout) {
		t.Fatalf("BLPOP on an empty list = %v; want ErrTimeout", err)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the connection did not end")
	}
	select {
	case <-closed:
	default:
		t.Error("onClose was not called")
	}
	if _, _, err := c.Do(time.Second, "PING"); err == nil {
		t.Error("PING after the timeout succeeded")
	}
	c.Close() // again: a no-op
}

// A server that does not speak RESP3 is refused at dial.
func TestDialTimedNeedsRESP3(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{Args: []string{"--rename-command", "HELLO", ""}})
	if c, err := DialTimed(srv.Addr(), 5*time.Second, nil, nil); err == nil {
		c.Close()
		t.Fatal("DialTimed to a server without HELLO succeeded")
	}
}
