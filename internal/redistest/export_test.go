package redistest

import "testing"

// FakeTimeUnder is FakeTime looking for the libraries under root instead
// of /, so that a test can see it fail on a machine without them.
func FakeTimeUnder(t testing.TB, root, offset string) []string { return fakeTime(t, root, offset) }
