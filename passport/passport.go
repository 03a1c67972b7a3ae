// Package passport authenticates callers with PASSporTs (RFC 8225): compact
// JWS tokens, signed with ES256 by the caller's number credential, that name
// the calling number (orig), the called number (dest) and the time of signing
// (iat). The credential's certificate chain travels in the x5c header.
//
// A PASSporT discloses both numbers, and the caller's certificate, to whoever
// sees it: it is meant for the callee only. Errors from this package never
// contain a number.
//
// Verify checks freshness but keeps no replay cache: a token can be replayed
// to the same callee within MaxAge. That is the model of RFC 8224, and callers
// that need more must remember the tokens they have seen.
package passport

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"blindex.dev/blindex/credential"
)

var (
	ErrMalformed = errors.New("passport: malformed token")
	ErrAlgorithm = errors.New("passport: algorithm is not ES256")
	ErrChain     = errors.New("passport: certificate is not trusted")
	ErrExpired   = errors.New("passport: certificate is outside its validity period")
	ErrSignature = errors.New("passport: signature does not verify")
	ErrOrig      = errors.New("passport: orig is not the credential's number")
	ErrDest      = errors.New("passport: dest is not the expected number")
	ErrStale     = errors.New("passport: iat is outside the allowed window")
)

const (
	// typ is the only accepted "typ" header value (RFC 8225, Section 4.1).
	typ = "passport"

	// DefaultMaxAge is the default for Options.MaxAge.
	DefaultMaxAge = 60 * time.Second

	// maxTokenSize bounds the work done on untrusted input. A token with a
	// P-256 leaf and root is about 2.5 KiB.
	maxTokenSize = 16 << 10

	// maxChain is the most certificates accepted in x5c.
	maxChain = 4

	// maxDigits is E.164's limit on the length of a number.
	maxDigits = 15
)

// Options are the callee's verification settings.
type Options struct {
	// Roots are the CA roots the callee trusts. Required: a nil pool fails
	// every token with ErrChain.
	Roots *x509.CertPool
	// Now is the verification time. The zero value means time.Now().
	Now time.Time
	// MaxAge is the largest allowed difference between Now and iat, in
	// either direction. Zero or negative means DefaultMaxAge (60s).
	MaxAge time.Duration
}

// Claims are the verified contents of a PASSporT.
type Claims struct {
	// Orig is the calling number, "+" and digits. It is the number in
	// Certificate's TNAuthList.
	Orig string
	// Dest is the called number, "+" and digits.
	Dest string
	// IssuedAt is the iat claim, in whole seconds.
	IssuedAt time.Time
	// Certificate is the caller's verified credential.
	Certificate *x509.Certificate
}

// payload is the claims object that Sign writes. Fields are in lexicographic
// order, as RFC 8225, Section 9, asks; go-jose sorts the header's too.
type payload struct {
	Dest destClaim `json:"dest"`
	IAT  int64     `json:"iat"`
	Orig origClaim `json:"orig"`
}

type destClaim struct {
	TN []string `json:"tn"`
}

type origClaim struct {
	TN string `json:"tn"`
}

