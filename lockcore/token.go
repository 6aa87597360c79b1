package lockcore

import (
	"strconv"
	"strings"
)

// MaxTokenBytes bounds a client-supplied token; real ones are under 60 bytes.
const MaxTokenBytes = 128

// ParseToken splits a token into its fence and nonce. It accepts only the
// form the stores issue: a positive decimal int64, a colon, and a non-empty
// nonce.
func ParseToken(token string) (fence int64, nonce string, ok bool) {
	if len(token) > MaxTokenBytes {
		return 0, "", false
	}
	f, n, found := strings.Cut(token, ":")
	if !found || n == "" || f == "" || f[0] == '+' || f[0] == '-' {
		return 0, "", false
	}
	fence, err := strconv.ParseInt(f, 10, 64)
	if err != nil || fence <= 0 {
		return 0, "", false
	}
	return fence, n, true
}

// FormatToken joins a fence and a nonce into a token.
func FormatToken(fence int64, nonce string) string {
	return strconv.FormatInt(fence, 10) + ":" + nonce
}

// TokenMatches reports whether held (a full token) is matched by want, which
// is a full token or a nonce-only ":<nonce>" (see Store).
func TokenMatches(held, want string) bool {
	if strings.HasPrefix(want, ":") {
		return strings.HasSuffix(held, want)
	}
	return held == want
}

// A nonce a sidecar makes is "<sidecar id>.<random>", so that any sidecar
// can tell from a token whose client holds it, and ask that sidecar to let
// it go (Store.Revoke). Tokens from before nonces carried the id have none.
const nonceSep = "."

// TokenSidecar returns the id of the sidecar whose client a token was
// granted to, if the token says.
func TokenSidecar(token string) (string, bool) {
	_, nonce, ok := strings.Cut(token, ":")
	if !ok {
		return "", false
	}
	id, _, ok := strings.Cut(nonce, nonceSep)
	return id, ok && id != ""
}

// RevokedToken is what a revoked lock is held under: a token no client
// has, which only the holder's sidecar can name to release it.
func RevokedToken(token string) string { return token + "!" }
