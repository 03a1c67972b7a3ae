package credential

import (
	"crypto/elliptic"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOpenSSL checks that a stock verifier that does not know TNAuthList or
// the proof time parses, prints and accepts a credential, and that openssl's
// own ASN.1 parser reads TNAuthList as [2] EXPLICIT IA5String and the proof
// time as the 2.25 attribute with one GeneralizedTime.
func TestOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatalf("openssl is required for this test: %v", err)
	}
	run := func(args ...string) (string, error) {
		out, err := exec.CommandContext(t.Context(), openssl, args...).CombinedOutput()
		return string(out), err
	}

	// openssl verify checks against the wall clock.
	now := time.Now()
	ca, err := GenerateCA("blindex test CA", now)
	if err != nil {
		t.Fatal(err)
	}
	other, err := GenerateCA("blindex test CA", now)
	if err != nil {
		t.Fatal(err)
	}
	// A proof a day old, as a renewal carries it.
	proof := now.Add(-24 * time.Hour)
	leafDER, err := ca.Issue(testNumber, newKey(t, elliptic.P256()).Public(), validity, now, proof)
	if err != nil {
		t.Fatal(err)
	}
	proofExt, err := MarshalProofTime(proof)
	if err != nil {
		t.Fatal(err)
	}
	tnal, err := MarshalTNAuthList(testNumber)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, pemType string, der []byte) string {
		path := filepath.Join(dir, name)
		data := der
		if pemType != "" {
			data = pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der})
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	rootPEM := write("root.pem", "CERTIFICATE", ca.Root().Raw)
	otherPEM := write("other.pem", "CERTIFICATE", other.Root().Raw)
	leafPEM := write("leaf.pem", "CERTIFICATE", leafDER)
	tnalDER := write("tnal.der", "", tnal)
	proofDER := write("proof.der", "", proofExt)

	out, err := run("x509", "-in", leafPEM, "-noout", "-text")
	if err != nil {
		t.Fatalf("openssl x509: %v\n%s", err, out)
	}
	for _, want := range []string{"TLS Web Client Authentication", "Digital Signature", "prime256v1"} {
		if !strings.Contains(out, want) {
			t.Errorf("openssl x509 -text output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "1.3.6.1.5.5.7.1.26") && !strings.Contains(out, "TNAuthList") {
		t.Errorf("openssl x509 -text output lacks the TNAuthList extension:\n%s", out)
	}
	if !strings.Contains(out, "Subject Directory Attributes") && !strings.Contains(out, "2.5.29.9") {
		t.Errorf("openssl x509 -text output lacks the proof time extension:\n%s", out)
	}

	out, err = run("verify", "-CAfile", rootPEM, "-purpose", "sslclient", leafPEM)
	if err != nil || !strings.Contains(out, "leaf.pem: OK") {
		t.Errorf("openssl verify rejected the credential: %v\n%s", err, out)
	}
	// The same check against another CA of the same name must fail.
	out, err = run("verify", "-CAfile", otherPEM, "-purpose", "sslclient", leafPEM)
	if err == nil {
		t.Errorf("openssl verify accepted the credential under another CA:\n%s", out)
	}

	out, err = run("asn1parse", "-inform", "DER", "-in", tnalDER)
	if err != nil {
		t.Fatalf("openssl asn1parse: %v\n%s", err, out)
	}
	for _, want := range []string{"SEQUENCE", "cont [ 2 ]", "IA5STRING", ":14155550100"} {
		if !strings.Contains(out, want) {
			t.Errorf("openssl asn1parse output lacks %q:\n%s", want, out)
		}
	}

	out, err = run("asn1parse", "-inform", "DER", "-in", proofDER)
	if err != nil {
		t.Fatalf("openssl asn1parse: %v\n%s", err, out)
	}
	for _, want := range []string{"SEQUENCE", "OBJECT            :" + OIDProofTime.String(), "SET",
		"GENERALIZEDTIME   :" + proof.UTC().Format("20060102150405Z")} {
		if !strings.Contains(out, want) {
			t.Errorf("openssl asn1parse output lacks %q:\n%s", want, out)
		}
	}
}