// Sign returns a compact JWS (ES256) PASSporT from the holder of the
// credential chain[0], with key its private key, for a call to dest (E.164,
// "+14155550100") at now. The x5c header holds chain, leaf first. Numbers
// in the token are in the canonical form of RFC 8224, Section 8.3: digits
// only, without the '+'.
func Sign(key *ecdsa.PrivateKey, chain [][]byte, dest string, now time.Time) (string, error) {
	if key == nil || key.Curve != elliptic.P256() {
		return "", errors.New("passport: key is not ECDSA P-256")
	}
	if len(chain) == 0 || len(chain) > maxChain {
		return "", fmt.Errorf("passport: chain must hold 1 to %d certificates", maxChain)
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return "", errors.New("passport: cannot parse leaf certificate")
	}
	if !key.PublicKey.Equal(leaf.PublicKey) {
		return "", errors.New("passport: key does not match leaf certificate")
	}
	orig, err := leafNumber(leaf)
	if err != nil {
		return "", err
	}
	destDigits, ok := digits(dest)
	if !ok {
		return "", errors.New("passport: dest is not '+' and 1 to 15 digits")
	}

	x5c := make([]string, len(chain))
	for i, der := range chain {
		// RFC 7515, Section 4.1.6: standard base64 (with padding), not base64url.
		x5c[i] = base64.StdEncoding.EncodeToString(der)
	}
	claims, err := json.Marshal(payload{
		Dest: destClaim{TN: []string{destDigits}},
		IAT:  now.Unix(),
		Orig: origClaim{TN: orig[1:]},
	})
	if err != nil {
		return "", err
	}
	opts := (&jose.SignerOptions{}).WithType(typ).WithHeader("x5c", x5c)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, opts)
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(claims)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// Verify verifies a PASSporT for a call to dest (E.164, "+14155550100") and
// returns its claims. The checks run in this order, each failing with its own
// error:
//
//   - the token is a compact JWS in canonical base64url, whose header and
//     claims are JSON objects without duplicate names (ErrMalformed);
//   - alg is exactly ES256 (ErrAlgorithm);
//   - typ is "passport", and there is no crit, b64 or ppt header
//     (ErrMalformed);
//   - x5c holds 1 to 4 certificates that parse, and the first is a number
//     credential that chains to opts.Roots (ErrChain) and is within its
//     validity period (ErrExpired);
//   - the signature verifies under that credential's key (ErrSignature);
//   - orig.tn is the credential's number (ErrOrig);
//   - dest holds exactly one tn, and it is dest (ErrDest);
//   - iat is within opts.MaxAge of opts.Now (ErrStale).
//
// Numbers are compared as '+' and digits; a claim may carry the '+' or not.
// The certificates after the first in x5c are not used: trust comes only
// from opts.Roots, and credentials chain to a root directly.
func Verify(token, dest string, opts Options) (*Claims, error) {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = DefaultMaxAge
	}

	hdr, err := parseHeader(token)
	if err != nil {
		return nil, err
	}

	// Pinned before anything else is read from the header: the key type
	// must never pick the algorithm, or "none" and HS256 keyed with the
	// public key would verify.
	var alg string
	if err := json.Unmarshal(hdr["alg"], &alg); err != nil || alg != string(jose.ES256) {
		return nil, ErrAlgorithm
	}

	var t string
	if err := json.Unmarshal(hdr["typ"], &t); err != nil || t != typ {
		return nil, fmt.Errorf("%w: typ is not %q", ErrMalformed, typ)
	}
	// No extension is implemented, so a critical one must fail (RFC 7515,
	// Section 4.1.11), and so must a PASSporT extension (RFC 8225, Section
	// 8.1). go-jose honours b64=false even outside crit, which would make
	// the signed bytes differ from what other verifiers see.
	for _, name := range []string{"crit", "b64", "ppt"} {
		if _, ok := hdr[name]; ok {
			return nil, fmt.Errorf("%w: unsupported %s header", ErrMalformed, name)
		}
	}

	leafDER, err := parseX5c(hdr["x5c"])
	if err != nil {
		return nil, err
	}
	number, leaf, err := credential.Verify(leafDER, opts.Roots, opts.Now)
	if errors.Is(err, credential.ErrExpired) {
		return nil, fmt.Errorf("%w: %w", ErrExpired, err)
	} else if err != nil {
		// credential's errors never contain the number.
		return nil, fmt.Errorf("%w: %w", ErrChain, err)
	}

	// go-jose checks the signature. The algorithm is pinned again here, as
	// the library is meant to be used.
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		var algErr *jose.ErrUnexpectedSignatureAlgorithm
		if errors.As(err, &algErr) {
			return nil, ErrAlgorithm
		}
		// go-jose's messages may quote header values: drop them.
		return nil, ErrMalformed
	}
	body, err := jws.Verify(leaf.PublicKey)
	if err != nil {
		return nil, ErrSignature
	}

	claims, err := parseClaims(body)
	if err != nil {
		return nil, err
	}
	if orig, ok := canonical(claims.orig); !ok || orig != number {
		return nil, ErrOrig
	}
	want, ok := canonical(dest)
	if !ok {
		return nil, fmt.Errorf("%w: expected dest is not '+' and 1 to 15 digits", ErrDest)
	}
	if len(claims.dest) != 1 {
		return nil, fmt.Errorf("%w: dest must hold exactly one tn", ErrDest)
	}
	if got, ok := canonical(claims.dest[0]); !ok || got != want {
		return nil, ErrDest
	}
	if claims.iat == nil {
		return nil, fmt.Errorf("%w: no iat", ErrStale)
	}
	iat := time.Unix(*claims.iat, 0)
	// Sub saturates, so a huge iat cannot wrap around into the window.
	if d := opts.Now.Sub(iat); d > opts.MaxAge || d < -opts.MaxAge {
		return nil, ErrStale
	}
	return &Claims{Orig: number, Dest: want, IssuedAt: iat, Certificate: leaf}, nil
}

// parseHeader checks that token is three canonical base64url segments and
// returns the fields of its protected header.
func parseHeader(token string) (map[string]json.RawMessage, error) {
	if len(token) > maxTokenSize {
		return nil, fmt.Errorf("%w: too large", ErrMalformed)
	}
	segments := strings.Split(token, ".")
	if len(segments) != 3 {
		return nil, fmt.Errorf("%w: not three segments", ErrMalformed)
	}
	var rawHeader []byte
	for i, s := range segments {
		// Go's decoder ignores CR and LF and, unless strict, nonzero
		// trailing bits. Re-encoding rejects both, so that each token has
		// one encoding and any changed character fails.
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil || base64.RawURLEncoding.EncodeToString(b) != s || (i < 2 && len(b) == 0) {
			return nil, fmt.Errorf("%w: segment %d is not canonical base64url", ErrMalformed, i)
		}
		if i == 0 {
			rawHeader = b
		}
	}
	hdr, err := object(rawHeader)
	if err != nil {
		return nil, fmt.Errorf("%w: header: %w", ErrMalformed, err)
	}
	return hdr, nil
}

