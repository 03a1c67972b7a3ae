// Package credential implements number credentials: short-lived ECDSA P-256
// X.509 certificates that carry one telephone number in a TNAuthList extension
// (RFC 8226) and the time that number was proved by SMS (ProofTime), issued by
// a CA after SMS verification, and their verification.
//
// A credential discloses its number to whoever sees it: it is meant for the
// directory (which derives a pseudonym from it and does not store it) and for
// the callee of a signed call. The number appears only in the TNAuthList
// extension, never in the subject or a subjectAltName, so tools that print or
// log certificate names do not print it. Errors from this package never
// contain the number.
package credential

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"
)

var (
	ErrTNAuthList = errors.New("credential: malformed TNAuthList")
	ErrNoNumber   = errors.New("credential: certificate does not carry exactly one telephone number")
	ErrExpired    = errors.New("credential: certificate is outside its validity period")
	ErrUntrusted  = errors.New("credential: certificate is not trusted")
	ErrKey        = errors.New("credential: public key is not ECDSA P-256")
	// ErrProofTime is a bad id-blindex-proofTime (see ProofTime). It wraps
	// ErrUntrusted: only a CA could have made the certificate so.
	ErrProofTime = fmt.Errorf("%w: bad proof time", ErrUntrusted)
)

// clockSkew is how far NotBefore is backdated, so that a verifier whose clock
// is slightly behind the CA's accepts a credential issued just now.
const clockSkew = time.Minute

// rootValidityYears is the lifetime of a root made by GenerateCA.
const rootValidityYears = 10

// leafSubject is the fixed subject of every credential. It is deliberately
// not the number: names get printed and logged, the extension rarely is.
var leafSubject = pkix.Name{CommonName: "blindex number credential"}

// A CA issues number credentials under one root certificate. It is safe for
// concurrent use.
type CA struct {
	root *x509.Certificate
	key  *ecdsa.PrivateKey
}

// GenerateCA makes a new P-256 key and a self-signed root certificate named
// name, valid from now for ten years, that may sign only leaf certificates.
func GenerateCA(name string, now time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.AddDate(rootValidityYears, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// No intermediates: a leaf that is itself a CA must not chain.
		MaxPathLen:     0,
		MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	root, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{root: root, key: key}, nil
}

// NewCA pairs a root certificate (DER) with its private key (PKCS#8 DER). It
// returns an error if the key is not ECDSA P-256, does not match the
// certificate, or the certificate is not a CA that may sign certificates.
func NewCA(rootDER, keyPKCS8 []byte) (*CA, error) {
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		return nil, fmt.Errorf("credential: parse root: %w", err)
	}
	k, err := x509.ParsePKCS8PrivateKey(keyPKCS8)
	if err != nil {
		return nil, fmt.Errorf("credential: parse key: %w", err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%w: CA key", ErrKey)
	}
	if !key.PublicKey.Equal(root.PublicKey) {
		return nil, errors.New("credential: key does not match root certificate")
	}
	if !root.IsCA || root.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, errors.New("credential: root is not a CA certificate")
	}
	return &CA{root: root, key: key}, nil
}

// Root returns the CA's root certificate. The caller must not modify it.
func (ca *CA) Root() *x509.Certificate { return ca.root }

// MarshalKey returns the CA's private key as PKCS#8 DER.
func (ca *CA) MarshalKey() ([]byte, error) { return x509.MarshalPKCS8PrivateKey(ca.key) }

// Issue issues a credential for number (E.164, "+14155550100") bound to pub,
// which must be an ECDSA P-256 key (else ErrKey). The certificate is valid
// from now minus one minute until now plus validity, and carries proofTime,
// in whole seconds, as its id-blindex-proofTime (see ProofTime): when the
// SMS code was confirmed, which must not be after now. It returns the DER.
//
// The caller must have verified control of the number (Flow 1) at
// proofTime: Issue checks only its shape. A renewal passes the proof time
// of the credential it renews, never now.
func (ca *CA) Issue(number string, pub crypto.PublicKey, validity time.Duration, now, proofTime time.Time) ([]byte, error) {
	if !isP256(pub) {
		return nil, ErrKey
	}
	if validity <= 0 {
		return nil, errors.New("credential: validity must be positive")
	}
	ext, err := MarshalTNAuthList(number)
	if err != nil {
		return nil, err
	}
	// A zero time is a caller that forgot the proof, not a proof in year 1.
	// After truncation, not after now means not after NotBefore plus
	// clockSkew, so ProofTime accepts what Issue makes.
	if proofTime.IsZero() || proofTime.Truncate(time.Second).After(now) {
		return nil, fmt.Errorf("%w: zero or after issue", ErrProofTime)
	}
	proofExt, err := MarshalProofTime(proofTime)
	if err != nil {
		return nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               leafSubject,
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		// Non-critical so that stock verifiers (openssl, crypto/x509) that do
		// not know TNAuthList or the proof time still accept the chain;
		// Verify always reads both. RFC 5280 requires subjectDirectoryAttributes
		// to be non-critical anyway.
		ExtraExtensions: []pkix.Extension{
			{Id: OIDTNAuthList, Value: ext},
			{Id: OIDSubjectDirectoryAttributes, Value: proofExt},
		},
	}
	return x509.CreateCertificate(rand.Reader, tmpl, ca.root, pub, ca.key)
}

