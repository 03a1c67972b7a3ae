// Package httpsig authenticates blindex API requests with the key of a number
// credential, instead of a bearer token that a log line or proxy could leak.
//
// The client signs the method, host, request URI, a timestamp, a random nonce,
// the hash of its certificate and the hash of the body with ECDSA P-256. The
// server accepts a signature only within a short window around its clock and
// only once: it remembers every nonce it accepted until the window has passed,
// in memory and, through Verifier.Shared, in state that outlives the process
// and is shared by every process on it.
package httpsig

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Header names.
const (
	HeaderCredential = "Blindex-Credential" // base64 (std) DER of the leaf certificate
	HeaderTimestamp  = "Blindex-Timestamp"  // Unix seconds, decimal
	HeaderNonce      = "Blindex-Nonce"      // 16 random bytes, lower-case hex
	HeaderSignature  = "Blindex-Signature"  // base64 (std) ASN.1 ECDSA signature
)

const (
	nonceSize     = 16
	maxCertBase64 = 8 << 10
	maxSigBase64  = 128
	// maxSeen bounds the replay cache; beyond it new requests are refused
	// rather than letting replays through.
	maxSeen = 1 << 20
)

var (
	ErrMissing   = errors.New("httpsig: request is not signed")
	ErrMalformed = errors.New("httpsig: malformed signature headers")
	ErrStale     = errors.New("httpsig: request timestamp outside the accepted window")
	ErrSignature = errors.New("httpsig: signature does not verify")
	ErrReplay    = errors.New("httpsig: request already seen")
	ErrBusy      = errors.New("httpsig: replay cache full")
)

// Message returns the bytes that are signed for a request.
func Message(method, host, requestURI string, timestamp int64, nonce string, certDER, body []byte) []byte {
	certHash := sha256.Sum256(certDER)
	bodyHash := sha256.Sum256(body)
	return fmt.Appendf(nil, "blindex-request-v1\n%s\n%s\n%s\n%d\n%s\n%x\n%x",
		method, host, requestURI, timestamp, nonce, certHash, bodyHash)
}

// Sign adds the signature headers to req, whose body must be body.
func Sign(req *http.Request, body []byte, key *ecdsa.PrivateKey, certDER []byte, now time.Time) error {
	var n [nonceSize]byte
	rand.Read(n[:])
	nonce := hex.EncodeToString(n[:])
	ts := now.Unix()
	digest := sha256.Sum256(Message(req.Method, req.URL.Host, req.URL.RequestURI(), ts, nonce, certDER, body))
	sig, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
	if err != nil {
		return err
	}
	req.Header.Set(HeaderCredential, base64.StdEncoding.EncodeToString(certDER))
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderNonce, nonce)
	req.Header.Set(HeaderSignature, base64.StdEncoding.EncodeToString(sig))
	return nil
}

// Verifier checks signed requests. It is safe for concurrent use.
type Verifier struct {
	window time.Duration

	// Shared, if set, also records each accepted nonce key durably, in
	// state that every server process shares (a database), so that a
	// request accepted by one process cannot be replayed to another, nor
	// to this one after a restart. It returns ErrReplay for a key already
	// recorded; its other errors fail the request. It is asked only for
	// keys the memory has not seen. Set it before the first Verify.
	Shared func(ctx context.Context, key [32]byte, forgetAt time.Time) error

	mu   sync.Mutex
	seen map[[32]byte]time.Time // hash(cert, nonce) -> when it may be forgotten
}

// NewVerifier accepts timestamps within ±window of the server clock.
func NewVerifier(window time.Duration) *Verifier {
	return &Verifier{window: window, seen: make(map[[32]byte]time.Time)}
}

// Verify checks the signature on r (whose body was body) and returns the
// certificate DER. keyOf verifies the certificate and returns its public key;
// its error is returned unchanged.
func (v *Verifier) Verify(r *http.Request, body []byte, now time.Time, keyOf func(certDER []byte) (*ecdsa.PublicKey, error)) ([]byte, error) {
	certB64, tsStr, nonce, sigB64 := r.Header.Get(HeaderCredential), r.Header.Get(HeaderTimestamp),
		r.Header.Get(HeaderNonce), r.Header.Get(HeaderSignature)
	if certB64 == "" && tsStr == "" && nonce == "" && sigB64 == "" {
		return nil, ErrMissing
	}
	if len(certB64) > maxCertBase64 || len(sigB64) > maxSigBase64 {
		return nil, ErrMalformed
	}
	certDER, err := base64.StdEncoding.DecodeString(certB64)
	if err != nil || len(certDER) == 0 {
		return nil, ErrMalformed
	}
	sig, err := base64.StdEncoding.DecodeString(sigB64)
	if err != nil || len(sig) == 0 {
		return nil, ErrMalformed
	}
	if n, err := hex.DecodeString(nonce); err != nil || len(n) != nonceSize || hex.EncodeToString(n) != nonce {
		return nil, ErrMalformed
	}
	ts, err := strconv.ParseInt(tsStr, 10, 64)
	if err != nil || strconv.FormatInt(ts, 10) != tsStr {
		return nil, ErrMalformed
	}
	t := time.Unix(ts, 0)
	if t.Before(now.Add(-v.window)) || t.After(now.Add(v.window)) {
		return nil, ErrStale
	}
	pub, err := keyOf(certDER)
	if err != nil {
		return nil, err
	}
	digest := sha256.Sum256(Message(r.Method, r.Host, r.URL.RequestURI(), ts, nonce, certDER, body))
	if !ecdsa.VerifyASN1(pub, digest[:], sig) {
		return nil, ErrSignature
	}
	// Record the nonce only after the signature verified, so nobody can
	// fill the cache with nonces they could not sign.
	return certDER, v.remember(r.Context(), certDER, nonce, t.Add(v.window), now)
}

func (v *Verifier) remember(ctx context.Context, certDER []byte, nonce string, forgetAt, now time.Time) error {
	h := sha256.New()
	h.Write(certDER)
	h.Write([]byte(nonce))
	var key [32]byte
	h.Sum(key[:0])

	// Memory first: a replay to this process costs no store round trip,
	// and of two copies in flight at once only one reaches the store.
	if err := v.reserve(key, forgetAt, now); err != nil {
		return err
	}
	if v.Shared == nil {
		return nil
	}
	// The key stays reserved even if this fails: a client sends every
	// request, retries included, with a fresh nonce.
	return v.Shared(ctx, key, forgetAt)
}

// reserve records key in memory, or returns ErrReplay if it is there.
func (v *Verifier) reserve(key [32]byte, forgetAt, now time.Time) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.seen[key]; ok {
		return ErrReplay
	}
	if len(v.seen) >= maxSeen {
		for k, exp := range v.seen {
			if now.After(exp) {
				delete(v.seen, k)
			}
		}
		if len(v.seen) >= maxSeen {
			return ErrBusy
		}
	}
	v.seen[key] = forgetAt
	return nil
}

// Prune forgets nonces whose timestamps can no longer pass the window check.
func (v *Verifier) Prune(now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for k, exp := range v.seen {
		if now.After(exp) {
			delete(v.seen, k)
		}
	}
}
