package sidecarproc_test

import (
	"net"
	"testing"

	"github.com/lockproxy/lockproxy/internal/sidecarproc"
)

// A built sidecar starts, answers on the address it logged, and stops.
func TestStartAndStop(t *testing.T) {
	bin, err := sidecarproc.Build(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p := sidecarproc.Start(t, bin)
	c, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("PING\r\n"))
	buf := make([]byte, 7)
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "+PONG\r\n" {
		t.Fatalf("PING = %q, %v", buf[:n], err)
	}
	c.Close()
	p.Stop(t)
	if _, err := net.Dial("tcp", p.Addr); err == nil {
		t.Error("the sidecar still answers after Stop")
	}
}
