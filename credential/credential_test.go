package credential

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"
)

const (
	testNumber = "+14155550100"
	testDigits = "4155550100" // must never appear in an error
	validity   = 24 * time.Hour
)

// testNow is whole seconds, as certificate times are, so that boundaries are exact.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newCA(t *testing.T, name string) (*CA, *x509.CertPool) {
	t.Helper()
	ca, err := GenerateCA(name, testNow)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Root())
	return ca, roots
}

func newKey(t *testing.T, curve elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func issue(t *testing.T, ca *CA) []byte {
	t.Helper()
	der, err := ca.Issue(testNumber, newKey(t, elliptic.P256()).Public(), validity, testNow, testNow)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// wantErr checks that err wraps every target and does not reveal the number.
func wantErr(t *testing.T, what string, err error, targets ...error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error, want %v", what, targets)
		return
	}
	for _, target := range targets {
		if !errors.Is(err, target) {
			t.Errorf("%s: error %q does not wrap %q", what, err, target)
		}
	}
	if strings.Contains(err.Error(), testDigits) {
		t.Errorf("%s: error %q contains the number", what, err)
	}
}

func TestGenerateCA(t *testing.T) {
	ca, _ := newCA(t, "blindex test CA")
	root := ca.Root()
	if root.Subject.CommonName != "blindex test CA" || !root.IsCA || !root.MaxPathLenZero ||
		root.MaxPathLen != 0 || root.KeyUsage != x509.KeyUsageCertSign {
		t.Errorf("root has wrong fields: %+v", root)
	}
	if !root.NotAfter.Equal(testNow.AddDate(10, 0, 0)) {
		t.Errorf("root NotAfter = %v", root.NotAfter)
	}
	if !isP256(root.PublicKey) {
		t.Error("root key is not P-256")
	}
	if err := root.CheckSignatureFrom(root); err != nil {
		t.Errorf("root is not self-signed: %v", err)
	}
	if root.SerialNumber.Sign() <= 0 || root.SerialNumber.BitLen() > 128 {
		t.Errorf("root serial %v", root.SerialNumber)
	}
}

func TestNewCA(t *testing.T) {
	ca, roots := newCA(t, "blindex test CA")
	keyDER, err := ca.MarshalKey()
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := NewCA(ca.Root().Raw, keyDER)
	if err != nil {
		t.Fatal(err)
	}
	// A credential from the reloaded CA verifies against the original root.
	if _, _, err := Verify(issue(t, loaded), roots, testNow); err != nil {
		t.Errorf("credential from reloaded CA: %v", err)
	}

	other, _ := newCA(t, "blindex test CA")
	otherKey, err := other.MarshalKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewCA(ca.Root().Raw, otherKey); err == nil {
		t.Error("NewCA accepted a key that does not match the root")
	}
	p384, err := x509.MarshalPKCS8PrivateKey(newKey(t, elliptic.P384()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewCA(ca.Root().Raw, p384); !errors.Is(err, ErrKey) {
		t.Errorf("NewCA with a P-384 key: %v, want ErrKey", err)
	}
	// A leaf with its own key is not a CA.
	leafKey := newKey(t, elliptic.P256())
	leafDER, err := ca.Issue(testNumber, leafKey.Public(), validity, testNow, testNow)
	if err != nil {
		t.Fatal(err)
	}
	leafKeyDER, err := x509.MarshalPKCS8PrivateKey(leafKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewCA(leafDER, leafKeyDER); err == nil {
		t.Error("NewCA accepted a leaf certificate as root")
	}
	if _, err := NewCA([]byte("not a certificate"), keyDER); err == nil {
		t.Error("NewCA accepted garbage")
	}
}

func TestIssueVerify(t *testing.T) {
	ca, roots := newCA(t, "blindex test CA")
	key := newKey(t, elliptic.P256())
	// A proof made earlier, as a renewal passes it, with a fraction of a
	// second that the certificate drops.
	proof := testNow.Add(-3*time.Hour + 500*time.Millisecond)
	der, err := ca.Issue(testNumber, key.Public(), validity, testNow, proof)
	if err != nil {
		t.Fatal(err)
	}
	number, leaf, err := Verify(der, roots, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if number != testNumber {
		t.Errorf("number = %q, want %q", number, testNumber)
	}
	if !key.PublicKey.Equal(leaf.PublicKey) {
		t.Error("credential is not bound to the requested key")
	}
	if !leaf.NotBefore.Equal(testNow.Add(-time.Minute)) || !leaf.NotAfter.Equal(testNow.Add(validity)) {
		t.Errorf("validity %v to %v", leaf.NotBefore, leaf.NotAfter)
	}
	if leaf.KeyUsage != x509.KeyUsageDigitalSignature || len(leaf.ExtKeyUsage) != 1 ||
		leaf.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth || leaf.IsCA {
		t.Errorf("wrong usage: %v %v %v", leaf.KeyUsage, leaf.ExtKeyUsage, leaf.IsCA)
	}
	if leaf.SerialNumber.Sign() <= 0 || leaf.SerialNumber.BitLen() > 128 {
		t.Errorf("serial %v", leaf.SerialNumber)
	}
	// The number is in the TNAuthList and nowhere else.
	if strings.Contains(leaf.Subject.String(), testDigits) || len(leaf.DNSNames)+len(leaf.EmailAddresses)+
		len(leaf.URIs)+len(leaf.IPAddresses) != 0 {
		t.Errorf("number or names outside TNAuthList: %v", leaf.Subject)
	}
	if c := bytes.Count(der, []byte(testDigits)); c != 1 {
		t.Errorf("number digits appear %d times in the DER, want 1", c)
	}
	if got, err := ProofTime(leaf); err != nil || !got.Equal(testNow.Add(-3*time.Hour)) {
		t.Errorf("ProofTime = %v, %v; want %v", got, err, testNow.Add(-3*time.Hour))
	}
	want, err := MarshalProofTime(proof)
	if err != nil {
		t.Fatal(err)
	}
	sda := 0
	for _, e := range leaf.Extensions {
		if e.Id.Equal(OIDTNAuthList) && e.Critical {
			t.Error("TNAuthList is critical")
		}
		if e.Id.Equal(OIDSubjectDirectoryAttributes) {
			sda++
			if e.Critical || !bytes.Equal(e.Value, want) {
				t.Errorf("subjectDirectoryAttributes: critical %v, value %x, want %x", e.Critical, e.Value, want)
			}
		}
	}
	if sda != 1 {
		t.Errorf("%d subjectDirectoryAttributes extensions, want 1", sda)
	}
	// Serials are random.
	der2 := issue(t, ca)
	leaf2, err := x509.ParseCertificate(der2)
	if err != nil {
		t.Fatal(err)
	}
	if leaf2.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		t.Error("two credentials share a serial")
	}
}

func TestVerifyValidityPeriod(t *testing.T) {
	ca, roots := newCA(t, "blindex test CA")
	der := issue(t, ca)
	notBefore, notAfter := testNow.Add(-time.Minute), testNow.Add(validity)
	for _, at := range []time.Time{notBefore, notAfter} {
		if _, _, err := Verify(der, roots, at); err != nil {
			t.Errorf("at %v: %v", at, err)
		}
	}
	for _, at := range []time.Time{notBefore.Add(-time.Second), notAfter.Add(time.Second), testNow.Add(-time.Hour), testNow.Add(365 * 24 * time.Hour)} {
		number, leaf, err := Verify(der, roots, at)
		wantErr(t, "at "+at.String(), err, ErrExpired)
		if number != "" || leaf != nil {
			t.Errorf("at %v: returned a number or certificate with an error", at)
		}
	}
}

func TestVerifyUntrusted(t *testing.T) {
	ca, roots := newCA(t, "blindex test CA")

	// Another CA, with a different name and with the same name.
	for _, name := range []string{"other CA", "blindex test CA"} {
		other, _ := newCA(t, name)
		_, _, err := Verify(issue(t, other), roots, testNow)
		wantErr(t, "credential from "+name, err, ErrUntrusted)
	}

	// A forgery: the real root's name and key identifier, another key's signature.
	attacker := newKey(t, elliptic.P256())
	fakeParent := *ca.Root()
	fakeParent.PublicKey = attacker.Public()
	forged := craft(t, &fakeParent, attacker, nil, nil)
	forgedLeaf, err := x509.ParseCertificate(forged)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(forgedLeaf.RawIssuer, ca.Root().RawSubject) || !bytes.Equal(forgedLeaf.AuthorityKeyId, ca.Root().SubjectKeyId) {
		t.Fatal("forgery does not name the real root")
	}
	_, _, err = Verify(forged, roots, testNow)
	wantErr(t, "forged", err, ErrUntrusted)
	// Expired and forged: untrusted wins, so ErrExpired means "renew".
	_, _, err = Verify(forged, roots, testNow.Add(2*validity))
	wantErr(t, "forged and expired", err, ErrUntrusted)

	// No roots must not mean the system roots.
	_, _, err = Verify(issue(t, ca), nil, testNow)
	wantErr(t, "nil roots", err, ErrUntrusted)
	_, _, err = Verify(issue(t, ca), x509.NewCertPool(), testNow)
	wantErr(t, "empty roots", err, ErrUntrusted)

	_, _, err = Verify(nil, roots, testNow)
	wantErr(t, "empty input", err, ErrUntrusted)
	_, _, err = Verify(ca.Root().Raw, roots, testNow)
	wantErr(t, "root as leaf", err, ErrUntrusted)
}

// craft makes a leaf for testNumber signed by signer under parent, letting
// modify change the template first. pub defaults to a new P-256 key.
func craft(t *testing.T, parent *x509.Certificate, signer crypto.Signer, pub crypto.PublicKey, modify func(*x509.Certificate)) []byte {
	t.Helper()
	ext, err := MarshalTNAuthList(testNumber)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               leafSubject,
		NotBefore:             testNow.Add(-time.Minute),
		NotAfter:              testNow.Add(validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		ExtraExtensions:       []pkix.Extension{{Id: OIDTNAuthList, Value: ext}},
	}
	if modify != nil {
		modify(tmpl)
	}
	if pub == nil {
		pub = newKey(t, elliptic.P256()).Public()
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestVerifyRules checks each rule Verify applies to certificates that the
// trusted CA signed but Issue would never produce.
func TestVerifyRules(t *testing.T) {
	ca, roots := newCA(t, "blindex test CA")
	tnal := func(hexDER string) func(*x509.Certificate) {
		return func(c *x509.Certificate) {
			c.ExtraExtensions = []pkix.Extension{{Id: OIDTNAuthList, Value: unhex(t, hexDER)}}
		}
	}
	for _, tc := range []struct {
		name   string
		pub    crypto.PublicKey
		modify func(*x509.Certificate)
		want   []error // nil: accepted
	}{
		{"as issued", nil, nil, nil},
		{"critical TNAuthList", nil, func(c *x509.Certificate) { c.ExtraExtensions[0].Critical = true }, nil},
		{"no TNAuthList", nil, func(c *x509.Certificate) { c.ExtraExtensions = nil }, []error{ErrNoNumber}},
		{"two numbers", nil, tnal("3010a206160431323334a206160435363738"), []error{ErrNoNumber}},
		{"spc only", nil, tnal("3008a006160466616b65"), []error{ErrNoNumber}},
		{"not E.164", nil, tnal("3008a206160431322334"), []error{ErrNoNumber}},
		{"implicit tagging", nil, tnal("300d820b3134313535353530313030"), []error{ErrNoNumber, ErrTNAuthList}},
		{"two TNAuthList extensions", nil, func(c *x509.Certificate) {
			c.ExtraExtensions = append(c.ExtraExtensions, c.ExtraExtensions[0])
		}, []error{ErrUntrusted}},
		{"server auth only", nil, func(c *x509.Certificate) {
			c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		}, []error{ErrUntrusted}},
		{"no digitalSignature", nil, func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageKeyAgreement }, []error{ErrUntrusted}},
		{"leaf is a CA", nil, func(c *x509.Certificate) {
			c.IsCA = true
			c.KeyUsage |= x509.KeyUsageCertSign
		}, []error{ErrUntrusted}},
		{"unknown critical extension", nil, func(c *x509.Certificate) {
			c.ExtraExtensions = append(c.ExtraExtensions, pkix.Extension{Id: asn1.ObjectIdentifier{1, 2, 3, 4}, Critical: true, Value: []byte{5, 0}})
		}, []error{ErrUntrusted}},
		{"P-384 key", newKey(t, elliptic.P384()).Public(), nil, []error{ErrKey}},
	} {
		der := craft(t, ca.Root(), ca.key, tc.pub, tc.modify)
		number, leaf, err := Verify(der, roots, testNow)
		if tc.want == nil {
			if err != nil || number != testNumber || leaf == nil {
				t.Errorf("%s: Verify = %q, %v", tc.name, number, err)
			}
			continue
		}
		wantErr(t, tc.name, err, tc.want...)
		if number != "" || leaf != nil {
			t.Errorf("%s: returned a number or certificate with an error", tc.name)
		}
	}
}

func TestIssueRejects(t *testing.T) {
	ca, _ := newCA(t, "blindex test CA")
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for name, pub := range map[string]crypto.PublicKey{
		"P-384":       newKey(t, elliptic.P384()).Public(),
		"P-224":       newKey(t, elliptic.P224()).Public(),
		"ed25519":     edPub,
		"nil":         nil,
		"nil pointer": (*ecdsa.PublicKey)(nil),
	} {
		_, err := ca.Issue(testNumber, pub, validity, testNow, testNow)
		wantErr(t, "Issue with "+name+" key", err, ErrKey)
	}
	pub := newKey(t, elliptic.P256()).Public()
	for _, n := range []string{"", "14155550100", "+1415555010a", "+14155550100#", "+1234567890123456"} {
		_, err := ca.Issue(n, pub, validity, testNow, testNow)
		wantErr(t, "Issue for "+n, err, ErrTNAuthList)
	}
	for _, v := range []time.Duration{0, -time.Hour} {
		if _, err := ca.Issue(testNumber, pub, v, testNow, testNow); err == nil {
			t.Errorf("Issue accepted validity %v", v)
		}
	}
	// A proof after the issue would be refused by ProofTime; a zero one is
	// a caller that forgot it.
	for _, p := range []time.Time{{}, testNow.Add(time.Second), testNow.Add(time.Hour)} {
		_, err := ca.Issue(testNumber, pub, validity, testNow, p)
		wantErr(t, "Issue with proof time "+p.String(), err, ErrProofTime)
	}
	if _, err := ca.Issue(testNumber, pub, validity, testNow, testNow.Add(999*time.Millisecond)); err != nil {
		t.Errorf("Issue with a proof time in the second of the issue: %v", err)
	}
}

// TestVerifyEveryByteChange flips one bit in each byte of a valid credential:
// each result must fail to parse or fail verification.
func TestVerifyEveryByteChange(t *testing.T) {
	ca, roots := newCA(t, "blindex test CA")
	der := issue(t, ca)
	unparsable := 0
	for i := range der {
		mod := bytes.Clone(der)
		mod[i] ^= 0x01
		if _, err := x509.ParseCertificate(mod); err != nil {
			unparsable++
		}
		number, leaf, err := Verify(mod, roots, testNow)
		if err == nil {
			t.Errorf("byte %d changed: still verifies as %q", i, number)
			continue
		}
		if number != "" || leaf != nil {
			t.Errorf("byte %d changed: returned a number or certificate with an error", i)
		}
		if strings.Contains(err.Error(), testDigits) {
			t.Errorf("byte %d changed: error %q contains the number", i, err)
		}
	}
	t.Logf("%d changes, %d unparsable, %d rejected by Verify", len(der), unparsable, len(der)-unparsable)
}