// Verify parses a credential and checks that it chains to one of roots at time
// now for client authentication, that its key is ECDSA P-256 with the
// digitalSignature usage, and that its TNAuthList holds exactly one
// TelephoneNumber, which must be '+' and digits, and that its proof time,
// if it carries one, is well-formed (ProofTime). It returns that number and
// the parsed certificate.
//
// Errors wrap ErrUntrusted (unparsable, bad chain, wrong key usage, and
// ErrProofTime), ErrKey, ErrNoNumber (also wrapping ErrTNAuthList if the
// extension is malformed) or ErrExpired. ErrExpired is returned only for a credential that passes every
// other check, so it can be reported to the user as "renew".
func Verify(leafDER []byte, roots *x509.CertPool, now time.Time) (number string, leaf *x509.Certificate, err error) {
	// A nil pool would make crypto/x509 fall back to the system roots, which
	// must never vouch for a number.
	if roots == nil {
		return "", nil, fmt.Errorf("%w: no roots", ErrUntrusted)
	}
	leaf, err = x509.ParseCertificate(leafDER)
	if err != nil {
		// The parser's message may quote names from the certificate: drop it.
		return "", nil, fmt.Errorf("%w: cannot parse certificate", ErrUntrusted)
	}

	// Check the validity period ourselves so the error is precise. The chain
	// is then checked at a time inside that period, so a forged expired
	// certificate still reports ErrUntrusted.
	at := now
	expired := now.Before(leaf.NotBefore) || now.After(leaf.NotAfter)
	if expired {
		at = leaf.NotAfter
	}

	// TNAuthList is processed below, so a CA that marks it critical is fine.
	leaf.UnhandledCriticalExtensions = slices.DeleteFunc(leaf.UnhandledCriticalExtensions,
		func(oid asn1.ObjectIdentifier) bool { return oid.Equal(OIDTNAuthList) })
	_, err = leaf.Verify(x509.VerifyOptions{
		Roots:       roots,
		CurrentTime: at,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return "", nil, fmt.Errorf("%w: %v", ErrUntrusted, err)
	}
	// crypto/x509 checks only extended key usage: also require that the key
	// may sign (PASSporTs, request proofs) and is not a CA key.
	if leaf.IsCA || leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return "", nil, fmt.Errorf("%w: wrong key usage", ErrUntrusted)
	}
	if !isP256(leaf.PublicKey) {
		return "", nil, ErrKey
	}

	number, err = Number(leaf)
	if err != nil {
		return "", nil, err
	}
	if _, err := ProofTime(leaf); err != nil {
		return "", nil, err
	}
	if expired {
		return "", nil, ErrExpired
	}
	return number, leaf, nil
}

// Number returns the single E.164 number in leaf's TNAuthList. It checks
// nothing else: Verify is what trusts a credential.
func Number(leaf *x509.Certificate) (string, error) {
	var value []byte
	found := 0
	for _, e := range leaf.Extensions {
		if e.Id.Equal(OIDTNAuthList) {
			value = e.Value
			found++
		}
	}
	if found != 1 {
		return "", ErrNoNumber
	}
	numbers, err := ParseTNAuthList(value)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrNoNumber, err)
	}
	// Exactly one: a credential vouches for one number, and which of several
	// would be the caller's is not for this package to guess.
	if len(numbers) != 1 {
		return "", ErrNoNumber
	}
	if _, ok := e164Digits(numbers[0]); !ok {
		return "", fmt.Errorf("%w: not an E.164 number", ErrNoNumber)
	}
	return numbers[0], nil
}

func isP256(pub crypto.PublicKey) bool {
	k, ok := pub.(*ecdsa.PublicKey)
	return ok && k != nil && k.Curve == elliptic.P256()
}

// randomSerial returns a random 128-bit serial number. Unpredictable serials
// keep a CA from being steered into signing chosen-prefix collisions, and let
// the log tell two credentials apart.
func randomSerial() (*big.Int, error) {
	for {
		n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
		if err != nil {
			return nil, err
		}
		// RFC 5280 requires a positive serial.
		if n.Sign() > 0 {
			return n, nil
		}
	}
}
