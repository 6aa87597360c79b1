package commands

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/lockproxy/lockproxy/lockcore"
	"github.com/lockproxy/lockproxy/resp"
)

// infoSections are INFO's sections in order; "default" and "all" give them all.
var infoSections = []string{"server", "clients", "locks"}

// INFO [section ...]
func (h *Handler) infoCmd(c *resp.Conn, _ *client, args [][]byte) {
	want := map[string]bool{}
	for _, a := range args[1:] {
		s := lowerASCII(string(a))
		if s == "default" || s == "all" || s == "everything" {
			for _, name := range infoSections {
				want[name] = true
			}
			continue
		}
		want[s] = true
	}
	if len(args) == 1 {
		for _, name := range infoSections {
			want[name] = true
		}
	}
	var b strings.Builder
	line := func(k, v string) { b.WriteString(k + ":" + v + "\r\n") }
	section := func(name string, fill func()) {
		if !want[lowerASCII(name)] {
			return
		}
		if b.Len() > 0 {
			b.WriteString("\r\n")
		}
		b.WriteString("# " + name + "\r\n")
		fill()
	}
	section("Server", func() {
		line("redis_version", redisVersion)
		line("lockproxy_version", h.cfg.Version)
		line("sidecar_id", h.locks.ID())
		line("redis_mode", "standalone")
		line("os", runtime.GOOS+" "+runtime.GOARCH)
		line("go_version", runtime.Version())
		line("process_id", strconv.Itoa(os.Getpid()))
		line("listen", c.LocalAddr().String())
		up := time.Since(h.started)
		line("uptime_in_seconds", strconv.Itoa(int(up.Seconds())))
		line("uptime_in_days", strconv.Itoa(int(up.Hours()/24)))
	})
	section("Clients", func() {
		line("connected_clients", strconv.FormatInt(h.clients.Load(), 10))
	})
	section("Locks", func() {
		st := h.locks.Stats()
		line("store", h.cfg.Store)
		if h.cfg.UpstreamUp != nil {
			line("upstream_up", strconv.FormatInt(boolInt(h.cfg.UpstreamUp()), 10))
		}
		if h.cfg.UpstreamRisks != nil {
			line("upstream_risks", strings.Join(h.cfg.UpstreamRisks(), ","))
		}
		if h.cfg.UpstreamPersistence != nil {
			line("upstream_persistence", h.cfg.UpstreamPersistence())
			line("replica_acks", strconv.Itoa(h.cfg.ReplicaAcks))
		}
		// Rounded up, as LOCK.INFO's ttl is: 0 only once the period is over.
		line("quiet_period_left_ms", strconv.FormatInt(int64((h.locks.QuietLeft()+time.Millisecond-1)/time.Millisecond), 10))
		line("locks_held", strconv.FormatInt(st.Held, 10))
		line("locks_held_shared", strconv.FormatInt(st.HeldShared, 10))
		line("locks_held_semaphore", strconv.FormatInt(st.HeldPermits, 10))
		line("locks_lost_total", strconv.FormatInt(st.Lost, 10))
		line("waiters", strconv.FormatInt(st.Waiters, 10))
		line("detached_locks", strconv.FormatInt(st.Detached, 10))
		for i, how := range lockcore.HandOffKinds {
			line("handoffs_"+how+"_total", strconv.FormatInt(st.HandOffs[i], 10))
		}
		for _, r := range countedResults {
			line(r+"_total", strconv.FormatInt(h.counts[r].Load(), 10))
		}
		line("default_ttl_ms", strconv.FormatInt(h.locks.Config().DefaultTTL.Milliseconds(), 10))
		line("min_ttl_ms", strconv.FormatInt(h.minTTLMS(), 10))
		line("max_ttl_ms", strconv.FormatInt(h.cfg.MaxTTL.Milliseconds(), 10))
		line("local_handoffs", strconv.Itoa(h.locks.Config().LocalHandoffs))
	})
	c.WriteVerbatim(b.String())
}
