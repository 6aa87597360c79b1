package resp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

// Helpers are prefixed rdr because other files of this package are written
// in parallel and share the test namespace.

// rdrResult is everything observable from parsing one stream.
type rdrResult struct {
	cmds [][]string
	err  string // Error() of the ProtocolError, or "EOF"
}

func (r *rdrResult) add(args [][]byte) {
	s := make([]string, len(args))
	for i, a := range args {
		s[i] = string(a)
	}
	r.cmds = append(r.cmds, s)
}

func (r rdrResult) equal(o rdrResult) bool {
	return reflect.DeepEqual(r.cmds, o.cmds) && r.err == o.err
}

func (r rdrResult) String() string { return fmt.Sprintf("%q err=%q", r.cmds, r.err) }

// rdrChunkReader returns data in chunks of random size up to max, so one
// stream can be delivered in many different ways.
type rdrChunkReader struct {
	data  []byte
	max   int
	rng   *rand.Rand
	reads int
}

func (c *rdrChunkReader) Read(p []byte) (int, error) {
	c.reads++
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(1+c.rng.IntN(c.max), len(p), len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

type rdrMode int

const (
	rdrModeRead        rdrMode = iota // Next, then Fill only when Next needs more
	rdrModeReadCommand                // ReadCommand
	rdrModeBackground                 // Fill until full or EOF, then drain with Next
)

// rdrRun parses in, delivered in chunks of up to maxChunk bytes, and fails
// tb if the reader ever holds more than MaxQueryBytes or stops making
// progress.
func rdrRun(tb testing.TB, in []byte, lim Limits, mode rdrMode, maxChunk int, seed uint64) rdrResult {
	tb.Helper()
	src := &rdrChunkReader{data: in, max: maxChunk, rng: rand.New(rand.NewPCG(seed, uint64(maxChunk)))}
	rd := NewReader(src, lim)
	limit := rd.lim.MaxQueryBytes
	fills := 0
	fill := func() error {
		fills++
		if fills > 2*len(in)+100 {
			tb.Fatalf("no progress after %d Fills", fills)
		}
		err := rd.Fill()
		if rd.Buffered() > limit || len(rd.buf) > limit {
			tb.Fatalf("buffered %d in a %d-byte buffer, limit %d", rd.Buffered(), len(rd.buf), limit)
		}
		return err
	}
	var res rdrResult
	protoErr := func(err error) string {
		var pe *ProtocolError
		if !errors.As(err, &pe) {
			tb.Fatalf("unexpected error %v", err)
		}
		return err.Error()
	}

	switch mode {
	case rdrModeRead:
		for {
			cmd, ok, err := rd.Next()
			if err != nil {
				res.err = protoErr(err)
				return res
			}
			if ok {
				res.add(cmd.Args)
				continue
			}
			if err := fill(); err == io.EOF {
				res.err = "EOF"
				return res
			} else if err != nil {
				tb.Fatalf("Fill after Next needed more: %v", err)
			}
		}

	case rdrModeReadCommand:
		for {
			cmd, err := rd.ReadCommand()
			if err == io.EOF {
				res.err = "EOF"
				return res
			}
			if err != nil {
				res.err = protoErr(err)
				return res
			}
			res.add(cmd.Args)
		}

	case rdrModeBackground:
		eof := false
		for {
			full := false
			for !eof && !full {
				switch err := fill(); err {
				case nil:
				case io.EOF:
					eof = true
				case ErrBufferFull:
					full = true
				default:
					tb.Fatalf("Fill: %v", err)
				}
			}
			before := rd.Buffered()
			for {
				cmd, ok, err := rd.Next()
				if err != nil {
					res.err = protoErr(err)
					return res
				}
				if !ok {
					break
				}
				res.add(cmd.Args)
			}
			if eof {
				res.err = "EOF"
				return res
			}
			// Skipped empty requests count as progress too.
			if rd.Buffered() >= before {
				tb.Fatalf("buffer full with %d bytes but Next neither parsed nor failed", rd.Buffered())
			}
		}
	}
	panic("unreachable")
}

// rdrRunAll parses in every way rdrRun knows and fails tb unless all agree;
// it returns the common result.
func rdrRunAll(tb testing.TB, in []byte, lim Limits) rdrResult {
	tb.Helper()
	want := rdrRun(tb, in, lim, rdrModeRead, len(in)+1, 0)
	for _, mode := range []rdrMode{rdrModeRead, rdrModeReadCommand, rdrModeBackground} {
		for _, chunk := range []int{1, 2, 3, 7, 64, len(in) + 1} {
			for seed := range uint64(3) {
				got := rdrRun(tb, in, lim, mode, chunk, seed)
				if !got.equal(want) {
					tb.Fatalf("mode %d, chunks up to %d, seed %d:\n got  %v\n want %v", mode, chunk, seed, got, want)
				}
			}
		}
	}
	return want
}

func rdrCmds(cmds ...string) [][]string {
	var out [][]string
	for _, c := range cmds {
		out = append(out, strings.Split(c, "|"))
	}
	return out
}

var rdrTableTests = []struct {
	name string
	in   string
	lim  Limits
	want [][]string // each command's args joined by |
	err  string     // ProtocolError.Msg, or "" for io.EOF
}{
	// Multibulk.
	{name: "ping", in: "*1\r\n$4\r\nPING\r\n", want: rdrCmds("PING")},
	{name: "set", in: "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n", want: rdrCmds("SET|k|value")},
	{name: "pipeline mixed", in: "*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\nPING\r\n*1\r\n$4\r\nQUIT\r\n",
		want: rdrCmds("PING", "ECHO|hi", "PING", "QUIT")},
	{name: "empty arg", in: "*2\r\n$4\r\nECHO\r\n$0\r\n\r\n", want: rdrCmds("ECHO|")},
	{name: "binary safe", in: "*2\r\n$4\r\nECHO\r\n$10\r\na\r\nb\x00c\r\n\xff\n\r\n",
		want: [][]string{{"ECHO", "a\r\nb\x00c\r\n\xff\n"}}},
	{name: "empty requests skipped", in: "*0\r\n*-1\r\n*-5\r\n*-9223372036854775808\r\n*1\r\n$4\r\nPING\r\n*0\r\n",
		want: rdrCmds("PING")},
	{name: "eof mid request", in: "*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\n", want: rdrCmds("PING")},
	{name: "eof mid header", in: "*1\r\n$4\r\nPING\r\n*1", want: rdrCmds("PING")},
	{name: "bulk at MaxBulkBytes", in: "*1\r\n$5\r\nhello\r\n", lim: Limits{MaxBulkBytes: 5}, want: rdrCmds("hello")},
	{name: "count at MaxArgs", in: "*2\r\n$1\r\na\r\n$1\r\nb\r\n", lim: Limits{MaxArgs: 2}, want: rdrCmds("a|b")},
	{name: "request exactly MaxQueryBytes", in: "*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPONG\r\n", lim: Limits{MaxQueryBytes: 14},
		want: rdrCmds("PING", "PONG")},
	{name: "count line of 32 bytes", in: "*" + strings.Repeat("0", 31) + "\r\n", err: "invalid multibulk length"},

	// Multibulk errors.
	{name: "count -0", in: "*-0\r\n", err: "invalid multibulk length"},
	{name: "count leading zero", in: "*01\r\n$4\r\nPING\r\n", err: "invalid multibulk length"},
	{name: "count plus", in: "*+1\r\n$4\r\nPING\r\n", err: "invalid multibulk length"},
	{name: "count space", in: "* 1\r\n$4\r\nPING\r\n", err: "invalid multibulk length"},
	{name: "count trailing space", in: "*1 \r\n$4\r\nPING\r\n", err: "invalid multibulk length"},
	{name: "count empty", in: "*\r\n", err: "invalid multibulk length"},
	{name: "count junk", in: "*1x\r\n", err: "invalid multibulk length"},
	{name: "count ends LF", in: "*1\n$4\r\nPING\r\n", err: "invalid multibulk length"},
	{name: "count CR without LF", in: "*1\rx$4\r\nPING\r\n", err: "invalid multibulk length"},
	{name: "count overflows int64", in: "*99999999999999999999\r\n", err: "invalid multibulk length"},
	{name: "count over MaxArgs", in: "*1048577\r\n", err: "invalid multibulk length"},
	{name: "count over small MaxArgs", in: "*3\r\n", lim: Limits{MaxArgs: 2}, err: "invalid multibulk length"},
	{name: "count huge", in: "*1000000000\r\n", err: "invalid multibulk length"},
	{name: "count line 33 bytes", in: "*" + strings.Repeat("1", 32) + "\r\n", err: "too big mbulk count string"},
	{name: "count line no CR", in: "*" + strings.Repeat("1", 40), err: "too big mbulk count string"},
	{name: "bulk line 32 bytes", in: "*1\r\n$" + strings.Repeat("1", 31) + "\r\n", err: "invalid bulk length"},
	{name: "bulk line 33 bytes", in: "*1\r\n$" + strings.Repeat("1", 32) + "\r\n", err: "too big bulk count string"},
	{name: "bulk line no CR", in: "*1\r\n$" + strings.Repeat("1", 40), err: "too big bulk count string"},
	{name: "expected $ got P", in: "*1\r\nPING\r\n", err: "expected '$', got 'P'"},
	{name: "expected $ got colon", in: "*2\r\n$1\r\na\r\n:1\r\n", err: "expected '$', got ':'"},
	{name: "expected $ got CR", in: "*1\r\n\r\n", err: "expected '$', got ' '"},
	{name: "expected $ got LF", in: "*1\r\n\n\r\n", err: "expected '$', got ' '"},
	{name: "expected $ got CR CR", in: "*1\r\n\r\r\n", err: "expected '$', got ' '"},
	{name: "expected $ got raw byte", in: "*1\r\n\xff\r\n", err: "expected '$', got '\xff'"},
	{name: "bulk -1", in: "*1\r\n$-1\r\n", err: "invalid bulk length"},
	{name: "bulk -0", in: "*1\r\n$-0\r\n", err: "invalid bulk length"},
	{name: "bulk leading zero", in: "*1\r\n$01\r\nP\r\n", err: "invalid bulk length"},
	{name: "bulk plus", in: "*1\r\n$+1\r\nP\r\n", err: "invalid bulk length"},
	{name: "bulk junk", in: "*1\r\n$x\r\n", err: "invalid bulk length"},
	{name: "bulk empty", in: "*1\r\n$\r\n", err: "invalid bulk length"},
	{name: "bulk space", in: "*1\r\n$ 1\r\nP\r\n", err: "invalid bulk length"},
	{name: "bulk CR without LF", in: "*1\r\n$4\rxPING\r\n", err: "invalid bulk length"},
	{name: "bulk over default MaxBulkBytes", in: "*1\r\n$600000000\r\n", err: "invalid bulk length"},
	{name: "bulk over MaxBulkBytes", in: "*1\r\n$6\r\nhello!\r\n", lim: Limits{MaxBulkBytes: 5}, err: "invalid bulk length"},
	{name: "payload without CRLF", in: "*1\r\n$4\r\nPINGxx*1\r\n$4\r\nPING\r\n", err: "invalid bulk length"},
	{name: "payload CR junk", in: "*1\r\n$4\r\nPING\rx", err: "invalid bulk length"},
	{name: "payload LF CR", in: "*1\r\n$4\r\nPING\n\r", err: "invalid bulk length"},
	{name: "error after good command", in: "*1\r\n$4\r\nPING\r\n*1\r\n$-1\r\n*1\r\n$4\r\nPING\r\n",
		want: rdrCmds("PING"), err: "invalid bulk length"},

	// Oversized requests are refused from their headers.
	{name: "bulk over MaxQueryBytes", in: "*1\r\n$100\r\n", lim: Limits{MaxQueryBytes: 64}, err: "too big request"},
	{name: "one byte over MaxQueryBytes", in: "*1\r\n$4\r\nPING\r\n", lim: Limits{MaxQueryBytes: 13}, err: "too big request"},
	{name: "count over MaxQueryBytes", in: "*20\r\n", lim: Limits{MaxQueryBytes: 64}, err: "too big request"},
	{name: "second bulk over MaxQueryBytes", in: "*2\r\n$40\r\n" + strings.Repeat("x", 40) + "\r\n$30\r\n",
		lim: Limits{MaxQueryBytes: 64}, err: "too big request"},
	{name: "bulk leaves no room for the rest", in: "*3\r\n$50\r\n", lim: Limits{MaxQueryBytes: 64}, err: "too big request"},
	{name: "header reaches MaxQueryBytes", in: "*1\r\n$10000", lim: Limits{MaxQueryBytes: 10}, err: "too big request"},

	// Inline. Expectations were checked against Redis 7.0.15.
	{name: "inline", in: "PING\r\n", want: rdrCmds("PING")},
	{name: "inline LF", in: "PING\n", want: rdrCmds("PING")},
	{name: "inline CR CR LF", in: "PING\r\r\n", want: rdrCmds("PING")},
	{name: "inline args", in: "SET  k\tv \r\n", want: rdrCmds("SET|k|v")},
	{name: "inline dollar", in: "$3\r\n", want: rdrCmds("$3")},
	{name: "inline blank lines", in: "\r\n\n   \r\n \t\v\f\r\n PING\r\n", want: rdrCmds("PING")},
	{name: "inline CR splits", in: "ECHO a\rb\r\n", want: rdrCmds("ECHO|a|b")},
	{name: "inline VT FF inside token", in: "ECHO a\vb c\fd\r\n", want: [][]string{{"ECHO", "a\vb", "c\fd"}}},
	{name: "inline VT leading", in: "\vECHO\v\"x\"\vb\r\n", want: [][]string{{"ECHO\vx", "b"}}},
	{name: "inline hex", in: "ECHO \"a\\x41b\"\r\n", want: rdrCmds("ECHO|aAb")},
	{name: "inline hex bytes", in: "ECHO \"\\xff\\x00z\\xFf\"\r\n", want: [][]string{{"ECHO", "\xff\x00z\xff"}}},
	{name: "inline hex bad digit", in: "ECHO \"\\x4g\" \"\\xZZ\" \"\\x4\" \"\\XFF\"\r\n", want: rdrCmds("ECHO|x4g|xZZ|x4|XFF")},
	{name: "inline escapes", in: "ECHO \"\\q\\n\\r\\t\\b\\a\\\\\\\"\"\r\n", want: [][]string{{"ECHO", "q\n\r\t\b\a\\\""}}},
	{name: "inline empty quotes", in: "ECHO \"\" ''\r\n", want: rdrCmds("ECHO||")},
	{name: "inline single escapes", in: "ECHO 'a\\'b' 'a\\\\b' 'a\\nb'\r\n", want: [][]string{{"ECHO", "a'b", "a\\\\b", "a\\nb"}}},
	{name: "inline mixed quotes", in: "ECHO 'a\"b' \"a'b\"\r\n", want: [][]string{{"ECHO", "a\"b", "a'b"}}},
	{name: "inline quote mid token", in: "ECHO a\"b c\"\r\n", want: rdrCmds("ECHO|ab c")},
	{name: "inline quote then VT", in: "ECHO \"a\"\v 'b'\f\r\n", want: rdrCmds("ECHO|a|b")},
	{name: "inline quote then tab", in: "ECHO \"a\"\tb\r\n", want: rdrCmds("ECHO|a|b")},
	{name: "inline raw CR in quotes", in: "ECHO \"a\r\"\r\n", want: [][]string{{"ECHO", "a\r"}}},
	{name: "inline high bytes", in: "ECHO \x80\xff\r\n", want: [][]string{{"ECHO", "\x80\xff"}}},
	{name: "inline NUL is a byte", in: "ECHO a\x00b\r\n", want: [][]string{{"ECHO", "a\x00b"}}},
	{name: "inline pipelined", in: "PING\r\nECHO x\nPING\r\n", want: rdrCmds("PING", "ECHO|x", "PING")},
	{name: "inline eof without newline", in: "PING\r\nPING", want: rdrCmds("PING")},
	{name: "inline quote followed by char", in: "ECHO \"a\"b\r\n", err: "unbalanced quotes in request"},
	{name: "inline quotes adjacent", in: "ECHO \"a\"'b'\r\n", err: "unbalanced quotes in request"},
	{name: "inline four single quotes", in: "ECHO ''''\r\n", err: "unbalanced quotes in request"},
	{name: "inline quote mid token then char", in: "ECHO a\"b c\"d\r\n", err: "unbalanced quotes in request"},
	{name: "inline unterminated double", in: "ECHO \"a\r\n", err: "unbalanced quotes in request"},
	{name: "inline unterminated single", in: "ECHO 'a\r\n", err: "unbalanced quotes in request"},
	{name: "inline escaped closing double", in: "ECHO \"a\\\"\r\n", err: "unbalanced quotes in request"},
	{name: "inline escaped closing single", in: "ECHO 'a\\'\r\n", err: "unbalanced quotes in request"},
	{name: "inline trailing backslash", in: "ECHO \"abc\\\r\n", err: "unbalanced quotes in request"},
	{name: "inline error after good", in: "PING\r\nECHO 'a\r\nPING\r\n", want: rdrCmds("PING"), err: "unbalanced quotes in request"},
	{name: "inline at limit", in: strings.Repeat("a", 15) + "\n" + strings.Repeat("b", 14) + "\r\n",
		lim: Limits{MaxInlineBytes: 16}, want: rdrCmds(strings.Repeat("a", 15), strings.Repeat("b", 14))},
	{name: "inline over limit", in: strings.Repeat("a", 16), lim: Limits{MaxInlineBytes: 16}, err: "too big inline request"},
	{name: "inline over limit with newline", in: strings.Repeat("a", 16) + "\n", lim: Limits{MaxInlineBytes: 16}, err: "too big inline request"},
	{name: "inline over limit by CR", in: strings.Repeat("a", 15) + "\r\n", lim: Limits{MaxInlineBytes: 16}, err: "too big inline request"},
	{name: "inline capped by MaxQueryBytes", in: strings.Repeat("a", 12), lim: Limits{MaxInlineBytes: 100, MaxQueryBytes: 10},
		err: "too big inline request"},
}

func TestReaderTable(t *testing.T) {
	for _, tt := range rdrTableTests {
		t.Run(tt.name, func(t *testing.T) {
			want := rdrResult{cmds: tt.want, err: "EOF"}
			if tt.err != "" {
				want.err = (&ProtocolError{tt.err}).Error()
			}
			got := rdrRunAll(t, []byte(tt.in), tt.lim)
			if !got.equal(want) {
				t.Errorf("reader on %q:\n got  %v\n want %v", tt.in, got, want)
			}
			if ref := rdrReference([]byte(tt.in), tt.lim); !ref.equal(want) {
				t.Errorf("reference on %q:\n got  %v\n want %v", tt.in, ref, want)
			}
		})
	}
}

func TestReaderParseStrictInt(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"1", 1, true}, {"-1", -1, true}, {"1234567890", 1234567890, true},
		{"9223372036854775807", 1<<63 - 1, true}, {"-9223372036854775808", -1 << 63, true},
		{"9223372036854775808", 0, false}, {"-9223372036854775809", 0, false},
		{"18446744073709551615", 0, false}, {"18446744073709551616", 0, false}, {"99999999999999999999", 0, false},
		{"", 0, false}, {"-", 0, false}, {"-0", 0, false}, {"00", 0, false}, {"01", 0, false},
		{"+1", 0, false}, {" 1", 0, false}, {"1 ", 0, false}, {"1a", 0, false}, {"0x1", 0, false},
		{"--1", 0, false}, {"1-", 0, false}, {"000000000000000000001", 0, false},
	} {
		got, ok := parseStrictInt([]byte(tt.in))
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseStrictInt(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
		if ok {
			if s := strconv.FormatInt(got, 10); s != tt.in {
				t.Errorf("parseStrictInt(%q) accepted a non-canonical number", tt.in)
			}
		}
	}
}

// rdrCountingReader serves data in the given chunks, one per Read, and
// records how much was read.
type rdrCountingReader struct {
	chunks [][]byte
	reads  int
	bytes  int
}

func (c *rdrCountingReader) Read(p []byte) (int, error) {
	c.reads++
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.chunks[0])
	c.chunks[0] = c.chunks[0][n:]
	if len(c.chunks[0]) == 0 {
		c.chunks = c.chunks[1:]
	}
	c.bytes += n
	return n, nil
}

