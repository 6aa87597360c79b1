package respclient

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
)

func reader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }

func bulk(s string) Value { return Value{Kind: '$', Str: s} }

// Every RESP2 and RESP3 type, each followed by another frame that must
// still read: a reader that takes too much or too little shows there.
func TestReadValue(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     Value
	}{
		{"simple", "+OK\r\n", Value{Kind: '+', Str: "OK"}},
		{"empty simple", "+\r\n", Value{Kind: '+'}},
		{"error", "-ERR no\r\n", Value{Kind: '-', Str: "ERR no"}},
		{"integer", ":42\r\n", Value{Kind: ':', Num: 42}},
		{"negative integer", ":-7\r\n", Value{Kind: ':', Num: -7}},
		{"bulk", "$5\r\nhello\r\n", bulk("hello")},
		{"empty bulk", "$0\r\n\r\n", bulk("")},
		{"bulk holding CRLF", "$4\r\na\r\nb\r\n", bulk("a\r\nb")},
		{"null bulk", "$-1\r\n", Value{Kind: '$', Null: true}},
		{"array", "*2\r\n$1\r\na\r\n:1\r\n", Value{Kind: '*', Elems: []Value{bulk("a"), {Kind: ':', Num: 1}}}},
		{"empty array", "*0\r\n", Value{Kind: '*', Elems: []Value{}}},
		{"null array", "*-1\r\n", Value{Kind: '*', Null: true}},
		{"nested array", "*1\r\n*1\r\n+x\r\n", Value{Kind: '*', Elems: []Value{{Kind: '*', Elems: []Value{{Kind: '+', Str: "x"}}}}}},
		{"null", "_\r\n", Value{Kind: '_', Null: true}},
		{"double", ",3.14\r\n", Value{Kind: ',', Str: "3.14"}},
		{"true", "#t\r\n", Value{Kind: '#', Str: "t", Num: 1}},
		{"false", "#f\r\n", Value{Kind: '#', Str: "f"}},
		{"big number", "(12345678901234567890\r\n", Value{Kind: '(', Str: "12345678901234567890"}},
		{"verbatim", "=8\r\ntxt:ab\r\n\r\n", Value{Kind: '=', Str: "txt:ab\r\n"}},
		{"blob error reads as error", "!5\r\nERR x\r\n", Value{Kind: '-', Str: "ERR x"}},
		{"map", "%1\r\n+held\r\n:1\r\n", Value{Kind: '%', Elems: []Value{{Kind: '+', Str: "held"}, {Kind: ':', Num: 1}}}},
		{"set", "~1\r\n+a\r\n", Value{Kind: '~', Elems: []Value{{Kind: '+', Str: "a"}}}},
		{"push", ">3\r\n$9\r\nlock.lost\r\n$1\r\nn\r\n$1\r\nt\r\n",
			Value{Kind: '>', Elems: []Value{bulk("lock.lost"), bulk("n"), bulk("t")}}},
		{"attribute dropped", "|1\r\n+ttl\r\n:3\r\n+OK\r\n", Value{Kind: '+', Str: "OK"}},
		{"attribute inside an array", "*1\r\n|0\r\n:5\r\n", Value{Kind: '*', Elems: []Value{{Kind: ':', Num: 5}}}},
		{"bulk longer than the buffer", fmt.Sprintf("$5000\r\n%s\r\n", strings.Repeat("x", 5000)), bulk(strings.Repeat("x", 5000))},
		{"line longer than the buffer", "+" + strings.Repeat("y", 5000) + "\r\n", Value{Kind: '+', Str: strings.Repeat("y", 5000)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := reader(tc.in + "+after\r\n")
			got, err := ReadValue(r)
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ReadValue(%q) = %#v, %v; want %#v", tc.in, got, err, tc.want)
			}
			if next, err := ReadValue(r); err != nil || next.Str != "after" {
				t.Errorf("the frame after: %v, %v", next, err)
			}
			if _, err := ReadValue(r); err != io.EOF {
				t.Errorf("at the end: %v; want io.EOF", err)
			}
		})
	}
}

// Input that breaks the protocol is an error, never a value or a panic.
func TestReadValueMalformed(t *testing.T) {
	deep := strings.Repeat("*1\r\n", maxDepth+2) + ":1\r\n"
	for _, tc := range []struct {
		name, in string
		want     error
	}{
		{"nothing", "", io.EOF},
		{"no line end", "+OK", io.EOF},
		{"LF alone", "+OK\n", ErrProtocol},
		{"empty line", "\r\n", ErrProtocol},
		{"unknown type", "?x\r\n", ErrProtocol},
		{"bad integer", ":1x\r\n", ErrProtocol},
		{"empty integer", ":\r\n", ErrProtocol},
		{"bad boolean", "#x\r\n", ErrProtocol},
		{"null with a body", "_x\r\n", ErrProtocol},
		{"bad bulk length", "$x\r\nab\r\n", ErrProtocol},
		{"bulk length below -1", "$-2\r\n", ErrProtocol},
		{"bulk length past the limit", "$999999999999\r\n", ErrProtocol},
		{"bulk without CRLF", "$2\r\nabcd\r\n", ErrProtocol},
		{"bulk cut short", "$5\r\nab", io.ErrUnexpectedEOF},
		{"bulk missing", "$5\r\n", io.EOF},
		{"long bulk cut short", "$5000\r\nab", io.ErrUnexpectedEOF},
		{"long bulk without CRLF", fmt.Sprintf("$5000\r\n%sxx", strings.Repeat("x", 5000)), ErrProtocol},
		{"bad array count", "*x\r\n", ErrProtocol},
		{"array count past the limit", "*99999999999\r\n", ErrProtocol},
		{"array cut short", "*2\r\n:1\r\n", io.EOF},
		{"map cut short", "%1\r\n+k\r\n", io.EOF},
		{"bad element", "*1\r\n:x\r\n", ErrProtocol},
		{"attribute with nothing after", "|0\r\n", io.EOF},
		{"nested too deep", deep, ErrProtocol},
		{"attributes without end", strings.Repeat("|0\r\n", maxDepth+2) + "+OK\r\n", ErrProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := ReadValue(reader(tc.in))
			if !errors.Is(err, tc.want) {
				t.Errorf("ReadValue(%.40q) = %v, %v; want %v", tc.in, v, err, tc.want)
			}
		})
	}
}

