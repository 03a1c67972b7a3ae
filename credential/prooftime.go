package credential

import (
	"bytes"
	"crypto/x509"
	encoding_asn1 "encoding/asn1"
	"fmt"
	"time"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// OIDProofTime is id-blindex-proofTime, a blindex-specific attribute type
// under the ITU-T X.667 arc 2.25, where the integer is UUID
// bd9a14eb-4b3d-4509-ad6d-a8673032687d: anyone may allocate there without
// registration. Its value is a GeneralizedTime: when the SMS code that
// proved the credential's number was confirmed.
var OIDProofTime = mustParseOID("2.25.252024129209659173552543261160627136637")

// OIDSubjectDirectoryAttributes is id-ce-subjectDirectoryAttributes,
// 2.5.29.9 (RFC 5280, Section 4.2.1.8), the extension that carries the
// proof time attribute.
//
// The attribute is not an extension of its own because crypto/x509 (and so
// every directory and client) refuses to parse a certificate with an
// extension whose OID has an arc of 2^31 or more, which every 2.25 UUID arc
// is. Inside subjectDirectoryAttributes the attribute type is read by this
// package alone. RFC 3739 carries dateOfBirth, also a GeneralizedTime, the
// same way.
var OIDSubjectDirectoryAttributes = encoding_asn1.ObjectIdentifier{2, 5, 29, 9}

// generalizedTime is the DER form of GeneralizedTime (X.690, 11.7): whole
// seconds, UTC, "Z".
const generalizedTime = "20060102150405Z"

func mustParseOID(s string) x509.OID {
	oid, err := x509.ParseOID(s)
	if err != nil {
		panic(err)
	}
	return oid
}

// MarshalProofTime encodes the value of a subjectDirectoryAttributes
// extension that holds one attribute, id-blindex-proofTime, with the single
// value t as a DER GeneralizedTime, truncated to whole seconds in UTC:
//
//	SubjectDirectoryAttributes ::= SEQUENCE SIZE (1..MAX) OF Attribute
//	Attribute ::= SEQUENCE { type OBJECT IDENTIFIER, values SET SIZE (1..MAX) OF ANY }
func MarshalProofTime(t time.Time) ([]byte, error) {
	t = t.UTC().Truncate(time.Second)
	if t.Year() < 0 || t.Year() > 9999 {
		return nil, fmt.Errorf("%w: year outside GeneralizedTime", ErrProofTime)
	}
	oid, err := OIDProofTime.MarshalBinary()
	if err != nil {
		return nil, err
	}
	var b cryptobyte.Builder
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(asn1.OBJECT_IDENTIFIER, func(b *cryptobyte.Builder) { b.AddBytes(oid) })
			b.AddASN1(asn1.SET, func(b *cryptobyte.Builder) {
				b.AddASN1(asn1.GeneralizedTime, func(b *cryptobyte.Builder) {
					b.AddBytes([]byte(t.Format(generalizedTime)))
				})
			})
		})
	})
	return b.Bytes()
}

// ProofTime returns when the SMS code behind leaf was confirmed: the
// id-blindex-proofTime attribute of its subjectDirectoryAttributes
// extension. A renewal copies it, so it is the time of the latest proof
// of the number, never of a renewal.
//
// A credential without the attribute (issued before it existed) has its
// NotBefore as its proof time; such credentials expire within one validity
// period. A malformed or duplicated extension or attribute, or a proof time
// later than NotBefore plus the CA's clock skew (a credential cannot have
// been proved after it was issued), is an error wrapping ErrProofTime (and
// so ErrUntrusted). ProofTime checks nothing else: Verify is what trusts a
// credential.
func ProofTime(leaf *x509.Certificate) (time.Time, error) {
	var value []byte
	found := 0
	for _, e := range leaf.Extensions {
		if e.Id.Equal(OIDSubjectDirectoryAttributes) {
			value = e.Value
			found++
		}
	}
	if found > 1 {
		return time.Time{}, fmt.Errorf("%w: duplicated extension", ErrProofTime)
	}
	if found == 0 {
		return leaf.NotBefore, nil
	}
	// Never fall back to NotBefore for an extension that does not parse: a
	// renewal's NotBefore is later than its proof, and reading it as the
	// proof time would make a renewal a proof.
	t, ok, err := parseProofTime(value)
	if err != nil {
		return time.Time{}, err
	}
	if !ok {
		return leaf.NotBefore, nil
	}
	if t.After(leaf.NotBefore.Add(clockSkew)) {
		return time.Time{}, fmt.Errorf("%w: later than the credential's issue", ErrProofTime)
	}
	return t, nil
}

// parseProofTime parses the value of a subjectDirectoryAttributes
// extension, which must be DER with no trailing data, and returns its
// id-blindex-proofTime. The attribute must appear at most once, with exactly
// one value; other attributes are checked for shape and ignored.
func parseProofTime(der []byte) (t time.Time, ok bool, err error) {
	want, err := OIDProofTime.MarshalBinary()
	if err != nil {
		return time.Time{}, false, err
	}
	input := cryptobyte.String(der)
	var attrs cryptobyte.String
	if !input.ReadASN1(&attrs, asn1.SEQUENCE) || !input.Empty() || attrs.Empty() {
		return time.Time{}, false, fmt.Errorf("%w: malformed subjectDirectoryAttributes", ErrProofTime)
	}
	for !attrs.Empty() {
		var attr, oid, values cryptobyte.String
		if !attrs.ReadASN1(&attr, asn1.SEQUENCE) ||
			!attr.ReadASN1(&oid, asn1.OBJECT_IDENTIFIER) || len(oid) == 0 ||
			!attr.ReadASN1(&values, asn1.SET) || !attr.Empty() || values.Empty() {
			return time.Time{}, false, fmt.Errorf("%w: malformed attribute", ErrProofTime)
		}
		if !bytes.Equal(oid, want) {
			for !values.Empty() {
				var v cryptobyte.String
				var tag asn1.Tag
				if !values.ReadAnyASN1(&v, &tag) {
					return time.Time{}, false, fmt.Errorf("%w: malformed attribute", ErrProofTime)
				}
			}
			continue
		}
		// Two proof times would let a verifier pick the later one.
		if ok {
			return time.Time{}, false, fmt.Errorf("%w: duplicated attribute", ErrProofTime)
		}
		var gt cryptobyte.String
		if !values.ReadASN1(&gt, asn1.GeneralizedTime) || !values.Empty() {
			return time.Time{}, false, fmt.Errorf("%w: not one GeneralizedTime", ErrProofTime)
		}
		if t, err = parseGeneralizedTime(gt); err != nil {
			return time.Time{}, false, err
		}
		ok = true
	}
	return t, ok, nil
}

// parseGeneralizedTime accepts only the DER form, so that one time has one
// encoding: no fraction, no offset, no missing seconds.
func parseGeneralizedTime(b []byte) (time.Time, error) {
	t, err := time.Parse(generalizedTime, string(b))
	if err != nil || t.Format(generalizedTime) != string(b) {
		return time.Time{}, fmt.Errorf("%w: not a DER GeneralizedTime", ErrProofTime)
	}
	return t, nil
}
