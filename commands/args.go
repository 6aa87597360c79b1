package commands

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/lockproxy/lockproxy/lockcore"
)

// argError is a bad argument; its text is the whole reply, code included.
type argError string

func (e argError) Error() string { return string(e) }

const (
	errSyntax    argError = "ERR syntax error"
	errNotInt    argError = "ERR value is not an integer or out of range"
	errNegTime   argError = "ERR timeout is negative"
	errBadToken  argError = "ERR invalid token: expected <fence>:<random>, as LOCK.ACQUIRE returned it"
	errEmptyName argError = "ERR invalid lock name: it is empty"
)

// parseInt parses a Redis integer argument: strict decimal, fits int64.
func parseInt(b []byte) (int64, error) {
	s := string(b)
	if s == "" || s[0] == '+' || (len(s) > 1 && s[0] == '0') || strings.HasPrefix(s, "-0") {
		return 0, errNotInt
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, errNotInt
	}
	return n, nil
}

// minTTLMS is MinTTL in whole ms, rounded up: a client can ask for no less.
func (h *Handler) minTTLMS() int64 {
	return max(1, int64((h.cfg.MinTTL+time.Millisecond-1)/time.Millisecond))
}

// parseTTL parses a ttl in ms for cmdName: minTTL..maxTTL.
func (h *Handler) parseTTL(cmdName string, b []byte) (time.Duration, error) {
	n, err := parseInt(b)
	if err != nil {
		return 0, err
	}
	minMS, maxMS := h.minTTLMS(), h.cfg.MaxTTL.Milliseconds()
	if n < minMS || n > maxMS {
		return 0, argError("ERR invalid ttl in '" + cmdName + "' command: it must be " + strconv.FormatInt(minMS, 10) +
			".." + strconv.FormatInt(maxMS, 10) + " ms (LOCKPROXY_MIN_TTL, LOCKPROXY_MAX_TTL)")
	}
	return time.Duration(n) * time.Millisecond, nil
}

// parseWait parses a WAIT in ms: 0..maxWait.
func (h *Handler) parseWait(b []byte) (time.Duration, error) {
	n, err := parseInt(b)
	if err != nil {
		return 0, err
	}
	if n < 0 {
		return 0, errNegTime
	}
	maxMS := h.cfg.MaxWait.Milliseconds()
	if n > maxMS {
		return 0, argError("ERR timeout is out of range: WAIT is at most " + strconv.FormatInt(maxMS, 10) +
			" ms (LOCKPROXY_MAX_WAIT)")
	}
	return time.Duration(n) * time.Millisecond, nil
}

// parseName checks a lock name's length.
func (h *Handler) parseName(b []byte) (string, error) {
	if len(b) == 0 {
		return "", errEmptyName
	}
	if len(b) > h.cfg.MaxNameBytes {
		return "", argError("ERR invalid lock name: it is longer than " + strconv.Itoa(h.cfg.MaxNameBytes) +
			" bytes (LOCKPROXY_MAX_NAME_BYTES)")
	}
	return string(b), nil
}

// parseToken checks that a token has the form the stores issue.
func parseToken(b []byte) (string, error) {
	if _, _, ok := lockcore.ParseToken(string(b)); !ok {
		return "", errBadToken
	}
	return string(b), nil
}

// acquireArgs are LOCK.ACQUIRE's parsed arguments.
type acquireArgs struct {
	name string
	opt  lockcore.AcquireOptions
}

