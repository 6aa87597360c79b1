package sidecar

import (
	"reflect"
	"testing"

	"github.com/lockproxy/lockproxy/lockcore"
	"github.com/lockproxy/lockproxy/resp"
)

// DefaultConfig is what an empty environment gives, and it passes
// Validate: the tags parse, and agree with each other.
func TestDefaultConfig(t *testing.T) {
	want, err := LoadConfig(nil)
	if err != nil {
		t.Fatalf("LoadConfig with no variable set: %v", err)
	}
	if got := DefaultConfig(); !reflect.DeepEqual(got, want) {
		t.Errorf("DefaultConfig() = %+v, want %+v", got, want)
	}
}

// The env tags are where the sidecar's defaults are written; lockcore
// writes its own for callers of the library, which cannot import this
// package. Each field that lockcore gives a default must get the same from
// the tags, so that the two cannot drift apart. (The fields lockcore
// leaves unbounded, such as MaxLocksPerSession, are the sidecar's own.)
func TestDefaultsAgreeWithLockcore(t *testing.T) {
	ours := reflect.ValueOf(DefaultConfig().lockcoreConfig())
	theirs := reflect.ValueOf(lockcore.DefaultConfig())
	for i := range theirs.NumField() {
		if theirs.Field(i).IsZero() {
			continue
		}
		name := theirs.Type().Field(i).Name
		if o, th := ours.Field(i).Interface(), theirs.Field(i).Interface(); !reflect.DeepEqual(o, th) {
			t.Errorf("lockcore.Config.%s: lockcore.DefaultConfig has %+v, the sidecar's env tags give %+v", name, th, o)
		}
	}
}

// resp.DefaultLimits, which a zero resp.Limits takes, are the sidecar's
// defaults too.
func TestDefaultsAgreeWithResp(t *testing.T) {
	if ours := DefaultConfig().respLimits(); ours != resp.DefaultLimits {
		t.Errorf("resp.DefaultLimits = %+v, the sidecar's env tags give %+v", resp.DefaultLimits, ours)
	}
}
