package commands

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/lockproxy/lockproxy/lockcore"
	"github.com/lockproxy/lockproxy/lockcore/memstore"
)

// New has no defaults to fall back on: a zero bound is refused, named,
// rather than replaced by a value written a second time here.
func TestNewRefusesBadConfig(t *testing.T) {
	store := memstore.New(memstore.Options{})
	defer store.Close()
	locks, err := lockcore.New(store, lockcore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer locks.Shutdown(context.Background())
	good := Config{MinTTL: 10 * time.Millisecond, MaxTTL: time.Hour, MaxNameBytes: 8, MaxLimit: 4}
	if _, err := New(locks, good); err != nil {
		t.Fatalf("New(%+v): %v", good, err)
	}
	for _, tc := range []struct {
		change func(*Config)
		want   string
	}{
		{func(c *Config) { c.MinTTL = 0 }, "commands: Config.MinTTL: 0s does not exceed its drift margin (1ms)"},
		{func(c *Config) { c.MinTTL = time.Millisecond }, "commands: Config.MinTTL: 1ms does not exceed"},
		{func(c *Config) { c.MaxTTL = 0 }, "commands: Config.MaxTTL: 0s is below MinTTL (10ms)"},
		{func(c *Config) { c.MaxWait = -time.Second }, "commands: Config.MaxWait: -1s is negative"},
		{func(c *Config) { c.MaxNameBytes = 0 }, "commands: Config.MaxNameBytes: 0 is below 1"},
		{func(c *Config) { c.MaxLimit = 0 }, "commands: Config.MaxLimit: 0 is below 1"},
	} {
		cfg := good
		tc.change(&cfg)
		h, err := New(locks, cfg)
		if h != nil || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, %v; want an error containing %q", cfg, h, err, tc.want)
		}
	}
}
