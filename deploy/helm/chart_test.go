// Package helm_test checks the Helm charts under deploy/helm: lint, golden
// renders, and the properties of every pod that runs lockproxy.
package helm_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.yaml from the charts")

// helm is built from source: the machines have no helm binary and no
// network but the module proxy. The version is pinned so that golden files
// do not change with a helm release.
const helmModule = "helm.sh/helm/v3/cmd/helm@v3.22.0"

var (
	helmOnce  sync.Once
	helmBuild error
)

// ensureHelm builds helm once per test process, so that a missing module
// proxy shows up as one clear failure rather than as every helm call
// failing its own way, and so that the first, slow compile gets a timeout of
// its own.
func ensureHelm(t *testing.T) {
	t.Helper()
	helmOnce.Do(func() {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		defer cancel()
		out, _, err := runHelm(ctx, t.TempDir(), "version", "--short")
		if err != nil {
			helmBuild = fmt.Errorf("cannot build or run helm with `go run %s` (the Go module proxy must be reachable on first use): %w", helmModule, err)
			return
		}
		t.Logf("helm %s ready after %v", strings.TrimSpace(out), time.Since(start).Round(time.Millisecond))
	})
	if helmBuild != nil {
		t.Fatal(helmBuild)
	}
}

func runHelm(ctx context.Context, home string, args ...string) (stdout, stderr string, err error) {
	cmd := exec.CommandContext(ctx, "go", append([]string{"run", helmModule}, args...)...)
	// Helm's caches, repositories and kube config stay inside the test's
	// temporary directory; no helm command here needs a cluster.
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
		"KUBECONFIG="+filepath.Join(home, "kubeconfig"),
	)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	if err != nil {
		err = fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, e.String())
	}
	return o.String(), e.String(), err
}

func helm(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ensureHelm(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	return runHelm(ctx, t.TempDir(), args...)
}

func mustHelm(t *testing.T, args ...string) string {
	t.Helper()
	out, _, err := helm(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestLint(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"shared-defaults", []string{"./lockproxy"}},
		{"shared-secret", []string{"./lockproxy", "-f", "testdata/shared-secret.values.yaml"}},
		{"all-config", []string{"./lockproxy", "-f", "testdata/all-config.values.yaml"}},
		{"shared-sentinel", []string{"./lockproxy", "-f", "testdata/shared-sentinel.values.yaml"}},
		{"sidecar-mode", []string{"./lockproxy", "--set", "mode=sidecar"}},
		{"example-app", []string{"./example-app"}},
		{"example-app-tls", []string{"./example-app", "-f", "testdata/example-app-tls.values.yaml"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out := mustHelm(t, append([]string{"lint", "--strict"}, tc.args...)...)
			if !strings.Contains(out, "0 chart(s) failed") {
				t.Errorf("helm lint did not report success:\n%s", out)
			}
		})
	}
}

// expect is what a render's lockproxy containers must have beyond the
// properties every one of them must have.
type expect struct {
	sidecar        bool
	upstreamURL    string
	upstreamSecret *secretRef
	passwordSecret *secretRef
	// sentinelSecret holds LOCKPROXY_SENTINEL_PASSWORD.
	sentinelSecret *secretRef
	// adminSecret holds LOCKPROXY_ADMIN_PASSWORD.
	adminSecret *secretRef
	// kinds are the resources the render must produce, in order.
	kinds []string
}

type secretRef struct{ Name, Key string }

func TestTemplateGolden(t *testing.T) {
	for _, tc := range []struct {
		golden string
		args   []string
		expect expect
	}{
		{
			golden: "shared-defaults",
			args:   []string{"lockproxy", "./lockproxy", "--namespace", "locks"},
			expect: expect{kinds: []string{"Service", "Deployment"}},
		},
		{
			golden: "shared-secret-servicemonitor",
			args:   []string{"lockproxy", "./lockproxy", "--namespace", "locks", "-f", "testdata/shared-secret.values.yaml"},
			expect: expect{
				upstreamSecret: &secretRef{"lockproxy-upstream", "url"},
				passwordSecret: &secretRef{"lockproxy-auth", "password"},
				kinds:          []string{"PodDisruptionBudget", "ServiceAccount", "Service", "Deployment", "ServiceMonitor"},
			},
		},
		{
			golden: "shared-sentinel",
			args:   []string{"lockproxy", "./lockproxy", "--namespace", "locks", "-f", "testdata/shared-sentinel.values.yaml"},
			expect: expect{
				upstreamSecret: &secretRef{"lockproxy-upstream", "upstream-url"},
				sentinelSecret: &secretRef{"cache-redis", "redis-password"},
				kinds:          []string{"PodDisruptionBudget", "Service", "Deployment"},
			},
		},
		{
			golden: "example-app",
			args:   []string{"demo", "./example-app", "--namespace", "apps"},
			expect: expect{
				sidecar:     true,
				upstreamURL: "redis://redis.example.svc:6379/0",
				kinds:       []string{"Deployment"},
			},
		},
		{
			golden: "example-app-tls",
			args:   []string{"demo", "./example-app", "--namespace", "apps", "-f", "testdata/example-app-tls.values.yaml"},
			expect: expect{
				sidecar:     true,
				upstreamURL: "rediss://redis.example.svc:6380/0",
				kinds:       []string{"Deployment"},
			},
		},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			t.Parallel()
			out := mustHelm(t, append([]string{"template"}, tc.args...)...)
			compareGolden(t, filepath.Join("testdata", tc.golden+".golden.yaml"), out)
			docs := parseDocs(t, out)
			var kinds []string
			for _, d := range docs {
				kinds = append(kinds, str(d, "kind"))
			}
			if !reflect.DeepEqual(kinds, tc.expect.kinds) {
				t.Errorf("rendered kinds %v, want %v", kinds, tc.expect.kinds)
			}
			checkPods(t, docs, tc.expect)
			checkSelectors(t, docs)
		})
	}
}

func compareGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (write it with: go test ./deploy/helm/ -run . -update)", err)
	}
	if got == string(want) {
		return
	}
	gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
	for i := 0; i < max(len(gl), len(wl)); i++ {
		var g, w string
		if i < len(gl) {
			g = gl[i]
		}
		if i < len(wl) {
			w = wl[i]
		}
		if g != w {
			t.Fatalf("render differs from %s at line %d:\n got: %q\nwant: %q\nIf the change is intended: go test ./deploy/helm/ -run . -update", path, i+1, g, w)
		}
	}
}

func parseDocs(t *testing.T, rendered string) []map[string]any {
	t.Helper()
	dec := yaml.NewDecoder(strings.NewReader(rendered))
	var docs []map[string]any
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("rendered YAML does not parse: %v", err)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
}

// get walks a decoded document by keys; nil when a step is missing.
func get(v any, path ...string) any {
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func str(v any, path ...string) string {
	s, _ := get(v, path...).(string)
	return s
}

func list(v any, path ...string) []any {
	l, _ := get(v, path...).([]any)
	return l
}

// podSpecs finds every pod spec in a render, by the resource that owns it.
func podSpecs(docs []map[string]any) map[string]map[string]any {
	specs := map[string]map[string]any{}
	for _, d := range docs {
		var spec any
		switch str(d, "kind") {
		case "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job":
			spec = get(d, "spec", "template", "spec")
		case "CronJob":
			spec = get(d, "spec", "jobTemplate", "spec", "template", "spec")
		case "Pod":
			spec = get(d, "spec")
		}
		if m, ok := spec.(map[string]any); ok {
			specs[str(d, "kind")+"/"+str(d, "metadata", "name")] = m
		}
	}
	return specs
}

// isLockproxy tells the lockproxy container by its image, which the app
// chart cannot rename the way it can rename the container.
func isLockproxy(c map[string]any) bool {
	image := str(c, "image")
	if i := strings.Index(image, "@"); i >= 0 {
		image = image[:i]
	} else if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		image = image[:i]
	}
	return image == "lockproxy" || strings.HasSuffix(image, "/lockproxy")
}

func checkPods(t *testing.T, docs []map[string]any, want expect) {
	t.Helper()
	found := 0
	for owner, spec := range podSpecs(docs) {
		for _, c := range list(spec, "containers") {
			c, _ := c.(map[string]any)
			if !isLockproxy(c) {
				continue
			}
			found++
			t.Run(owner+"/"+str(c, "name"), func(t *testing.T) {
				checkContainer(t, spec, c, want)
			})
		}
		for _, c := range list(spec, "initContainers") {
			c, _ := c.(map[string]any)
			if isLockproxy(c) && get(c, "restartPolicy") != "Always" {
				t.Errorf("%s: lockproxy as a plain init container would block the pod's start", owner)
			}
		}
	}
	if found == 0 {
		t.Fatal("no lockproxy container in the render: nothing was checked")
	}
}

