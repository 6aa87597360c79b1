package redisstore

import (
	"testing"
	"time"

	"github.com/lockproxy/lockproxy/lockcore"
)

func TestParseWake(t *testing.T) {
	for payload, want := range map[string]lockcore.Wake{
		"a1b2:7":                         {Waiter: "a1b2:7"},
		"a1b2:7 1795757961:n0nce 3000":   {Waiter: "a1b2:7", Token: "1795757961:n0nce", TTL: 3 * time.Second},
		"~first c3d4:9 1795757961694835": {First: "c3d4:9", Seq: 1795757961694835},
		// News that cannot be read is a zero Wake: every waiter looks again.
		"~first c3d4:9 1.7957e+15": {},
	} {
		if got := parseWake(payload); got != want {
			t.Errorf("parseWake(%q) = %+v, want %+v", payload, got, want)
		}
	}
}