func rdrWantProtoErr(t *testing.T, err error, msg string) {
	t.Helper()
	var pe *ProtocolError
	if !errors.As(err, &pe) || pe.Msg != msg {
		t.Fatalf("got error %v, want protocol error %q", err, msg)
	}
}

// A 13-byte header must not cost a second of CPU or any allocation sized
// by the count it declares.
func TestReaderHugeCountFailsFast(t *testing.T) {
	in := []byte("*1000000000\r\n")
	src := &rdrCountingReader{chunks: [][]byte{in}}
	rd := NewReader(src, Limits{})
	if err := rd.Fill(); err != nil {
		t.Fatal(err)
	}
	_, ok, err := rd.Next()
	if ok {
		t.Fatal("Next returned a command")
	}
	rdrWantProtoErr(t, err, "invalid multibulk length")
	if src.reads != 1 {
		t.Fatalf("%d Reads, want 1", src.reads)
	}

	allocs := testing.AllocsPerRun(100, func() {
		rd := NewReader(bytes.NewReader(in), Limits{})
		if _, err := rd.ReadCommand(); err == nil {
			t.Fatal("no error")
		}
	})
	// The Reader, its 512-byte buffer and the error.
	if allocs > 4 {
		t.Fatalf("%v allocations, want at most 4", allocs)
	}
}

