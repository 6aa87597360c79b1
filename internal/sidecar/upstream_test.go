package sidecar

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
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// A Sentinel client built from the configuration speaks TLS to a Sentinel
// of a rediss:// URL with LOCKPROXY_UPSTREAM_TLS_CA's CA, checks the
// certificate against the address it dials (here an IP, though the URL's
// first host is a name), and authenticates with the Sentinels' own
// password, never the data nodes'. The "Sentinel" is a TLS listener that
// records the first command of each connection: no Sentinel runs.
func TestSentinelGetsItsCredentialsAndTLS(t *testing.T) {
	dir := t.TempDir()
	caFile, serverCert := testPKI(t, dir)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{serverCert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	first := make(chan []string, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				if cmd, err := readCommand(bufio.NewReader(c)); err == nil {
					select {
					case first <- cmd: // before the close, so before PING returns
					default:
					}
				}
			}()
		}
	}()

	// localhost:1 refuses; the listener's certificate names 127.0.0.1 only.
	cfg, err := load(map[string]string{
		"UPSTREAM":          "rediss://:datapw@localhost:1?master_name=m&dialer_retries=1&addr=" + ln.Addr().String(),
		"UPSTREAM_TLS_CA":   caFile,
		"SENTINEL_PASSWORD": "sentpw",
	})
	if err != nil {
		t.Fatal(err)
	}
	rdb, _, err := upstreamClient(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err == nil {
		t.Fatal("PING answered, with no data node behind the fake Sentinel")
	}
	select {
	case cmd := <-first:
		if !slices.Contains(cmd, "sentpw") || slices.Contains(cmd, "datapw") {
			t.Errorf("the Sentinel's first command %q: want the Sentinels' password, not the data nodes'", cmd)
		}
	default:
		t.Fatal("no command reached the Sentinel over TLS")
	}
	if pw := rdb.(*redis.Client).Options().Password; pw != "datapw" {
		t.Errorf("data nodes' password %q, want the URL's", pw)
	}
}

// readCommand reads one RESP array of bulk strings.
func readCommand(r *bufio.Reader) ([]string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "*")))
	if err != nil {
		return nil, err
	}
	cmd := make([]string, 0, n)
	for range n {
		if _, err := r.ReadString('\n'); err != nil { // $len
			return nil, err
		}
		arg, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		cmd = append(cmd, strings.TrimSuffix(arg, "\r\n"))
	}
	return cmd, nil
}

// testPKI writes a CA to dir and returns its file and a server certificate
// it signed for 127.0.0.1 alone.
func testPKI(t *testing.T, dir string) (caFile string, server tls.Certificate) {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey, srvKey := key(), key()
	now := time.Now()
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	srv := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "sentinel"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	srvDER, err := x509.CreateCertificate(rand.Reader, srv, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile = filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return caFile, tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}
}
