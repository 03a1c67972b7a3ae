package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
)

func parseP256(der []byte) (*ecdsa.PublicKey, error) {
	pub, err := x509.ParsePKIXPublicKey(der)
	if k, ok := pub.(*ecdsa.PublicKey); err == nil && ok && k.Curve == elliptic.P256() {
		return k, nil
	}
	return nil, ErrPublicKey
}
