// Package record is the encrypted envelope of an owner's per-app record.
//
// A Record says how to reach the owner on one app. The owner pads it to a
// size class and seals it to a 32-byte key derived from the owner's OPRF
// output. The server stores only the ciphertext, and every ciphertext in a
// size class has the same length, so the server learns the class (one of
// six) but not the app or the endpoint length.
//
// # Padded plaintext
//
// The sealed payload is exactly one of SizeClasses bytes long:
//
//	L        2 bytes, big-endian: the length of the JSON encoding
//	JSON     L bytes: the JSON encoding of Record
//	L'       2 bytes, big-endian: the length of the publisher proof
//	proof    L' bytes (see Proof)
//	padding  zero bytes up to the class size
//
// The smallest class with room for the body is used. Open rejects a payload
// whose length is not a class, whose L or L' does not fit, whose padding is
// not all zeros, or whose JSON has unknown fields or trailing data.
//
// # Envelope
//
// Seal writes envelope v2 (docs/protocol.md §11):
//
//	0x02 || nonce (24 random bytes) || XChaCha20-Poly1305(k, nonce, padded, ad)
//
// where k = HKDF-SHA256(ikm=key, no salt, info="blindex record envelope v2")
// and ad = "blindex record v2": 41 bytes over the class. Open also reads the
// legacy form that Seal wrote before, an age file (filippo.io/age) with one
// blindex-record stanza, padded to one of the legacy classes 512, 1024, 2048
// or 4096; see envelope.go.
package record

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"time"
	"unicode/utf8"
)

// Record is how to reach an owner on one app.
type Record struct {
	// App is a reverse-DNS app id such as "org.example.chat": 1 to 253 bytes
	// of lowercase letters, digits, '-' and '.', with at least one dot and no
	// empty labels.
	App string `json:"app"`
	// Endpoint is a URI with a scheme, at most 1024 bytes of valid UTF-8.
	Endpoint string `json:"endpoint"`
	// PublicKey is an optional app-level key, at most 1024 bytes.
	PublicKey []byte `json:"public_key,omitempty"`
	// Priority orders an owner's records, 0 to 65535; lower is preferred.
	Priority int `json:"priority"`
	// Expires is when the record stops being valid: UTC, whole seconds.
	Expires time.Time `json:"expires"`
}

// Limits on Record fields.
const (
	MaxAppLen       = 253
	MaxEndpointLen  = 1024
	MaxPublicKeyLen = 1024
	MaxPriority     = 65535
)

var (
	ErrInvalid  = errors.New("record: invalid record")
	ErrTooLarge = errors.New("record: too large")
	// ErrDecrypt covers a wrong key and any tampering alike, with no detail,
	// so that Open is not an oracle for which part of a ciphertext was wrong.
	ErrDecrypt = errors.New("record: decryption failed")
)

// Validate reports whether r is well formed. Errors wrap ErrInvalid, or
// ErrTooLarge for a field over its size limit. It does not compare Expires
// with the clock; that is the caller's policy.
func (r Record) Validate() error {
	if len(r.App) > MaxAppLen {
		return fmt.Errorf("%w: app id longer than %d bytes", ErrTooLarge, MaxAppLen)
	}
	if !validApp(r.App) {
		return fmt.Errorf("%w: app id %q is not reverse-DNS", ErrInvalid, r.App)
	}
	if len(r.Endpoint) > MaxEndpointLen {
		return fmt.Errorf("%w: endpoint longer than %d bytes", ErrTooLarge, MaxEndpointLen)
	}
	// JSON would silently replace invalid UTF-8, so the record would not
	// round-trip.
	if !utf8.ValidString(r.Endpoint) {
		return fmt.Errorf("%w: endpoint is not valid UTF-8", ErrInvalid)
	}
	if u, err := url.Parse(r.Endpoint); err != nil || u.Scheme == "" {
		return fmt.Errorf("%w: endpoint is not a URI with a scheme", ErrInvalid)
	}
	if len(r.PublicKey) > MaxPublicKeyLen {
		return fmt.Errorf("%w: public key longer than %d bytes", ErrTooLarge, MaxPublicKeyLen)
	}
	if r.Priority < 0 || r.Priority > MaxPriority {
		return fmt.Errorf("%w: priority %d out of range 0..%d", ErrInvalid, r.Priority, MaxPriority)
	}
	e := r.Expires
	if e.IsZero() || e.Location() != time.UTC || e.Nanosecond() != 0 || e.Year() > 9999 {
		return fmt.Errorf("%w: expiry must be a non-zero UTC time in whole seconds", ErrInvalid)
	}
	return nil
}

func validApp(s string) bool {
	if s == "" {
		return false
	}
	dots, label := 0, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '.':
			if label == 0 {
				return false
			}
			dots, label = dots+1, 0
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-':
			label++
		default:
			return false
		}
	}
	return dots > 0 && label > 0
}

