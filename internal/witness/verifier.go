package witness

import (
	"crypto"
	"crypto/ed25519"
	"encoding/base64"
	"io"
	"strconv"
	"strings"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/note"
)

// algCosignatureV1 is the c2sp.org/signed-note signature type of Ed25519
// cosignature/v1 keys.
const algCosignatureV1 = 0x04

// ParseVerifier parses a witness's verifier key,
//
//	<name>+<key hash, 8 lower-case hex digits>+<base64(0x04 || Ed25519 public key)>
//
// and returns a note.Verifier for its c2sp.org/tlog-cosignature (cosignature/v1)
// signatures: an Ed25519 signature over "cosignature/v1\ntime <t>\n" followed
// by the checkpoint, carried as the 8-byte timestamp t and the signature.
//
// Only the canonical encoding is accepted and the key hash must match the
// name and key, so a vkey names exactly one key. Log keys (type 0x01) are
// refused with ErrKeyAlgorithm: a witness must never be mistaken for the log.
func ParseVerifier(vkey string) (note.Verifier, error) {
	name, rest, ok1 := strings.Cut(vkey, "+")
	hash16, key64, ok2 := strings.Cut(rest, "+")
	if !ok1 || !ok2 || len(hash16) != 8 {
		return nil, ErrMalformedVerifierKey
	}
	hash, err := strconv.ParseUint(hash16, 16, 32)
	if err != nil {
		return nil, ErrMalformedVerifierKey
	}
	key, err := base64.StdEncoding.Strict().DecodeString(key64)
	if err != nil || len(key) == 0 {
		return nil, ErrMalformedVerifierKey
	}
	if key[0] != algCosignatureV1 {
		return nil, ErrKeyAlgorithm
	}
	if len(key) != 1+ed25519.PublicKeySize {
		return nil, ErrMalformedVerifierKey
	}
	// torchwood's CosignatureVerifier implements the spec, but is only built
	// from a signer; verifyOnlyKey gives it the public key and cannot sign.
	s, err := torchwood.NewCosignatureSigner(name, verifyOnlyKey(key[1:]))
	if err != nil {
		return nil, ErrMalformedVerifierKey
	}
	v := s.Verifier()
	if v.KeyHash() != uint32(hash) || v.String() != vkey {
		return nil, ErrMalformedVerifierKey
	}
	return v, nil
}

// verifyOnlyKey is a crypto.Signer holding only an Ed25519 public key.
type verifyOnlyKey ed25519.PublicKey

func (k verifyOnlyKey) Public() crypto.PublicKey { return ed25519.PublicKey(k) }

func (verifyOnlyKey) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errVerifyOnly
}
