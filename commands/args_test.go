package commands

import (
	"strings"
	"testing"
	"time"

	"github.com/lockproxy/lockproxy/lockcore"
)

func argv(s string) [][]byte {
	var out [][]byte
	for _, f := range strings.Fields(s) {
		out = append(out, []byte(f))
	}
	return out
}

func testHandler() *Handler {
	return &Handler{cfg: Config{MinTTL: 10 * time.Millisecond, MaxTTL: time.Hour, MaxWait: time.Minute, MaxNameBytes: 8}}
}

func TestParseAcquire(t *testing.T) {
	h := testHandler()
	ms := time.Millisecond
	const maxHoldRange = "ERR invalid MAXHOLD in 'lock.acquire' command: it must be 10..9223372036854 ms (LOCKPROXY_MIN_TTL)"
	for _, tc := range []struct {
		in      string
		want    acquireArgs
		wantErr string
	}{
		{in: "LOCK.ACQUIRE a", want: acquireArgs{name: "a"}},
		{in: "LOCK.ACQUIRE a 5000", want: acquireArgs{name: "a", opt: lockcore.AcquireOptions{TTL: 5000 * ms}}},
		{in: "LOCK.ACQUIRE a 5000 WAIT 100", want: acquireArgs{name: "a", opt: lockcore.AcquireOptions{TTL: 5000 * ms, Wait: 100 * ms}}},
		{in: "LOCK.ACQUIRE a wait 0 detached", want: acquireArgs{name: "a", opt: lockcore.AcquireOptions{Detached: true}}},
		{in: "LOCK.ACQUIRE a DETACHED 7", wantErr: "ERR syntax error"},
		{in: "LOCK.ACQUIRE a DETACHED WAIT 60000", want: acquireArgs{name: "a", opt: lockcore.AcquireOptions{Wait: time.Minute, Detached: true}}},
		{in: "LOCK.ACQUIRE a 3600000", want: acquireArgs{name: "a", opt: lockcore.AcquireOptions{TTL: time.Hour}}},
		{in: "LOCK.ACQUIRE a 3600001", wantErr: "ERR invalid ttl in 'lock.acquire' command: it must be 10..3600000 ms (LOCKPROXY_MIN_TTL, LOCKPROXY_MAX_TTL)"},
		{in: "LOCK.ACQUIRE a 10", want: acquireArgs{name: "a", opt: lockcore.AcquireOptions{TTL: 10 * ms}}},
		{in: "LOCK.ACQUIRE a 9", wantErr: "ERR invalid ttl in 'lock.acquire' command: it must be 10..3600000 ms (LOCKPROXY_MIN_TTL, LOCKPROXY_MAX_TTL)"},
		{in: "LOCK.ACQUIRE a 1", wantErr: "ERR invalid ttl in 'lock.acquire' command: it must be 10..3600000 ms (LOCKPROXY_MIN_TTL, LOCKPROXY_MAX_TTL)"},
		{in: "LOCK.ACQUIRE a 0", wantErr: "ERR invalid ttl"},
		{in: "LOCK.ACQUIRE a -1", wantErr: "ERR invalid ttl"},
		{in: "LOCK.ACQUIRE a 01", wantErr: "ERR value is not an integer"},
		{in: "LOCK.ACQUIRE a +1", wantErr: "ERR value is not an integer"},
		{in: "LOCK.ACQUIRE a 9223372036854775808", wantErr: "ERR value is not an integer"},
		{in: "LOCK.ACQUIRE a 9223372036854775807", wantErr: "ERR invalid ttl"},
		{in: "LOCK.ACQUIRE a WAIT 60001", wantErr: "ERR timeout is out of range"},
		{in: "LOCK.ACQUIRE a WAIT -1", wantErr: "ERR timeout is negative"},
		{in: "LOCK.ACQUIRE a WAIT", wantErr: "ERR syntax error"},
		{in: "LOCK.ACQUIRE a WAIT 1 WAIT 2", wantErr: "ERR syntax error"},
		{in: "LOCK.ACQUIRE a 50 50", wantErr: "ERR syntax error"},
		{in: "LOCK.ACQUIRE 123456789", wantErr: "ERR invalid lock name"},
		{in: "LOCK.ACQUIRE a 1000 MAXHOLD 5000 WAIT 10", want: acquireArgs{name: "a", opt: lockcore.AcquireOptions{TTL: time.Second, MaxHold: 5 * time.Second, Wait: 10 * ms}}},
		{in: "LOCK.ACQUIRE a MAXHOLD 10", want: acquireArgs{name: "a", opt: lockcore.AcquireOptions{MaxHold: 10 * ms}}},
		{in: "LOCK.ACQUIRE a MAXHOLD 9", wantErr: maxHoldRange},
		{in: "LOCK.ACQUIRE a MAXHOLD 1", wantErr: maxHoldRange},
		{in: "LOCK.ACQUIRE a MAXHOLD 0", wantErr: maxHoldRange},
		{in: "LOCK.ACQUIRE a MAXHOLD -1", wantErr: maxHoldRange},
		// Milliseconds that would wrap as a time.Duration: to -1 ms (no cap at
		// all), and to 1 ms.
		{in: "LOCK.ACQUIRE a MAXHOLD 9223372036854775807", wantErr: maxHoldRange},
		{in: "LOCK.ACQUIRE a MAXHOLD 288230376151711745", wantErr: maxHoldRange},
		{in: "LOCK.ACQUIRE a MAXHOLD 9223372036855", wantErr: maxHoldRange},
		{in: "LOCK.ACQUIRE a MAXHOLD 9223372036854", want: acquireArgs{name: "a", opt: lockcore.AcquireOptions{MaxHold: 9223372036854 * ms}}},
		// A repeated MAXHOLD is a syntax error, whatever either value.
		{in: "LOCK.ACQUIRE a MAXHOLD 9223372036854775807 MAXHOLD 50", wantErr: "ERR syntax error"},
		{in: "LOCK.ACQUIRE a MAXHOLD 288230376151711745 MAXHOLD 50", wantErr: "ERR syntax error"},
		{in: "LOCK.ACQUIRE a MAXHOLD 0 MAXHOLD 50", wantErr: "ERR syntax error"},
		{in: "LOCK.ACQUIRE a MAXHOLD x MAXHOLD 50", wantErr: "ERR syntax error"},
		{in: "LOCK.ACQUIRE a WAIT -1 WAIT 50", wantErr: "ERR syntax error"},
		{in: "LOCK.ACQUIRE a MAXHOLD x", wantErr: "ERR value is not an integer"},
		{in: "LOCK.ACQUIRE a MAXHOLD", wantErr: "ERR syntax error"},
		{in: "LOCK.ACQUIRE a MAXHOLD 50 MAXHOLD 60", wantErr: "ERR syntax error"},
		{in: "LOCK.ACQUIRE a DETACHED MAXHOLD 50", wantErr: "ERR MAXHOLD caps the renewal of owned locks"},
	} {
		got, err := h.parseAcquire(argv(tc.in))
		if tc.wantErr != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
				t.Errorf("%s: err %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseRenewRelease(t *testing.T) {
	h := testHandler()
	r, err := h.parseRenew(argv("LOCK.RENEW a 100 5:abc"))
	if err != nil || r != (renewArgs{name: "a", ttl: 100 * time.Millisecond, token: "5:abc"}) {
		t.Errorf("parseRenew = %+v, %v", r, err)
	}
	if r, err := h.parseRenew(argv("LOCK.RENEW a 100")); err != nil || r.token != "" {
		t.Errorf("parseRenew without token = %+v, %v", r, err)
	}
	for _, in := range []string{"LOCK.RENEW a 0", "LOCK.RENEW a x", "LOCK.RENEW a 10 bad", "LOCK.RENEW a 10 5:x extra"} {
		if _, err := h.parseRenew(argv(in)); err == nil {
			t.Errorf("%s: no error", in)
		}
	}
	for _, in := range []string{"LOCK.RENEW a 1", "LOCK.RENEW a 9 5:abc"} {
		const want = "ERR invalid ttl in 'lock.renew' command: it must be 10..3600000 ms (LOCKPROXY_MIN_TTL, LOCKPROXY_MAX_TTL)"
		if _, err := h.parseRenew(argv(in)); err == nil || err.Error() != want {
			t.Errorf("%s: %v, want %s", in, err, want)
		}
	}
	rel, err := h.parseRelease(argv("LOCK.RELEASE a 5:abc"))
	if err != nil || rel != (releaseArgs{name: "a", token: "5:abc"}) {
		t.Errorf("parseRelease = %+v, %v", rel, err)
	}
	for _, in := range []string{"LOCK.RELEASE a :abc", "LOCK.RELEASE a 5:x 6:y"} {
		if _, err := h.parseRelease(argv(in)); err == nil {
			t.Errorf("%s: no error", in)
		}
	}
}

func TestUnknownCommandText(t *testing.T) {
	long := strings.Repeat("x", 200)
	for _, tc := range []struct {
		in   [][]byte
		want string
	}{
		{[][]byte{[]byte("FOO")}, "ERR unknown command 'FOO', with args beginning with: "},
		{[][]byte{[]byte("FOO"), []byte("a"), []byte("b")}, "ERR unknown command 'FOO', with args beginning with: 'a' 'b' "},
		{[][]byte{[]byte(long)}, "ERR unknown command '" + long[:128] + "', with args beginning with: "},
		{[][]byte{[]byte("FOO"), []byte(long), []byte("next")}, "ERR unknown command 'FOO', with args beginning with: '" + long[:128] + "' "},
	} {
		if got := unknownCommand(tc.in); got != tc.want {
			t.Errorf("got %q\nwant %q", got, tc.want)
		}
	}
}

// Names and options fold in ASCII only, as Redis's strcasecmp does: the
// strings package folds Unicode, which takes "waıt" (dotless ı) for WAIT
// and a Kelvin sign for K.
func TestASCIIFold(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"WAIT", "wait", true},
		{"Lock.Held", "lock.held", true},
		{"wa\u0131t", "wait", false},
		{"LOC\u212a.HELD", "lock.held", false},
		{"ye\u017f", "yes", false},
		{"wait", "wai", false},
	} {
		if got := equalFoldASCII(tc.a, tc.b); got != tc.want {
			t.Errorf("equalFoldASCII(%q, %q) = %v", tc.a, tc.b, got)
		}
		if got := lowerASCII(tc.a) == tc.b; got != tc.want {
			t.Errorf("lowerASCII(%q) = %q", tc.a, lowerASCII(tc.a))
		}
	}
	h := testHandler()
	for _, in := range []string{"LOCK.ACQUIRE a 1000 wa\u0131t 100", "LOCK.ACQUIRE a DETACHED wa\u0131t 100", "LOCK.ACQUIRE a 1000 MAX\u0130OLD 50"} {
		if _, err := h.parseAcquire(argv(in)); err != errSyntax {
			t.Errorf("%s: %v, want %v", in, err, errSyntax)
		}
	}
}
