package resp

import (
	"bytes"
	"errors"
	"io"
)

// Command is one client request. Args[0] is the command name. The args are
// copied out of the read buffer into one allocation owned by the command, so
// they stay valid after later reads.
type Command struct {
	Args [][]byte
}

// Limits bound what one connection can make the server buffer or parse.
// A zero or negative field takes the Redis default noted beside it, because
// a zero limit would reject every request.
type Limits struct {
	MaxArgs        int // most arguments in one multibulk request (Redis: 1024*1024)
	MaxBulkBytes   int // largest single bulk argument (Redis: proto-max-bulk-len, 512 MiB)
	MaxInlineBytes int // longest inline (telnet-style) request line (Redis: 64 KiB)
	MaxQueryBytes  int // most bytes buffered for one connection (Redis: client-query-buffer-limit, 1 GiB)
}

// ProtocolError is a malformed or oversized request. The server answers it
// with "-ERR " + Error() and closes the connection, as Redis does.
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string { return "Protocol error: " + e.Msg }

// ErrBufferFull: Fill was called while MaxQueryBytes are already buffered.
var ErrBufferFull = errors.New("resp: query buffer full")

var errReadCount = errors.New("resp: Read returned an impossible count")

const (
	redisMaxArgs        = 1024 * 1024
	redisMaxBulkBytes   = 512 << 20
	redisMaxInlineBytes = 64 << 10
	redisMaxQueryBytes  = 1 << 30

	// maxHeaderLine bounds a "*<n>" or "$<n>" line before its CR. Every valid
	// count fits in 21 bytes, so waiting any longer only lets a client make
	// us buffer junk. Redis allows 64 KiB here.
	maxHeaderLine = 32

	// minArgBytes is the size of the smallest argument, "$0\r\n\r\n". It lets
	// a declared count be judged against MaxQueryBytes before the arguments
	// arrive.
	minArgBytes = 6

	// readBufInitial is small because most connections send small commands
	// and idle connections should cost little.
	readBufInitial = 512

	// readBufShrinkAbove: an empty buffer larger than this is dropped so that one
	// big request does not pin memory for the rest of the connection.
	readBufShrinkAbove = 64 << 10

	// maxEmptyReads guards ReadCommand against an io.Reader that keeps
	// returning 0, nil, as bufio does.
	maxEmptyReads = 100

	// maxKeptSpans: span storage above this many ints is released after the
	// command that needed it, for the same reason as readBufShrinkAbove.
	maxKeptSpans = 2048
)

// parse states; each is resumable so that bytes already examined are not
// examined again when more arrive.
const (
	reqStart      = iota // at the first byte of a request
	reqInline            // inside an inline line; scanned bytes hold no '\n'
	reqCount             // inside "*<n>\r\n"
	reqBulkHeader        // expecting "$<len>\r\n" at pos
	reqBulkData          // expecting bulkLen bytes and CRLF at pos
)

// Reader parses RESP requests incrementally. It is not safe for concurrent
// use, but Fill and Next may be called from different goroutines as long as
// the calls never overlap: the parse state holds offsets, never slices into
// the buffer, and returned commands do not share the buffer.
type Reader struct {
	rd        io.Reader
	lim       Limits
	inlineMax int // MaxInlineBytes capped at MaxQueryBytes so the inline error wins

	buf  []byte
	r, w int // buf[r:w] is unconsumed; the current request starts at r

	err     error // sticky *ProtocolError
	readErr error // came with data from the last Read; reported by the next Fill
	empties int   // consecutive Reads that returned 0, nil

	// Parse state of the request starting at r. Positions are relative to r
	// so that compacting the buffer does not invalidate them.
	st       int
	pos      int   // bytes of the request parsed so far
	scanned  int   // reqInline: bytes after r known to hold no '\n'
	nargs    int   // declared argument count
	bulkLen  int   // reqBulkData: declared length of the current argument
	argBytes int   // total length of the arguments in spans
	spans    []int // start, end pairs of the arguments parsed so far
}

