package client

import (
	"crypto/x509"
	"time"

	"blindex.dev/blindex/passport"
)

// SignInvite returns a PASSporT (RFC 8225; a compact ES256 JWS) that proves
// to the callee dest that this client holds its number: it carries orig
// (the credential's number), dest, iat and the credential chain (x5c).
func (c *Client) SignInvite(dest string) (string, error) {
	d, err := c.normalize(dest)
	if err != nil {
		return "", err
	}
	chain, key, err := c.Chain()
	if err != nil {
		return "", err
	}
	return passport.Sign(key, chain, d, c.cfg.Now())
}

// VerifyInvite checks a PASSporT addressed to dest against the CA roots the
// callee trusts: the ES256 signature, the chain to a root, that the
// credential's TNAuthList holds orig, that dest matches, that iat is within
// 60 seconds, and that the credential is valid now. It returns the verified
// claims; Orig is the caller's number.
func VerifyInvite(token, dest string, roots *x509.CertPool) (*passport.Claims, error) {
	return passport.Verify(token, dest, passport.Options{Roots: roots, Now: time.Now()})
}

// TrustedRoots returns the CA roots the directory published when it was
// pinned: the default set of CAs a callee trusts.
func (c *Client) TrustedRoots() (*x509.CertPool, error) {
	p, err := c.pinned()
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, der := range p.CARoots {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, err
		}
		pool.AddCert(cert)
	}
	return pool, nil
}
