package sidecar

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lockproxy/lockproxy/lockcore/redisstore"
	"github.com/lockproxy/lockproxy/resp"
)

// listenRESP serves RESP on network/addr, over TLS with conf when it is
// set, else with LOCKPROXY_TLS_CERT's files when that is set. Its errors
// name the variable at fault.
func listenRESP(cfg Config, conf *tls.Config, network, addr string, h resp.Handler, opt resp.Options) (*resp.Server, error) {
	if conf == nil && cfg.TLSCert == "" {
		srv, err := resp.Listen(network, addr, h, opt)
		if err != nil {
			return nil, fmt.Errorf("LOCKPROXY_LISTEN: %w", err)
		}
		return srv, nil
	}
	if network != "tcp" {
		// Who may connect to a unix socket is decided by its file's
		// permissions, and its bytes never leave the host: TLS would only
		// cost a handshake per connection.
		return nil, errors.New("LOCKPROXY_TLS_CERT: TLS is for TCP listeners; a unix: LOCKPROXY_LISTEN is protected by the socket file's permissions")
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if conf == nil {
		kp, err := loadKeyPair(cfg.TLSCert, cfg.TLSKey, "LOCKPROXY_TLS_CERT", "LOCKPROXY_TLS_KEY", log)
		if err != nil {
			return nil, err
		}
		conf = &tls.Config{
			MinVersion: tls.VersionTLS12,
			// Read per handshake rather than fixed in Certificates, so that a
			// renewed certificate is served without a restart.
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return kp.get(), nil },
		}
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		return nil, fmt.Errorf("LOCKPROXY_LISTEN: %w", err)
	}
	return resp.Serve(&tlsListener{Listener: ln, conf: conf, timeout: cfg.RequestTimeout, log: log}, h, opt), nil
}

// plainClientError is the reply to a client that speaks RESP without TLS
// to the TLS port.
const plainClientError = "-ERR Protocol error: this port speaks TLS (LOCKPROXY_TLS_CERT is set): connect with TLS (redis-cli --tls, a rediss:// URL)\r\n"

// tlsListener hands out server-side TLS connections whose handshake is
// bounded in time.
type tlsListener struct {
	net.Listener
	conf    *tls.Config
	timeout time.Duration
	log     *slog.Logger
}

func (l *tlsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &tlsServerConn{Conn: tls.Server(c, l.conf), timeout: l.timeout, log: l.log}, nil
}

// tlsServerConn runs the handshake, on first use, within a time limit.
// crypto/tls has none: a client that opens a connection and sends half a
// ClientHello would otherwise hold a connection slot forever, and the
// accept loop too when the server writes "max number of clients" to it.
// HandshakeContext is used instead of deadlines so that the deadlines the
// resp package sets stay its own.
type tlsServerConn struct {
	*tls.Conn
	timeout time.Duration
	log     *slog.Logger

	writeDeadline atomic.Int64 // UnixNano of the latest write deadline; 0: none
	once          sync.Once
	err           error // the handshake's, once done
}

func (c *tlsServerConn) handshake(limit time.Time) error {
	c.once.Do(func() {
		deadline := time.Now().Add(c.timeout)
		if !limit.IsZero() && limit.Before(deadline) {
			deadline = limit
		}
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		defer cancel()
		c.err = c.Conn.HandshakeContext(ctx)
		if c.err == nil {
			return
		}
		// Debug only: port scanners and plain-TCP clients produce these
		// all day, and the client sees its own error.
		c.log.Debug("TLS handshake failed", "remote", c.RemoteAddr().String(), "err", c.err)
		var rhe tls.RecordHeaderError
		if errors.As(c.err, &rhe) && rhe.Conn != nil {
			// Not TLS at all: most likely a Redis client without TLS, which
			// would otherwise only see the connection close. As net/http
			// does for HTTP sent to an HTTPS port, answer in its protocol.
			_ = rhe.Conn.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = io.WriteString(rhe.Conn, plainClientError)
		}
	})
	return c.err
}