// SizeClasses are the padded plaintext sizes of envelope v2, smallest
// first. A record is padded to the smallest class that fits, so the
// ciphertext length does not reveal the app or endpoint length. It must not
// be modified.
//
// The classes follow the measured sizes of proved records
// (TestSizeClassesFitTypicalRecords). A proof takes 405 bytes plus the
// number's digits: 416 for an 11-digit number, 420 at most. The body of a
// typical record (a synthetic directory's "org.example.chat" with a
// 43-byte endpoint, or "org.example.voice" with a 38-byte one, no key, an
// RFC 3339 expiry) with its proof is 549 bytes; 553 for a 15-digit number,
// and 557 with a five-digit priority. 576, the smallest class, holds that
// with 19 bytes to spare: a lookup downloads tens of thousands of records,
// nearly all typical, so the smallest class is cut to fit them. 640 holds
// one with a 32-byte app key (60 bytes of JSON). 768 holds endpoints up to
// about 150 bytes with such a key and a longer app id, 1024 endpoints of
// 300 bytes and more; 2048 records with larger keys, and 4096 everything
// Validate allows without a proof. With six classes instead of four, the
// length tells log2(6) ≈ 2.6 bits instead of 2.
var SizeClasses = []int{576, 640, 768, 1024, 2048, 4096}

// legacySizeClasses are the padded sizes of the legacy age form, for
// reading it only.
var legacySizeClasses = []int{512, 1024, 2048, 4096}

const maxClass = 4096 // the last of SizeClasses and of legacySizeClasses; checked by a test

// MaxCiphertext is the length of the longest ciphertext Open reads: a
// legacy age record of the 4096 class (its 155-byte header, 16-byte stream
// nonce, the payload and a 16-byte tag: 4283 bytes). A v2 record is at most
// 41 + 4096 = 4137 bytes. Servers may refuse larger uploads; they accept
// only the v2 lengths (ValidCiphertextSize).
const MaxCiphertext = max(legacyHeaderSize+16+maxClass+16, envelopeOverhead+maxClass)

// Seal validates r, pads it and encrypts it to key, without a publisher
// proof: callers drop such records (see SealProved). It returns an error
// wrapping ErrInvalid or ErrTooLarge if r is not valid.
func Seal(key [32]byte, r Record) ([]byte, error) {
	js, err := encodeJSON(r)
	if err != nil {
		return nil, err
	}
	padded, err := pad(binary.BigEndian.AppendUint16(nil, uint16(len(js))), js)
	if err != nil {
		return nil, err
	}
	return seal(key, padded)
}

// encodeJSON validates r and returns its JSON encoding.
func encodeJSON(r Record) ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// HTML escaping would grow '&' in an endpoint sixfold; it is not needed.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	js := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if len(js) > maxClass-2 {
		return nil, fmt.Errorf("%w: record encodes to %d bytes", ErrTooLarge, len(js))
	}
	return js, nil
}

// pad joins parts and pads them with zeros to the smallest size class.
func pad(parts ...[]byte) ([]byte, error) {
	body := bytes.Join(parts, nil)
	for _, c := range SizeClasses {
		if len(body) <= c {
			padded := make([]byte, c)
			copy(padded, body)
			return padded, nil
		}
	}
	return nil, fmt.Errorf("%w: record and proof take %d bytes", ErrTooLarge, len(body))
}

// Open decrypts and checks a sealed record, and ignores its proof (see
// OpenProved). It reads envelope v2 and the legacy age form. A ciphertext
// longer than MaxCiphertext, or a v2 one longer than its largest class,
// gives ErrTooLarge.
// Any failure to decrypt or authenticate gives ErrDecrypt. A record that
// authenticates but is malformed gives an error wrapping ErrInvalid: only
// the key holder can produce one.
func Open(key [32]byte, ciphertext []byte) (Record, error) {
	r, _, err := OpenProved(key, ciphertext)
	return r, err
}

// parsePadded reads L || JSON || [L' || proof] || zeros. A record from
// before proofs has zeros (or nothing) after its JSON: no proof.
func parsePadded(padded []byte) (Record, *Proof, error) {
	if !slices.Contains(SizeClasses, len(padded)) && !slices.Contains(legacySizeClasses, len(padded)) {
		return Record{}, nil, fmt.Errorf("%w: padded length %d is not a size class", ErrInvalid, len(padded))
	}
	n := int(binary.BigEndian.Uint16(padded))
	if n > len(padded)-2 {
		return Record{}, nil, fmt.Errorf("%w: length prefix %d exceeds padding", ErrInvalid, n)
	}
	rest := padded[2+n:]
	var proofBytes []byte
	if len(rest) >= 2 {
		m := int(binary.BigEndian.Uint16(rest))
		if m > len(rest)-2 {
			return Record{}, nil, fmt.Errorf("%w: proof length %d exceeds padding", ErrInvalid, m)
		}
		proofBytes, rest = rest[2:2+m], rest[2+m:]
	}
	for _, b := range rest {
		if b != 0 {
			return Record{}, nil, fmt.Errorf("%w: non-zero padding", ErrInvalid)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(padded[2 : 2+n]))
	dec.DisallowUnknownFields()
	var r Record
	if err := dec.Decode(&r); err != nil {
		return Record{}, nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Record{}, nil, fmt.Errorf("%w: trailing data after JSON", ErrInvalid)
	}
	if err := r.Validate(); err != nil {
		return Record{}, nil, err
	}
	if len(proofBytes) == 0 {
		return r, nil, nil
	}
	p, err := parseProof(proofBytes)
	if err != nil {
		return Record{}, nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	p.signed = signatureDigest(padded[:2+n], proofBytes[:len(proofBytes)-64])
	return r, p, nil
}
