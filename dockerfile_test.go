package lockproxy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The Dockerfile cannot be built here (no Docker engine), so its
// promises are checked by reading it.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	var froms, users []string
	for _, line := range strings.Split(df, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			froms = append(froms, f[1])
		case "USER":
			users = append(users, f[1])
		}
	}
	if len(froms) < 2 {
		t.Fatalf("want a multi-stage build, got FROM %v", froms)
	}
	for _, base := range froms {
		pinned := base == "scratch" || strings.Contains(base, "@sha256:") ||
			regexp.MustCompile(`:\d+\.\d+\.\d+`).MatchString(base)
		if !pinned {
			t.Errorf("base %q is not pinned to a version or digest", base)
		}
	}
	if final := froms[len(froms)-1]; final != "scratch" && !strings.Contains(final, "distroless") {
		t.Errorf("final base %q: want scratch or distroless", final)
	}
	if len(users) == 0 || users[len(users)-1] == "root" || strings.HasPrefix(users[len(users)-1], "0") {
		t.Errorf("USER %v: the image must run as a non-root user", users)
	} else if !regexp.MustCompile(`^\d+(:\d+)?$`).MatchString(users[len(users)-1]) {
		t.Errorf("USER %q: use a numeric uid, which runAsNonRoot can verify", users[len(users)-1])
	}
	for _, want := range []string{
		"CGO_ENABLED=0", "-trimpath", "./cmd/lockproxy", "EXPOSE 6380 9180",
		"LOCKPROXY_LISTEN=0.0.0.0:6380", "LOCKPROXY_METRICS_LISTEN=0.0.0.0:9180",
		"org.opencontainers.image.source", "org.opencontainers.image.version", `ENTRYPOINT ["/lockproxy"]`,
		`org.opencontainers.image.licenses="Apache-2.0"`,
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	// The binary's version (lockproxy -version, lockproxy_build_info) comes
	// from the same build argument as the image's label.
	if !strings.Contains(df, `org.opencontainers.image.version="${VERSION}"`) {
		t.Errorf("the image's version label is not the VERSION build argument")
	}
	// A build argument is seen only in the stage that declares it.
	var argInStage bool
	var versionVar string
	for _, line := range strings.Split(df, "\n") {
		switch {
		case strings.HasPrefix(line, "FROM "):
			argInStage = false
		case strings.HasPrefix(line, "ARG VERSION"):
			argInStage = true
		case strings.HasPrefix(line, "RUN ") && strings.Contains(line, "go build"):
			if m := regexp.MustCompile(`-X (\S+)=\$\{VERSION\}`).FindStringSubmatch(line); m != nil && argInStage {
				versionVar = m[1]
			}
		}
	}
	if versionVar == "" {
		t.Errorf("the go build does not set the version with -X <var>=${VERSION}, after ARG VERSION in its stage")
	} else {
		checkVersionFlag(t, versionVar)
	}
	// The builder's Go must be the one go.mod asks for.
	mod, _ := os.ReadFile("go.mod")
	goLine := regexp.MustCompile(`(?m)^go (\S+)`).FindStringSubmatch(string(mod))
	if goLine == nil || !strings.Contains(froms[0], "golang:"+goLine[1]) {
		t.Errorf("builder %q does not match go.mod's go %v", froms[0], goLine)
	}
}

// checkVersionFlag builds lockproxy with -X variable=1.2.3, as the image
// is built, and checks that -version reports it.
func checkVersionFlag(t *testing.T, variable string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "lockproxy")
	out, err := exec.Command("go", "build", "-ldflags", "-X "+variable+"=1.2.3", "-o", bin, "./cmd/lockproxy").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "-version").CombinedOutput()
	if got := strings.TrimSpace(string(out)); err != nil || got != "lockproxy 1.2.3" {
		t.Errorf("lockproxy -version built with -X %s=1.2.3 printed %q (%v), want \"lockproxy 1.2.3\"", variable, got, err)
	}
}