func checkContainer(t *testing.T, pod, c map[string]any, want expect) {
	env := map[string]map[string]any{}
	for _, e := range list(c, "env") {
		e, _ := e.(map[string]any)
		name := str(e, "name")
		if _, dup := env[name]; dup {
			t.Errorf("env %s is set twice; only the last one counts", name)
		}
		env[name] = e
	}
	value := func(name string) string { return str(env[name], "value") }

	_, metricsPort, err := net.SplitHostPort(value("LOCKPROXY_METRICS_LISTEN"))
	if err != nil {
		t.Fatalf("LOCKPROXY_METRICS_LISTEN %q: %v (without it there is no /healthz or /readyz)", value("LOCKPROXY_METRICS_LISTEN"), err)
	}
	for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
		if got := str(c, probe, "httpGet", "path"); got != path {
			t.Errorf("%s path %q, want %q", probe, got, path)
		}
		if got := containerPort(c, get(c, probe, "httpGet", "port")); got != metricsPort {
			t.Errorf("%s on port %q, want the metrics port %s", probe, got, metricsPort)
		}
	}

	sc, _ := get(c, "securityContext").(map[string]any)
	for key, v := range map[string]any{"runAsNonRoot": true, "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false} {
		if sc[key] != v {
			t.Errorf("securityContext.%s = %v, want %v", key, sc[key], v)
		}
	}
	if drop := list(sc, "capabilities", "drop"); !reflect.DeepEqual(drop, []any{"ALL"}) {
		t.Errorf("securityContext.capabilities.drop = %v, want [ALL]", drop)
	}
	if p := str(sc, "seccompProfile", "type"); p != "RuntimeDefault" && str(pod, "securityContext", "seccompProfile", "type") != "RuntimeDefault" {
		t.Errorf("seccompProfile %q, want RuntimeDefault on the container or the pod", p)
	}

	shutdown := 10 * time.Second
	if s := value("LOCKPROXY_SHUTDOWN_TIMEOUT"); s != "" {
		if shutdown, err = time.ParseDuration(s); err != nil {
			t.Fatalf("LOCKPROXY_SHUTDOWN_TIMEOUT %q: %v", s, err)
		}
	}
	grace, ok := get(pod, "terminationGracePeriodSeconds").(int)
	if !ok || time.Duration(grace)*time.Second <= shutdown {
		t.Errorf("terminationGracePeriodSeconds %v is not longer than LOCKPROXY_SHUTDOWN_TIMEOUT %v", get(pod, "terminationGracePeriodSeconds"), shutdown)
	}

	wantListen := "0.0.0.0:6380"
	if want.sidecar {
		wantListen = "127.0.0.1:6380"
	}
	if got := value("LOCKPROXY_LISTEN"); got != wantListen {
		t.Errorf("LOCKPROXY_LISTEN %q, want %q", got, wantListen)
	}
	if !want.sidecar && containerPort(c, "resp") != "6380" {
		t.Errorf("shared mode: no resp port 6380 for the Service to target")
	}

	checkEnvSource(t, env, "LOCKPROXY_UPSTREAM", want.upstreamURL, want.upstreamSecret)
	checkEnvSource(t, env, "LOCKPROXY_PASSWORD", "", want.passwordSecret)
	checkEnvSource(t, env, "LOCKPROXY_SENTINEL_PASSWORD", "", want.sentinelSecret)
	checkEnvSource(t, env, "LOCKPROXY_ADMIN_PASSWORD", "", want.adminSecret)
	checkSecretFiles(t, pod, c, env)

	for name := range env {
		if strings.HasPrefix(name, "LOCKPROXY_") && !binaryVars(t)[name] {
			t.Errorf("env %s is not a variable the binary reads", name)
		}
	}
}

// tlsFileVars are the variables that name files, which the chart takes from
// Secret volumes.
var tlsFileVars = []string{
	"LOCKPROXY_TLS_CERT", "LOCKPROXY_TLS_KEY",
	"LOCKPROXY_UPSTREAM_TLS_CA", "LOCKPROXY_UPSTREAM_TLS_CERT", "LOCKPROXY_UPSTREAM_TLS_KEY",
}

// checkSecretFiles makes sure that every file variable names a file in a
// read-only, whole-directory mount of a Secret volume the pod has (a subPath
// mount never sees a rotated Secret), and that every mount has its volume
// (a sidecar whose pod forgot "lockproxy.sidecar.volumes").
func checkSecretFiles(t *testing.T, pod, c map[string]any, env map[string]map[string]any) {
	t.Helper()
	volumes := map[string]map[string]any{}
	for _, v := range list(pod, "volumes") {
		v, _ := v.(map[string]any)
		volumes[str(v, "name")] = v
	}
	mounts := map[string]map[string]any{} // by mountPath
	for _, m := range list(c, "volumeMounts") {
		m, _ := m.(map[string]any)
		mounts[str(m, "mountPath")] = m
		if _, ok := volumes[str(m, "name")]; !ok {
			t.Errorf("volumeMount %v: the pod has no volume %q", m, str(m, "name"))
		}
	}
	for _, name := range tlsFileVars {
		e, ok := env[name]
		if !ok {
			continue
		}
		file := str(e, "value")
		m, ok := mounts[filepath.Dir(file)]
		if !ok {
			t.Errorf("%s = %q: no volumeMount at %s", name, file, filepath.Dir(file))
			continue
		}
		if get(m, "readOnly") != true || get(m, "subPath") != nil || get(m, "subPathExpr") != nil {
			t.Errorf("%s: mount %v, want readOnly and no subPath", name, m)
		}
		if str(volumes[str(m, "name")], "secret", "secretName") == "" {
			t.Errorf("%s: volume %v is not a Secret", name, volumes[str(m, "name")])
		}
	}
}

// containerPort resolves a probe's or Service's port, a number or a name,
// to the container port number.
func containerPort(c map[string]any, port any) string {
	switch p := port.(type) {
	case int:
		return strconv.Itoa(p)
	case string:
		for _, cp := range list(c, "ports") {
			if str(cp, "name") == p {
				return fmt.Sprint(get(cp, "containerPort"))
			}
		}
	}
	return fmt.Sprintf("unresolved %v", port)
}

func checkEnvSource(t *testing.T, env map[string]map[string]any, name, plain string, secret *secretRef) {
	t.Helper()
	e, set := env[name]
	switch {
	case secret != nil:
		ref := secretRef{str(e, "valueFrom", "secretKeyRef", "name"), str(e, "valueFrom", "secretKeyRef", "key")}
		if ref != *secret || get(e, "value") != nil {
			t.Errorf("%s = %v, want only a secretKeyRef to %+v", name, e, *secret)
		}
	case plain != "":
		if str(e, "value") != plain {
			t.Errorf("%s = %v, want %q", name, e, plain)
		}
	case set:
		t.Errorf("%s is set (%v) though no value asks for it", name, e)
	}
}

