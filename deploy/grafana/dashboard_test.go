// Package grafana_test checks the monitoring assets against the metrics
// lockproxy really exports: a dashboard or an alert that names a metric,
// label or label value that does not exist shows nothing and fires never,
// and nobody notices until the day it was needed.
package grafana_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.yaml.in/yaml/v3"

	"github.com/lockproxy/lockproxy/metrics"
)

const (
	dashboardFile       = "lockproxy.json"
	alertsFile          = "../prometheus/alerts.yaml"
	troubleshootingFile = "../../docs/troubleshooting.md"
	monitoringFile      = "../../docs/monitoring.md"
)

// targetLabels are added by Prometheus's scrape, not by lockproxy, so no
// registry shows them.
var targetLabels = []string{"instance", "job", "namespace", "pod", "container", "service", "endpoint", "node"}

// upstreamOps are the op values lockcore.Instrument reports. A HistogramVec
// exposes nothing until observed, so the test observes each one.
var upstreamOps = []string{"acquire", "renew", "revoke", "release", "transfer", "release_all", "leave", "keepalive", "inspect", "health"}

// family is one metric family as a scrape shows it.
type family struct {
	typ     string                     // COUNTER, GAUGE, HISTOGRAM, SUMMARY, UNTYPED
	labels  map[string]map[string]bool // label name -> values seen
	buckets map[string]bool            // a histogram's le values, as a scrape shows them
}

// exposition maps every series name a scrape can show (x, x_bucket, x_sum,
// x_count for a histogram x) to its family.
type exposition map[string]*family

// gather builds the registry as internal/sidecar does and reads it back.
func gather(t *testing.T) exposition {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := metrics.New(reg, "test")
	for _, op := range upstreamOps {
		m.Upstream(op, time.Millisecond)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exp := exposition{}
	for _, mf := range mfs {
		f := &family{typ: mf.GetType().String(), labels: map[string]map[string]bool{}, buckets: map[string]bool{"+Inf": true}}
		for _, mt := range mf.GetMetric() {
			for _, b := range mt.GetHistogram().GetBucket() {
				f.buckets[strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64)] = true
			}
			for _, lp := range mt.GetLabel() {
				if f.labels[lp.GetName()] == nil {
					f.labels[lp.GetName()] = map[string]bool{}
				}
				f.labels[lp.GetName()][lp.GetValue()] = true
			}
		}
		name := mf.GetName()
		exp[name] = f
		switch f.typ {
		case "HISTOGRAM":
			exp[name+"_bucket"], exp[name+"_sum"], exp[name+"_count"] = f, f, f
		case "SUMMARY":
			exp[name+"_sum"], exp[name+"_count"] = f, f
		}
	}
	return exp
}

