package record

import (
	"bytes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"

	"filippo.io/age"
	"golang.org/x/crypto/chacha20poly1305"
)

// Envelope v2 (docs/protocol.md §11):
//
//	0x02 || nonce (24 bytes) || XChaCha20-Poly1305(envelope key, nonce, padded, envelopeAD)
//
// The envelope key is derived from the record key, so the record key itself
// is never a key of two constructions. The nonce is random: XChaCha20's 192
// bits make collisions negligible for however many records one key seals.
// The associated data names the format, so a v2 ciphertext cannot be taken
// for anything else sealed under a key derived from the same record key.
const (
	envelopeVersion  = 0x02
	envelopeInfo     = "blindex record envelope v2"
	envelopeAD       = "blindex record v2"
	envelopeNonce    = chacha20poly1305.NonceSizeX
	envelopeOverhead = 1 + envelopeNonce + chacha20poly1305.Overhead // 41
)

func envelopeAEAD(key [32]byte) (cipher.AEAD, error) {
	k, err := hkdf.Key(sha256.New, key[:], nil, envelopeInfo, chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	return chacha20poly1305.NewX(k)
}

// seal encrypts an already padded plaintext as envelope v2 with a random
// nonce. It is separate from Seal so tests can seal malformed plaintexts.
func seal(key [32]byte, padded []byte) ([]byte, error) {
	nonce := make([]byte, envelopeNonce)
	rand.Read(nonce)
	return sealNonce(key, nonce, padded)
}

// sealNonce is seal with a given nonce, for the test vectors.
func sealNonce(key [32]byte, nonce, padded []byte) ([]byte, error) {
	if len(nonce) != envelopeNonce {
		return nil, errors.New("record: nonce is not 24 bytes")
	}
	aead, err := envelopeAEAD(key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, envelopeOverhead+len(padded))
	out = append(append(out, envelopeVersion), nonce...)
	return aead.Seal(out, nonce, padded, []byte(envelopeAD)), nil
}

// decrypt opens either form by its first byte: 0x02 for v2, 'a' (from
// "age-encryption.org/v1") for the legacy age form. It returns the padded
// plaintext, whose length it has checked against that form's classes.
func decrypt(key [32]byte, ciphertext []byte) ([]byte, error) {
	if len(ciphertext) > MaxCiphertext {
		return nil, ErrTooLarge
	}
	if len(ciphertext) == 0 {
		return nil, ErrDecrypt
	}
	var (
		padded  []byte
		classes []int
		err     error
	)
	switch ciphertext[0] {
	case envelopeVersion:
		padded, err = openEnvelope(key, ciphertext)
		classes = SizeClasses
	case 'a':
		padded, err = openLegacy(key, ciphertext)
		classes = legacySizeClasses
	default:
		return nil, ErrDecrypt
	}
	if err != nil {
		return nil, err
	}
	if !slices.Contains(classes, len(padded)) {
		return nil, fmt.Errorf("%w: padded length %d is not a size class", ErrInvalid, len(padded))
	}
	return padded, nil
}

func openEnvelope(key [32]byte, ciphertext []byte) ([]byte, error) {
	if len(ciphertext) > envelopeOverhead+maxClass {
		return nil, ErrTooLarge
	}
	if len(ciphertext) < envelopeOverhead {
		return nil, ErrDecrypt
	}
	aead, err := envelopeAEAD(key)
	if err != nil {
		return nil, ErrDecrypt
	}
	nonce, sealed := ciphertext[1:1+envelopeNonce], ciphertext[1+envelopeNonce:]
	padded, err := aead.Open(nil, nonce, sealed, []byte(envelopeAD))
	if err != nil {
		return nil, ErrDecrypt
	}
	return padded, nil
}

// The legacy form, which Seal wrote before envelope v2 and Open still reads:
// an age v1 file whose header holds exactly one stanza,
//
//	-> blindex-record <salt>
//	<body>
//
// salt is 16 random bytes, in age's unpadded standard base64. The wrapping
// key is HKDF-SHA256(ikm=key, salt=salt, info="blindex v1 record wrap"), 32
// bytes, and body is the ChaCha20-Poly1305 encryption of the 16-byte file
// key under it with an all-zero nonce (safe: each wrapping key is fresh for
// its salt). A header with any other stanza, or more than one, is rejected,
// so nobody can add a recipient to a sealed record.
const (
	stanzaType = "blindex-record"
	wrapInfo   = "blindex v1 record wrap"
	saltSize   = 16
	fileKeyLen = 16 // age's file key size
)

// legacyHeaderSize is the length of a legacy age header: the version line,
// one stanza with a 22-character salt and a 43-character body (a 32-byte
// wrapped key), and the MAC line.
const legacyHeaderSize = len("age-encryption.org/v1\n") +
	len("-> "+stanzaType+" ") + 22 + 1 +
	43 + 1 +
	len("--- ") + 43 + 1

var b64 = base64.RawStdEncoding.Strict()

func openLegacy(key [32]byte, ciphertext []byte) ([]byte, error) {
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

func wrapAEAD(key [32]byte, salt []byte) (cipher.AEAD, error) {
	k, err := hkdf.Key(sha256.New, key[:], salt, wrapInfo, chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	return chacha20poly1305.New(k)
}

// identity unwraps the legacy age file key with a record key.
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