// A legal but large count must not make the reader allocate for all the
// arguments before they arrive.
func TestReaderCountDoesNotPreallocate(t *testing.T) {
	in := []byte("*1000000\r\n$3\r\nSET\r\n")
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	rd := NewReader(bytes.NewReader(in), Limits{MaxArgs: 1 << 20})
	_, err := rd.ReadCommand()
	runtime.ReadMemStats(&after)
	if err != io.EOF {
		t.Fatalf("got %v, want io.EOF", err)
	}
	// One slot per declared argument would be at least 16 MB.
	if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
		t.Fatalf("allocated %d bytes for a 20-byte partial request", n)
	}
}

func TestReaderInlineTooBigBuffersOnlyTheLimit(t *testing.T) {
	const limit = 64 << 10
	src := &rdrCountingReader{chunks: [][]byte{bytes.Repeat([]byte("a"), 1<<20)}}
	rd := NewReader(src, Limits{MaxInlineBytes: limit})
	_, err := rd.ReadCommand()
	rdrWantProtoErr(t, err, "too big inline request")
	if rd.Buffered() > limit || src.bytes > limit {
		t.Fatalf("buffered %d, read %d; want at most %d", rd.Buffered(), src.bytes, limit)
	}
}

// The payload of a bulk that can never fit must not be read at all.
func TestReaderBulkTooBigBeforePayload(t *testing.T) {
	for _, tt := range []struct {
		name, header string
	}{
		{"first", "*1\r\n$2000\r\n"},
		{"second", "*2\r\n$500\r\n" + strings.Repeat("x", 500) + "\r\n$600\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := &rdrCountingReader{chunks: [][]byte{[]byte(tt.header), bytes.Repeat([]byte("x"), 4000)}}
			rd := NewReader(src, Limits{MaxQueryBytes: 1024})
			_, err := rd.ReadCommand()
			rdrWantProtoErr(t, err, "too big request")
			if src.bytes != len(tt.header) {
				t.Fatalf("read %d bytes, want only the %d header bytes", src.bytes, len(tt.header))
			}
		})
	}
}

