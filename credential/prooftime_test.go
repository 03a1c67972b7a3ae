package credential

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"math/big"
	"os"
	"testing"
	"time"
)

// proofTimeVector is the extension value for 2026-12-07T12:00:00Z, built by
// hand from X.690 (and the same as docs/protocol.md, Appendix A).
const proofTimeVector = "" +
	"302b" + // SEQUENCE (SubjectDirectoryAttributes), 43 bytes
	"3029" + // SEQUENCE (Attribute), 41 bytes
	"0614" + // OBJECT IDENTIFIER, 20 bytes: 2.25.252024129209659173552543261160627136637
	"6982fb9a8abae9b3ea9493adb6ea8cf381c9d07d" +
	"3111" + // SET, 17 bytes
	"180f" + // GeneralizedTime, 15 bytes
	"32303236313230373132303030305a" // "20261207120000Z"

func TestMarshalProofTimeKnownAnswer(t *testing.T) {
	// The arc is the UUID read as one unsigned 128-bit integer (X.667, 6.3).
	uuid, _ := new(big.Int).SetString("bd9a14eb4b3d4509ad6da8673032687d", 16)
	if got, want := OIDProofTime.String(), "2.25."+uuid.String(); got != want {
		t.Errorf("OIDProofTime = %s, want %s", got, want)
	}
	at := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	// The same instant in another zone, with a fraction of a second.
	zone := time.FixedZone("UTC-8", -8*3600)
	for _, tm := range []time.Time{at, at.In(zone).Add(999 * time.Millisecond)} {
		got, err := MarshalProofTime(tm)
		if err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(got) != proofTimeVector {
			t.Errorf("MarshalProofTime(%v) = %x, want %s", tm, got, proofTimeVector)
		}
	}
	got, ok, err := parseProofTime(unhex(t, proofTimeVector))
	if err != nil || !ok || !got.Equal(at) || got.Location() != time.UTC {
		t.Errorf("parseProofTime(vector) = %v, %v, %v; want %v", got, ok, err, at)
	}
	if _, err := MarshalProofTime(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)); !errors.Is(err, ErrProofTime) {
		t.Errorf("MarshalProofTime(year 10000): %v, want ErrProofTime", err)
	}
	// The document's vector and OID are these, so they cannot drift apart.
	doc, err := os.ReadFile("../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{proofTimeVector, "{ 2 25 " + uuid.String() + " }", "bd9a14eb-4b3d-4509-ad6d-a8673032687d"} {
		if !bytes.Contains(doc, []byte(want)) {
			t.Errorf("docs/protocol.md lacks %q", want)
		}
	}
}

// tlv encodes one DER element with a short-form length.
func tlv(tag byte, parts ...[]byte) []byte {
	body := bytes.Join(parts, nil)
	if len(body) > 127 {
		panic("tlv: long form")
	}
	return append([]byte{tag, byte(len(body))}, body...)
}