func TestReadRequest(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
		err      error
	}{
		{"array", "*2\r\n$4\r\nLOCK\r\n$1\r\nn\r\n", []string{"LOCK", "n"}, nil},
		{"binary argument", "*1\r\n$3\r\na\r\n\r\n", []string{"a\r\n"}, nil},
		{"empty argument", "*1\r\n$0\r\n\r\n", []string{""}, nil},
		{"inline", "PING  hi\r\n", []string{"PING", "hi"}, nil},
		{"inline with LF alone", "PING\n", []string{"PING"}, nil},
		{"blank line", "\r\n", []string{}, nil},
		{"empty array", "*0\r\n", []string{}, nil},
		{"null array", "*-1\r\n", []string{}, nil},
		{"bad count", "*x\r\n", nil, ErrProtocol},
		{"argument not bulk", "*1\r\n+PING\r\n", nil, ErrProtocol},
		{"null argument", "*1\r\n$-1\r\n", nil, ErrProtocol},
		{"bad argument length", "*1\r\n$x\r\n", nil, ErrProtocol},
		{"argument without CRLF", "*1\r\n$1\r\nab\r\n", nil, ErrProtocol},
		{"cut short", "*2\r\n$1\r\na\r\n", nil, io.EOF},
		{"nothing", "", nil, io.EOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadRequest(reader(tc.in))
			if !errors.Is(err, tc.err) || (tc.err == nil && !reflect.DeepEqual(got, tc.want)) {
				t.Errorf("ReadRequest(%q) = %q, %v; want %q, %v", tc.in, got, err, tc.want, tc.err)
			}
		})
	}
}

func TestAppendRequest(t *testing.T) {
	got := string(AppendRequest([]byte("x"), "SET", "k", ""))
	if want := "x*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"; got != want {
		t.Errorf("AppendRequest = %q; want %q", got, want)
	}
}

// faults' client processes print String and their parent parses it.
func TestValueString(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"$3\r\ntok\r\n", "$tok"},
		{":1\r\n", ":1"},
		{"$-1\r\n", "(nil)"},
		{"_\r\n", "(nil)"},
		{"-ERR x\r\n", "-ERR x"},
		{"#t\r\n", "#t"},
		{"*0\r\n", "*[]"},
		{"%1\r\n+held\r\n:1\r\n", "%[+held :1]"},
		{">2\r\n$1\r\na\r\n*1\r\n$1\r\nb\r\n", ">[$a *[$b]]"},
	} {
		v, err := ReadValue(reader(tc.in))
		if err != nil || v.String() != tc.want {
			t.Errorf("%q: String() = %q, %v; want %q", tc.in, v.String(), err, tc.want)
		}
	}
}

func FuzzReadValue(f *testing.F) {
	for _, s := range []string{"+OK\r\n", "$3\r\nabc\r\n", "*2\r\n:1\r\n_\r\n", "%1\r\n+a\r\n#t\r\n",
		">1\r\n=5\r\ntxt:x\r\n", "|1\r\n+a\r\n,1.5\r\n(9\r\n", "!1\r\nE\r\n", "~1\r\n$-1\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReader(strings.NewReader(string(in)))
		for {
			v, err := ReadValue(r)
			if err != nil {
				return
			}
			_ = v.String()
		}
	})
}

// A request read back and encoded again reads as the same request.
func FuzzReadRequest(f *testing.F) {
	for _, s := range []string{"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", "PING\r\n", "*0\r\n", "*1\r\n$0\r\n\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		cmd, err := ReadRequest(bufio.NewReader(strings.NewReader(string(in))))
		if err != nil {
			return
		}
		again, err := ReadRequest(reader(string(AppendRequest(nil, cmd...))))
		if err != nil || !reflect.DeepEqual(again, cmd) {
			t.Errorf("%q read as %q, which reads back as %q, %v", in, cmd, again, err)
		}
	})
}

func ExampleReadValue() {
	r := bufio.NewReader(strings.NewReader("%2\r\n$4\r\nheld\r\n:1\r\n$5\r\nfence\r\n:7\r\n"))
	v, err := ReadValue(r)
	fmt.Println(v, err)
	// Output: %[$held :1 $fence :7] <nil>
}

// The replies lockbench reads in its loop: a token, a release's count, a
// null. Each should cost one allocation at most, the string itself.
func BenchmarkReadValue(b *testing.B) {
	frames := "$22\r\n0123456789abcdef012345\r\n:1\r\n$-1\r\n+OK\r\n"
	src := strings.NewReader("")
	r := bufio.NewReader(src)
	b.ReportAllocs()
	for range b.N {
		src.Reset(frames)
		r.Reset(src)
		for range 4 {
			if _, err := ReadValue(r); err != nil {
				b.Fatal(err)
			}
		}
	}
}