func rdrMultibulk(args ...[]byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.Bytes()
}

// Dripping one byte per Read must work and stay linear: redcon re-parsed the
// whole buffer and recursed once per Read.
func TestReaderDrip(t *testing.T) {
	var args [][]byte
	for i := range 1000 {
		args = append(args, []byte(fmt.Sprintf("arg-%d", i)))
	}
	bigBulk := bytes.Repeat([]byte("z"), 1<<20)
	inline := append(bytes.Repeat([]byte("y "), 30<<10), '\n')
	stream := append(append(rdrMultibulk(args...), rdrMultibulk([]byte("SET"), []byte("k"), bigBulk)...), inline...)

	src := &rdrCountingReader{chunks: [][]byte{stream}}
	rd := NewReader(iotest.OneByteReader(src), Limits{})
	cmd, err := rd.ReadCommand()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cmd.Args, args) {
		t.Fatal("1000-argument command parsed wrong")
	}
	if n := len(rdrMultibulk(args...)); src.reads != n {
		t.Fatalf("%d Reads for %d bytes", src.reads, n)
	}
	cmd, err = rd.ReadCommand()
	if err != nil {
		t.Fatal(err)
	}
	if len(cmd.Args) != 3 || !bytes.Equal(cmd.Args[2], bigBulk) {
		t.Fatal("big bulk parsed wrong")
	}
	cmd, err = rd.ReadCommand()
	if err != nil {
		t.Fatal(err)
	}
	if len(cmd.Args) != 30<<10 || string(cmd.Args[0]) != "y" {
		t.Fatal("long inline line parsed wrong")
	}
	if _, err := rd.ReadCommand(); err != io.EOF {
		t.Fatalf("got %v, want io.EOF", err)
	}
	if src.reads != len(stream)+1 {
		t.Fatalf("%d Reads for %d bytes", src.reads, len(stream))
	}
}

