package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lockproxy/lockproxy/internal/redistest"
	"github.com/lockproxy/lockproxy/internal/syncbuf"
)

// testPKI is a throwaway CA with a server certificate (127.0.0.1, ::1,
// localhost) and a client certificate, as PEM files in a temporary dir.
type testPKI struct {
	dir        string
	ca         *x509.Certificate
	caKey      *ecdsa.PrivateKey
	pool       *x509.CertPool
	caFile     string
	serverCert string
	serverKey  string
	clientCert string
	clientKey  string
}

func newPKI(t testing.TB) *testPKI {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "lockproxy test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{dir: t.TempDir(), ca: ca, caKey: key, pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	p.caFile = filepath.Join(p.dir, "ca.crt")
	writePEM(t, p.caFile, "CERTIFICATE", der)
	p.serverCert, p.serverKey = p.issue(t, "server", 2, true)
	p.clientCert, p.clientKey = p.issue(t, "client", 3, false)
	return p
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// issue writes name.crt and name.key, a leaf signed by the CA: a server
// certificate for the loopback addresses, or a client certificate.
func (p *testPKI) issue(t testing.TB, name string, serial int64, server bool) (certFile, keyFile string) {
	t.Helper()
	cert, key := p.issueDER(t, serial, server)
	certFile, keyFile = filepath.Join(p.dir, name+".crt"), filepath.Join(p.dir, name+".key")
	writePEM(t, certFile, "CERTIFICATE", cert)
	writePEM(t, keyFile, "PRIVATE KEY", key)
	return certFile, keyFile
}

func (p *testPKI) issueDER(t testing.TB, serial int64, server bool) (cert, key []byte) {
	t.Helper()
	k := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "lockproxy client"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.Subject.CommonName = "localhost"
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	cert, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &k.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	key, err = x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// clientTLS trusts only the test CA.
func (p *testPKI) clientTLS() *tls.Config { return &tls.Config{RootCAs: p.pool} }

// settings are startProxy's settings for a TLS listener, plus more.
func (p *testPKI) settings(more map[string]string) map[string]string {
	s := map[string]string{"TLS_CERT": p.serverCert, "TLS_KEY": p.serverKey}
	for k, v := range more {
		s[k] = v
	}
	return s
}

// tlsClient is a go-redis client to p over TLS.
func tlsClient(t testing.TB, p *proxy, conf *tls.Config, proto int) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: p.Addr().String(), Protocol: proto, TLSConfig: conf, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

func tlsConn(t testing.TB, p *proxy, conf *tls.Config, proto int) *redis.Conn {
	t.Helper()
	c := tlsClient(t, p, conf, proto).Conn()
	t.Cleanup(func() { c.Close() })
	return c
}

// dialTLSRaw is dialRaw over TLS, for byte-level tests.
func dialTLSRaw(t testing.TB, addr string, conf *tls.Config) (*raw, *tls.Conn) {
	t.Helper()
	c, err := tls.Dial("tcp", addr, conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &raw{Conn: c, r: bufio.NewReader(c)}, c
}

func TestTLSListener(t *testing.T) {
	pki := newPKI(t)
	p := startProxy(t, pki.settings(nil))

	protocols(t, func(t *testing.T, proto int) {
		c := tlsConn(t, p, pki.clientTLS(), proto)
		name := "tls:" + t.Name()
		tok := mustToken(t, c, name, 60000)
		if in := info(t, c, name); in["held"] != int64(1) || in["owner"] != "self" {
			t.Errorf("LOCK.INFO over TLS = %v", in)
		}
		mustNull(t, tlsConn(t, p, pki.clientTLS(), proto), name)
		mustInt(t, 1, c, "LOCK.RELEASE", name, tok)
		if got := held(t, c); len(got) != 0 {
			t.Errorf("LOCK.HELD after release = %v", got)
		}
	})

	t.Run("plain TCP client", func(t *testing.T) {
		if err := p.client(t, 2).Ping(bg()).Err(); err == nil {
			t.Error("PING without TLS succeeded")
		}
		r := dialRaw(t, p.Addr().String())
		r.send(t, cmd("PING"))
		if l := r.line(t); !strings.HasPrefix(l, "-ERR Protocol error: this port speaks TLS") {
			t.Errorf("raw PING without TLS answered %q", l)
		}
		if !r.closed(t) {
			t.Error("a plain-TCP client was left connected")
		}
	})

	t.Run("client does not trust the CA", func(t *testing.T) {
		other := newPKI(t)
		err := tlsClient(t, p, other.clientTLS(), 2).Ping(bg()).Err()
		var unknown x509.UnknownAuthorityError
		if !errors.As(err, &unknown) {
			t.Errorf("PING trusting another CA: %v, want x509.UnknownAuthorityError", err)
		}
	})

	t.Run("TLS 1.1 refused", func(t *testing.T) {
		conf := pki.clientTLS()
		conf.MinVersion, conf.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
		if err := tlsClient(t, p, conf, 2).Ping(bg()).Err(); err == nil || !strings.Contains(err.Error(), "protocol version") {
			t.Errorf("PING over TLS 1.1: %v, want a protocol version alert", err)
		}
	})
}

// Block stops its background read with a read deadline in the past, then
// reads again: over TLS the deadline must not poison the connection, a
// hang-up must still be noticed, and requests pipelined behind a blocked
// command must be served.
func TestTLSBlockingCommands(t *testing.T) {
	pki := newPKI(t)
	p := startProxy(t, pki.settings(nil))
	holder, watcher := tlsConn(t, p, pki.clientTLS(), 2), tlsConn(t, p, pki.clientTLS(), 3)
	waiters := func(name string) any { return info(t, watcher, name)["waiters"] }

	t.Run("WAIT, then pipelined commands", func(t *testing.T) {
		mustToken(t, holder, "x", 60000)
		r, _ := dialTLSRaw(t, p.Addr().String(), pki.clientTLS())
		// LOCK.HELD is in the same write as the blocking command; PING
		// comes while it blocks, so the background read takes it in.
		r.send(t, cmd("LOCK.ACQUIRE", "x", "1000", "WAIT", "5000")+cmd("LOCK.HELD"))
		waitFor(t, func() bool { return waiters("x") == int64(1) })
		r.send(t, cmd("PING"))
		mustInt(t, 1, holder, "LOCK.RELEASE", "x")
		if f := r.frame(t); len(f) != 2 || !strings.Contains(f[1], ":") {
			t.Fatalf("LOCK.ACQUIRE x 1000 WAIT 5000 = %q, want a token", f)
		}
		if f := r.frame(t); !slices.Equal(f, []string{"*1", "$1", "x"}) {
			t.Errorf("pipelined LOCK.HELD = %q", f)
		}
		if f := r.frame(t); !slices.Equal(f, []string{"+PONG"}) {
			t.Errorf("PING sent during WAIT = %q", f)
		}
		// A WAIT that runs out also stops the background read.
		mustToken(t, holder, "y", 60000)
		r.send(t, cmd("LOCK.ACQUIRE", "y", "1000", "WAIT", "50")+cmd("PING"))
		if f := r.frame(t); !slices.Equal(f, []string{"$-1"}) {
			t.Errorf("LOCK.ACQUIRE y WAIT 50 = %q, want a null", f)
		}
		if f := r.frame(t); !slices.Equal(f, []string{"+PONG"}) {
			t.Errorf("PING after a timed-out WAIT = %q", f)
		}
		r.send(t, cmd("LOCK.RELEASE", "x"))
		if l := r.line(t); l != ":1" {
			t.Errorf("LOCK.RELEASE x = %q", l)
		}
	})

	for _, tc := range []struct {
		name   string
		hangUp func(c *tls.Conn) error
	}{
		// close_notify, then FIN.
		{"TLS close", func(c *tls.Conn) error { return c.Close() }},
		// FIN without close_notify, as a crashed client leaves it.
		{"TCP close", func(c *tls.Conn) error { return c.NetConn().Close() }},
	} {
		t.Run("hang-up in WAIT: "+tc.name, func(t *testing.T) {
			name := "gone:" + tc.name
			tok := mustToken(t, holder, name, 60000)
			r, c := dialTLSRaw(t, p.Addr().String(), pki.clientTLS())
			// Far longer than waitFor's limit: only the hang-up can end it
			// in time.
			r.send(t, cmd("LOCK.ACQUIRE", name, "60000", "WAIT", "60000"))
			waitFor(t, func() bool { return waiters(name) == int64(1) })
			if err := tc.hangUp(c); err != nil {
				t.Fatal(err)
			}
			waitFor(t, func() bool { return waiters(name) == int64(0) })
			mustInt(t, 1, holder, "LOCK.RELEASE", name, tok)
			mustToken(t, watcher, name) // free: the departed waiter took nothing
		})
	}
}

// redis-cli over TLS, when this machine's redis-cli was built with TLS.
func TestTLSRedisCLI(t *testing.T) {
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatal("redis-cli not found: install it with `sudo apt-get install -y redis-tools`, or run `make test`")
	}
	help, _ := exec.Command(cli, "--help").CombinedOutput()
	if !strings.Contains(string(help), "--tls") {
		t.Skip("this redis-cli was built without TLS (no --tls in `redis-cli --help`); the go-redis TLS tests cover the listener")
	}
	pki := newPKI(t)
	p := startProxy(t, pki.settings(nil))
	host, port, _ := strings.Cut(p.Addr().String(), ":")
	base := []string{"--tls", "--cacert", pki.caFile, "-h", host, "-p", port}
	run := func(args ...string) string {
		out, err := exec.Command(cli, append(slices.Clone(base), args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("redis-cli %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	tok := run("LOCK.ACQUIRE", "cli", "60000", "DETACHED")
	if !strings.Contains(tok, ":") {
		t.Fatalf("LOCK.ACQUIRE printed %q", tok)
	}
	if out := run("-3", "LOCK.INFO", "cli"); !strings.Contains(out, "held") || !strings.Contains(out, "other") {
		t.Errorf("redis-cli -3 LOCK.INFO printed %q", out)
	}
	if out := run("LOCK.RELEASE", "cli", tok); out != "1" {
		t.Errorf("LOCK.RELEASE printed %q", out)
	}
	// One session: a WAIT that succeeds at once, then more commands.
	session := exec.Command(cli, base...)
	session.Stdin = strings.NewReader("LOCK.ACQUIRE piped 30000 WAIT 1000\nLOCK.HELD\nLOCK.RELEASE piped\n")
	out, err := session.CombinedOutput()
	if lines := strings.Fields(string(out)); err != nil || len(lines) != 3 || lines[1] != "piped" || lines[2] != "1" {
		t.Errorf("piped session over TLS: %v\n%s", err, out)
	}
	// Without --tls, redis-cli is told why.
	plain, _ := exec.Command(cli, "-h", host, "-p", port, "PING").CombinedOutput()
	if !strings.Contains(string(plain), "this port speaks TLS") {
		t.Errorf("redis-cli without --tls printed %q", plain)
	}
}

// startTLSRedis runs redis-server with a TLS port next to its plain port
// and unix socket, which redistest uses to see that it is up.
func startTLSRedis(t *testing.T, pki *testPKI) (srv *redistest.Server, url string) {
	t.Helper()
	srv = redistest.Start(t, redistest.Options{PortArgs: []string{"--tls-port"}, Args: []string{
		"--tls-cert-file", pki.serverCert,
		"--tls-key-file", pki.serverKey,
		"--tls-ca-cert-file", pki.caFile,
		"--tls-auth-clients", "yes",
	}})
	return srv, "rediss://127.0.0.1:" + strconv.Itoa(srv.Port("--tls-port")) + "/0"
}

func TestTLSUpstream(t *testing.T) {
	pki := newPKI(t)
	srv, url := startTLSRedis(t, pki)

	t.Run("mutual TLS", func(t *testing.T) {
		p := startProxy(t, map[string]string{"UPSTREAM": url, "UPSTREAM_TLS_CA": pki.caFile,
			"UPSTREAM_TLS_CERT": pki.clientCert, "UPSTREAM_TLS_KEY": pki.clientKey})
		if p.Ready() != nil {
			t.Fatalf("upstream reported down:\n%s", p.logs)
		}
		c := p.conn(t, 2)
		tok := mustToken(t, c, "up-tls", 60000)
		if n := srv.Client(t).Exists(bg(), "lock:{up-tls}").Val(); n != 1 {
			t.Errorf("the lock is not in the TLS upstream (EXISTS = %d)", n)
		}
		mustInt(t, 1, c, "LOCK.RELEASE", "up-tls", tok)
		if n := srv.Client(t).Exists(bg(), "lock:{up-tls}").Val(); n != 0 {
			t.Errorf("the released lock is still in the upstream (EXISTS = %d)", n)
		}
	})

	// Both listener and upstream over TLS in one process.
	t.Run("TLS on both sides", func(t *testing.T) {
		p := startProxy(t, pki.settings(map[string]string{"UPSTREAM": url, "UPSTREAM_TLS_CA": pki.caFile,
			"UPSTREAM_TLS_CERT": pki.clientCert, "UPSTREAM_TLS_KEY": pki.clientKey}))
		c := tlsConn(t, p, pki.clientTLS(), 3)
		tok := mustToken(t, c, "both", 60000)
		mustInt(t, 1, c, "LOCK.RELEASE", "both", tok)
	})

	for _, tc := range []struct{ name, ca string }{
		// The server asks for a client certificate (tls-auth-clients yes).
		{"no client certificate", pki.caFile},
		// The CA file replaces, not extends, the roots that verify Redis.
		{"another CA", newPKI(t).caFile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startProxy(t, map[string]string{"UPSTREAM": url, "UPSTREAM_TLS_CA": tc.ca, "UPSTREAM_TIMEOUT": "500ms"})
			if p.Ready() == nil {
				t.Error("upstream reported up")
			}
			err := do(t, p.conn(t, 2), "LOCK.ACQUIRE", "refused", 1000).Err()
			if err == nil || !strings.HasPrefix(err.Error(), "UPSTREAM") {
				t.Errorf("LOCK.ACQUIRE: %v, want an UPSTREAM error", err)
			}
		})
	}
}

// Bad TLS files stop start-up, naming the variable to fix.
func TestTLSConfigErrors(t *testing.T) {
	pki := newPKI(t)
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing.pem")
	const up = "rediss://127.0.0.1:1/0"
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"missing cert", map[string]string{"TLS_CERT": missing, "TLS_KEY": pki.serverKey}, "LOCKPROXY_TLS_CERT"},
		{"missing key", map[string]string{"TLS_CERT": pki.serverCert, "TLS_KEY": missing}, "LOCKPROXY_TLS_KEY"},
		{"mismatched pair", map[string]string{"TLS_CERT": pki.serverCert, "TLS_KEY": pki.clientKey}, "LOCKPROXY_TLS_CERT"},
		{"cert not PEM", map[string]string{"TLS_CERT": notPEM, "TLS_KEY": pki.serverKey}, "LOCKPROXY_TLS_CERT"},
		{"cert without key", map[string]string{"TLS_CERT": pki.serverCert}, "LOCKPROXY_TLS_CERT"},
		{"unix socket", map[string]string{"LISTEN": "unix:" + filepath.Join(t.TempDir(), "s.sock"),
			"TLS_CERT": pki.serverCert, "TLS_KEY": pki.serverKey}, "LOCKPROXY_TLS_CERT"},
		{"missing CA", map[string]string{"UPSTREAM": up, "UPSTREAM_TLS_CA": missing}, "LOCKPROXY_UPSTREAM_TLS_CA"},
		{"CA not PEM", map[string]string{"UPSTREAM": up, "UPSTREAM_TLS_CA": notPEM}, "LOCKPROXY_UPSTREAM_TLS_CA"},
		{"CA for redis://", map[string]string{"UPSTREAM": "redis://127.0.0.1:1/0", "UPSTREAM_TLS_CA": pki.caFile}, "LOCKPROXY_UPSTREAM_TLS_CA"},
		{"missing client cert", map[string]string{"UPSTREAM": up, "UPSTREAM_TLS_CERT": missing, "UPSTREAM_TLS_KEY": pki.clientKey}, "LOCKPROXY_UPSTREAM_TLS_CERT"},
		{"missing client key", map[string]string{"UPSTREAM": up, "UPSTREAM_TLS_CERT": pki.clientCert, "UPSTREAM_TLS_KEY": missing}, "LOCKPROXY_UPSTREAM_TLS_KEY"},
		{"mismatched client pair", map[string]string{"UPSTREAM": up, "UPSTREAM_TLS_CERT": pki.clientCert, "UPSTREAM_TLS_KEY": pki.serverKey}, "LOCKPROXY_UPSTREAM_TLS_CERT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			environ := []string{"LOCKPROXY_LISTEN=127.0.0.1:0"}
			for k, v := range tc.env {
				environ = append(environ, "LOCKPROXY_"+k+"="+v)
			}
			// Already cancelled: should start-up succeed after all, run
			// returns at once instead of serving.
			ctx, cancel := context.WithCancel(bg())
			cancel()
			err := run(ctx, nil, environ, nil, &syncbuf.Buffer{}, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one naming %s", err, tc.want)
			}
		})
	}
}

// A certificate renewed on disk is served to new connections without a
// restart; one that does not load yet (key not yet written) leaves the
// previous one in use.
func TestTLSCertificateRotation(t *testing.T) {
	pki := newPKI(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	// As a Kubernetes Secret volume does: new files, renamed into place.
	replace := func(path, typ string, der []byte) {
		t.Helper()
		tmp := path + ".tmp"
		writePEM(t, tmp, typ, der)
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	cert, key := pki.issueDER(t, 100, true)
	replace(certFile, "CERTIFICATE", cert)
	replace(keyFile, "PRIVATE KEY", key)
	p := startProxy(t, map[string]string{"TLS_CERT": certFile, "TLS_KEY": keyFile})
	served := func() int64 {
		t.Helper()
		c, err := tls.Dial("tcp", p.Addr().String(), pki.clientTLS())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	if s := served(); s != 100 {
		t.Fatalf("serial %d served, want 100", s)
	}
	open := tlsConn(t, p, pki.clientTLS(), 2)
	tok := mustToken(t, open, "rotate", 60000)

	cert, key = pki.issueDER(t, 101, true)
	replace(certFile, "CERTIFICATE", cert)
	replace(keyFile, "PRIVATE KEY", key)
	if s := served(); s != 101 {
		t.Errorf("serial %d served after the files were replaced, want 101", s)
	}
	mustInt(t, 1, open, "LOCK.RELEASE", "rotate", tok) // connections made before carry on

	// Half a rotation: the certificate is new, its key not written yet.
	cert, key = pki.issueDER(t, 102, true)
	replace(certFile, "CERTIFICATE", cert)
	if s := served(); s != 101 {
		t.Errorf("serial %d served while the key does not match, want the previous 101", s)
	}
	if !strings.Contains(p.logs.String(), "do not load") {
		t.Errorf("no warning about the mismatched files:\n%s", p.logs)
	}
	replace(keyFile, "PRIVATE KEY", key)
	if s := served(); s != 102 {
		t.Errorf("serial %d served once the key was written, want 102", s)
	}
}

// The handshake is bounded by LOCKPROXY_REQUEST_TIMEOUT; the connection
// after it is not, as an idle plain connection is not.
func TestTLSHandshakeTimeout(t *testing.T) {
	pki := newPKI(t)
	const timeout = 200 * time.Millisecond
	p := startProxy(t, pki.settings(map[string]string{"REQUEST_TIMEOUT": timeout.String()}))

	silent := dialRaw(t, p.Addr().String())
	half := dialRaw(t, p.Addr().String())
	half.send(t, "\x16\x03\x01\x00\x80") // a handshake record header, and no record
	for name, r := range map[string]*raw{"silent": silent, "half a record": half} {
		if !r.closed(t) {
			t.Errorf("%s client not disconnected", name)
		}
	}

	r, _ := dialTLSRaw(t, p.Addr().String(), pki.clientTLS())
	r.send(t, cmd("PING"))
	if l := r.line(t); l != "+PONG" {
		t.Fatalf("PING = %q", l)
	}
	_ = r.SetReadDeadline(time.Now().Add(3 * timeout))
	if _, err := r.r.ReadByte(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("idle TLS connection: read returned %v, want our own deadline to pass", err)
	}
	_ = r.SetReadDeadline(time.Time{})
	r.send(t, cmd("PING"))
	if l := r.line(t); l != "+PONG" {
		t.Errorf("PING after idling = %q", l)
	}
}

// A client over LOCKPROXY_MAX_CLIENTS is told so over TLS, and one that
// never completes its handshake does not hold up the ones behind it.
func TestTLSMaxClients(t *testing.T) {
	pki := newPKI(t)
	p := startProxy(t, pki.settings(map[string]string{"MAX_CLIENTS": "1"}))
	first := tlsConn(t, p, pki.clientTLS(), 2)
	if err := first.Ping(bg()).Err(); err != nil {
		t.Fatal(err)
	}
	dialRaw(t, p.Addr().String()) // connects, never says a word
	r, _ := dialTLSRaw(t, p.Addr().String(), pki.clientTLS())
	if l := r.line(t); l != "-ERR max number of clients reached" {
		t.Errorf("client over the limit read %q", l)
	}
	if !r.closed(t) {
		t.Error("client over the limit left open")
	}
}

// A Redis Cluster over TLS, with client certificates: the URL's TLS and
// the upstream TLS files reach every node, each checked against the
// address lockproxy dials, which is what the Cluster announces.
func TestTLSUpstreamCluster(t *testing.T) {
	pki := newPKI(t)
	cl := redistest.StartClusterWith(t, redistest.ClusterOptions{Masters: 3, PortArgs: []string{"--tls-port"}, Args: []string{
		"--tls-cert-file", pki.serverCert,
		"--tls-key-file", pki.serverKey,
		"--tls-ca-cert-file", pki.caFile,
		"--tls-auth-clients", "yes",
		// The bus and CLUSTER SHARDS/SLOTS go over TLS too, so nodes
		// announce their TLS ports; a node dials another with the
		// client certificate.
		"--tls-cluster", "yes",
		"--tls-client-cert-file", pki.clientCert,
		"--tls-client-key-file", pki.clientKey,
	}})
	tlsAddr := func(s *redistest.Server) string { return "127.0.0.1:" + strconv.Itoa(s.Port("--tls-port")) }
	url := "rediss://" + tlsAddr(cl.Nodes[0]) + "?addr=" + tlsAddr(cl.Nodes[1]) + "&addr=" + tlsAddr(cl.Nodes[2])
	p := startProxy(t, map[string]string{"UPSTREAM": url, "UPSTREAM_TLS_CA": pki.caFile,
		"UPSTREAM_TLS_CERT": pki.clientCert, "UPSTREAM_TLS_KEY": pki.clientKey})
	if p.Ready() != nil {
		t.Fatalf("upstream reported down:\n%s", p.logs)
	}
	c := p.conn(t, 2)
	plain := cl.Client(t)
	onEveryPrimary(t, cl, "tls-cluster-", func(name string) {
		tok := mustToken(t, c, name, 60000)
		if n := plain.Exists(bg(), "lock:{"+name+"}").Val(); n != 1 {
			t.Fatalf("%s is not in the Cluster (EXISTS = %d)", name, n)
		}
		mustInt(t, 1, c, "LOCK.RELEASE", name, tok)
	})
}
