package httpapi

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"time"

	"blindex.dev/blindex/credential"
	"blindex.dev/blindex/internal/httpsig"
	"blindex.dev/blindex/internal/storeerr"
)

// Credential errors, shared by every service that authenticates requests.
var (
	ErrCredentialExpired     = New(http.StatusUnauthorized, "credential expired", "credential expired: verify the number again")
	ErrCredentialNotYetValid = New(http.StatusUnauthorized, "credential not yet valid", "credential not yet valid: check this device's clock")
	ErrCredentialUntrusted   = New(http.StatusUnauthorized, "credential not accepted", "credential not accepted: not issued by a CA this server trusts")
)

// Authenticate verifies the request signature (httpsig) and the credential
// that made it, and returns the credential's number and certificate.
func Authenticate(v *httpsig.Verifier, r *http.Request, body []byte, roots *x509.CertPool, now time.Time) (string, *x509.Certificate, error) {
	var number string
	var leaf *x509.Certificate
	_, err := v.Verify(r, body, now, func(certDER []byte) (*ecdsa.PublicKey, error) {
		var err error
		number, leaf, err = credential.Verify(certDER, roots, now)
		switch {
		case errors.Is(err, credential.ErrExpired):
			if c, perr := x509.ParseCertificate(certDER); perr == nil && now.Before(c.NotBefore) {
				return nil, ErrCredentialNotYetValid
			}
			return nil, ErrCredentialExpired
		case err != nil:
			return nil, fmt.Errorf("%w: %w", ErrCredentialUntrusted, err)
		}
		return leaf.PublicKey.(*ecdsa.PublicKey), nil // credential.Verify checked it is P-256
	})
	if err != nil {
		return "", nil, err
	}
	return number, leaf, nil
}

// A Counter is the store operation shared nonces need (ca.Store has it).
type Counter interface {
	Count(ctx context.Context, key [32]byte, window, expires time.Time, limit int) (int, error)
}

// SharedNonces records request nonces in a store's counters (a counter
// that may reach 1, in window 0), so that no server process on the store
// accepts a replay of a request one accepted, itself after a restart
// included; the counters expire with the nonces and are swept with the
// other counters. It costs one durable commit per signed request. Use it as
// httpsig.Verifier.Shared, on every store.
func SharedNonces(store Counter) func(ctx context.Context, key [32]byte, forgetAt time.Time) error {
	return func(ctx context.Context, key [32]byte, forgetAt time.Time) error {
		k := sha256.Sum256(append([]byte("blindex request nonce\x00"), key[:]...))
		_, err := store.Count(ctx, k, time.Unix(0, 0), forgetAt, 1)
		if errors.Is(err, storeerr.ErrExhausted) {
			return httpsig.ErrReplay
		}
		return err
	}
}