// An inline line dripped byte by byte must be searched for its newline
// once, not from its start after every Read.
func TestReaderInlineScanResumes(t *testing.T) {
	line := append(bytes.Repeat([]byte("a"), 5000), '\n')
	rd := NewReader(iotest.OneByteReader(bytes.NewReader(line)), Limits{})
	for {
		cmd, ok, err := rd.Next()
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			if len(cmd.Args) != 1 || len(cmd.Args[0]) != 5000 {
				t.Fatalf("got %d args", len(cmd.Args))
			}
			return
		}
		if rd.scanned != rd.Buffered() {
			t.Fatalf("scanned %d of %d buffered bytes", rd.scanned, rd.Buffered())
		}
		if err := rd.Fill(); err != nil {
			t.Fatal(err)
		}
	}
}

// rdrFragments are pieces of valid and invalid requests that
// TestReaderChunkingInvariance strings together.
var rdrFragments = []string{
	"*1\r\n$4\r\nPING\r\n",
	"*3\r\n$3\r\nSET\r\n$4\r\nkey\x00\r\n$6\r\nv\r\nal\n\r\n",
	"*0\r\n", "*-1\r\n", "\r\n", "  \n",
	"PING\r\n", "ECHO \"a\\x41\\n\" 'b\\'c'\r\n",
	"LOCK.ACQUIRE name 30000\r\n",
	"*2\r\n$4\r\nECHO\r\n$0\r\n\r\n",
	"*2\r\n$4\r\nECHO\r\n$200\r\n" + strings.Repeat("p", 200) + "\r\n",
	strings.Repeat("w ", 40) + "\n",
}