func (c *tlsServerConn) Read(b []byte) (int, error) {
	if err := c.handshake(time.Time{}); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

// Write before any Read is the resp server refusing a client over
// MaxClients from its accept loop: the handshake it forces must end by the
// write deadline, so that the accept loop does not wait on the client.
func (c *tlsServerConn) Write(b []byte) (int, error) {
	var limit time.Time
	if ns := c.writeDeadline.Load(); ns != 0 {
		limit = time.Unix(0, ns)
	}
	if err := c.handshake(limit); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

func (c *tlsServerConn) SetWriteDeadline(t time.Time) error {
	c.noteWriteDeadline(t)
	return c.Conn.SetWriteDeadline(t)
}

func (c *tlsServerConn) SetDeadline(t time.Time) error {
	c.noteWriteDeadline(t)
	return c.Conn.SetDeadline(t)
}

func (c *tlsServerConn) noteWriteDeadline(t time.Time) {
	var ns int64
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	c.writeDeadline.Store(ns)
}

// upstreamClient is the client LOCKPROXY_UPSTREAM_MODE names, and the mode
// it resolved to: for one Redis, redisstore.NewClient; for Sentinels,
// redisstore.NewFailoverClient with the Sentinels' own credentials; for a
// Cluster, redisstore.NewClusterClient. Each gets the upstream TLS files.
// In auto mode, one server that reports cluster_enabled:1 is a Cluster's
// node: asked once, here, for up to LOCKPROXY_UPSTREAM_TIMEOUT. One that
// does not answer is taken as one Redis; should it be a Cluster's node
// after all, its health check says so (redisstore's Health), and nothing is
// granted through it.
func upstreamClient(cfg Config, log *slog.Logger) (rdb redis.UniversalClient, mode string, err error) {
	withFiles, err := upstreamTLS(cfg, log)
	if err != nil {
		return nil, "", err
	}
	switch mode = cfg.upstreamMode(); mode {
	case modeSingle:
		rdb, err = redisstore.NewClient(cfg.Upstream, func(o *redis.Options) { withFiles(o.TLSConfig) })
		if err != nil || !strings.EqualFold(cfg.UpstreamMode, modeAuto) {
			break
		}
		ctx, cancel := context.WithTimeout(context.Background(), cfg.UpstreamTimeout)
		cluster, perr := redisstore.IsClusterNode(ctx, rdb)
		cancel()
		switch {
		case perr != nil:
			log.Warn("could not ask the upstream whether it is a Redis Cluster's node; taking it as one Redis "+
				"(set LOCKPROXY_UPSTREAM_MODE to be sure)", "err", perr)
		case cluster:
			rdb.Close()
			mode = modeCluster
			rdb, err = clusterClient(cfg, withFiles)
		}
	case modeCluster:
		rdb, err = clusterClient(cfg, withFiles)
	case modeSentinel:
		rdb, err = redisstore.NewFailoverClient(cfg.Upstream, cfg.sentinelAuth, func(o *redis.FailoverOptions) {
			// One TLSConfig for the Sentinels and the data nodes: go-redis
			// has no second one, so a rediss:// URL means TLS to both.
			withFiles(o.TLSConfig)
		})
	default:
		return nil, "", fmt.Errorf("LOCKPROXY_UPSTREAM_MODE: %q is not supported", mode)
	}
	if err != nil {
		return nil, "", fmt.Errorf("LOCKPROXY_UPSTREAM: %w", err)
	}
	return rdb, mode, nil
}

// clusterClient is the Cluster client for LOCKPROXY_UPSTREAM, with the
// upstream TLS files: one TLSConfig for every node.
func clusterClient(cfg Config, withFiles func(*tls.Config)) (redis.UniversalClient, error) {
	return redisstore.NewClusterClient(cfg.Upstream, func(o *redis.ClusterOptions) { withFiles(o.TLSConfig) })
}

// sentinelAuth gives the Sentinels their own credentials. The URL's are the
// data nodes' (redisstore.ParseFailoverURL): a Sentinel often has no
// password, or its own, and an ACL user on the data nodes is no user on
// the Sentinels.
func (c Config) sentinelAuth(o *redis.FailoverOptions) {
	o.SentinelUsername, o.SentinelPassword = c.SentinelUsername, c.SentinelPassword
}

// upstreamTLS reads the upstream TLS files and returns what applies them to
// a rediss:// URL's TLSConfig. The URL already brings a TLS configuration
// that checks the server's name; the files add what a URL cannot carry.
// Its errors name the variable at fault.
func upstreamTLS(cfg Config, log *slog.Logger) (func(*tls.Config), error) {
	var roots *x509.CertPool
	if cfg.UpstreamTLSCA != "" {
		pem, err := os.ReadFile(cfg.UpstreamTLSCA)
		if err != nil {
			return nil, fmt.Errorf("LOCKPROXY_UPSTREAM_TLS_CA: %w", err)
		}
		// A fresh pool, without the system roots: an upstream with a
		// private CA should not also accept a certificate any public CA
		// issued for its name.
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("LOCKPROXY_UPSTREAM_TLS_CA: %s holds no PEM certificate", cfg.UpstreamTLSCA)
		}
	}
	var client *keyPair
	if cfg.UpstreamTLSCert != "" {
		var err error
		client, err = loadKeyPair(cfg.UpstreamTLSCert, cfg.UpstreamTLSKey, "LOCKPROXY_UPSTREAM_TLS_CERT", "LOCKPROXY_UPSTREAM_TLS_KEY", log)
		if err != nil {
			return nil, err
		}
	}
	return func(conf *tls.Config) {
		if conf == nil {
			return // redis://: Validate refuses TLS files without rediss://
		}
		if roots != nil {
			conf.RootCAs = roots
		}
		if client != nil {
			// A callback rather than Certificates: new connections pick up
			// a renewed client certificate, and it is sent even when the
			// server names no acceptable CA that matches.
			conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				return client.get(), nil
			}
		}
	}, nil
}