// NewReader returns a Reader that reads requests from rd within lim.
func NewReader(rd io.Reader, lim Limits) *Reader {
	if lim.MaxArgs <= 0 {
		lim.MaxArgs = redisMaxArgs
	}
	if lim.MaxBulkBytes <= 0 {
		lim.MaxBulkBytes = redisMaxBulkBytes
	}
	if lim.MaxInlineBytes <= 0 {
		lim.MaxInlineBytes = redisMaxInlineBytes
	}
	if lim.MaxQueryBytes <= 0 {
		lim.MaxQueryBytes = redisMaxQueryBytes
	}
	return &Reader{rd: rd, lim: lim, inlineMax: min(lim.MaxInlineBytes, lim.MaxQueryBytes)}
}

// Buffered reports the number of unparsed bytes held.
func (r *Reader) Buffered() int { return r.w - r.r }

// ReadCommand loops Next/Fill until it has a command or an error.
func (r *Reader) ReadCommand() (Command, error) {
	for {
		cmd, ok, err := r.Next()
		if err != nil {
			return Command{}, err
		}
		if ok {
			return cmd, nil
		}
		if err := r.Fill(); err != nil {
			return Command{}, err
		}
	}
}

// Fill does at most one Read of the underlying reader into the buffer,
// growing it as needed but never beyond MaxQueryBytes buffered; returns
// ErrBufferFull if already full, or the Read's error (io.EOF etc). When a
// Read returns data together with an error, Fill keeps the data, returns nil
// and reports the error on the next call, so that buffered commands are not
// lost to an EOF that arrived with them.
func (r *Reader) Fill() error {
	if r.readErr != nil {
		err := r.readErr
		r.readErr = nil
		return err
	}
	if r.w-r.r >= r.lim.MaxQueryBytes {
		return ErrBufferFull
	}
	if r.r == r.w {
		r.r, r.w = 0, 0
		if cap(r.buf) > readBufShrinkAbove {
			r.buf = nil
		}
	}
	if r.buf == nil {
		r.buf = make([]byte, min(readBufInitial, r.lim.MaxQueryBytes))
	}
	if r.w == len(r.buf) {
		// Sliding is cheap when it reclaims at least half the buffer, and is
		// the only option at the size limit. Otherwise the pending request is
		// big relative to the buffer, so grow instead of sliding it for a
		// small gain.
		if r.r > 0 && (r.r >= len(r.buf)/2 || len(r.buf) >= r.lim.MaxQueryBytes) {
			r.w = copy(r.buf, r.buf[r.r:r.w])
			r.r = 0
		} else {
			nb := make([]byte, min(2*len(r.buf), r.lim.MaxQueryBytes))
			r.w = copy(nb, r.buf[r.r:r.w])
			r.r = 0
			r.buf = nb
		}
	}
	n, err := r.rd.Read(r.buf[r.w:])
	if n < 0 || n > len(r.buf)-r.w {
		return errReadCount
	}
	r.w += n
	if n > 0 {
		r.empties = 0
		r.readErr = err
		return nil
	}
	if err == nil {
		r.empties++
		if r.empties >= maxEmptyReads {
			r.empties = 0
			return io.ErrNoProgress
		}
	}
	return err
}