var rdrBadFragments = []string{
	"*1\r\n$4\r\nPINGxx", "*x\r\n", "*1\r\nPING\r\n", "*1\r\n$-1\r\n", "ECHO \"a\r\n",
	"*" + strings.Repeat("9", 40), "*1\r\n$" + strings.Repeat("9", 40), strings.Repeat("q", 300),
	"*1\r\n$1000\r\n", "*100\r\n",
}

func TestReaderChunkingInvariance(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	lim := Limits{MaxArgs: 50, MaxBulkBytes: 500, MaxInlineBytes: 128, MaxQueryBytes: 512}
	for i := range 300 {
		var b bytes.Buffer
		for range rng.IntN(20) {
			b.WriteString(rdrFragments[rng.IntN(len(rdrFragments))])
		}
		if i%2 == 1 {
			b.WriteString(rdrBadFragments[rng.IntN(len(rdrBadFragments))])
			b.WriteString(rdrFragments[0])
		}
		in := b.Bytes()
		if i%3 == 2 && len(in) > 0 {
			in = in[:rng.IntN(len(in))]
		}
		got := rdrRunAll(t, in, lim)
		if want := rdrReference(in, lim); !got.equal(want) {
			t.Fatalf("on %q:\n got  %v\n want %v", in, got, want)
		}
	}
}

