package lockcore

import (
	"fmt"
	"strings"
	"testing"
)

// The transition table in waitState's comment, walked: every move it
// allows works, every other one panics.
func TestWaitStateTransitions(t *testing.T) {
	allowed := map[[2]waitState]bool{
		{joined, queued}: true, {joined, answered}: true, {joined, left}: true,
		{queued, queued}: true, {queued, answered}: true, {queued, left}: true,
	}
	states := []waitState{joined, queued, answered, left}
	for _, from := range states {
		for _, to := range states {
			t.Run(fmt.Sprintf("%v→%v", from, to), func(t *testing.T) {
				w := &waiter{id: "w", state: from, due: true}
				panicked := func() (p bool) {
					defer func() { p = recover() != nil }()
					w.set(to)
					return false
				}()
				want := allowed[[2]waitState{from, to}]
				if panicked == want {
					t.Fatalf("set(%v) from %v: panicked %v, want the move allowed %v", to, from, panicked, want)
				}
				if want && w.state != to {
					t.Errorf("state %v after set(%v)", w.state, to)
				}
				if want && to != queued && w.due {
					t.Errorf("a waiter that stopped waiting is still due")
				}
				if w.waiting() != (w.state == joined || w.state == queued) {
					t.Errorf("waiting() = %v in state %v", w.waiting(), w.state)
				}
			})
		}
	}
}

// VerifyConfig names every field out of range, and zero fields take their
// defaults without complaint.
func TestVerifyConfig(t *testing.T) {
	if err := VerifyConfig(Config{}); err != nil {
		t.Fatalf("zero Config: %v", err)
	}
	if got := (Config{}).withDefaults(); got.DefaultTTL != DefaultConfig().DefaultTTL || got.Retry.Base != DefaultConfig().Retry.Base || got.Retry.Max != DefaultConfig().Retry.Max {
		t.Errorf("defaults not taken: %+v", got)
	}
	for _, tc := range []struct {
		field string
		cfg   Config
	}{
		{"RenewFraction", Config{RenewFraction: 1.5}},
		{"RenewFraction", Config{RenewFraction: -0.1}},
		{"Retry.Multiplier", Config{Retry: Backoff{Multiplier: 0.5}}},
		{"Retry.Max", Config{Retry: Backoff{Base: 100e6, Max: 10e6}}},
		{"Retry.Jitter", Config{Retry: Backoff{Jitter: 2}}},
		{"DefaultTTL", Config{DefaultTTL: -1}},
		{"UpstreamTimeout", Config{UpstreamTimeout: -1}},
		{"WaiterTTL", Config{WaiterTTL: -1}},
		{"MaxHold", Config{MaxHold: -1}},
		{"QuietPeriod", Config{QuietPeriod: -1}},
		{"MaxLocksPerSession", Config{MaxLocksPerSession: -1}},
		{"MaxWaitersPerName", Config{MaxWaitersPerName: -1}},
		{"LocalHandoffs", Config{LocalHandoffs: -1}},
	} {
		err := VerifyConfig(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), "Config."+tc.field+":") {
			t.Errorf("%+v: error %v, want one naming %s", tc.cfg, err, tc.field)
		}
		if _, nerr := New(nil, tc.cfg); nerr == nil {
			t.Errorf("New accepted %+v", tc.cfg)
		}
	}
}
