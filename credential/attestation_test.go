package credential

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"testing"
	"time"
)

func TestAttestation(t *testing.T) {
	ca, _ := newCA(t, "blindex CA")
	other, _ := newCA(t, "other CA")
	der := issue(t, ca)
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ca.Attest(der)
	if err != nil {
		t.Fatal(err)
	}
	if want := 2 + len(testNumber) - 1 + 32 + 33 + 24 + 8 + 64; len(b) != want {
		t.Errorf("attestation is %d bytes, want %d", len(b), want)
	}
	a, err := ParseAttestation(b)
	if err != nil {
		t.Fatal(err)
	}
	root, err := a.Verify([]*x509.Certificate{other.Root(), ca.Root()})
	if err != nil || root != ca.Root() {
		t.Fatalf("Verify = %v, %v; want the issuing root", root, err)
	}
	proof, _ := ProofTime(leaf)
	if a.Number != testNumber || a.CertHash != sha256.Sum256(der) || !a.PublicKey.Equal(leaf.PublicKey.(*ecdsa.PublicKey)) ||
		!a.ProofTime.Equal(proof) || !a.NotBefore.Equal(leaf.NotBefore) || !a.NotAfter.Equal(leaf.NotAfter) {
		t.Errorf("attestation fields %+v do not match the credential", a)
	}
	if a.KeyHash() != sha256.Sum256(leaf.RawSubjectPublicKeyInfo) {
		t.Error("KeyHash differs from the SubjectPublicKeyInfo's hash")
	}

	if _, err := a.Verify([]*x509.Certificate{other.Root()}); !errors.Is(err, ErrUntrustedCA) {
		t.Errorf("untrusted root: err = %v, want ErrUntrustedCA", err)
	}
	if _, err := a.Verify(nil); !errors.Is(err, ErrUntrustedCA) {
		t.Errorf("no roots: err = %v, want ErrUntrustedCA", err)
	}
	// Every byte is covered: a flip either fails to parse, names another
	// root, or fails the signature.
	for i := range b {
		c := append([]byte(nil), b...)
		c[i] ^= 1
		a, err := ParseAttestation(c)
		if err == nil {
			_, err = a.Verify([]*x509.Certificate{ca.Root()})
		}
		if err == nil {
			t.Fatalf("flipping byte %d still verifies", i)
		}
		wantErr(t, "flipped attestation", err)
	}
	for _, n := range []int{0, 1, len(b) - 1, len(b) + 1} {
		c := append(append([]byte(nil), b...), make([]byte, 2)...)[:n]
		if _, err := ParseAttestation(c); !errors.Is(err, ErrAttestation) {
			t.Errorf("length %d: err = %v, want ErrAttestation", n, err)
		}
	}
}

// FuzzParseAttestation: the parser never panics, and what it accepts it
// gives back byte for byte.
func FuzzParseAttestation(f *testing.F) {
	now := time.Now()
	ca, err := GenerateCA("fuzz CA", now)
	if err != nil {
		f.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := ca.Issue("+14155550100", &key.PublicKey, time.Hour, now, now)
	if err != nil {
		f.Fatal(err)
	}
	att, err := ca.Attest(der)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(att)
	f.Add([]byte{AttestationVersion})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseAttestation(b)
		if err != nil {
			return
		}
		// One encoding per attestation: the fields encode back to the bytes.
		if !bytes.Equal(a.body(), b[:len(b)-64]) {
			t.Fatalf("ParseAttestation accepted a non-canonical encoding %x", b)
		}
		a.Verify([]*x509.Certificate{ca.Root()})
		a.KeyHash()
	})
}