// Next parses the next complete command from bytes already buffered, never
// reading. ok is false when more bytes are needed. A non-nil error is a
// *ProtocolError and is sticky.
func (r *Reader) Next() (cmd Command, ok bool, err error) {
	if r.err != nil {
		return Command{}, false, r.err
	}
	for {
		b := r.buf[r.r:r.w]
		switch r.st {
		case reqStart:
			if len(b) == 0 {
				return Command{}, false, nil
			}
			if b[0] == '*' {
				r.st = reqCount
			} else {
				r.st = reqInline
			}

		case reqInline:
			end := min(len(b), r.inlineMax)
			i := bytes.IndexByte(b[r.scanned:end], '\n')
			if i < 0 {
				r.scanned = end
				if end == r.inlineMax {
					return r.fail("too big inline request")
				}
				return r.needMore()
			}
			i += r.scanned
			line := b[:i]
			if len(line) > 0 && line[len(line)-1] == '\r' {
				line = line[:len(line)-1]
			}
			args, ok := r.splitInline(line)
			r.consume(i + 1)
			if !ok {
				return r.fail("unbalanced quotes in request")
			}
			if len(args) > 0 {
				return Command{Args: args}, true, nil
			}

		case reqCount:
			cr, tooBig := headerLine(b)
			if tooBig {
				return r.fail("too big mbulk count string")
			}
			if cr < 0 {
				return r.needMore()
			}
			n, ok := parseStrictInt(b[1:cr])
			if !ok || b[cr+1] != '\n' || n > int64(r.lim.MaxArgs) {
				return r.fail("invalid multibulk length")
			}
			r.pos = cr + 2
			if n <= 0 {
				r.consume(r.pos)
				continue
			}
			if n > int64((r.lim.MaxQueryBytes-r.pos)/minArgBytes) {
				return r.fail("too big request")
			}
			r.nargs = int(n)
			r.st = reqBulkHeader

		case reqBulkHeader:
			h := b[r.pos:]
			cr, tooBig := headerLine(h)
			if tooBig {
				return r.fail("too big bulk count string")
			}
			if cr < 0 {
				return r.needMore()
			}
			if h[0] != '$' {
				got := h[0]
				if got == '\r' || got == '\n' {
					got = ' ' // as Redis does, so the error reply stays one line
				}
				return r.fail("expected '$', got '" + string([]byte{got}) + "'")
			}
			n, ok := parseStrictInt(h[1:cr])
			if !ok || h[cr+1] != '\n' || n < 0 || n > int64(r.lim.MaxBulkBytes) {
				return r.fail("invalid bulk length")
			}
			r.pos += cr + 2
			// Reject now rather than buffer a payload that can never fit.
			// nargs passed the same test at reqCount, so this cannot overflow.
			rest := (r.nargs - len(r.spans)/2 - 1) * minArgBytes
			if n+2 > int64(r.lim.MaxQueryBytes-r.pos-rest) {
				return r.fail("too big request")
			}
			r.bulkLen = int(n)
			r.st = reqBulkData

		case reqBulkData:
			end := r.pos + r.bulkLen + 2
			if len(b) < end {
				return r.needMore()
			}
			if b[end-2] != '\r' || b[end-1] != '\n' {
				return r.fail("invalid bulk length")
			}
			r.spans = append(r.spans, r.pos, r.pos+r.bulkLen)
			r.argBytes += r.bulkLen
			r.pos = end
			if len(r.spans)/2 < r.nargs {
				r.st = reqBulkHeader
				continue
			}
			cmd := Command{Args: r.copyArgs(b)}
			r.consume(r.pos)
			return cmd, true, nil
		}
	}
}

// needMore is the answer when the buffered part of the request is
// incomplete. A request that already fills MaxQueryBytes can never complete,
// and failing here rather than in Fill keeps the outcome independent of how
// the bytes were chunked.
func (r *Reader) needMore() (Command, bool, error) {
	if r.w-r.r >= r.lim.MaxQueryBytes {
		return r.fail("too big request")
	}
	return Command{}, false, nil
}

func (r *Reader) fail(msg string) (Command, bool, error) {
	r.err = &ProtocolError{Msg: msg}
	return Command{}, false, r.err
}

// consume ends the current request after n bytes and resets the parse state.
func (r *Reader) consume(n int) {
	r.r += n
	r.st = reqStart
	r.pos, r.scanned, r.nargs, r.bulkLen, r.argBytes = 0, 0, 0, 0, 0
	if cap(r.spans) > maxKeptSpans {
		r.spans = nil
	} else {
		r.spans = r.spans[:0]
	}
}

// copyArgs copies the arguments recorded in spans out of b, the request.
func (r *Reader) copyArgs(b []byte) [][]byte {
	data := make([]byte, r.argBytes)
	args := make([][]byte, len(r.spans)/2)
	off := 0
	for i := range args {
		n := copy(data[off:], b[r.spans[2*i]:r.spans[2*i+1]])
		// Full slice expressions, so appending to one argument cannot
		// overwrite the next.
		args[i] = data[off : off+n : off+n]
		off += n
	}
	return args
}

