//go:build linux

package faults

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// row is one scenario's line in the report.
type row struct {
	fault       string
	injections  int
	grants      int
	violations  int
	pushes      int64         // lock.lost pushes clients received
	lostInfo    int64         // INFO locks_lost_total, summed over live sidecars
	lostUnknown bool          // some sidecar was dead at the end: its count is gone
	detect      time.Duration // worst time from injection to the holder being told; 0: not meaningful
	detectWhat  string        // what detect measures, when it is not a lock.lost
	notes       []string
	failed      bool
	skipped     bool
}

func (r *row) note(format string, args ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

// report gathers the rows of every scenario.
type report struct {
	mu   sync.Mutex
	rows []*row
}

// add starts a row for the subtest t, marking it failed if t fails.
func (rep *report) add(t *testing.T, fault string) *row {
	r := &row{fault: fault}
	rep.mu.Lock()
	rep.rows = append(rep.rows, r)
	rep.mu.Unlock()
	t.Cleanup(func() { r.failed, r.skipped = t.Failed(), t.Skipped() })
	return r
}

// markdown renders the table.
func (rep *report) markdown() string {
	rep.mu.Lock()
	defer rep.mu.Unlock()
	var b strings.Builder
	b.WriteString("| # | fault | result | injections | grants | violations | locks lost: pushes / INFO | worst time-to-detect | notes |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
	for i, r := range rep.rows {
		result := "ok"
		switch {
		case r.failed:
			result = "**FAIL**"
		case r.skipped:
			result = "skipped"
		}
		info := fmt.Sprint(r.lostInfo)
		if r.lostUnknown {
			info += "+?"
		}
		notes := slices.Clip(r.notes)
		detect := "–"
		if r.detect > 0 {
			detect = r.detect.Round(time.Millisecond).String()
			if r.detectWhat != "" {
				detect += " (" + r.detectWhat + ")"
			}
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %d | %d | %d | %d / %s | %s | %s |\n", i+1, r.fault, result,
			r.injections, r.grants, r.violations, r.pushes, info, detect,
			strings.ReplaceAll(strings.Join(notes, "; "), "|", `\|`))
	}
	return b.String()
}

// publish logs the table and, when FAULTS_REPORT names a file, writes it
// there as markdown.
func (rep *report) publish(t *testing.T) {
	table := rep.markdown()
	t.Logf("fault-injection report:\n%s", table)
	if path := os.Getenv("FAULTS_REPORT"); path != "" {
		head := "# lockproxy fault-injection report\n\n" + time.Now().UTC().Format(time.RFC3339) + "\n\n"
		if err := os.WriteFile(path, []byte(head+table), 0o644); err != nil {
			t.Errorf("FAULTS_REPORT: %v", err)
		}
	}
}