// checkSelectors makes sure every Service, PodDisruptionBudget and
// ServiceMonitor selects the pods the render deploys, and that the Service
// and ServiceMonitor name ports that exist.
func checkSelectors(t *testing.T, docs []map[string]any) {
	t.Helper()
	var podLabels []map[string]any
	for _, d := range docs {
		if l, ok := get(d, "spec", "template", "metadata", "labels").(map[string]any); ok {
			podLabels = append(podLabels, l)
		}
	}
	matches := func(sel any) bool {
		s, ok := sel.(map[string]any)
		if !ok || len(s) == 0 {
			return false
		}
		for _, l := range podLabels {
			all := true
			for k, v := range s {
				all = all && l[k] == v
			}
			if all {
				return true
			}
		}
		return false
	}
	services := map[string]bool{}
	for _, d := range docs {
		kind, name := str(d, "kind"), str(d, "metadata", "name")
		switch kind {
		case "Service":
			if !matches(get(d, "spec", "selector")) {
				t.Errorf("Service %s selects no rendered pod", name)
			}
			for _, p := range list(d, "spec", "ports") {
				services[str(p, "name")] = true
			}
		case "PodDisruptionBudget", "ServiceMonitor":
			if !matches(get(d, "spec", "selector", "matchLabels")) {
				t.Errorf("%s %s selects nothing rendered", kind, name)
			}
		}
	}
	for _, d := range docs {
		if str(d, "kind") != "ServiceMonitor" {
			continue
		}
		for _, ep := range list(d, "spec", "endpoints") {
			if p := str(ep, "port"); !services[p] || str(ep, "path") != "/metrics" {
				t.Errorf("ServiceMonitor endpoint %v: want path /metrics on a Service port (have %v)", ep, services)
			}
		}
	}
}

