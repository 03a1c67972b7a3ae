package httpsig

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// fuzzKey is fixed, so that a crasher committed under testdata/fuzz/ still
// carries a valid signature when it is replayed.
func fuzzKey(tb testing.TB) *ecdsa.PrivateKey {
	seed := sha256.Sum256([]byte("blindex httpsig fuzz key"))
	k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), seed[:])
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

var errFuzzCert = errors.New("certificate refused")

// fuzzKeyOf stands in for credential verification: it accepts any
// certificate except those starting with 0xff, and answers with the fuzz key,
// so the signature (which binds the certificate's hash) is what decides.
func fuzzKeyOf(pub *ecdsa.PublicKey) func([]byte) (*ecdsa.PublicKey, error) {
	return func(der []byte) (*ecdsa.PublicKey, error) {
		if len(der) == 0 {
			panic("keyOf called with an empty certificate")
		}
		if der[0] == 0xff {
			return nil, errFuzzCert
		}
		return pub, nil
	}
}

// referenceMessage is the signed message of docs/protocol.md §7, written
// out independently of Message.
func referenceMessage(method, host, uri, ts, nonce string, cert, body []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "blindex-request-v1\n%s\n%s\n%s\n%s\n%s\n", method, host, uri, ts, nonce)
	ch, bh := sha256.Sum256(cert), sha256.Sum256(body)
	b.WriteString(hex.EncodeToString(ch[:]) + "\n" + hex.EncodeToString(bh[:]))
	return b.Bytes()
}

// fuzzRequest is a server-side request to a fixed URL carrying the four
// headers as given (an empty value leaves a header out).
func fuzzRequest(cred, ts, nonce, sig string) *http.Request {
	r, _ := http.NewRequest("POST", "http://127.0.0.1:8390/v1/evaluate", nil)
	r = serverSide(r)
	for h, v := range map[string]string{HeaderCredential: cred, HeaderTimestamp: ts, HeaderNonce: nonce, HeaderSignature: sig} {
		if v != "" {
			r.Header[h] = []string{v}
		}
	}
	return r
}

func FuzzVerify(f *testing.F) {
	key := fuzzKey(f)
	keyOf := fuzzKeyOf(&key.PublicKey)
	now := time.Unix(1_800_000_000, 0)
	const window = time.Minute
	cert := []byte("stand-in certificate DER")
	body := []byte(`{"elements":["AAAA"]}`)

	// A valid signed request is the first seed; it must verify exactly once.
	valid := func(body []byte, at time.Time) (cred, ts, nonce, sig string) {
		req, _ := http.NewRequest("POST", "http://127.0.0.1:8390/v1/evaluate", bytes.NewReader(body))
		if err := Sign(req, body, key, cert, at); err != nil {
			f.Fatal(err)
		}
		return req.Header.Get(HeaderCredential), req.Header.Get(HeaderTimestamp), req.Header.Get(HeaderNonce), req.Header.Get(HeaderSignature)
	}
	cred, ts, nonce, sig := valid(body, now)
	v := NewVerifier(window)
	if _, err := v.Verify(fuzzRequest(cred, ts, nonce, sig), body, now, keyOf); err != nil {
		f.Fatalf("seed does not verify: %v", err)
	}
	if _, err := v.Verify(fuzzRequest(cred, ts, nonce, sig), body, now, keyOf); !errors.Is(err, ErrReplay) {
		f.Fatalf("seed verified twice: %v", err)
	}
	f.Add(cred, ts, nonce, sig, body)
	for _, skew := range []time.Duration{-window, window, -window - time.Second, window + time.Second} {
		c, ts, n, s := valid(nil, now.Add(skew))
		f.Add(c, ts, n, s, []byte(nil))
	}
	f.Add(cred, ts, nonce, sig, []byte(`{"elements":["AAAB"]}`))
	f.Add(cred, "+"+ts, nonce, sig, body)
	f.Add(cred, "0"+ts, nonce, sig, body)
	f.Add(cred, ts, "ABCDEF"+nonce[6:], sig, body)
	f.Add(cred+"\n", ts, nonce, sig, body)
	f.Add(base64.StdEncoding.EncodeToString([]byte{0xff, 1}), ts, nonce, sig, body)
	f.Add("", "", "", "", body)
	f.Add("", ts, nonce, sig, body)

	f.Fuzz(func(t *testing.T, cred, ts, nonce, sig string, body []byte) {
		r := fuzzRequest(cred, ts, nonce, sig)
		v := NewVerifier(window)
		got, err := v.Verify(r, body, now, keyOf)
		if err != nil {
			switch {
			case errors.Is(err, ErrMissing):
				if cred != "" || ts != "" || nonce != "" || sig != "" {
					t.Fatalf("ErrMissing with a header present")
				}
			case errors.Is(err, ErrMalformed), errors.Is(err, ErrStale), errors.Is(err, ErrSignature), errors.Is(err, errFuzzCert):
			default:
				t.Fatalf("unexpected error %v", err)
			}
			if wantAccept(t, cred, ts, nonce, sig, body, now, window, &key.PublicKey) {
				t.Fatalf("valid signed request refused: %v", err)
			}
			return
		}
		// Accepted: every rule of docs/protocol.md §7 must hold.
		if !wantAccept(t, cred, ts, nonce, sig, body, now, window, &key.PublicKey) {
			t.Fatalf("accepted a request that breaks the rules: cred %q ts %q nonce %q sig %q", cred, ts, nonce, sig)
		}
		if der, _ := base64.StdEncoding.DecodeString(cred); !bytes.Equal(got, der) {
			t.Fatalf("returned certificate %x, want %x", got, der)
		}
		if _, err := v.Verify(r, body, now, keyOf); !errors.Is(err, ErrReplay) {
			t.Fatalf("accepted request replayed: %v, want ErrReplay", err)
		}
	})
}

// wantAccept is the reference decision for a request to the fixed URL:
// canonical headers within their limits, a timestamp within the window, a
// certificate keyOf accepts, and an ES256 signature over the reference
// message.
func wantAccept(t *testing.T, cred, ts, nonce, sig string, body []byte, now time.Time, window time.Duration, pub *ecdsa.PublicKey) bool {
	t.Helper()
	if len(cred) > 8192 || len(sig) > 128 {
		return false
	}
	der, err := base64.StdEncoding.DecodeString(cred)
	if err != nil || len(der) == 0 || der[0] == 0xff {
		return false
	}
	rawSig, err := base64.StdEncoding.DecodeString(sig)
	if err != nil || len(rawSig) == 0 {
		return false
	}
	if len(nonce) != 32 {
		return false
	}
	for _, c := range nonce {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || strconv.FormatInt(sec, 10) != ts {
		return false
	}
	if d := time.Unix(sec, 0).Sub(now); d < -window || d > window {
		return false
	}
	digest := sha256.Sum256(referenceMessage("POST", "127.0.0.1:8390", "/v1/evaluate", ts, nonce, der, body))
	return ecdsa.VerifyASN1(pub, digest[:], rawSig)
}
