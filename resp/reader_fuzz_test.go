package resp

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzReader checks that no input panics the reader, that it never buffers
// more than MaxQueryBytes, that the outcome does not depend on how the input
// is chunked or on whether Fill runs ahead of Next, and that it agrees with
// rdrReference, a deliberately naive one-shot parser of the same rules.
func FuzzReader(f *testing.F) {
	seeds := []string{
		"*1\r\n$4\r\nPING\r\n",
		"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
		"*0\r\n*-1\r\n*1\r\n$0\r\n\r\n",
		"*1\r\n$6\r\na\r\nb\x00c\r\n",
		"PING\r\nECHO \"a\\x41b\" 'c\\'d'\r\n\r\n   \n",
		"ECHO \"a\"b\r\n",
		"ECHO 'a\r\n",
		"*-0\r\n",
		"*1\rx",
		"*1\r\nPING\r\n",
		"*1\r\n$-1\r\n",
		"*1\r\n$4\r\nPINGxx",
		"*1\r\n$99999999999999999999\r\n",
		"*11111111111111111111111111111111111111111111\r\n",
		"*1\r\n$11111111111111111111111111111111111111111111\r\n",
		"*1000000000\r\n",
		"*4\r\n$100\r\n",
		strings.Repeat("x", 300),
		"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\n*1\r\n$4\r\nPI",
	}
	for i, s := range seeds {
		f.Add([]byte(s), uint64(i)*0x9E3779B97F4A7C15)
	}
	f.Fuzz(func(t *testing.T, in []byte, seed uint64) {
		lim := rdrFuzzLimits(seed)
		want := rdrReference(in, lim)
		chunk := 1 + int(seed&0xff)
		runs := []struct {
			name string
			mode rdrMode
			max  int
		}{
			{"oneshot", rdrModeRead, len(in) + 1},
			{"chunked", rdrModeRead, chunk},
			{"background", rdrModeBackground, chunk},
		}
		for _, run := range runs {
			got := rdrRun(t, in, lim, run.mode, run.max, seed)
			if !got.equal(want) {
				t.Fatalf("%s (chunks up to %d, limits %+v) on %q:\n got  %v\n want %v",
					run.name, run.max, lim, in, got, want)
			}
		}
	})
}

// rdrFuzzLimits picks small limits so that fuzzed inputs reach every limit.
func rdrFuzzLimits(seed uint64) Limits {
	pick := func(shift uint, vals ...int) int { return vals[int(seed>>shift)%len(vals)] }
	return Limits{
		MaxArgs:        pick(8, 1, 3, 16, 1<<20),
		MaxBulkBytes:   pick(12, 0, 5, 40, 1<<20),
		MaxInlineBytes: pick(16, 1, 8, 64, 1<<16),
		MaxQueryBytes:  pick(20, 1, 20, 64, 300, 1<<20),
	}
}

// rdrReference parses in as one piece by the rules in the brief, stating
// each limit as "the request needs byte i": a byte at MaxQueryBytes or
// beyond means "too big request", a byte past the end of in means the
// stream ended mid-request.
func rdrReference(in []byte, lim Limits) rdrResult {
	lim = NewReader(nil, lim).lim // same defaults as the reader
	inlineMax := min(lim.MaxInlineBytes, lim.MaxQueryBytes)
	var res rdrResult
	for len(in) > 0 {
		args, n, status := rdrReferenceOne(in, lim, inlineMax)
		if status != "" {
			res.err = status
			return res
		}
		in = in[n:]
		if len(args) > 0 {
			res.add(args)
		}
	}
	res.err = "EOF"
	return res
}

func rdrReferenceOne(b []byte, lim Limits, inlineMax int) (args [][]byte, n int, status string) {
	const eof = "EOF"
	tooBig := (&ProtocolError{"too big request"}).Error()
	perr := func(msg string) string { return (&ProtocolError{msg}).Error() }
	need := func(i int) string {
		switch {
		case i >= lim.MaxQueryBytes:
			return tooBig
		case i >= len(b):
			return eof
		}
		return ""
	}
	// header returns the offset of the CR ending the header line at start.
	header := func(start int, what string) (int, string) {
		for j := 0; ; j++ {
			if j > maxHeaderLine {
				return 0, perr("too big " + what + " count string")
			}
			if s := need(start + j); s != "" {
				return 0, s
			}
			if b[start+j] == '\r' {
				return j, need(start + j + 1)
			}
		}
	}

	if b[0] != '*' {
		for j := 0; ; j++ {
			if j >= inlineMax {
				return nil, 0, perr("too big inline request")
			}
			if s := need(j); s != "" {
				return nil, 0, s
			}
			if b[j] == '\n' {
				line := bytes.TrimSuffix(b[:j], []byte("\r"))
				args, ok := (&Reader{}).splitInline(line)
				if !ok {
					return nil, 0, perr("unbalanced quotes in request")
				}
				return args, j + 1, ""
			}
		}
	}

	cr, s := header(0, "mbulk")
	if s != "" {
		return nil, 0, s
	}
	count, ok := parseStrictInt(b[1:cr])
	if !ok || b[cr+1] != '\n' || count > int64(lim.MaxArgs) {
		return nil, 0, perr("invalid multibulk length")
	}
	pos := cr + 2
	if count <= 0 {
		return nil, pos, ""
	}
	if count*minArgBytes > int64(lim.MaxQueryBytes-pos) {
		return nil, 0, tooBig
	}
	for k := int64(0); k < count; k++ {
		cr, s := header(pos, "bulk")
		if s != "" {
			return nil, 0, s
		}
		if c := b[pos]; c != '$' {
			if c == '\r' || c == '\n' {
				c = ' '
			}
			return nil, 0, perr("expected '$', got '" + string([]byte{c}) + "'")
		}
		l, ok := parseStrictInt(b[pos+1 : pos+cr])
		if !ok || b[pos+cr+1] != '\n' || l < 0 || l > int64(lim.MaxBulkBytes) {
			return nil, 0, perr("invalid bulk length")
		}
		pos += cr + 2
		if int64(pos)+l+2+(count-k-1)*minArgBytes > int64(lim.MaxQueryBytes) {
			return nil, 0, tooBig
		}
		end := pos + int(l) + 2
		if s := need(end - 1); s != "" {
			return nil, 0, s
		}
		if b[end-2] != '\r' || b[end-1] != '\n' {
			return nil, 0, perr("invalid bulk length")
		}
		args = append(args, b[pos:pos+int(l)])
		pos = end
	}
	return args, pos, ""
}