// TestConfigValues renders every config key and checks the variable and the
// exact string the binary will parse.
func TestConfigValues(t *testing.T) {
	t.Parallel()
	docs := parseDocs(t, mustHelm(t, "template", "lockproxy", "./lockproxy", "-f", "testdata/all-config.values.yaml"))
	want := map[string]string{
		"LOCKPROXY_LISTEN":               "0.0.0.0:6380",
		"LOCKPROXY_METRICS_LISTEN":       "0.0.0.0:9180",
		"LOCKPROXY_UPSTREAM":             "rediss://sentinel-0.locks.svc:26379/2?master_name=locks&addr=sentinel-1.locks.svc:26379",
		"LOCKPROXY_UPSTREAM_MODE":        "sentinel",
		"LOCKPROXY_SENTINEL_USERNAME":    "watcher",
		"LOCKPROXY_SENTINEL_PASSWORD":    "", // from a Secret, below
		"LOCKPROXY_ADMIN_PASSWORD":       "", // from a Secret, below
		"LOCKPROXY_REPLICA_ACKS":         "2",
		"LOCKPROXY_UPSTREAM_BATCH":       "64",
		"LOCKPROXY_KEY_PREFIX":           "app-lock:",
		"LOCKPROXY_DEFAULT_TTL":          "45s",
		"LOCKPROXY_MIN_TTL":              "20ms",
		"LOCKPROXY_MAX_TTL":              "12h",
		"LOCKPROXY_MAX_WAIT":             "2m",
		"LOCKPROXY_RENEW_FRACTION":       "0.25",
		"LOCKPROXY_RETRY_BASE":           "20ms",
		"LOCKPROXY_RETRY_MULTIPLIER":     "1.5",
		"LOCKPROXY_RETRY_MAX":            "1s",
		"LOCKPROXY_RETRY_JITTER":         "0.1",
		"LOCKPROXY_WAITER_TTL":           "4s",
		"LOCKPROXY_LOCAL_HANDOFFS":       "2",
		"LOCKPROXY_MAX_HOLD":             "10m",
		"LOCKPROXY_QUIET_PERIOD":         "30s",
		"LOCKPROXY_TLS_CERT":             "/etc/lockproxy/tls/tls.crt",
		"LOCKPROXY_TLS_KEY":              "/etc/lockproxy/tls/tls.key",
		"LOCKPROXY_UPSTREAM_TLS_CA":      "/etc/lockproxy/upstream-tls/ca.crt",
		"LOCKPROXY_UPSTREAM_TLS_CERT":    "/etc/lockproxy/upstream-tls/tls.crt",
		"LOCKPROXY_UPSTREAM_TLS_KEY":     "/etc/lockproxy/upstream-tls/tls.key",
		"LOCKPROXY_MAX_CLIENTS":          "20000",
		"LOCKPROXY_MAX_LOCKS_PER_CONN":   "2000",
		"LOCKPROXY_MAX_WAITERS_PER_NAME": "250000",
		"LOCKPROXY_MAX_DETACHED":         "5000",
		"LOCKPROXY_MAX_NAME_BYTES":       "512",
		"LOCKPROXY_MAX_LIMIT":            "64",
		"LOCKPROXY_MAX_ARGS":             "64",
		"LOCKPROXY_MAX_BULK_BYTES":       "131072",
		"LOCKPROXY_MAX_INLINE_BYTES":     "32768",
		"LOCKPROXY_MAX_QUERY_BYTES":      "2097152",
		"LOCKPROXY_WRITE_TIMEOUT":        "15s",
		"LOCKPROXY_REQUEST_TIMEOUT":      "20s",
		"LOCKPROXY_UPSTREAM_TIMEOUT":     "1500ms",
		"LOCKPROXY_CHECK_INTERVAL":       "250ms",
		"LOCKPROXY_SHUTDOWN_TIMEOUT":     "1m30s",
		"LOCKPROXY_LOG_LEVEL":            "debug",
		"LOCKPROXY_LOG_FORMAT":           "text",
		"GOMEMLIMIT":                     "200MiB",
	}
	for _, spec := range podSpecs(docs) {
		got := map[string]string{}
		for _, c := range list(spec, "containers") {
			for _, e := range list(c, "env") {
				got[str(e, "name")] = str(e, "value")
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("env:\n got %v\nwant %v", got, want)
		}
		// 1m30s rounded up, plus the chart's 5s margin.
		if g := get(spec, "terminationGracePeriodSeconds"); g != 95 {
			t.Errorf("terminationGracePeriodSeconds %v, want 95", g)
		}
	}
	// The TLS files are in their Secrets' mounts (TestTLS checks the details).
	checkPods(t, docs, expect{upstreamURL: want["LOCKPROXY_UPSTREAM"], sentinelSecret: &secretRef{"redis-sentinel", "sentinel-password"},
		adminSecret: &secretRef{"lockproxy-admin", "admin-password"}})
	// Every variable the binary reads, except LOCKPROXY_PASSWORD (a Secret,
	// checked in TestTemplateGolden), must be reachable from values.
	for name := range binaryVars(t) {
		if _, ok := want[name]; !ok && name != "LOCKPROXY_PASSWORD" {
			t.Errorf("%s: the binary reads it, but this test does not set it; does the chart?", name)
		}
	}
}

func TestGracePeriod(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want int
	}{
		{"default", []string{"x", "./lockproxy"}, 15},
		{"fractional shutdown rounds up", []string{"x", "./lockproxy", "--set", "config.shutdownTimeout=2500ms"}, 8},
		{"explicit", []string{"x", "./lockproxy", "--set", "terminationGracePeriodSeconds=11"}, 11},
		{"sidecar default", []string{"x", "./example-app"}, 15},
		{"sidecar app needs longer", []string{"x", "./example-app", "--set", "terminationGracePeriodSeconds=60"}, 60},
		{"sidecar explicit", []string{"x", "./example-app", "--set", "lockproxy.config.shutdownTimeout=20s", "--set", "lockproxy.terminationGracePeriodSeconds=25"}, 25},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			docs := parseDocs(t, mustHelm(t, append([]string{"template"}, tc.args...)...))
			for owner, spec := range podSpecs(docs) {
				if g := get(spec, "terminationGracePeriodSeconds"); g != tc.want {
					t.Errorf("%s: terminationGracePeriodSeconds %v, want %d", owner, g, tc.want)
				}
			}
		})
	}
}