// parseAcquire parses: name [ttl] [WAIT ms] [DETACHED] [MAXHOLD ms] [LIMIT n | SHARED]. Options
// may come in any order, each at most once. As Redis does for SET's, the
// options are read first and their values checked after: an unknown or
// repeated option is a syntax error whatever the values.
func (h *Handler) parseAcquire(args [][]byte) (acquireArgs, error) {
	var a acquireArgs
	var err error
	if a.name, err = h.parseName(args[1]); err != nil {
		return a, err
	}
	rest := args[2:]
	var ttl, wait, maxHold, limit []byte
	var sawTTL, sawWait, sawMaxHold, sawLimit bool
	if len(rest) > 0 && !isAcquireOption(rest[0]) {
		ttl, sawTTL, rest = rest[0], true, rest[1:]
	}
	for len(rest) > 0 {
		switch opt := lowerASCII(string(rest[0])); {
		case opt == "maxhold" && !sawMaxHold && len(rest) >= 2:
			maxHold, sawMaxHold, rest = rest[1], true, rest[2:]
		case opt == "wait" && !sawWait && len(rest) >= 2:
			wait, sawWait, rest = rest[1], true, rest[2:]
		case opt == "detached" && !a.opt.Detached:
			a.opt.Detached, rest = true, rest[1:]
		case opt == "limit" && !sawLimit && !a.opt.Kind.Shared && len(rest) >= 2:
			limit, sawLimit, rest = rest[1], true, rest[2:]
		case opt == "shared" && !sawLimit && !a.opt.Kind.Shared:
			a.opt.Kind.Shared, rest = true, rest[1:]
		default:
			return a, errSyntax
		}
	}
	if sawTTL {
		if a.opt.TTL, err = h.parseTTL("lock.acquire", ttl); err != nil {
			return a, err
		}
	}
	if sawWait {
		if a.opt.Wait, err = h.parseWait(wait); err != nil {
			return a, err
		}
	}
	if sawMaxHold {
		if a.opt.MaxHold, err = h.parseMaxHold(maxHold); err != nil {
			return a, err
		}
	}
	if sawLimit {
		n, err := parseInt(limit)
		if err != nil || n < 1 || n > int64(h.cfg.MaxLimit) {
			return a, argError("ERR invalid LIMIT in 'lock.acquire' command: it must be 1.." + strconv.Itoa(h.cfg.MaxLimit) +
				" (LOCKPROXY_MAX_LIMIT)")
		}
		a.opt.Kind.Limit = int(n)
	}
	if a.opt.Detached && sawMaxHold {
		return a, argError("ERR MAXHOLD caps the renewal of owned locks: a DETACHED lock is not renewed")
	}
	return a, nil
}

// maxHoldMS is the largest MAXHOLD: the most milliseconds a time.Duration
// holds. LOCKPROXY_MAX_HOLD, when set, lowers a larger one to itself.
const maxHoldMS = math.MaxInt64 / int64(time.Millisecond)

// parseMaxHold parses a MAXHOLD in ms: minTTL..maxHoldMS. MAXHOLD also
// lowers the lease's ttl in the store to itself, so below MinTTL the lock
// would be lost as soon as granted.
func (h *Handler) parseMaxHold(b []byte) (time.Duration, error) {
	n, err := parseInt(b)
	if err != nil {
		return 0, err
	}
	if minMS := h.minTTLMS(); n < minMS || n > maxHoldMS {
		return 0, argError("ERR invalid MAXHOLD in 'lock.acquire' command: it must be " + strconv.FormatInt(minMS, 10) +
			".." + strconv.FormatInt(maxHoldMS, 10) + " ms (LOCKPROXY_MIN_TTL)")
	}
	return time.Duration(n) * time.Millisecond, nil
}

func isAcquireOption(b []byte) bool {
	for _, o := range []string{"WAIT", "DETACHED", "MAXHOLD", "LIMIT", "SHARED"} {
		if equalFoldASCII(string(b), o) {
			return true
		}
	}
	return false
}

// renewArgs are LOCK.RENEW's parsed arguments.
type renewArgs struct {
	name  string
	ttl   time.Duration
	token string // "" for the connection's own lease
}

// parseRenew parses: name ttl [token].
func (h *Handler) parseRenew(args [][]byte) (renewArgs, error) {
	var a renewArgs
	var err error
	if len(args) > 4 {
		return a, errSyntax
	}
	if a.name, err = h.parseName(args[1]); err != nil {
		return a, err
	}
	if a.ttl, err = h.parseTTL("lock.renew", args[2]); err != nil {
		return a, err
	}
	if len(args) == 4 {
		a.token, err = parseToken(args[3])
	}
	return a, err
}

// releaseArgs are LOCK.RELEASE's parsed arguments.
type releaseArgs struct {
	name  string
	token string
}

// parseRelease parses: name [token].
func (h *Handler) parseRelease(args [][]byte) (releaseArgs, error) {
	var a releaseArgs
	var err error
	if len(args) > 3 {
		return a, errSyntax
	}
	if a.name, err = h.parseName(args[1]); err != nil {
		return a, err
	}
	if len(args) == 3 {
		a.token, err = parseToken(args[2])
	}
	return a, err
}
