package lockclient

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Bounds on what the reader accepts from a server, so that a broken or
// hostile peer cannot make it allocate without limit or recurse deeply.
// lockproxy's replies are far below them.
const (
	maxLineBytes = 64 << 10
	maxBulkBytes = 64 << 20
	maxElems     = 1 << 20
	maxDepth     = 16
)

// errProtocol is a frame this client cannot read; the connection is then
// closed.
var errProtocol = errors.New("lockclient: protocol error")

// value is one RESP2/RESP3 frame.
type value struct {
	typ   byte    // the frame's type byte; '_' for every kind of null
	str   string  // simple, bulk, verbatim, error, double, big number
	num   int64   // integer, boolean
	elems []value // array, set, push; a map as key, value, key, value…
}

func (v value) isNull() bool { return v.typ == '_' }

// isError reports an error reply ('-' or '!').
func (v value) isError() bool { return v.typ == '-' || v.typ == '!' }

// appendCommand encodes a request as a RESP array of bulk strings.
func appendCommand(b []byte, args []string) []byte {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(args)), 10)
	b = append(b, '\r', '\n')
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, '\r', '\n')
		b = append(b, a...)
		b = append(b, '\r', '\n')
	}
	return b
}

// readValue reads one frame. Attributes ('|') are read and dropped: they
// annotate the frame that follows.
func readValue(r *bufio.Reader) (value, error) {
	return readDepth(r, 0)
}

func readDepth(r *bufio.Reader, depth int) (value, error) {
	if depth > maxDepth {
		return value{}, fmt.Errorf("%w: frames nested too deep", errProtocol)
	}
	line, err := readLine(r)
	if err != nil {
		return value{}, err
	}
	if len(line) == 0 {
		return value{}, fmt.Errorf("%w: empty line", errProtocol)
	}
	typ, rest := line[0], string(line[1:])
	switch typ {
	case '+', '-', ',', '(':
		return value{typ: typ, str: rest}, nil
	case ':':
		n, err := strconv.ParseInt(rest, 10, 64)
		if err != nil {
			return value{}, fmt.Errorf("%w: bad integer %q", errProtocol, rest)
		}
		return value{typ: typ, num: n}, nil
	case '#':
		switch rest {
		case "t":
			return value{typ: typ, num: 1}, nil
		case "f":
			return value{typ: typ}, nil
		}
		return value{}, fmt.Errorf("%w: bad boolean %q", errProtocol, rest)
	case '_':
		return value{typ: '_'}, nil
	case '$', '!', '=':
		n, err := length(rest, maxBulkBytes)
		if err != nil || n < 0 {
			return value{typ: '_'}, err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return value{}, err
		}
		if buf[n] != '\r' || buf[n+1] != '\n' {
			return value{}, fmt.Errorf("%w: bulk string not followed by CRLF", errProtocol)
		}
		s := string(buf[:n])
		if typ == '=' && len(s) >= 4 {
			s = s[4:] // "txt:" or "mkd:"
			typ = '$'
		}
		return value{typ: typ, str: s}, nil
	case '*', '~', '>', '%', '|':
		n, err := length(rest, maxElems)
		if err != nil || n < 0 {
			return value{typ: '_'}, err
		}
		if typ == '%' || typ == '|' {
			if n > maxElems/2 {
				return value{}, fmt.Errorf("%w: map too large", errProtocol)
			}
			n *= 2
		}
		v := value{typ: typ, elems: make([]value, 0, min(n, 64))}
		for range n {
			e, err := readDepth(r, depth+1)
			if err != nil {
				return value{}, err
			}
			v.elems = append(v.elems, e)
		}
		if typ == '|' {
			return readDepth(r, depth)
		}
		return v, nil
	}
	return value{}, fmt.Errorf("%w: unknown frame type %q", errProtocol, typ)
}

// length parses a frame header's count: -1 (null) or 0..limit.
func length(s string, limit int) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < -1 || n > limit {
		return 0, fmt.Errorf("%w: bad length %q", errProtocol, s)
	}
	return n, nil
}

// readLine reads up to CRLF and returns the line without it.
func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
		if len(line) > maxLineBytes {
			return nil, fmt.Errorf("%w: line too long", errProtocol)
		}
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("%w: line not ended by CRLF", errProtocol)
	}
	return line[:len(line)-2], nil
}