// TestTLS checks that the TLS Secrets reach the lockproxy container as
// read-only directory mounts, in the shared Deployment and in a pod with the
// sidecar, and that the variables name the files in them.
func TestTLS(t *testing.T) {
	const (
		dir         = "/etc/lockproxy/tls"
		upstreamDir = "/etc/lockproxy/upstream-tls"
	)
	allFiles := map[string]string{
		"LOCKPROXY_TLS_CERT":          dir + "/tls.crt",
		"LOCKPROXY_TLS_KEY":           dir + "/tls.key",
		"LOCKPROXY_UPSTREAM_TLS_CA":   upstreamDir + "/ca.crt",
		"LOCKPROXY_UPSTREAM_TLS_CERT": upstreamDir + "/tls.crt",
		"LOCKPROXY_UPSTREAM_TLS_KEY":  upstreamDir + "/tls.key",
	}
	pick := func(names ...string) map[string]string {
		m := map[string]string{}
		for _, n := range names {
			m[n] = allFiles[n]
		}
		return m
	}
	type volume struct{ Secret, MountPath string }
	for _, tc := range []struct {
		name string
		args []string
		// volumes by name; env the file variables set.
		volumes map[string]volume
		env     map[string]string
	}{
		{
			name: "shared",
			args: []string{"./lockproxy", "--set", "tls.existingSecret=lp-cert", "--set", "upstream.url=rediss://r:6379",
				"--set", "upstreamTLS.existingSecret=r-tls", "--set", "upstreamTLS.clientCert=true"},
			volumes: map[string]volume{"lockproxy-tls": {"lp-cert", dir}, "lockproxy-upstream-tls": {"r-tls", upstreamDir}},
			env:     allFiles,
		},
		{
			name:    "sidecar",
			args:    []string{"./example-app", "-f", "testdata/example-app-tls.values.yaml", "--set", "lockproxy.tls.existingSecret=demo-lockproxy-cert"},
			volumes: map[string]volume{"lockproxy-tls": {"demo-lockproxy-cert", dir}, "lockproxy-upstream-tls": {"redis-client-tls", upstreamDir}},
			env:     allFiles,
		},
		{
			name:    "sidecar renamed, listener only",
			args:    []string{"./example-app", "--set", "lockproxy.tls.existingSecret=c", "--set", "lockproxy.sidecar.containerName=locks"},
			volumes: map[string]volume{"locks-tls": {"c", dir}},
			env:     pick("LOCKPROXY_TLS_CERT", "LOCKPROXY_TLS_KEY"),
		},
		{
			name:    "upstream CA only, URL from a Secret",
			args:    []string{"./lockproxy", "--set", "upstream.existingSecret=u", "--set", "upstreamTLS.existingSecret=ca"},
			volumes: map[string]volume{"lockproxy-upstream-tls": {"ca", upstreamDir}},
			env:     pick("LOCKPROXY_UPSTREAM_TLS_CA"),
		},
		{
			name: "upstream client certificate only",
			args: []string{"./example-app", "--set", "lockproxy.upstream.url=rediss://r:6379", "--set", "lockproxy.upstreamTLS.existingSecret=cc",
				"--set", "lockproxy.upstreamTLS.ca=false", "--set", "lockproxy.upstreamTLS.clientCert=true"},
			volumes: map[string]volume{"lockproxy-upstream-tls": {"cc", upstreamDir}},
			env:     pick("LOCKPROXY_UPSTREAM_TLS_CERT", "LOCKPROXY_UPSTREAM_TLS_KEY"),
		},
		{
			name:    "none",
			args:    []string{"./example-app"},
			volumes: map[string]volume{},
			env:     map[string]string{},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			docs := parseDocs(t, mustHelm(t, append([]string{"template", "x"}, tc.args...)...))
			specs := podSpecs(docs)
			if len(specs) != 1 {
				t.Fatalf("%d pod specs, want 1", len(specs))
			}
			for owner, spec := range specs {
				gotVolumes := map[string]volume{}
				for _, v := range list(spec, "volumes") {
					gotVolumes[str(v, "name")] = volume{Secret: str(v, "secret", "secretName")}
				}
				var lockproxy map[string]any
				for _, c := range list(spec, "containers") {
					c, _ := c.(map[string]any)
					if isLockproxy(c) {
						lockproxy = c
					} else if m := list(c, "volumeMounts"); len(m) > 0 {
						t.Errorf("%s: container %s mounts %v: lockproxy's Secrets are for lockproxy only", owner, str(c, "name"), m)
					}
				}
				if lockproxy == nil {
					t.Fatalf("%s: no lockproxy container", owner)
				}
				for _, m := range list(lockproxy, "volumeMounts") {
					name := str(m, "name")
					v, ok := gotVolumes[name]
					if !ok {
						t.Errorf("%s: volumeMount %s has no volume in the pod", owner, name)
						continue
					}
					if get(m, "readOnly") != true {
						t.Errorf("%s: volumeMount %s is not readOnly", owner, name)
					}
					if get(m, "subPath") != nil || get(m, "subPathExpr") != nil {
						t.Errorf("%s: volumeMount %s uses a subPath, which never sees a rotated Secret", owner, name)
					}
					v.MountPath = str(m, "mountPath")
					gotVolumes[name] = v
				}
				if !reflect.DeepEqual(gotVolumes, tc.volumes) {
					t.Errorf("%s: volumes and mounts\n got %v\nwant %v", owner, gotVolumes, tc.volumes)
				}
				gotEnv := map[string]string{}
				for _, e := range list(lockproxy, "env") {
					if name := str(e, "name"); strings.Contains(name, "TLS") {
						gotEnv[name] = str(e, "value")
					}
				}
				if !reflect.DeepEqual(gotEnv, tc.env) {
					t.Errorf("%s: TLS variables\n got %v\nwant %v", owner, gotEnv, tc.env)
				}
			}
		})
	}
}