// keyPair is a certificate and its key read from PEM files, read again
// when either file changes: cert-manager, a Kubernetes Secret volume or
// certbot replace them in place while lockproxy runs, and every new
// handshake then gets the new pair.
type keyPair struct {
	certFile, keyFile string
	certVar, keyVar   string
	log               *slog.Logger

	mu    sync.Mutex
	cert  *tls.Certificate
	files [2]os.FileInfo // what cert was read from, or what the last failed attempt saw
}

// loadKeyPair reads the pair once; its errors name the variable at fault.
func loadKeyPair(certFile, keyFile, certVar, keyVar string, log *slog.Logger) (*keyPair, error) {
	k := &keyPair{certFile: certFile, keyFile: keyFile, certVar: certVar, keyVar: keyVar, log: log}
	files, _ := k.stat() // a missing file is reported by read, naming it
	cert, err := k.read()
	if err != nil {
		return nil, err
	}
	k.cert, k.files = cert, files
	k.logLoaded("TLS certificate loaded")
	return k, nil
}

// get returns the current pair, first reading the files again if they
// changed. A change that does not load (a key written after its
// certificate, a half-written file) keeps the previous pair, so a rotation
// in progress never breaks handshakes; the next change is tried again.
func (k *keyPair) get() *tls.Certificate {
	k.mu.Lock()
	defer k.mu.Unlock()
	files, err := k.stat()
	if err != nil || !changed(k.files, files) {
		return k.cert // a file missing for a moment mid-rotation, or no change
	}
	k.files = files
	cert, err := k.read()
	if err != nil {
		k.log.Warn("TLS certificate files changed but do not load; serving the previous certificate", "err", err)
		return k.cert
	}
	k.cert = cert
	k.logLoaded("TLS certificate reloaded")
	return k.cert
}

func (k *keyPair) stat() ([2]os.FileInfo, error) {
	var files [2]os.FileInfo
	for i, name := range []string{k.certFile, k.keyFile} {
		fi, err := os.Stat(name)
		if err != nil {
			return files, err
		}
		files[i] = fi
	}
	return files, nil
}

// changed compares what stat saw. The file's identity counts, not only its
// time: a Kubernetes Secret update swaps in new files through a symlink,
// and two writes within one timestamp tick may leave the size unchanged.
func changed(old, cur [2]os.FileInfo) bool {
	for i := range old {
		a, b := old[i], cur[i]
		if a == nil || b == nil || !os.SameFile(a, b) || !a.ModTime().Equal(b.ModTime()) || a.Size() != b.Size() {
			return true
		}
	}
	return false
}

func (k *keyPair) read() (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(k.certFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", k.certVar, err)
	}
	keyPEM, err := os.ReadFile(k.keyFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", k.keyVar, err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s and %s (%s, %s): %w", k.certVar, k.keyVar, k.certFile, k.keyFile, err)
	}
	return &cert, nil
}

// logLoaded says which certificate is in use, and warns early about one
// that no client will accept.
func (k *keyPair) logLoaded(msg string) {
	leaf := k.cert.Leaf
	if leaf == nil {
		return
	}
	attrs := []any{"var", k.certVar, "file", k.certFile, "subject", leaf.Subject.String(),
		"dns_names", leaf.DNSNames, "not_after", leaf.NotAfter.UTC()}
	now := time.Now()
	if now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
		k.log.Warn(msg+", but it is outside its validity period", attrs...)
		return
	}
	k.log.Info(msg, attrs...)
}