// hasPrefix reports whether the registry exposes any series starting with p.
func (exp exposition) hasPrefix(p string) bool {
	for name := range exp {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// TestDashboard checks every query and variable of the dashboard against
// the registry, its layout and data source wiring, and that the sections
// of troubleshooting.md its descriptions name exist.
func TestDashboard(t *testing.T) {
	exp := gather(t)
	d := loadDashboard(t)
	if len(d.targets) == 0 {
		t.Fatal("the dashboard has no queries")
	}
	for _, p := range checkDashboard(d) {
		t.Error(p)
	}
	for _, tg := range d.targets {
		for _, p := range checkExpr(exp, tg.expr, d.vars) {
			t.Errorf("panel %q, query %s: %s\n\t%s", tg.panel, tg.refID, p, tg.expr)
		}
	}
	for _, v := range d.varQueries {
		for _, p := range checkVarQuery(exp, v) {
			t.Errorf("variable query %q: %s", v, p)
		}
	}
	headings := readHeadings(t, troubleshootingFile)
	for _, ref := range d.docRefs {
		if !slices.Contains(headings.titles, ref.title) {
			t.Errorf("panel %q refers to troubleshooting.md, %q, which is not a heading there", ref.panel, ref.title)
		}
	}
	t.Logf("checked %d queries in %d panels", len(d.targets), d.panels)
}

// TestAlerts checks every rule's expression against the registry, that it
// has what routing and the on-call engineer need, that its runbook_url
// points at a real section of troubleshooting.md, and that monitoring.md
// describes it.
func TestAlerts(t *testing.T) {
	exp := gather(t)
	rules := loadAlerts(t)
	if len(rules) == 0 {
		t.Fatal("alerts.yaml has no rules")
	}
	anchors := readHeadings(t, troubleshootingFile).anchors
	monitoring, err := os.ReadFile(monitoringFile)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range rules {
		for _, p := range checkRule(r, anchors) {
			t.Errorf("alert %q: %s", r.name, p)
		}
		if seen[r.name] {
			t.Errorf("alert %q is defined twice", r.name)
		}
		seen[r.name] = true
		for _, p := range checkExpr(exp, r.expr, nil) {
			t.Errorf("alert %q: %s\n\t%s", r.name, p, r.expr)
		}
		if !strings.Contains(string(monitoring), r.name) {
			t.Errorf("alert %q is not described in docs/monitoring.md", r.name)
		}
	}
	t.Logf("checked %d alert rules", len(rules))
}

// The PromQL examples in docs/monitoring.md are copied by readers; they
// must name real metrics too.
func TestMonitoringDocExamples(t *testing.T) {
	exp := gather(t)
	b, err := os.ReadFile(monitoringFile)
	if err != nil {
		t.Fatal(err)
	}
	exprs := promqlBlocks(string(b))
	if len(exprs) == 0 {
		t.Fatal("docs/monitoring.md has no promql code block")
	}
	for _, e := range exprs {
		for _, p := range checkExpr(exp, e, nil) {
			t.Errorf("docs/monitoring.md: %s\n\t%s", p, e)
		}
	}
	t.Logf("checked %d examples", len(exprs))
}

// promqlBlocks returns the expressions of ```promql blocks: runs of lines
// separated by blank or comment lines.
func promqlBlocks(md string) []string {
	var exprs []string
	var cur []string
	in := false
	flush := func() {
		if len(cur) > 0 {
			exprs = append(exprs, strings.Join(cur, "\n"))
			cur = nil
		}
	}
	for line := range strings.SplitSeq(md, "\n") {
		switch {
		case strings.HasPrefix(line, "```promql"):
			in = true
		case in && strings.HasPrefix(line, "```"):
			flush()
			in = false
		case in && (strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#")):
			flush()
		case in:
			cur = append(cur, line)
		}
	}
	return exprs
}

// TestCheckerCatchesMistakes proves the checks above can fail: each of
// these expressions has one mistake a dashboard could ship with.
func TestCheckerCatchesMistakes(t *testing.T) {
	exp := gather(t)
	dashVars := map[string]bool{"datasource": true, "instance": true}
	for _, c := range []struct{ why, expr string }{
		{"misspelled metric", `sum(rate(lockproxy_acquire_totl{instance=~"$instance"}[5m]))`},
		{"_bucket of a gauge", `lockproxy_locks_held_bucket{instance=~"$instance"}`},
		{"no instance filter", `sum(lockproxy_locks_held)`},
		{"unknown label in by", `sum by (results) (rate(lockproxy_acquire_total{instance=~"$instance"}[5m]))`},
		{"unknown label value", `rate(lockproxy_acquire_total{instance=~"$instance", result="acquird"}[5m])`},
		{"quantile without le", `histogram_quantile(0.99, sum by (instance) (rate(lockproxy_hold_seconds_bucket{instance=~"$instance"}[5m])))`},
		{"bucket without quantile", `sum(rate(lockproxy_hold_seconds_bucket{instance=~"$instance"}[5m]))`},
		{"label of another metric", `sum by (op) (lockproxy_locks_held{instance=~"$instance"})`},
		{"unknown variable", `sum(lockproxy_locks_held{instance=~"$pod"})`},
		{"unbalanced braces", `sum(lockproxy_locks_held{instance=~"$instance")`},
		{"no such bucket", `sum(rate(lockproxy_hold_seconds_bucket{instance=~"$instance", le="5"}[5m]))`},
	} {
		if probs := checkExpr(exp, c.expr, dashVars); len(probs) == 0 {
			t.Errorf("%s: no problem found in %s", c.why, c.expr)
		}
	}
	if probs := checkExpr(exp, `lockproxy_upstream_up{instance=~"$instance"} == 0`, nil); len(probs) == 0 {
		t.Error("a Grafana variable in an alert went unnoticed")
	}
	if probs := checkExpr(exp, `sum by (le, op) (rate(lockproxy_upstream_seconds_bucket{instance=~"$instance", op="renew"}[$__rate_interval]))`, dashVars); len(probs) != 1 {
		t.Errorf("bucket without quantile: want exactly 1 problem, got %q", probs)
	}
	good := `histogram_quantile(0.99, sum by (le, op) (rate(lockproxy_upstream_seconds_bucket{instance=~"$instance", op="renew"}[$__rate_interval])))`
	if probs := checkExpr(exp, good, dashVars); len(probs) != 0 {
		t.Errorf("a correct query was refused: %q", probs)
	}
	if probs := checkRule(rule{name: "X", expr: "up", severity: "page", runbook: "troubleshooting.md#nowhere"}, map[string]bool{}); len(probs) < 4 {
		t.Errorf("a rule without a known severity, summary, description or real runbook passed: %q", probs)
	}
}

// ---- the dashboard

type dashTarget struct{ panel, refID, expr string }

type docRef struct{ panel, title string }

type dashboard struct {
	raw        map[string]any
	targets    []dashTarget
	varQueries []string
	vars       map[string]bool
	docRefs    []docRef
	panels     int
	problems   []string
}

func loadDashboard(t *testing.T) *dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	d := &dashboard{vars: map[string]bool{}}
	if err := json.Unmarshal(b, &d.raw); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	for _, v := range list(dig(d.raw, "templating", "list")) {
		v, _ := v.(map[string]any)
		name, _ := v["name"].(string)
		d.vars[name] = true
		if v["type"] == "query" {
			q := v["query"]
			if m, ok := q.(map[string]any); ok {
				q = m["query"]
			}
			s, _ := q.(string)
			d.varQueries = append(d.varQueries, s)
		}
	}
	d.walk(list(d.raw["panels"]))
	return d
}

// walk collects the queries of panels, and of panels inside collapsed rows.
func (d *dashboard) walk(panels []any) {
	ref := regexp.MustCompile(`troubleshooting\.md, "([^"]+)"`)
	for _, p := range panels {
		p, _ := p.(map[string]any)
		title, _ := p["title"].(string)
		d.walk(list(p["panels"]))
		desc, _ := p["description"].(string)
		for _, m := range ref.FindAllStringSubmatch(desc, -1) {
			d.docRefs = append(d.docRefs, docRef{title, m[1]})
		}
		if p["type"] == "row" {
			continue
		}
		d.panels++
		if uid := dig(p, "datasource", "uid"); uid != "${datasource}" {
			d.problems = append(d.problems, fmt.Sprintf("panel %q uses datasource %v, not the ${datasource} variable", title, uid))
		}
		refs := map[string]bool{}
		for _, tg := range list(p["targets"]) {
			tg, _ := tg.(map[string]any)
			id, _ := tg["refId"].(string)
			expr, _ := tg["expr"].(string)
			if id == "" || refs[id] {
				d.problems = append(d.problems, fmt.Sprintf("panel %q: missing or repeated refId %q", title, id))
			}
			refs[id] = true
			if strings.TrimSpace(expr) == "" {
				d.problems = append(d.problems, fmt.Sprintf("panel %q, query %s: empty expr", title, id))
				continue
			}
			if uid := dig(tg, "datasource", "uid"); uid != nil && uid != "${datasource}" {
				d.problems = append(d.problems, fmt.Sprintf("panel %q, query %s: datasource %v", title, id, uid))
			}
			d.targets = append(d.targets, dashTarget{title, id, expr})
		}
		if len(refs) == 0 {
			d.problems = append(d.problems, fmt.Sprintf("panel %q has no queries", title))
		}
	}
}

// checkDashboard checks what makes the dashboard usable on any Grafana and
// Prometheus: a recent schema, a data source variable, an instance filter,
// and a layout without overlaps.
func checkDashboard(d *dashboard) []string {
	probs := slices.Clone(d.problems)
	if v, _ := d.raw["schemaVersion"].(float64); v < 36 {
		probs = append(probs, fmt.Sprintf("schemaVersion %v: want at least 36", d.raw["schemaVersion"]))
	}
	var haveDS, haveInstance bool
	for _, v := range list(dig(d.raw, "templating", "list")) {
		v, _ := v.(map[string]any)
		switch v["name"] {
		case "datasource":
			haveDS = v["type"] == "datasource" && v["query"] == "prometheus"
		case "instance":
			haveInstance = v["type"] == "query" && dig(v, "datasource", "uid") == "${datasource}"
		}
	}
	if !haveDS {
		probs = append(probs, `no "datasource" variable of type datasource for prometheus`)
	}
	if !haveInstance {
		probs = append(probs, `no "instance" query variable on the ${datasource} data source`)
	}
	ids := map[float64]bool{}
	type cell struct{ x, y int }
	used := map[cell]string{}
	// Panels inside a collapsed row keep the positions they have when it is
	// open, so only the top level can be checked for overlaps.
	var visit func(panels []any, top bool)
	visit = func(panels []any, top bool) {
		for _, p := range panels {
			p, _ := p.(map[string]any)
			title, _ := p["title"].(string)
			id, _ := p["id"].(float64)
			if id == 0 || ids[id] {
				probs = append(probs, fmt.Sprintf("panel %q: missing or repeated id %v", title, p["id"]))
			}
			ids[id] = true
			g, _ := p["gridPos"].(map[string]any)
			x, y, w, h := num(g["x"]), num(g["y"]), num(g["w"]), num(g["h"])
			if w <= 0 || h <= 0 || x < 0 || x+w > 24 {
				probs = append(probs, fmt.Sprintf("panel %q: gridPos %v does not fit 24 columns", title, g))
			}
			overlap := ""
			for cx := x; top && cx < x+w; cx++ {
				for cy := y; cy < y+h; cy++ {
					if other, ok := used[cell{cx, cy}]; ok && overlap == "" {
						overlap = other
					}
					used[cell{cx, cy}] = title
				}
			}
			if overlap != "" {
				probs = append(probs, fmt.Sprintf("panel %q overlaps %q", title, overlap))
			}
			visit(list(p["panels"]), false)
		}
	}
	visit(list(d.raw["panels"]), true)
	return probs
}

// checkVarQuery checks a variable's label_values(metric, label) query.
func checkVarQuery(exp exposition, q string) []string {
	m := regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$`).FindStringSubmatch(strings.TrimSpace(q))
	if m == nil {
		return []string{"not of the form label_values(metric, label)"}
	}
	if exp[m[1]] == nil {
		return []string{fmt.Sprintf("%s is not exported by lockproxy", m[1])}
	}
	if !slices.Contains(targetLabels, m[2]) && exp[m[1]].labels[m[2]] == nil {
		return []string{fmt.Sprintf("%s has no label %s", m[1], m[2])}
	}
	return nil
}

// ---- PromQL

type matcher struct{ label, op, value string }

type selector struct {
	metric   string
	matchers []matcher
}

// query is what checkExpr needs to know of one PromQL expression.
type query struct {
	selectors []selector
	funcs     []string
	by        [][]string // by (...) and on (...) lists
	without   [][]string // without (...) and ignoring (...) lists
	vars      []string   // Grafana variables, such as $__rate_interval
}

var aggregators = map[string]bool{"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true,
	"stdvar": true, "count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
	"limitk": true, "limit_ratio": true}

var keywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true,
	"group_left": true, "group_right": true, "inf": true, "nan": true}

// scan reads the parts of a PromQL expression that name metrics and labels.
// It is not a parser: it trusts Prometheus to judge the syntax, and only
// needs to tell metric names from functions, keywords, labels and strings.
func scan(expr string) (query, error) {
	var q query
	s := expr
	i := 0
	isIdent := func(c byte, first bool) bool {
		return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || !first && c >= '0' && c <= '9'
	}
	ident := func() string {
		j := i
		for i < len(s) && isIdent(s[i], i == j) {
			i++
		}
		return s[j:i]
	}
	skipSpace := func() {
		for i < len(s) && unicode.IsSpace(rune(s[i])) {
			i++
		}
	}
	str := func() (string, error) {
		quote := s[i]
		j := i + 1
		for j < len(s) && s[j] != quote {
			if s[j] == '\\' && quote != '`' {
				j++
			}
			j++
		}
		if j >= len(s) {
			return "", fmt.Errorf("unterminated string at %d", i)
		}
		raw := s[i : j+1]
		i = j + 1
		if quote == '\'' {
			raw = `"` + strings.ReplaceAll(raw[1:len(raw)-1], `"`, `\"`) + `"`
		}
		return strconv.Unquote(raw)
	}
	labelList := func() ([]string, error) {
		skipSpace()
		if i >= len(s) || s[i] != '(' {
			return nil, nil // group_left without labels
		}
		end := strings.IndexByte(s[i:], ')')
		if end < 0 {
			return nil, errors.New("unbalanced ( in a label list")
		}
		var labels []string
		for l := range strings.SplitSeq(s[i+1:i+end], ",") {
			if l = strings.TrimSpace(l); l != "" {
				labels = append(labels, l)
			}
		}
		i += end + 1
		return labels, nil
	}
	matchers := func() ([]matcher, error) {
		i++ // {
		var ms []matcher
		for {
			skipSpace()
			if i >= len(s) {
				return nil, errors.New("unbalanced { in a selector")
			}
			if s[i] == '}' {
				i++
				return ms, nil
			}
			if s[i] == ',' {
				i++
				continue
			}
			var m matcher
			if m.label = ident(); m.label == "" {
				return nil, fmt.Errorf("expected a label name at %d", i)
			}
			skipSpace()
			for _, op := range []string{"=~", "!~", "!=", "="} {
				if strings.HasPrefix(s[i:], op) {
					m.op = op
					i += len(op)
					break
				}
			}
			if m.op == "" {
				return nil, fmt.Errorf("expected a matcher operator after %s", m.label)
			}
			skipSpace()
			if i >= len(s) || !strings.ContainsRune("\"'`", rune(s[i])) {
				return nil, fmt.Errorf("expected a quoted value after %s%s", m.label, m.op)
			}
			v, err := str()
			if err != nil {
				return nil, err
			}
			m.value = v
			if strings.Contains(v, "$") {
				q.vars = append(q.vars, regexp.MustCompile(`\$\{?(\w+)`).FindAllString(v, -1)...)
			}
			ms = append(ms, m)
		}
	}
	depth := 0
	for i < len(s) {
		c := s[i]
		switch {
		case unicode.IsSpace(rune(c)):
			i++
		case c == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			if _, err := str(); err != nil {
				return q, err
			}
		case c == '[':
			end := strings.IndexByte(s[i:], ']')
			if end < 0 {
				return q, errors.New("unbalanced [")
			}
			q.vars = append(q.vars, regexp.MustCompile(`\$\{?(\w+)`).FindAllString(s[i:i+end], -1)...)
			i += end + 1
		case c == '{':
			return q, fmt.Errorf("a selector without a metric name at %d", i)
		case c == '}' || c == ']':
			return q, fmt.Errorf("unbalanced %c at %d", c, i)
		case c == '(':
			depth++
			i++
		case c == ')':
			if depth--; depth < 0 {
				return q, fmt.Errorf("unbalanced ) at %d", i)
			}
			i++
		case c == '$':
			i++
			q.vars = append(q.vars, "$"+ident())
		case c >= '0' && c <= '9' || c == '.':
			for i < len(s) && (isIdent(s[i], false) || s[i] == '.') {
				i++
			}
		case isIdent(c, true):
			name := ident()
			skipSpace()
			next := byte(0)
			if i < len(s) {
				next = s[i]
			}
			switch {
			case name == "by" || name == "on":
				l, err := labelList()
				if err != nil {
					return q, err
				}
				q.by = append(q.by, l)
			case name == "without" || name == "ignoring":
				l, err := labelList()
				if err != nil {
					return q, err
				}
				q.without = append(q.without, l)
			case name == "group_left" || name == "group_right":
				if _, err := labelList(); err != nil {
					return q, err
				}
			case keywords[name]:
			case next == '(' || aggregators[name]:
				q.funcs = append(q.funcs, name)
			default:
				sel := selector{metric: name}
				if next == '{' {
					ms, err := matchers()
					if err != nil {
						return q, err
					}
					sel.matchers = ms
				}
				q.selectors = append(q.selectors, sel)
			}
		default:
			i++
		}
	}
	if depth != 0 {
		return q, errors.New("unbalanced (")
	}
	return q, nil
}

