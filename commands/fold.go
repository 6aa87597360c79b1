package commands

// Redis compares command names and options with strcasecmp, which folds
// ASCII letters only. The strings package folds Unicode: with it "waıt"
// (a dotless ı) would be WAIT, and LOCK.HELD spelt with a Kelvin sign
// (U+212A) a command, where Redis refuses both.

// lowerASCII is s with A-Z in lower case and every other byte as it is.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if isUpperASCII(s[i]) {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if isUpperASCII(b[j]) {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// equalFoldASCII reports whether a and b are equal, A-Z folded to a-z.
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if isUpperASCII(x) {
			x += 'a' - 'A'
		}
		if isUpperASCII(y) {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

func isUpperASCII(c byte) bool { return 'A' <= c && c <= 'Z' }