// parseX5c returns the leaf of an x5c header value, after checking that every
// certificate in it parses.
func parseX5c(raw json.RawMessage) ([]byte, error) {
	if raw == nil {
		return nil, fmt.Errorf("%w: no x5c", ErrChain)
	}
	var x5c []string
	if err := json.Unmarshal(raw, &x5c); err != nil {
		return nil, fmt.Errorf("%w: x5c is not an array of strings", ErrChain)
	}
	if len(x5c) == 0 || len(x5c) > maxChain {
		return nil, fmt.Errorf("%w: x5c must hold 1 to %d certificates", ErrChain, maxChain)
	}
	var leaf []byte
	for i, s := range x5c {
		der, err := base64.StdEncoding.Strict().DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("%w: x5c[%d] is not base64", ErrChain, i)
		}
		// The parser's message may quote names from the certificate: drop it.
		if _, err := x509.ParseCertificate(der); err != nil {
			return nil, fmt.Errorf("%w: x5c[%d] does not parse", ErrChain, i)
		}
		if i == 0 {
			leaf = der
		}
	}
	return leaf, nil
}

// claims are the parts of a payload that Verify checks. Absent claims are
// zero (nil for iat).
type claims struct {
	orig string
	dest []string
	iat  *int64
}

// parseClaims decodes a verified payload. Names are matched exactly, unlike
// encoding/json's struct decoding, which folds case: "Dest" must not stand
// in for "dest". Unknown claims are ignored, as RFC 8225 allows; unknown
// fields inside orig and dest are not, since "uri" would name another party.
func parseClaims(body []byte) (*claims, error) {
	fields, err := object(body)
	if err != nil {
		return nil, fmt.Errorf("%w: claims: %w", ErrMalformed, err)
	}
	var c claims
	if raw, ok := fields["orig"]; ok {
		orig, err := object(raw)
		if err != nil || len(orig) != 1 || json.Unmarshal(orig["tn"], &c.orig) != nil {
			return nil, fmt.Errorf("%w: orig must be an object with one tn string", ErrOrig)
		}
	}
	if raw, ok := fields["dest"]; ok {
		dest, err := object(raw)
		if err != nil || len(dest) != 1 || json.Unmarshal(dest["tn"], &c.dest) != nil {
			return nil, fmt.Errorf("%w: dest must be an object with one tn array", ErrDest)
		}
	}
	if raw, ok := fields["iat"]; ok {
		var iat int64
		if err := json.Unmarshal(raw, &iat); err != nil {
			return nil, fmt.Errorf("%w: iat is not an integer", ErrMalformed)
		}
		c.iat = &iat
	}
	return &c, nil
}

// object decodes a JSON object into its fields, rejecting duplicate names:
// parsers disagree on which duplicate wins, and a token must mean one thing
// to every verifier.
func object(data []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	fields := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, errors.New("invalid JSON")
		}
		name, ok := tok.(string)
		if !ok {
			return nil, errors.New("invalid JSON")
		}
		if _, dup := fields[name]; dup {
			return nil, errors.New("duplicate name")
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, errors.New("invalid JSON")
		}
		fields[name] = v
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, errors.New("invalid JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after JSON object")
	}
	return fields, nil
}

// leafNumber returns the single number, "+" and digits, in leaf's TNAuthList.
func leafNumber(leaf *x509.Certificate) (string, error) {
	var numbers []string
	found := 0
	for _, e := range leaf.Extensions {
		if e.Id.Equal(credential.OIDTNAuthList) {
			found++
			var err error
			if numbers, err = credential.ParseTNAuthList(e.Value); err != nil {
				return "", fmt.Errorf("passport: %w", err)
			}
		}
	}
	if found != 1 || len(numbers) != 1 {
		return "", fmt.Errorf("passport: %w", credential.ErrNoNumber)
	}
	if _, ok := digits(numbers[0]); !ok {
		return "", fmt.Errorf("passport: %w", credential.ErrNoNumber)
	}
	return numbers[0], nil
}

// digits returns the digits of an E.164 number given as '+' and 1 to 15
// digits.
func digits(number string) (string, bool) {
	if !strings.HasPrefix(number, "+") {
		return "", false
	}
	n, ok := canonical(number)
	if !ok {
		return "", false
	}
	return n[1:], true
}

// canonical returns tn, with or without a leading '+', as '+' and digits.
// Visual separators are not removed: RFC 8225 tokens carry the canonical form,
// and accepting more would give one number many spellings.
func canonical(tn string) (string, bool) {
	d := strings.TrimPrefix(tn, "+")
	if len(d) < 1 || len(d) > maxDigits {
		return "", false
	}
	for i := 0; i < len(d); i++ {
		if d[i] < '0' || d[i] > '9' {
			return "", false
		}
	}
	return "+" + d, true
}
