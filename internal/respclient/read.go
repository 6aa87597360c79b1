package respclient

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ErrProtocol is a frame that does not follow RESP. The stream is then out
// of step: nothing more can be read from it.
var ErrProtocol = errors.New("respclient: protocol error")

// Bounds on headers, so that a broken stream cannot ask for more than a
// real server would send: maxBulk is Redis's proto-max-bulk-len, maxCount
// leaves a map's keys and values countable in an int, and maxDepth is far
// deeper than any reply lockproxy or Redis sends.
const (
	maxBulk  = 512 << 20
	maxCount = 1 << 30
	maxDepth = 32
)

// AppendRequest appends args to b as a RESP array of bulk strings. It
// formats without fmt and reuses b, so that a load tool's own allocations
// stay out of what it measures.
func AppendRequest(b []byte, args ...string) []byte {
	b = appendHeader(b, '*', len(args))
	for _, a := range args {
		b = appendHeader(b, '$', len(a))
		b = append(b, a...)
		b = append(b, '\r', '\n')
	}
	return b
}

func appendHeader(b []byte, kind byte, n int) []byte {
	b = append(b, kind)
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, '\r', '\n')
}

// ReadValue reads one whole frame. An attribute ('|') is read and dropped
// with the frame it annotates returned in its place. io.EOF means the
// stream ended between frames.
func ReadValue(r *bufio.Reader) (Value, error) {
	return readValue(r, 0)
}

func readValue(r *bufio.Reader, depth int) (Value, error) {
	if depth > maxDepth {
		return Value{}, fmt.Errorf("%w: frames nested deeper than %d", ErrProtocol, maxDepth)
	}
	line, err := readLine(r)
	if err != nil {
		return Value{}, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return Value{}, fmt.Errorf("%w: malformed line %q", ErrProtocol, line)
	}
	kind, body := line[0], line[1:len(line)-2]
	v := Value{Kind: kind}
	switch kind {
	case '+', '-', ',', '(':
		v.Str = string(body)
	case ':':
		if v.Num, err = strconv.ParseInt(string(body), 10, 64); err != nil {
			return Value{}, fmt.Errorf("%w: bad integer %q", ErrProtocol, body)
		}
	case '#':
		switch string(body) {
		case "t":
			v.Str, v.Num = "t", 1
		case "f":
			v.Str = "f"
		default:
			return Value{}, fmt.Errorf("%w: bad boolean %q", ErrProtocol, body)
		}
	case '_':
		if len(body) != 0 {
			return Value{}, fmt.Errorf("%w: bad null %q", ErrProtocol, body)
		}
		v.Null = true
	case '$', '=', '!':
		n, err := count(body, maxBulk)
		if err != nil {
			return Value{}, err
		}
		if n < 0 {
			v.Null = true
			break
		}
		if v.Str, err = readBulk(r, n); err != nil {
			return Value{}, err
		}
		if kind == '!' {
			v.Kind = '-'
		}
	case '*', '~', '>', '%', '|':
		n, err := count(body, maxCount)
		if err != nil {
			return Value{}, err
		}
		if n < 0 {
			v.Null = true
			break
		}
		if kind == '%' || kind == '|' {
			n *= 2
		}
		// Grown as elements arrive, so that a header alone cannot make
		// the reader allocate.
		v.Elems = make([]Value, 0, min(n, 16))
		for range n {
			e, err := readValue(r, depth+1)
			if err != nil {
				return Value{}, err
			}
			v.Elems = append(v.Elems, e)
		}
		if kind == '|' {
			// Counted as a level, so that a run of them ends too.
			return readValue(r, depth+1)
		}
	default:
		return Value{}, fmt.Errorf("%w: unknown type in %q", ErrProtocol, line)
	}
	return v, nil
}

// ReadRequest reads one command as a server does: a RESP array of bulk
// strings, or an inline line of words. A blank line or an empty array is
// an empty command, which a server skips.
func ReadRequest(r *bufio.Reader) ([]string, error) {
	line, err := readLine(r)
	if err != nil {
		return nil, err
	}
	line = trimEOL(line)
	if len(line) == 0 || line[0] != '*' {
		return strings.Fields(string(line)), nil
	}
	n, err := count(line[1:], maxCount)
	if err != nil {
		return nil, err
	}
	cmd := make([]string, 0, min(max(n, 0), 16))
	for range n {
		head, err := readLine(r)
		if err != nil {
			return nil, err
		}
		head = trimEOL(head)
		if len(head) == 0 || head[0] != '$' {
			return nil, fmt.Errorf("%w: argument header %q is not a bulk string's", ErrProtocol, head)
		}
		size, err := count(head[1:], maxBulk)
		if err != nil {
			return nil, err
		}
		if size < 0 {
			return nil, fmt.Errorf("%w: null argument", ErrProtocol)
		}
		arg, err := readBulk(r, size)
		if err != nil {
			return nil, err
		}
		cmd = append(cmd, arg)
	}
	return cmd, nil
}

// readLine reads through the next LF. The bytes may be r's own buffer:
// they are good until the next read.
func readLine(r *bufio.Reader) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if err != bufio.ErrBufferFull {
		return line, err
	}
	long := append([]byte(nil), line...)
	rest, err := r.ReadBytes('\n')
	return append(long, rest...), err
}

// trimEOL drops a request line's LF or CRLF: servers take either.
func trimEOL(line []byte) []byte {
	return bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
}

// count parses a header's length: -1 for a null, or 0 to limit.
func count(b []byte, limit int) (int, error) {
	n, err := strconv.Atoi(string(b))
	if err != nil || n < -1 || n > limit {
		return 0, fmt.Errorf("%w: bad length %q", ErrProtocol, b)
	}
	return n, nil
}

// readBulk reads n bytes and the CRLF after them.
func readBulk(r *bufio.Reader, n int) (string, error) {
	if n+2 > r.Size() {
		return readLongBulk(r, n)
	}
	// In place, so that the string is the one allocation.
	p, err := r.Peek(n + 2)
	if err != nil {
		return "", cutShort(len(p), err)
	}
	s, err := bulkString(p, n)
	_, _ = r.Discard(n + 2) // buffered, as Peek saw: it cannot fail
	return s, err
}

// readLongBulk reads a bulk string larger than r's buffer, growing its
// own as the bytes arrive, for the same reason as aggregates.
func readLongBulk(r *bufio.Reader, n int) (string, error) {
	p, err := io.ReadAll(io.LimitReader(r, int64(n)+2))
	if err == nil && len(p) < n+2 {
		err = io.EOF
	}
	if err != nil {
		return "", cutShort(len(p), err)
	}
	return bulkString(p, n)
}

// cutShort is io.ReadFull's rule: an end after some of the bytes is
// unexpected.
func cutShort(got int, err error) error {
	if err == io.EOF && got > 0 {
		return io.ErrUnexpectedEOF
	}
	return err
}

func bulkString(p []byte, n int) (string, error) {
	if p[n] != '\r' || p[n+1] != '\n' {
		return "", fmt.Errorf("%w: bulk string of %d bytes not followed by CRLF", ErrProtocol, n)
	}
	return string(p[:n]), nil
}