// headerLine finds the CR that ends the "*<n>" or "$<len>" line at the start
// of b. It returns -1 while the line, including the byte after the CR, is
// incomplete, and tooBig once maxHeaderLine bytes have passed with no CR.
// Like Redis it looks for the CR, so a stray LF is part of the number and
// makes it invalid.
func headerLine(b []byte) (cr int, tooBig bool) {
	cr = bytes.IndexByte(b[:min(len(b), maxHeaderLine+1)], '\r')
	if cr < 0 {
		return -1, len(b) > maxHeaderLine
	}
	if cr+1 >= len(b) {
		return -1, false
	}
	return cr, false
}

// parseStrictInt parses a strict decimal int64 as Redis's string2ll does: an
// optional '-', no '+', no spaces, no leading zeros, "-0" rejected.
func parseStrictInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	if len(b) == 1 && b[0] == '0' {
		return 0, true
	}
	neg := b[0] == '-'
	if neg {
		b = b[1:]
		if len(b) == 0 {
			return 0, false
		}
	}
	if b[0] < '1' || b[0] > '9' {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	if neg {
		if v > 1<<63 {
			return 0, false
		}
		return int64(-v), true
	}
	if v > 1<<63-1 {
		return 0, false
	}
	return int64(v), true
}

// isCSpace is C's isspace in the C locale, which sdssplitargs uses to skip
// blanks between arguments and after a closing quote.
func isCSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

func hexVal(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// splitInline splits an inline request line as Redis's sdssplitargs does,
// quirks included: an unquoted argument ends only at space, tab, CR or LF
// (so \v and \f stay inside it), a quote may open in the middle of an
// argument, and a closing quote must be followed by isspace or the end.
// Unlike Redis, whose C strings stop at NUL, NUL is an ordinary byte.
// ok is false for unbalanced quotes.
func (r *Reader) splitInline(line []byte) (args [][]byte, ok bool) {
	var data []byte // decoded arguments back to back
	spans := r.spans[:0]
	i, n := 0, len(line)
	for {
		for i < n && isCSpace(line[i]) {
			i++
		}
		if i == n {
			break
		}
		if data == nil {
			// Decoding never lengthens the input, so this never regrows.
			data = make([]byte, 0, n-i)
		}
		start := len(data)
		inDouble, inSingle := false, false
	token:
		for {
			switch {
			case inDouble:
				if i == n {
					return nil, false
				}
				c := line[i]
				if c == '\\' && i+3 < n && line[i+1] == 'x' {
					hi, ok1 := hexVal(line[i+2])
					lo, ok2 := hexVal(line[i+3])
					if ok1 && ok2 {
						data = append(data, hi<<4|lo)
						i += 4
						continue
					}
				}
				switch {
				case c == '\\' && i+1 < n:
					e := line[i+1]
					switch e {
					case 'n':
						e = '\n'
					case 'r':
						e = '\r'
					case 't':
						e = '\t'
					case 'b':
						e = '\b'
					case 'a':
						e = '\a'
					}
					data = append(data, e)
					i += 2
				case c == '"':
					if i+1 < n && !isCSpace(line[i+1]) {
						return nil, false
					}
					i++
					break token
				default:
					data = append(data, c)
					i++
				}
			case inSingle:
				if i == n {
					return nil, false
				}
				c := line[i]
				switch {
				case c == '\\' && i+1 < n && line[i+1] == '\'':
					data = append(data, '\'')
					i += 2
				case c == '\'':
					if i+1 < n && !isCSpace(line[i+1]) {
						return nil, false
					}
					i++
					break token
				default:
					data = append(data, c)
					i++
				}
			default:
				if i == n {
					break token
				}
				c := line[i]
				i++
				switch c {
				case ' ', '\n', '\r', '\t':
					break token
				case '"':
					inDouble = true
				case '\'':
					inSingle = true
				default:
					data = append(data, c)
				}
			}
		}
		spans = append(spans, start, len(data))
	}
	r.spans = spans[:0] // keep any growth for reuse
	if len(spans) == 0 {
		return nil, true
	}
	args = make([][]byte, len(spans)/2)
	for k := range args {
		s, e := spans[2*k], spans[2*k+1]
		args[k] = data[s:e:e]
	}
	return args, true
}
