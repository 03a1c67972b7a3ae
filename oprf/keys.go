package oprf

import (
	"bytes"
	"crypto/rand"
	"fmt"

	"github.com/cloudflare/circl/oprf"
)

// PrivateKey is a POPRF server key: a non-zero ristretto255 scalar.
type PrivateKey struct {
	k   *oprf.PrivateKey
	b   []byte
	pub *PublicKey
}

// PublicKey is a POPRF server public key: a non-identity ristretto255 element.
type PublicKey struct {
	k *oprf.PublicKey
	b []byte
}

// GenerateKey returns a new random private key from crypto/rand.
func GenerateKey() (*PrivateKey, error) {
	k, err := oprf.GenerateKey(suite, rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("oprf: generating key: %w", err)
	}
	return newPrivateKey(k)
}

// ParsePrivateKey parses a key in RFC 9497 SerializeScalar form (ScalarSize
// bytes, little-endian, canonical). It rejects zero, which would make every
// output publicly computable.
func ParsePrivateKey(b []byte) (*PrivateKey, error) {
	if len(b) != ScalarSize {
		return nil, fmt.Errorf("%w: private key must be %d bytes", ErrKey, ScalarSize)
	}
	k := new(oprf.PrivateKey)
	if err := k.UnmarshalBinary(suite, b); err != nil {
		return nil, fmt.Errorf("%w: private key is zero or not a canonical scalar", ErrKey)
	}
	return newPrivateKey(k)
}

// newPrivateKey computes the public key once, up front: circl caches it lazily
// without a lock, which would race under concurrent use.
func newPrivateKey(k *oprf.PrivateKey) (*PrivateKey, error) {
	b, err := k.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKey, err)
	}
	pb, err := k.Public().MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKey, err)
	}
	pub, err := ParsePublicKey(pb)
	if err != nil {
		return nil, err
	}
	return &PrivateKey{k: k, b: b, pub: pub}, nil
}

// Bytes returns the key in RFC 9497 SerializeScalar form.
func (k *PrivateKey) Bytes() []byte { return bytes.Clone(k.b) }

// Public returns the public key of k.
func (k *PrivateKey) Public() *PublicKey { return k.pub }

// ParsePublicKey parses a key in RFC 9497 SerializeElement form (ElementSize
// bytes, canonical). It rejects the identity, which would let a server prove
// evaluations under the public witness zero.
func ParsePublicKey(b []byte) (*PublicKey, error) {
	if _, err := decodeElement(b); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKey, err)
	}
	k := new(oprf.PublicKey)
	if err := k.UnmarshalBinary(suite, b); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKey, err)
	}
	return &PublicKey{k: k, b: bytes.Clone(b)}, nil
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