func TestReaderErrorIsSticky(t *testing.T) {
	src := &rdrCountingReader{chunks: [][]byte{[]byte("*1\r\n$x\r\n"), []byte("*1\r\n$4\r\nPING\r\n")}}
	rd := NewReader(src, Limits{})
	_, err := rd.ReadCommand()
	rdrWantProtoErr(t, err, "invalid bulk length")
	if err := rd.Fill(); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		_, ok, err2 := rd.Next()
		if ok || err2 != err {
			t.Fatalf("Next after error = %v, %v; want the same error", ok, err2)
		}
	}
}

func TestReaderArgsAreOwned(t *testing.T) {
	src := &rdrCountingReader{chunks: [][]byte{[]byte("*2\r\n$3\r\nabc\r\n$3\r\ndef\r\nECHO xyz uvw\r\n")}}
	rd := NewReader(src, Limits{})
	c1, err := rd.ReadCommand()
	if err != nil {
		t.Fatal(err)
	}
	c2, err := rd.ReadCommand()
	if err != nil {
		t.Fatal(err)
	}
	// Scribble over the read buffer, then over the arguments' spare room.
	for i := range rd.buf {
		rd.buf[i] = '!'
	}
	_ = append(c1.Args[0], "XXX"...)
	_ = append(c2.Args[1], "XXX"...)
	if got := fmt.Sprintf("%s %s", c1.Args, c2.Args); got != "[abc def] [ECHO xyz uvw]" {
		t.Fatalf("args changed to %s", got)
	}
}