// TestTemplateRejects checks the settings the chart refuses, each with a
// message that says what to change.
func TestTemplateRejects(t *testing.T) {
	const graceMsg = "must be longer than LOCKPROXY_SHUTDOWN_TIMEOUT"
	for _, tc := range []struct {
		name string
		args []string
		msg  string
	}{
		{"grace equal to shutdown", []string{"./lockproxy", "--set", "terminationGracePeriodSeconds=10"}, "terminationGracePeriodSeconds (10) " + graceMsg + " (10s)"},
		{"grace below shutdown", []string{"./lockproxy", "--set", "config.shutdownTimeout=30s", "--set", "terminationGracePeriodSeconds=20"}, graceMsg},
		{"grace zero", []string{"./lockproxy", "--set", "terminationGracePeriodSeconds=0"}, graceMsg},
		{"sidecar grace", []string{"./example-app", "--set", "lockproxy.terminationGracePeriodSeconds=5"}, graceMsg},
		{"bad duration", []string{"./lockproxy", "--set", "config.shutdownTimeout=10"}, "is not a Go duration"},
		{"unknown key", []string{"./lockproxy", "--set", "config.maxTtl=1h"}, `unknown config key "maxTtl"`},
		{"managed key", []string{"./lockproxy", "--set", "config.listen=0.0.0.0:1"}, "config.listen is not settable"},
		{"two upstreams", []string{"./lockproxy", "--set", "upstream.url=redis://r:6379", "--set", "upstream.existingSecret=s"}, "not both"},
		{"replicas without upstream", []string{"./lockproxy", "--set", "replicaCount=2"}, "replicaCount > 1 needs upstream"},
		{"bad mode", []string{"./lockproxy", "--set", "mode=daemon"}, "mode must be shared or sidecar"},
		{"sidecar without sidecar mode", []string{"./example-app", "--set", "lockproxy.mode=shared"}, "set lockproxy.mode to sidecar"},
		{"managed TLS key", []string{"./lockproxy", "--set", "config.tlsCert=/tmp/c.pem"}, "config.tlsCert is not settable: LOCKPROXY_TLS_CERT is set from tls.existingSecret"},
		{"upstream TLS over redis://", []string{"./lockproxy", "--set", "upstream.url=redis://:pw@r:6379", "--set", "upstreamTLS.existingSecret=s"}, `needs a rediss:// upstream.url, not "redis://***@r:6379"`},
		{"upstream TLS without upstream", []string{"./lockproxy", "--set", "upstreamTLS.existingSecret=s"}, "upstreamTLS needs a rediss:// upstream"},
		{"cluster mode without a URL", []string{"./lockproxy", "--set", "upstream.mode=cluster"}, "upstream.mode cluster needs upstream.url or upstream.existingSecret"},
		{"unknown mode", []string{"./lockproxy", "--set", "upstream.url=redis://r:6379", "--set", "upstream.mode=ring"}, `upstream.mode must be auto, single, sentinel or cluster, not "ring"`},
		{"mode without upstream", []string{"./lockproxy", "--set", "upstream.mode=sentinel"}, "upstream.mode sentinel needs upstream.url or upstream.existingSecret"},
		{"sentinel mode without master_name", []string{"./lockproxy", "--set", "upstream.url=redis://r:26379", "--set", "upstream.mode=sentinel"}, "needs master_name= in upstream.url"},
		{"single mode with master_name", []string{"./lockproxy", "--set", "upstream.url=redis://s:26379?master_name=m", "--set", "upstream.mode=single"}, "upstream.mode is single, but upstream.url has master_name="},
		{"sentinel password for one Redis", []string{"./lockproxy", "--set", "upstream.url=redis://r:6379", "--set", "upstream.sentinelPassword.existingSecret=s"}, "upstream.url is one Redis"},
		{"sentinel password without upstream", []string{"./lockproxy", "--set", "upstream.sentinelPassword.existingSecret=s"}, "are for a Sentinel upstream: set upstream.url or upstream.existingSecret"},
		{"sentinel user without password", []string{"./lockproxy", "--set", "upstream.existingSecret=u", "--set", "upstream.sentinelUsername=w"}, "upstream.sentinelUsername needs upstream.sentinelPassword.existingSecret"},
		{"replica acks without upstream", []string{"./lockproxy", "--set", "config.replicaAcks=1"}, "config.replicaAcks needs upstream.url or upstream.existingSecret"},
		{"managed upstream key", []string{"./lockproxy", "--set", "config.sentinelPassword=x"}, "config.sentinelPassword is not settable: LOCKPROXY_SENTINEL_PASSWORD is set from upstream.sentinelPassword.existingSecret"},
		{"upstream TLS without files", []string{"./lockproxy", "--set", "upstream.url=rediss://r:6379", "--set", "upstreamTLS.existingSecret=s", "--set", "upstreamTLS.ca=false"}, "neither upstreamTLS.ca nor upstreamTLS.clientCert"},
		{"sidecar upstream TLS over redis://", []string{"./example-app", "--set", "lockproxy.upstreamTLS.existingSecret=s"}, "needs a rediss:// upstream.url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, stderr, err := helm(t, append([]string{"template", "x"}, tc.args...)...)
			if err == nil {
				t.Fatalf("helm template succeeded, want failure %q; rendered:\n%s", tc.msg, out)
			}
			if !strings.Contains(stderr, "execution error") || !strings.Contains(stderr, tc.msg) {
				t.Errorf("helm template failed without %q:\n%s", tc.msg, stderr)
			}
		})
	}
}