// grafanaVars are the variables Grafana defines on its own.
var grafanaVars = []string{"$__rate_interval", "$__interval", "$__range", "$__interval_ms", "$__range_s", "$__range_ms"}

// checkExpr reports every metric, label or label value in expr that the
// exposition does not have. dashVars is nil for a Prometheus rule, which
// can use no variables. For a dashboard query it holds the dashboard's
// variables, and every selector must be filtered by the instance variable,
// so that picking a sidecar narrows every panel.
func checkExpr(exp exposition, expr string, dashVars map[string]bool) []string {
	dash := dashVars != nil
	q, err := scan(expr)
	if err != nil {
		return []string{err.Error()}
	}
	var probs []string
	if len(q.selectors) == 0 {
		probs = append(probs, "no metric in the expression")
	}
	allowed := map[string]bool{"__name__": true}
	for _, l := range targetLabels {
		allowed[l] = true
	}
	wholeHistogram := false // a _bucket series not narrowed to one le
	for _, sel := range q.selectors {
		f := exp[sel.metric]
		if f == nil {
			if strings.HasPrefix(sel.metric, "process_") && !exp.hasPrefix("process_") {
				continue // this platform has no process collector; Linux does
			}
			probs = append(probs, fmt.Sprintf("%s is not exported by lockproxy", sel.metric))
			continue
		}
		for l := range f.labels {
			allowed[l] = true
		}
		if f.typ == "HISTOGRAM" && strings.HasSuffix(sel.metric, "_bucket") {
			allowed["le"] = true
			wholeHistogram = wholeHistogram || !slices.ContainsFunc(sel.matchers, func(m matcher) bool { return m.label == "le" && m.op == "=" })
		}
		if f.typ == "SUMMARY" && !strings.HasSuffix(sel.metric, "_sum") && !strings.HasSuffix(sel.metric, "_count") {
			allowed["quantile"] = true
		}
	}
	for _, sel := range q.selectors {
		f := exp[sel.metric]
		filtered := false
		for _, m := range sel.matchers {
			if !allowed[m.label] {
				probs = append(probs, fmt.Sprintf("%s: no label %q", sel.metric, m.label))
			}
			if m.label == "instance" && m.op == "=~" && m.value == "$instance" {
				filtered = true
			}
			if f != nil && m.op == "=" && f.labels[m.label] != nil && strings.HasPrefix(sel.metric, "lockproxy_") && !f.labels[m.label][m.value] {
				probs = append(probs, fmt.Sprintf("%s has no %s=%q; it has %v", sel.metric, m.label, m.value, sortedKeys(f.labels[m.label])))
			}
			if f != nil && m.label == "le" && m.op == "=" && strings.HasSuffix(sel.metric, "_bucket") && !f.buckets[m.value] {
				probs = append(probs, fmt.Sprintf("%s has no bucket le=%q; it has %v", sel.metric, m.value, sortedKeys(f.buckets)))
			}
		}
		if dash && !filtered {
			probs = append(probs, fmt.Sprintf(`%s is not filtered by instance=~"$instance"`, sel.metric))
		}
	}
	for _, l := range slices.Concat(slices.Concat(q.by...), slices.Concat(q.without...)) {
		if !allowed[l] {
			probs = append(probs, fmt.Sprintf("grouping by %q, which no metric here has", l))
		}
	}
	if wholeHistogram {
		if !slices.Contains(q.funcs, "histogram_quantile") {
			probs = append(probs, "_bucket series outside histogram_quantile (and not one le)")
		}
		keepsLe := len(q.by) == 0
		for _, l := range q.by {
			keepsLe = keepsLe || slices.Contains(l, "le")
		}
		for _, l := range q.without {
			keepsLe = keepsLe && !slices.Contains(l, "le")
		}
		if !keepsLe {
			probs = append(probs, "histogram_quantile over an aggregation that drops le")
		}
	}
	for _, v := range q.vars {
		switch {
		case !dash:
			probs = append(probs, fmt.Sprintf("Grafana variable %s in a Prometheus rule", v))
		case !dashVars[strings.TrimPrefix(v, "$")] && !slices.Contains(grafanaVars, v):
			probs = append(probs, fmt.Sprintf("variable %s is not defined by the dashboard or Grafana", v))
		}
	}
	return probs
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// ---- alert rules

type rule struct {
	name, expr, forDur, severity  string
	summary, description, runbook string
}

// checkRule checks what an on-call engineer needs from an alert: a
// severity to route on, a summary, a description, and a runbook that exists.
func checkRule(r rule, anchors map[string]bool) []string {
	var probs []string
	if !strings.HasPrefix(r.name, "Lockproxy") {
		probs = append(probs, "name does not start with Lockproxy")
	}
	if !slices.Contains([]string{"critical", "warning", "info"}, r.severity) {
		probs = append(probs, fmt.Sprintf("severity %q: want critical, warning or info", r.severity))
	}
	if r.forDur != "" {
		if _, err := time.ParseDuration(r.forDur); err != nil {
			probs = append(probs, fmt.Sprintf("for: %v", err))
		}
	}
	if strings.TrimSpace(r.summary) == "" {
		probs = append(probs, "no summary annotation")
	}
	if strings.TrimSpace(r.description) == "" {
		probs = append(probs, "no description annotation")
	}
	_, anchor, ok := strings.Cut(r.runbook, "docs/troubleshooting.md#")
	switch {
	case !ok:
		probs = append(probs, fmt.Sprintf("runbook_url %q does not point into docs/troubleshooting.md", r.runbook))
	case !anchors[anchor]:
		probs = append(probs, fmt.Sprintf("runbook_url anchor #%s is no heading of docs/troubleshooting.md", anchor))
	}
	return probs
}

func loadAlerts(t *testing.T) []rule {
	t.Helper()
	b, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Groups []struct {
			Name  string
			Rules []struct {
				Alert, Record, Expr, For string
				Labels                   map[string]string
				Annotations              map[string]string
			}
		}
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true) // a misspelt key is a mistake, not an ignored field
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	var rules []rule
	for _, g := range doc.Groups {
		if g.Name == "" {
			t.Errorf("%s: a group without a name", alertsFile)
		}
		for _, r := range g.Rules {
			if r.Record != "" {
				continue
			}
			rules = append(rules, rule{
				name: r.Alert, expr: r.Expr, forDur: r.For, severity: r.Labels["severity"],
				summary: r.Annotations["summary"], description: r.Annotations["description"],
				runbook: r.Annotations["runbook_url"],
			})
		}
	}
	return rules
}

// ---- docs

type headings struct {
	titles  []string        // as written, without the leading #s
	anchors map[string]bool // as GitHub makes them
}

func readHeadings(t *testing.T, path string) headings {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h := headings{anchors: map[string]bool{}}
	fenced := false
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
		}
		if fenced || !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(line, "#"))
		h.titles = append(h.titles, strings.ReplaceAll(title, "`", ""))
		a := anchor(title)
		for n := 1; h.anchors[a]; n++ {
			a = fmt.Sprintf("%s-%d", anchor(title), n)
		}
		h.anchors[a] = true
	}
	return h
}

// anchor is GitHub's id for a heading: lower case, punctuation dropped,
// spaces turned into hyphens.
func anchor(title string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(title) {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteRune('-')
		}
	}
	return b.String()
}

// ---- JSON helpers

func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

func num(v any) int {
	f, _ := v.(float64)
	return int(f)
}