// TestProofTimeRules checks ProofTime, and Verify with it, on certificates
// that the trusted CA signed with each kind of proof time.
func TestProofTimeRules(t *testing.T) {
	ca, roots := newCA(t, "blindex test CA")
	oid, err := OIDProofTime.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	notBefore := testNow.Add(-time.Minute) // as craft makes it
	gt := func(s string) []byte { return tlv(0x18, []byte(s)) }
	at := func(tm time.Time) []byte { return gt(tm.UTC().Format(generalizedTime)) }
	attr := func(values ...[]byte) []byte { return tlv(0x30, tlv(0x06, oid), tlv(0x31, values...)) }
	sda := func(attrs ...[]byte) []byte { return tlv(0x30, attrs...) }
	// RFC 3739's dateOfBirth (1.3.6.1.5.5.7.9.1): another attribute.
	dateOfBirth := tlv(0x30, tlv(0x06, []byte{0x2b, 6, 1, 5, 5, 7, 9, 1}), tlv(0x31, gt("19700101120000Z")))
	hour := testNow.Add(-time.Hour)

	for _, tc := range []struct {
		name  string
		value []byte    // the subjectDirectoryAttributes value; nil: no extension
		want  time.Time // zero: refused
	}{
		{"legacy, no extension", nil, notBefore},
		{"an hour before", sda(attr(at(hour))), hour},
		{"at notBefore", sda(attr(at(notBefore))), notBefore},
		{"at notBefore plus the skew", sda(attr(at(notBefore.Add(clockSkew)))), notBefore.Add(clockSkew)},
		{"another attribute only", sda(dateOfBirth), notBefore},
		{"another attribute first", sda(dateOfBirth, attr(at(hour))), hour},
		{"another attribute last", sda(attr(at(hour)), dateOfBirth), hour},

		{"a second after notBefore plus the skew", sda(attr(at(notBefore.Add(clockSkew + time.Second)))), time.Time{}},
		{"a year later", sda(attr(at(testNow.AddDate(1, 0, 0)))), time.Time{}},
		{"two attributes", sda(attr(at(hour)), attr(at(hour))), time.Time{}},
		{"two attributes, the later second", sda(attr(at(hour)), attr(at(testNow))), time.Time{}},
		{"two values", sda(attr(at(hour), at(testNow))), time.Time{}},
		{"no value", sda(attr()), time.Time{}},
		{"UTCTime", sda(attr(tlv(0x17, []byte(hour.Format("060102150405Z"))))), time.Time{}},
		{"fraction of a second", sda(attr(gt("20260301110000.5Z"))), time.Time{}},
		{"trailing zero fraction", sda(attr(gt("20260301110000.0Z"))), time.Time{}},
		{"offset", sda(attr(gt("20260301110000+0000"))), time.Time{}},
		{"local time", sda(attr(gt("20260301110000"))), time.Time{}},
		{"no seconds", sda(attr(gt("202603011100Z"))), time.Time{}},
		{"lower-case z", sda(attr(gt("20260301110000z"))), time.Time{}},
		{"31 February", sda(attr(gt("20260231110000Z"))), time.Time{}},
		{"leap second", sda(attr(gt("20251231235960Z"))), time.Time{}},
		{"empty", []byte{}, time.Time{}},
		{"no attributes", sda(), time.Time{}},
		{"not a SEQUENCE", at(hour), time.Time{}},
		{"trailing data", append(sda(attr(at(hour))), 0), time.Time{}},
		{"attribute with a third element", sda(tlv(0x30, tlv(0x06, oid), tlv(0x31, at(hour)), []byte{5, 0})), time.Time{}},
		{"attribute without values", sda(tlv(0x30, tlv(0x06, oid))), time.Time{}},
		{"values not a SET", sda(tlv(0x30, tlv(0x06, oid), tlv(0x30, at(hour)))), time.Time{}},
		{"empty OID", sda(tlv(0x30, tlv(0x06), tlv(0x31, at(hour)))), time.Time{}},
		{"another attribute, malformed value", sda(tlv(0x30, tlv(0x06, []byte{0x2b, 6, 1, 5, 5, 7, 9, 1}), tlv(0x31, []byte{0x18, 5, '1'})), attr(at(hour))), time.Time{}},
		{"BER long-form length", append([]byte{0x30, 0x81, 0x2b}, unhex(t, proofTimeVector)[2:]...), time.Time{}},
	} {
		der := craft(t, ca.Root(), ca.key, nil, func(c *x509.Certificate) {
			if tc.value != nil {
				c.ExtraExtensions = append(c.ExtraExtensions, pkix.Extension{Id: OIDSubjectDirectoryAttributes, Value: tc.value})
			}
		})
		leaf, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got, err := ProofTime(leaf)
		_, vleaf, verr := Verify(der, roots, testNow)
		// Past its validity a bad proof time is still untrusted, not
		// "renew".
		_, _, eerr := Verify(der, roots, testNow.Add(2*validity))
		if !tc.want.IsZero() {
			if err != nil || !got.Equal(tc.want) {
				t.Errorf("%s: ProofTime = %v, %v; want %v", tc.name, got, err, tc.want)
			}
			if verr != nil {
				t.Errorf("%s: Verify: %v", tc.name, verr)
			}
			if !errors.Is(eerr, ErrExpired) {
				t.Errorf("%s: Verify after expiry: %v, want ErrExpired", tc.name, eerr)
			}
			continue
		}
		wantErr(t, tc.name+": ProofTime", err, ErrProofTime, ErrUntrusted)
		if !got.IsZero() {
			t.Errorf("%s: ProofTime returned %v with an error", tc.name, got)
		}
		wantErr(t, tc.name+": Verify", verr, ErrProofTime, ErrUntrusted)
		if vleaf != nil {
			t.Errorf("%s: Verify returned a certificate with an error", tc.name)
		}
		wantErr(t, tc.name+": Verify after expiry", eerr, ErrProofTime, ErrUntrusted)
	}

	// Two extensions: crypto/x509 refuses to parse the certificate, and
	// ProofTime refuses a certificate built some other way.
	good, err := MarshalProofTime(hour)
	if err != nil {
		t.Fatal(err)
	}
	ext := pkix.Extension{Id: OIDSubjectDirectoryAttributes, Value: good}
	der := craft(t, ca.Root(), ca.key, nil, func(c *x509.Certificate) {
		c.ExtraExtensions = append(c.ExtraExtensions, ext, ext)
	})
	_, _, err = Verify(der, roots, testNow)
	wantErr(t, "two extensions: Verify", err, ErrUntrusted)
	_, err = ProofTime(&x509.Certificate{NotBefore: notBefore, Extensions: []pkix.Extension{ext, ext}})
	wantErr(t, "two extensions: ProofTime", err, ErrProofTime)

	// RFC 5280 says non-critical; a critical one is an extension a stock
	// verifier does not know, refused like any other.
	der = craft(t, ca.Root(), ca.key, nil, func(c *x509.Certificate) {
		c.ExtraExtensions = append(c.ExtraExtensions, pkix.Extension{Id: OIDSubjectDirectoryAttributes, Critical: true, Value: good})
	})
	_, _, err = Verify(der, roots, testNow)
	wantErr(t, "critical extension: Verify", err, ErrUntrusted)
}

