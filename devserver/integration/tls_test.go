package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dispatchflow/dispatchflow/app"
	"github.com/dispatchflow/dispatchflow/config"
	"github.com/dispatchflow/dispatchflow/devserver"
	"github.com/dispatchflow/dispatchflow/message"
	"github.com/dispatchflow/dispatchflow/workflows"
)

// testPKI is a CA, a server certificate for 127.0.0.1 and a client certificate
// it issued, written as PEM files.
type testPKI struct {
	dir                                                  string
	caCert, serverCert, serverKey, clientCert, clientKey string
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	now := time.Now()
	caKey := key()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "dispatchflow test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, name string, usage x509.ExtKeyUsage, ips []net.IP) ([]byte, []byte) {
		k := key()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), DNSNames: []string{name}, IPAddresses: ips,
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return der, keyDER
	}
	srvDER, srvKey := issue(2, "temporal.test", x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")})
	cliDER, cliKey := issue(3, "dispatchflow-worker", x509.ExtKeyUsageClientAuth, nil)
	return testPKI{
		dir:        dir,
		caCert:     write("ca.pem", "CERTIFICATE", caDER),
		serverCert: write("server.pem", "CERTIFICATE", srvDER), serverKey: write("server-key.pem", "PRIVATE KEY", srvKey),
		clientCert: write("client.pem", "CERTIFICATE", cliDER), clientKey: write("client-key.pem", "PRIVATE KEY", cliKey),
	}
}

// dispatchflow connects to a cluster that requires mutual TLS, with the
// variables the Temporal CLI and SDKs read: refused in plaintext and without a
// client certificate, and the whole lifecycle works with one.
func TestMutualTLSCluster(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	srv := devserver.StartForTest(t, devserver.Options{
		SearchAttributes: workflows.SearchAttributeTypes(),
		TLS: &devserver.TLS{CertFile: pki.serverCert, KeyFile: pki.serverKey, ClientCAFile: pki.caCert,
			ServerCAFile: pki.caCert, ServerName: "temporal.test", ClientCertFile: pki.clientCert, ClientKeyFile: pki.clientKey},
	})
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	dial := func(edit func(*config.Temporal)) error {
		cfg, err := config.Load()
		if err != nil {
			t.Fatal(err)
		}
		cfg.Temporal.Address = srv.FrontendHostPort()
		edit(&cfg.Temporal)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := app.Dial(ctx, cfg, quiet)
		if err == nil {
			c.Close()
		}
		return err
	}
	serverOnly := func(c *config.Temporal) { c.TLSServerCACertPath, c.TLSServerName = pki.caCert, "temporal.test" }
	mutual := func(c *config.Temporal) {
		serverOnly(c)
		c.TLSClientCertPath, c.TLSClientKeyPath = pki.clientCert, pki.clientKey
	}
	if err := dial(func(*config.Temporal) {}); err == nil {
		t.Error("plaintext: connected to a TLS frontend")
	}
	if err := dial(serverOnly); err == nil {
		t.Error("TLS without a client certificate: connected to a frontend that requires one")
	}
	if err := dial(mutual); err != nil {
		t.Fatalf("mutual TLS: %v", err)
	}
	err := dial(func(c *config.Temporal) {
		mutual(c)
		c.TLSClientCertPath = filepath.Join(pki.dir, "nope.pem")
	})
	if err == nil || !strings.HasPrefix(err.Error(), "TEMPORAL_TLS_CLIENT_CERT_PATH:") {
		t.Errorf("a missing certificate file: %v, want an error naming TEMPORAL_TLS_CLIENT_CERT_PATH", err)
	}

	// The worker and the API over mutual TLS: a message's whole lifecycle.
	s := setup(t, func(c *config.Config) {
		c.Temporal.Address = srv.FrontendHostPort()
		c.Temporal.TLSServerCACertPath, c.Temporal.TLSServerName = pki.caCert, "temporal.test"
		c.Temporal.TLSClientCertPath, c.Temporal.TLSClientKeyPath = pki.clientCert, pki.clientKey
	})
	id := s.send(message.SendRequest{To: "ok@example.com", Subject: "s", Text: "t", PostbackURL: s.postback.URL})
	if got := statuses(s.postback.waitFor(t, id, 3)); !slices.Equal(got, []string{"sent", "processed", "delivered"}) {
		t.Errorf("postbacks over mutual TLS: %v, want [sent processed delivered]", got)
	}
}
