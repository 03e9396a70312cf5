package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strconv"
)

// Temporal is where the cluster is and how to reach it securely, under the
// variable names of Temporal's client environment configuration
// (docs.temporal.io/references/client-environment-configuration), so that one
// environment serves the Temporal CLI and dispatchflow.
type Temporal struct {
	// Address of the frontend. Defaults to "localhost:7233".
	Address string `envconfig:"ADDRESS" default:"localhost:7233" desc:"Temporal frontend host:port"`
	// Namespace. Defaults to "default".
	Namespace string `envconfig:"NAMESPACE" default:"default" desc:"Temporal namespace"`
	// APIKey authenticates to the cluster (Temporal Cloud API keys); TLS is then
	// on unless TLS says false. Never logged.
	APIKey string `envconfig:"API_KEY" desc:"Temporal API key (Temporal Cloud); turns TLS on"`
	// TLS: "true" or "false"; empty: on when an API key, a certificate or a CA is set.
	TLS string `envconfig:"TLS" desc:"true | false: connect to Temporal over TLS (default: on with an API key, certificate or CA)"`
	// TLSClientCertPath and TLSClientKeyPath (or their PEM data) are the client
	// certificate of mTLS.
	TLSClientCertPath string `envconfig:"TLS_CLIENT_CERT_PATH" desc:"mTLS client certificate (PEM file)"`
	TLSClientCertData string `envconfig:"TLS_CLIENT_CERT_DATA" desc:"mTLS client certificate (PEM), instead of the path"`
	TLSClientKeyPath  string `envconfig:"TLS_CLIENT_KEY_PATH" desc:"mTLS client key (PEM file)"`
	TLSClientKeyData  string `envconfig:"TLS_CLIENT_KEY_DATA" desc:"mTLS client key (PEM), instead of the path"`
	// TLSServerCACertPath (or data) verifies the server; empty: the system's CAs.
	TLSServerCACertPath string `envconfig:"TLS_SERVER_CA_CERT_PATH" desc:"CA verifying the Temporal server (PEM file; default: the system's)"`
	TLSServerCACertData string `envconfig:"TLS_SERVER_CA_CERT_DATA" desc:"CA verifying the Temporal server (PEM), instead of the path"`
	// TLSServerName overrides the name the server's certificate is checked for.
	TLSServerName string `envconfig:"TLS_SERVER_NAME" desc:"name the Temporal server's certificate must carry (SNI)"`
	// TLSDisableHostVerification skips the check of the server's name (never in
	// production). Defaults to false.
	TLSDisableHostVerification bool `envconfig:"TLS_DISABLE_HOST_VERIFICATION" default:"false" desc:"skip the Temporal server's name check (tests only)"`
}

// TLSConfig is the TLS of the connection to Temporal, nil for plaintext. Its
// errors name the variable: a missing file, a key that does not match its
// certificate, a CA file without a certificate.
func (t Temporal) TLSConfig() (*tls.Config, error) {
	on := t.APIKey != "" || t.TLSClientCertPath != "" || t.TLSClientCertData != "" ||
		t.TLSServerCACertPath != "" || t.TLSServerCACertData != ""
	if t.TLS != "" {
		v, err := strconv.ParseBool(t.TLS)
		if err != nil {
			return nil, fmt.Errorf("TEMPORAL_TLS: %q is not true or false", t.TLS)
		}
		on = v
	}
	if !on {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.TLSServerName, InsecureSkipVerify: t.TLSDisableHostVerification}
	certPEM, err := pemOf("TEMPORAL_TLS_CLIENT_CERT", t.TLSClientCertPath, t.TLSClientCertData)
	if err != nil {
		return nil, err
	}
	keyPEM, err := pemOf("TEMPORAL_TLS_CLIENT_KEY", t.TLSClientKeyPath, t.TLSClientKeyData)
	if err != nil {
		return nil, err
	}
	switch {
	case certPEM != nil && keyPEM != nil:
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	case certPEM != nil || keyPEM != nil:
		return nil, errors.New("TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH: the certificate and the key go together")
	}
	caPEM, err := pemOf("TEMPORAL_TLS_SERVER_CA_CERT", t.TLSServerCACertPath, t.TLSServerCACertData)
	if err != nil {
		return nil, err
	}
	if caPEM != nil {
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(caPEM) {
			return nil, errors.New("TEMPORAL_TLS_SERVER_CA_CERT_PATH: no PEM certificate in it")
		}
	}
	return c, nil
}

// pemOf reads the PEM of variable name + "_PATH" or name + "_DATA" (not both).
func pemOf(name, path, data string) ([]byte, error) {
	switch {
	case path != "" && data != "":
		return nil, fmt.Errorf("%s_PATH, %s_DATA: give one, not both", name, name)
	case data != "":
		return []byte(data), nil
	case path != "":
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%s_PATH: %w", name, err)
		}
		return b, nil
	}
	return nil, nil
}
