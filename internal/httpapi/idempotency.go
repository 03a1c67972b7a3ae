package httpapi

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"blindex.dev/blindex/internal/storeerr"
)

// HeaderIdempotencyKey names a write so that a client retrying after an
// unknown outcome (a timeout, a dropped connection) gets the first answer
// again instead of a second write or a lost one.
const HeaderIdempotencyKey = "Idempotency-Key"

// outcomeTTL is how long an answer is kept for retries.
const outcomeTTL = 24 * time.Hour

var (
	ErrIdempotencyKey   = New(http.StatusBadRequest, "bad idempotency key", "Idempotency-Key must be 16 to 64 characters of A-Z, a-z, 0-9, '-' and '_'")
	ErrIdempotencyReuse = New(http.StatusUnprocessableEntity, "idempotency key reused", "Idempotency-Key was used for a different request")
)

// An Outcome is a stored answer to an idempotent request. Body is sealed
// under a key derived from the client's idempotency key, which the store
// never sees: a stored credential reveals no number at rest.
type Outcome struct {
	RequestHash [32]byte // HMAC of the body under a key derived from the idempotency key
	Status      int
	Body        []byte // sealed
}

// OutcomeStore keeps the answers to idempotent requests. Outcome returns
// storeerr.ErrNotFound when there is none; SaveOutcome returns
// storeerr.ErrConflict when one exists.
type OutcomeStore interface {
	SaveOutcome(ctx context.Context, key [32]byte, o Outcome, expires time.Time) error
	Outcome(ctx context.Context, key [32]byte, now time.Time) (Outcome, error)
}

func validIdempotencyKey(k string) bool {
	if len(k) < 16 || len(k) > 64 {
		return false
	}
	for _, c := range k {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Idempotent makes process answer a repeated request (same key, method,
// path and body) with its first successful answer, for 24 hours. The answer
// is stored sealed under a key derived from the client's idempotency key,
// which the server does not keep, so a stored credential reveals nothing at
// rest. Requests without the header run as usual. Authenticated endpoints
// authenticate before calling the wrapped function, so a captured key alone
// does not fetch an answer.
//
// scope names who is asking (the caller's credential key for authenticated
// endpoints, "" otherwise): a stored answer goes only to the same scope, so
// another caller with the same key and body gets nothing of the first's.
func Idempotent[Resp any](store OutcomeStore, now func() time.Time, scope string, process func(r *http.Request, body []byte) (Resp, error)) func(r *http.Request, body []byte) (Resp, error) {
	return func(r *http.Request, body []byte) (Resp, error) {
		var zero Resp
		key := r.Header.Get(HeaderIdempotencyKey)
		if key == "" {
			return process(r, body)
		}
		if !validIdempotencyKey(key) {
			return zero, ErrIdempotencyKey
		}
		lookup := sha256.Sum256([]byte("blindex idempotency lookup\x00" + scope + "\x00" + key + "\x00" + r.Method + " " + r.URL.RequestURI()))
		// Keyed by the client's idempotency key, which the server does not
		// keep: a plain hash of a body such as {"number":"+1..."} would let
		// a database thief recover the number by trying them all.
		reqHash := requestHash(key, body)
		o, err := store.Outcome(r.Context(), lookup, now())
		switch {
		case err == nil:
			if o.RequestHash != reqHash {
				return zero, ErrIdempotencyReuse
			}
			var resp Resp
			plain, err := openOutcome(key, o.Body)
			if err != nil {
				return zero, err
			}
			if err := json.Unmarshal(plain, &resp); err != nil {
				return zero, err
			}
			return resp, nil
		case !errors.Is(err, storeerr.ErrNotFound):
			return zero, err
		}
		resp, err := process(r, body)
		if err != nil {
			return zero, err
		}
		plain, err := json.Marshal(resp)
		if err != nil {
			return zero, err
		}
		sealed, err := sealOutcome(key, plain)
		if err != nil {
			return zero, err
		}
		err = store.SaveOutcome(r.Context(), lookup, Outcome{RequestHash: reqHash, Status: http.StatusOK, Body: sealed}, now().Add(outcomeTTL))
		if err != nil && !errors.Is(err, storeerr.ErrConflict) { // a concurrent retry stored it first
			return zero, err
		}
		return resp, nil
	}
}

func outcomeAEAD(key string) (interface {
	NonceSize() int
	Seal(dst, nonce, plaintext, additionalData []byte) []byte
	Open(dst, nonce, ciphertext, additionalData []byte) ([]byte, error)
}, error) {
	k, err := hkdf.Key(sha256.New, []byte(key), nil, "blindex v1 idempotency seal", chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	return chacha20poly1305.NewX(k)
}

func sealOutcome(key string, plain []byte) ([]byte, error) {
	aead, err := outcomeAEAD(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	return aead.Seal(nonce, nonce, plain, nil), nil
}

func openOutcome(key string, sealed []byte) ([]byte, error) {
	aead, err := outcomeAEAD(key)
	if err != nil {
		return nil, err
	}
	if len(sealed) < aead.NonceSize() {
		return nil, errors.New("httpapi: stored outcome is corrupt")
	}
	return aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], nil)
}

func requestHash(key string, body []byte) [32]byte {
	k, err := hkdf.Key(sha256.New, []byte(key), nil, "blindex v1 idempotency request", sha256.Size)
	if err != nil {
		panic(err) // only for an impossible length
	}
	m := hmac.New(sha256.New, k)
	m.Write(body)
	var h [32]byte
	m.Sum(h[:0])
	return h
}