// The server fills from a background goroutine while a command runs and
// parses from the connection goroutine afterwards; the race detector checks
// that this needs no locking.
func TestReaderBackgroundFill(t *testing.T) {
	pr, pw := io.Pipe()
	rd := NewReader(pr, Limits{MaxQueryBytes: 64})
	go func() {
		for range 20 {
			pw.Write([]byte("*1\r\n$4\r\nPING\r\n"))
		}
		pw.Close()
	}()
	n := 0
	for {
		cmd, ok, err := rd.Next()
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			if string(cmd.Args[0]) != "PING" {
				t.Fatalf("got %q", cmd.Args)
			}
			n++
			continue
		}
		done := make(chan error)
		go func() { done <- rd.Fill() }()
		if err := <-done; err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if n != 20 {
		t.Fatalf("parsed %d commands, want 20", n)
	}
}

func TestReaderBufferFull(t *testing.T) {
	ping := []byte("*1\r\n$4\r\nPING\r\n")
	src := &rdrCountingReader{chunks: [][]byte{bytes.Repeat(ping, 10)}}
	rd := NewReader(src, Limits{MaxQueryBytes: 64})
	var err error
	for err == nil {
		err = rd.Fill()
	}
	if err != ErrBufferFull || rd.Buffered() != 64 {
		t.Fatalf("got %v with %d buffered, want ErrBufferFull with 64", err, rd.Buffered())
	}
	n := 0
	for {
		_, err := rd.ReadCommand()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 10 {
		t.Fatalf("parsed %d commands, want 10", n)
	}
}

func TestReaderBufferShrinks(t *testing.T) {
	big := rdrMultibulk([]byte("SET"), []byte("k"), bytes.Repeat([]byte("v"), 1<<20))
	src := &rdrCountingReader{chunks: [][]byte{big, []byte("PING\r\n")}}
	rd := NewReader(src, Limits{})
	if _, err := rd.ReadCommand(); err != nil {
		t.Fatal(err)
	}
	if len(rd.buf) < 1<<20 {
		t.Fatalf("buffer is %d bytes after a 1 MiB request", len(rd.buf))
	}
	if cmd, err := rd.ReadCommand(); err != nil || string(cmd.Args[0]) != "PING" {
		t.Fatalf("got %q, %v", cmd.Args, err)
	}
	if len(rd.buf) != readBufInitial {
		t.Fatalf("buffer is %d bytes when idle, want %d", len(rd.buf), readBufInitial)
	}
}

// Commands that arrive in the same Read as EOF must still be returned.
func TestReaderDataWithEOF(t *testing.T) {
	rd := NewReader(iotest.DataErrReader(strings.NewReader("PING\r\n*1\r\n$4\r\nQUIT\r\n")), Limits{})
	for _, want := range []string{"PING", "QUIT"} {
		cmd, err := rd.ReadCommand()
		if err != nil || string(cmd.Args[0]) != want {
			t.Fatalf("got %q, %v; want %s", cmd.Args, err, want)
		}
	}
	if _, err := rd.ReadCommand(); err != io.EOF {
		t.Fatalf("got %v, want io.EOF", err)
	}
}

type rdrEmptyReader struct{}

func (rdrEmptyReader) Read([]byte) (int, error) { return 0, nil }

func TestReaderNoProgress(t *testing.T) {
	if _, err := NewReader(rdrEmptyReader{}, Limits{}).ReadCommand(); err != io.ErrNoProgress {
		t.Fatalf("got %v, want io.ErrNoProgress", err)
	}
}

func TestReaderReadError(t *testing.T) {
	boom := errors.New("boom")
	if _, err := NewReader(iotest.ErrReader(boom), Limits{}).ReadCommand(); err != boom {
		t.Fatalf("got %v, want %v", err, boom)
	}
}

func BenchmarkReaderPipeline(b *testing.B) {
	var one bytes.Buffer
	for i := range 64 {
		if i%2 == 0 {
			one.Write(rdrMultibulk([]byte("LOCK.ACQUIRE"), []byte("name"), []byte("30000")))
		} else {
			one.Write(rdrMultibulk([]byte("LOCK.RELEASE"), []byte("name"), []byte("token-0123456789")))
		}
	}
	src := &rdrRepeatReader{data: one.Bytes()}
	rd := NewReader(src, Limits{})
	b.SetBytes(int64(one.Len() / 64))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rd.ReadCommand(); err != nil {
			b.Fatal(err)
		}
	}
}

// rdrRepeatReader serves data over and over, as a pipelining client would.
type rdrRepeatReader struct {
	data []byte
	off  int
}

func (r *rdrRepeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.data[r.off:])
		n += c
		r.off = (r.off + c) % len(r.data)
	}
	return n, nil
}
