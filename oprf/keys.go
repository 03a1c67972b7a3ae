package oprf

import (
	"bytes"
	"fmt"

	"github.com/gtank/ristretto255"
)

// PrivateKey is a POPRF server key: a non-zero ristretto255 scalar.
type PrivateKey struct {
	k   ristretto255.Scalar
	b   []byte
	pub *PublicKey
}

// PublicKey is a POPRF server public key: a non-identity ristretto255 element.
type PublicKey struct {
	e ristretto255.Element
	b []byte
}

// GenerateKey returns a new random private key from crypto/rand.
func GenerateKey() (*PrivateKey, error) {
	var k ristretto255.Scalar
	return newPrivateKey(randomScalar(&k)), nil
}

// ParsePrivateKey parses a key in RFC 9497 SerializeScalar form (ScalarSize
// bytes, little-endian, canonical). It rejects zero, which would make every
// output publicly computable.
func ParsePrivateKey(b []byte) (*PrivateKey, error) {
	if len(b) != ScalarSize {
		return nil, fmt.Errorf("%w: private key must be %d bytes", ErrKey, ScalarSize)
	}
	var k ristretto255.Scalar
	if !decodeScalar(&k, b) || isZero(&k) {
		return nil, fmt.Errorf("%w: private key is zero or not a canonical scalar", ErrKey)
	}
	return newPrivateKey(&k), nil
}

// newPrivateKey computes the public key once, up front, so that a key is
// immutable and safe for concurrent use. k must be non-zero.
func newPrivateKey(k *ristretto255.Scalar) *PrivateKey {
	pub := &PublicKey{}
	pub.e.ScalarBaseMult(k)
	pub.b = pub.e.Encode(nil)
	return &PrivateKey{k: *k, b: k.Encode(nil), pub: pub}
}

// Bytes returns the key in RFC 9497 SerializeScalar form.
func (k *PrivateKey) Bytes() []byte { return bytes.Clone(k.b) }

// Public returns the public key of k.
func (k *PrivateKey) Public() *PublicKey { return k.pub }

// ParsePublicKey parses a key in RFC 9497 SerializeElement form (ElementSize
// bytes, canonical). It rejects the identity, which would let a server prove
// evaluations under the public witness zero.
func ParsePublicKey(b []byte) (*PublicKey, error) {
	pk := &PublicKey{b: bytes.Clone(b)}
	if err := decodeElement(&pk.e, b); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKey, err)
	}
	return pk, nil
}

// Bytes returns the key in RFC 9497 SerializeElement form.
func (k *PublicKey) Bytes() []byte { return bytes.Clone(k.b) }

// Equal reports whether k and o are the same key.
func (k *PublicKey) Equal(o *PublicKey) bool {
	if k == nil || o == nil {
		return k == o
	}
	return bytes.Equal(k.b, o.b)
}