// TestChartMetadata checks what no render shows: the pinned image tag
// follows appVersion, and the example app asks for the chart it links.
func TestChartMetadata(t *testing.T) {
	var chart struct {
		Version    string `yaml:"version"`
		AppVersion string `yaml:"appVersion"`
	}
	var values struct {
		Image struct{ Tag string } `yaml:"image"`
	}
	var app struct {
		Dependencies []struct{ Name, Version, Repository string } `yaml:"dependencies"`
	}
	readYAML(t, "lockproxy/Chart.yaml", &chart)
	readYAML(t, "lockproxy/values.yaml", &values)
	readYAML(t, "example-app/Chart.yaml", &app)
	if values.Image.Tag != chart.AppVersion {
		t.Errorf("values.yaml image.tag %q, Chart.yaml appVersion %q: keep them equal", values.Image.Tag, chart.AppVersion)
	}
	if len(app.Dependencies) != 1 || app.Dependencies[0].Name != "lockproxy" || app.Dependencies[0].Version != chart.Version ||
		app.Dependencies[0].Repository != "file://../lockproxy" {
		t.Errorf("example-app dependencies %+v, want lockproxy %s from file://../lockproxy", app.Dependencies, chart.Version)
	}
	if target, err := os.Readlink("example-app/charts/lockproxy"); err != nil || target != "../../lockproxy" {
		t.Errorf("example-app/charts/lockproxy must be a symlink to ../../lockproxy (got %q, %v)", target, err)
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestChartKnowsEveryVariable compares the binary's variables with the
// chart's mapping and README, so that a setting added to the binary is not
// silently missing from the chart.
func TestChartKnowsEveryVariable(t *testing.T) {
	helpers, err := os.ReadFile("lockproxy/templates/_helpers.tpl")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("lockproxy/README.md")
	if err != nil {
		t.Fatal(err)
	}
	vars := binaryVars(t)
	for name := range vars {
		if !bytes.Contains(helpers, []byte(name)) {
			t.Errorf("%s: not in lockproxy/templates/_helpers.tpl", name)
		}
		if !bytes.Contains(readme, []byte("`"+name+"`")) {
			t.Errorf("%s: not in lockproxy/README.md", name)
		}
	}
	for _, m := range regexp.MustCompile(`LOCKPROXY_[A-Z_]+`).FindAll(helpers, -1) {
		if !vars[string(m)] {
			t.Errorf("%s: in _helpers.tpl, but the binary does not read it", m)
		}
	}
}

var (
	varsOnce sync.Once
	vars     map[string]bool
	defaults map[string]string // by variable; "" when it has none
	varsErr  error
)

// binaryVars reads the variable names from the env tags of the binary's
// Config struct.
func binaryVars(t *testing.T) map[string]bool {
	t.Helper()
	readBinaryVars(t)
	return vars
}

// binaryDefaults reads each variable's default from the envDefault tags of
// the binary's Config struct, where the defaults are written.
func binaryDefaults(t *testing.T) map[string]string {
	t.Helper()
	readBinaryVars(t)
	return defaults
}

func readBinaryVars(t *testing.T) {
	t.Helper()
	varsOnce.Do(func() {
		const src = "../../internal/sidecar/config.go"
		f, err := parser.ParseFile(token.NewFileSet(), src, nil, 0)
		if err != nil {
			varsErr = err
			return
		}
		prefix := "LOCKPROXY_"
		vars, defaults = map[string]bool{}, map[string]string{}
		ast.Inspect(f, func(n ast.Node) bool {
			ts, ok := n.(*ast.TypeSpec)
			if !ok || ts.Name.Name != "Config" {
				return true
			}
			st, ok := ts.Type.(*ast.StructType)
			if !ok {
				return false
			}
			for _, field := range st.Fields.List {
				if field.Tag == nil {
					continue
				}
				tag, err := strconv.Unquote(field.Tag.Value)
				if err != nil {
					continue
				}
				if name, ok := reflect.StructTag(tag).Lookup("env"); ok {
					vars[prefix+name] = true
					defaults[prefix+name] = reflect.StructTag(tag).Get("envDefault")
				}
			}
			return false
		})
		if len(vars) == 0 {
			varsErr = fmt.Errorf("%s: no env tags found in type Config", src)
		}
	})
	if varsErr != nil {
		t.Fatal(varsErr)
	}
}

// The chart shows the binary's defaults twice, as comments in values.yaml
// and in a column of its README; both must say what the env tags say.
func TestChartShowsBinaryDefaults(t *testing.T) {
	defaults := binaryDefaults(t)
	values, err := os.ReadFile("lockproxy/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// "  # maxTTL: 24h    # LOCKPROXY_MAX_TTL": a key left out, so the
	// binary's default applies.
	commented := regexp.MustCompile(`(?m)^\s*#\s*\w+:\s*(\S+)\s+#\s*(LOCKPROXY_\w+)`)
	matches := commented.FindAllSubmatch(values, -1)
	if len(matches) == 0 {
		t.Fatal("values.yaml: no commented-out config key found")
	}
	for _, m := range matches {
		name, got := string(m[2]), strings.Trim(string(m[1]), `"`)
		if want, ok := defaults[name]; !ok || got != want {
			t.Errorf("values.yaml shows %s's default as %q; the binary's is %q", name, got, want)
		}
	}
	readme, err := os.ReadFile("lockproxy/README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := 0
	for _, line := range strings.Split(string(readme), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 5 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`LOCKPROXY_") {
			continue
		}
		rows++
		name, cell := strings.Trim(strings.TrimSpace(cells[1]), "`"), strings.TrimSpace(cells[3])
		got := ""
		if !strings.HasPrefix(cell, "empty") {
			got, _, _ = strings.Cut(strings.TrimPrefix(cell, "`"), "`")
		}
		if want, ok := defaults[name]; !ok || got != want {
			t.Errorf("lockproxy/README.md shows %s's default as %q; the binary's is %q", name, cell, want)
		}
	}
	if rows == 0 {
		t.Fatal("lockproxy/README.md: no variable table found")
	}
}