func FuzzProofTime(f *testing.F) {
	f.Add(unhex(f, proofTimeVector))
	for _, tm := range []time.Time{testNow, time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)} {
		v, err := MarshalProofTime(tm)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(v)
	}
	f.Add(unhex(f, "3000"))
	f.Add(tlv(0x30, tlv(0x30, tlv(0x06, []byte{0x2b, 6, 1, 5, 5, 7, 9, 1}), tlv(0x31, tlv(0x18, []byte("19700101120000Z"))))))
	f.Fuzz(func(t *testing.T, der []byte) {
		tm, ok, err := parseProofTime(der)
		if err != nil {
			if !errors.Is(err, ErrProofTime) {
				t.Fatalf("error %v does not wrap ErrProofTime", err)
			}
			return
		}
		if !ok {
			return
		}
		again, err := MarshalProofTime(tm)
		if err != nil {
			t.Fatalf("MarshalProofTime(%v): %v", tm, err)
		}
		got, ok, err := parseProofTime(again)
		if err != nil || !ok || !got.Equal(tm) {
			t.Fatalf("round trip of %v gave %v, %v, %v", tm, got, ok, err)
		}
		// The attribute's encoding must be found inside the input: one
		// time, one encoding.
		if !bytes.Contains(der, again[2:]) {
			t.Fatalf("attribute for %v not found in input %x", tm, der)
		}
	})
}
