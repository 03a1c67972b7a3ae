package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestTLSAndProbes(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	r, err := Start(t.Context(), Config{DataDir: filepath.Join(dir, "data"), Addr: "127.0.0.1:0", TLSCert: certFile, TLSKey: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !strings.HasPrefix(r.URL(), "https://") {
		t.Fatalf("URL %s", r.URL())
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := c.Get(r.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "ok\n" {
			t.Errorf("%s: %d %q", path, resp.StatusCode, b)
		}
	}
	// Plain HTTP to the TLS port is not served.
	if resp, err := http.Get("http://" + r.Addr + "/healthz"); err == nil {
		if resp.StatusCode == 200 {
			t.Error("plain HTTP answered on the TLS port")
		}
		resp.Body.Close()
	}

	// The readiness probe fails once the store is gone.
	r.Node.Store.Close()
	resp, err := c.Get(r.URL() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz with a closed store: %d", resp.StatusCode)
	}
}

func TestTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	certFile, _, _ := selfSigned(t, dir)
	if _, err := Start(t.Context(), Config{DataDir: dir, Addr: "127.0.0.1:0", TLSCert: certFile}); err == nil {
		t.Error("started with a certificate but no key")
	}
	if _, err := Start(t.Context(), Config{DataDir: dir, Addr: "127.0.0.1:0", TLSCert: certFile, TLSKey: certFile}); err == nil {
		t.Error("started with a certificate as its own key")
	}
}

// TestNothingMadeBeforeBind: a taken port fails before the data directory
// or any key exists, and a data directory whose parent is missing is
// refused rather than created as a whole tree.
func TestNothingMadeBeforeBind(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, start := range []func(Config) (*Running, error){
		func(c Config) (*Running, error) { return Start(t.Context(), c) },
		func(c Config) (*Running, error) { return StartCA(t.Context(), c) },
	} {
		data := filepath.Join(t.TempDir(), "data")
		if r, err := start(Config{DataDir: data, Addr: taken.Addr().String()}); err == nil {
			r.Close()
			t.Fatal("started on a taken port")
		}
		if _, err := os.Stat(data); err == nil {
			t.Errorf("a failed bind left %s behind", data)
		}

		deep := filepath.Join(t.TempDir(), "no", "such", "data")
		r, err := start(Config{DataDir: deep, Addr: "127.0.0.1:0"})
		if err == nil {
			r.Close()
			t.Fatal("started in a data directory whose parent does not exist")
		}
		if !strings.Contains(err.Error(), "parent directory exists") {
			t.Errorf("missing parent: %v", err)
		}
		if _, err := os.Stat(filepath.Dir(filepath.Dir(deep))); err == nil {
			t.Errorf("the missing parents were created")
		}
	}
}
