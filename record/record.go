// Package record is the encrypted envelope of an owner's per-app record.
//
// A Record says how to reach the owner on one app. The owner pads it to a
// size class and seals it with age (filippo.io/age) to a 32-byte key derived
// from the owner's OPRF output. The server stores only the ciphertext, and
// every ciphertext in a size class has the same length, so the server learns
// the class (one of four) but not the app or the endpoint length.
//
// # Padded plaintext
//
// The age payload is exactly one of SizeClasses bytes long:
//
//	L        2 bytes, big-endian: the length of the JSON encoding
//	JSON     L bytes: the JSON encoding of Record
//	padding  zero bytes up to the class size
//
// The smallest class with room for 2+L bytes is used. Open rejects a payload
// whose length is not a class, whose L does not fit, whose padding is not all
// zeros, or whose JSON has unknown fields or trailing data.
//
// # age recipient
//
// The age header holds exactly one stanza:
//
//	-> blindex-record <salt>
//	<body>
//
// salt is 16 random bytes, in age's unpadded standard base64. The wrapping key
// is HKDF-SHA256(ikm=key, salt=salt, info="blindex v1 record wrap"), 32 bytes,
// and body is the ChaCha20-Poly1305 encryption of the 16-byte file key under
// it with an all-zero nonce. The zero nonce is safe because each wrapping key
// is used once: it is fresh for every salt. A header with any other stanza, or
// more than one, is rejected, so nobody can add a recipient to a sealed record.
package record

import (
	"bytes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"time"
	"unicode/utf8"

	"filippo.io/age"
	"golang.org/x/crypto/chacha20poly1305"
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

// SizeClasses are the padded plaintext sizes, smallest first. A record is
// padded to the smallest class that fits, so the ciphertext length does not
// reveal the app or endpoint length. It must not be modified.
var SizeClasses = []int{512, 1024, 2048, 4096}

const maxClass = 4096 // the last of SizeClasses; checked by a test

// headerSize is the length of the age header Seal writes: the version line,
// one stanza with a 22-character salt and a 43-character body (a 32-byte
// wrapped key), and the MAC line.
const headerSize = len("age-encryption.org/v1\n") +
	len("-> "+stanzaType+" ") + 22 + 1 +
	43 + 1 +
	len("--- ") + 43 + 1

// MaxCiphertext is the length of a sealed record in the largest class: the
// age header, the 16-byte stream nonce, and one payload chunk with its 16-byte
// tag. Servers may refuse larger uploads.
const MaxCiphertext = headerSize + 16 + maxClass + 16

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

// seal encrypts an already padded plaintext. It is separate from Seal so
// tests can seal malformed plaintexts.
func seal(key [32]byte, padded []byte) ([]byte, error) {
	var out bytes.Buffer
	w, err := age.Encrypt(&out, &recipient{key: key})
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(padded); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// Open decrypts and checks a sealed record, and ignores its proof (see
// OpenProved). A ciphertext longer than MaxCiphertext gives ErrTooLarge.
// Any failure to decrypt or authenticate gives ErrDecrypt. A record that
// authenticates but is malformed gives an error wrapping ErrInvalid: only
// the key holder can produce one.
func Open(key [32]byte, ciphertext []byte) (Record, error) {
	r, _, err := OpenProved(key, ciphertext)
	return r, err
}

func decrypt(key [32]byte, ciphertext []byte) ([]byte, error) {
	if len(ciphertext) > MaxCiphertext {
		return nil, ErrTooLarge
	}
	pr, err := age.Decrypt(bytes.NewReader(ciphertext), &identity{key: key})
	if err != nil {
		return nil, ErrDecrypt
	}
	padded, err := io.ReadAll(io.LimitReader(pr, maxClass+1))
	if err != nil {
		return nil, ErrDecrypt
	}
	return padded, nil
}

// parsePadded reads L || JSON || [L' || proof] || zeros. A record from
// before proofs has zeros (or nothing) after its JSON: no proof.
func parsePadded(padded []byte) (Record, *Proof, error) {
	isClass := false
	for _, c := range SizeClasses {
		isClass = isClass || len(padded) == c
	}
	if !isClass {
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

const (
	stanzaType = "blindex-record"
	wrapInfo   = "blindex v1 record wrap"
	saltSize   = 16
	fileKeyLen = 16 // age's file key size
)

var b64 = base64.RawStdEncoding.Strict()

func wrapAEAD(key [32]byte, salt []byte) (cipher.AEAD, error) {
	k, err := hkdf.Key(sha256.New, key[:], salt, wrapInfo, chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	return chacha20poly1305.New(k)
}

// recipient wraps the age file key to a record key.
type recipient struct{ key [32]byte }

func (r *recipient) Wrap(fileKey []byte) ([]*age.Stanza, error) {
	salt := make([]byte, saltSize)
	rand.Read(salt)
	aead, err := wrapAEAD(r.key, salt)
	if err != nil {
		return nil, err
	}
	// The zero nonce is safe: the wrapping key is fresh for every salt.
	body := aead.Seal(nil, make([]byte, chacha20poly1305.NonceSize), fileKey, nil)
	return []*age.Stanza{{Type: stanzaType, Args: []string{b64.EncodeToString(salt)}, Body: body}}, nil
}

// identity unwraps the age file key with a record key.
type identity struct{ key [32]byte }

func (i *identity) Unwrap(stanzas []*age.Stanza) ([]byte, error) {
	var ours *age.Stanza
	for _, s := range stanzas {
		if s.Type == stanzaType {
			ours = s
		}
	}
	if ours == nil {
		return nil, age.ErrIncorrectIdentity
	}
	// Anyone could append a stanza for another key; accepting it would let
	// a record sealed by the owner open for someone else.
	if len(stanzas) != 1 {
		return nil, errors.New("record: a blindex-record stanza must be the only one")
	}
	if len(ours.Args) != 1 {
		return nil, errors.New("record: malformed stanza")
	}
	salt, err := b64.DecodeString(ours.Args[0])
	if err != nil || len(salt) != saltSize {
		return nil, errors.New("record: malformed stanza salt")
	}
	if len(ours.Body) != fileKeyLen+chacha20poly1305.Overhead {
		return nil, errors.New("record: malformed stanza body")
	}
	aead, err := wrapAEAD(i.key, salt)
	if err != nil {
		return nil, err
	}
	fileKey, err := aead.Open(nil, make([]byte, chacha20poly1305.NonceSize), ours.Body, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: wrong record key", age.ErrIncorrectIdentity)
	}
	return fileKey, nil
}
