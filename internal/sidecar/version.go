package sidecar

import "runtime/debug"

// version, when set at build time with
// -ldflags "-X github.com/lockproxy/lockproxy/internal/sidecar.version=1.2.3",
// is the version Version reports. The image is built that way: its build
// has no module version and no VCS data to read.
var version string

// modulePath is lockproxy's module, whose version Version reports when it
// is a dependency (lockproxytest in another module's tests).
const modulePath = "github.com/lockproxy/lockproxy"

// Version is the version set at build time, or else the version of the
// lockproxy module in this build, with the VCS revision when the binary was
// built from its checkout.
func Version() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if info.Main.Path != modulePath {
		for _, dep := range info.Deps {
			if dep.Path == modulePath {
				return dep.Version
			}
		}
	}
	v := info.Main.Version
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " (" + s.Value[:12] + ")"
		}
	}
	return v
}
