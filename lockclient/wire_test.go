package lockclient

import (
	"bufio"
	"context"
	"errors"
	"net"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestReadValue(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want value
	}{
		{"+OK\r\n", value{typ: '+', str: "OK"}},
		{"-ERR bad\r\n", value{typ: '-', str: "ERR bad"}},
		{":-42\r\n", value{typ: ':', num: -42}},
		{"$5\r\na\r\nbc\r\n", value{typ: '$', str: "a\r\nbc"}},
		{"$0\r\n\r\n", value{typ: '$', str: ""}},
		{"$-1\r\n", value{typ: '_'}},
		{"*-1\r\n", value{typ: '_'}},
		{"_\r\n", value{typ: '_'}},
		{"#t\r\n", value{typ: '#', num: 1}},
		{",1.5\r\n", value{typ: ',', str: "1.5"}},
		{"(123456789012345678901234567890\r\n", value{typ: '(', str: "123456789012345678901234567890"}},
		{"!3\r\nERR\r\n", value{typ: '!', str: "ERR"}},
		{"=8\r\ntxt:some\r\n", value{typ: '$', str: "some"}},
		{"*2\r\n:1\r\n$1\r\nx\r\n", value{typ: '*', elems: []value{{typ: ':', num: 1}, {typ: '$', str: "x"}}}},
		{"%1\r\n+held\r\n:1\r\n", value{typ: '%', elems: []value{{typ: '+', str: "held"}, {typ: ':', num: 1}}}},
		{"~1\r\n:7\r\n", value{typ: '~', elems: []value{{typ: ':', num: 7}}}},
		{">3\r\n$9\r\nlock.lost\r\n$1\r\nn\r\n$3\r\n1:a\r\n", value{typ: '>', elems: []value{
			{typ: '$', str: "lock.lost"}, {typ: '$', str: "n"}, {typ: '$', str: "1:a"}}}},
		{"|1\r\n+key\r\n+val\r\n:5\r\n", value{typ: ':', num: 5}}, // the attribute is dropped
	} {
		got, err := readValue(bufio.NewReader(strings.NewReader(tc.in)))
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if got.elems != nil && len(got.elems) == 0 {
			got.elems = nil
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestReadValueRejects(t *testing.T) {
	for _, in := range []string{
		"\r\n", "?x\r\n", ":x\r\n", "$3\r\nabcd\r\n", "$-2\r\n", "*99999999\r\n",
		"$99999999999\r\n", "+no crlf\n", "#x\r\n", strings.Repeat("*1\r\n", 100) + ":1\r\n",
	} {
		if _, err := readValue(bufio.NewReader(strings.NewReader(in))); !errors.Is(err, errProtocol) {
			t.Errorf("%q: got %v, want a protocol error", in, err)
		}
	}
}

func TestAppendCommand(t *testing.T) {
	got := string(appendCommand(nil, []string{"LOCK.ACQUIRE", "a b", ""}))
	if want := "*3\r\n$12\r\nLOCK.ACQUIRE\r\n$3\r\na b\r\n$0\r\n\r\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// fakeServer answers the client's side of a net.Pipe with the frames
// script gives for each request it reads.
func fakeServer(t *testing.T, script func(req value) string) *conn {
	t.Helper()
	client, server := net.Pipe()
	c := &conn{nc: client, br: bufio.NewReader(client), done: make(chan struct{})}
	go c.readLoop()
	served := make(chan struct{})
	go func() {
		defer close(served)
		br := bufio.NewReader(server)
		for {
			req, err := readValue(br)
			if err != nil {
				return
			}
			if _, err := server.Write([]byte(script(req))); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		c.close()
		server.Close()
		<-served
	})
	return c
}

const (
	grant = "$12\r\n7:0123456789\r\n"
	ok    = ":1\r\n"
)

func lostPush(name, token string) string {
	return ">3\r\n$9\r\nlock.lost\r\n$" + itoa(len(name)) + "\r\n" + name + "\r\n$" + itoa(len(token)) + "\r\n" + token + "\r\n"
}

func itoa(n int) string { return strconv.Itoa(n) }

// A push is routed to the bound lock only when name and token match, and
// the replies around it still reach their requests.
func TestPushRouting(t *testing.T) {
	c := fakeServer(t, func(req value) string {
		switch req.elems[0].str {
		case "ACQUIRE":
			// The grant, then at once a push for it: it must find the
			// lock bound already.
			return grant + lostPush("other", "7:0123456789") + lostPush("n", "6:stale")
		case "LOSE":
			return lostPush("n", "7:0123456789") + ok
		}
		return ok
	})
	ctx := context.Background()
	l := &Lock{name: "n", lost: make(chan struct{})}
	v, err := c.cmd(ctx, func(v value) { l.token = v.str; c.bind(l) }, "ACQUIRE")
	if err != nil || v.str != "7:0123456789" {
		t.Fatalf("acquire: %+v, %v", v, err)
	}
	if v, err := c.cmd(ctx, nil, "PING"); err != nil || v.num != 1 {
		t.Fatalf("reply after pushes: %+v, %v", v, err)
	}
	select {
	case <-l.lost:
		t.Fatal("a push for another lock marked it lost")
	default:
	}
	if v, err := c.cmd(ctx, nil, "LOSE"); err != nil || v.num != 1 {
		t.Fatalf("reply after the push: %+v, %v", v, err)
	}
	<-l.lost
}

// A dead connection answers its waiting calls and marks its lock lost.
func TestConnDeath(t *testing.T) {
	release := make(chan struct{})
	c := fakeServer(t, func(req value) string {
		<-release
		return ok
	})
	l := &Lock{name: "n", token: "1:x", lost: make(chan struct{})}
	c.bind(l)
	errc := make(chan error, 1)
	go func() {
		_, err := c.cmd(context.Background(), nil, "PING")
		errc <- err
	}()
	c.fail(errors.New("cut"))
	close(release)
	if err := <-errc; err == nil || err.Error() != "cut" {
		t.Fatalf("pending call: %v, want the connection's error", err)
	}
	<-l.lost
	if _, err := c.cmd(context.Background(), nil, "PING"); err == nil {
		t.Fatal("a dead connection took a command")
	}
}

// An abandoned call's reply is dropped when it comes, and the next call
// gets its own.
func TestAbandonedCall(t *testing.T) {
	gotA, answerA := make(chan struct{}), make(chan struct{})
	c := fakeServer(t, func(req value) string {
		if req.elems[0].str == "A" {
			close(gotA)
			<-answerA
			return ":1\r\n"
		}
		return ":2\r\n"
	})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.cmd(ctx, nil, "A")
		errc <- err
	}()
	<-gotA
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("abandoned call: %v", err)
	}
	close(answerA)
	if v, err := c.cmd(context.Background(), nil, "B"); err != nil || v.num != 2 {
		t.Fatalf("next call: %+v, %v", v, err)
	}
}
