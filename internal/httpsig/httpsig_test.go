package httpsig

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

var errUnknown = errors.New("unknown cert")

func setup(t *testing.T) (*ecdsa.PrivateKey, []byte, func([]byte) (*ecdsa.PublicKey, error)) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert := []byte("stand-in certificate bytes")
	keyOf := func(der []byte) (*ecdsa.PublicKey, error) {
		if string(der) != string(cert) {
			return nil, errUnknown
		}
		return &key.PublicKey, nil
	}
	return key, cert, keyOf
}

// serverSide turns a client request into what a server handler sees.
func serverSide(req *http.Request) *http.Request {
	r := req.Clone(req.Context())
	r.Host = req.URL.Host
	r.RequestURI = req.URL.RequestURI()
	return r
}

func signed(t *testing.T, key *ecdsa.PrivateKey, cert []byte, method, url, body string, now time.Time) *http.Request {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if err := Sign(req, []byte(body), key, cert, now); err != nil {
		t.Fatal(err)
	}
	return serverSide(req)
}

func TestVerify(t *testing.T) {
	key, cert, keyOf := setup(t)
	now := time.Unix(1_800_000_000, 0)
	v := NewVerifier(time.Minute)
	body := `{"elements":[]}`
	r := signed(t, key, cert, "POST", "http://127.0.0.1:8390/v1/evaluate", body, now)
	got, err := v.Verify(r, []byte(body), now, keyOf)
	if err != nil || string(got) != string(cert) {
		t.Fatalf("Verify = %q, %v", got, err)
	}
	if _, err := v.Verify(r, []byte(body), now, keyOf); !errors.Is(err, ErrReplay) {
		t.Errorf("replay: %v, want ErrReplay", err)
	}

	// Each bound field, changed, breaks the signature.
	cases := map[string]func(r *http.Request) (*http.Request, []byte){
		"body":   func(r *http.Request) (*http.Request, []byte) { return r, []byte(body + " ") },
		"method": func(r *http.Request) (*http.Request, []byte) { r.Method = "PUT"; return r, []byte(body) },
		"path": func(r *http.Request) (*http.Request, []byte) {
			r.URL.Path = "/v1/buckets"
			return r, []byte(body)
		},
		"host": func(r *http.Request) (*http.Request, []byte) { r.Host = "other:1"; return r, []byte(body) },
		"timestamp": func(r *http.Request) (*http.Request, []byte) {
			r.Header.Set(HeaderTimestamp, "1800000001")
			return r, []byte(body)
		},
		"nonce": func(r *http.Request) (*http.Request, []byte) {
			r.Header.Set(HeaderNonce, strings.Repeat("ab", nonceSize))
			return r, []byte(body)
		},
	}
	for name, mutate := range cases {
		r := signed(t, key, cert, "POST", "http://127.0.0.1:8390/v1/evaluate", body, now)
		r, b := mutate(r)
		if _, err := v.Verify(r, b, now, keyOf); !errors.Is(err, ErrSignature) {
			t.Errorf("%s changed: %v, want ErrSignature", name, err)
		}
	}
}

func TestWindowAndMalformed(t *testing.T) {
	key, cert, keyOf := setup(t)
	now := time.Unix(1_800_000_000, 0)
	v := NewVerifier(time.Minute)
	for _, skew := range []time.Duration{-2 * time.Minute, 2 * time.Minute} {
		r := signed(t, key, cert, "GET", "http://h/v1/x", "", now.Add(skew))
		if _, err := v.Verify(r, nil, now, keyOf); !errors.Is(err, ErrStale) {
			t.Errorf("skew %v: %v, want ErrStale", skew, err)
		}
	}
	r := signed(t, key, cert, "GET", "http://h/v1/x", "", now.Add(30*time.Second))
	if _, err := v.Verify(r, nil, now, keyOf); err != nil {
		t.Errorf("within window: %v", err)
	}

	plain, _ := http.NewRequest("GET", "http://h/v1/x", nil)
	if _, err := v.Verify(serverSide(plain), nil, now, keyOf); !errors.Is(err, ErrMissing) {
		t.Errorf("unsigned: %v, want ErrMissing", err)
	}
	for _, h := range []string{HeaderCredential, HeaderTimestamp, HeaderNonce, HeaderSignature} {
		for _, val := range []string{"", "!!!", strings.Repeat("A", 10000), "+1", "0x10"} {
			r := signed(t, key, cert, "GET", "http://h/v1/x", "", now)
			r.Header.Set(h, val)
			if _, err := v.Verify(r, nil, now, keyOf); err == nil {
				t.Errorf("%s=%.10q accepted", h, val)
			}
		}
	}

	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	r = signed(t, other, cert, "GET", "http://h/v1/x", "", now)
	if _, err := v.Verify(r, nil, now, keyOf); !errors.Is(err, ErrSignature) {
		t.Errorf("signed by another key: %v, want ErrSignature", err)
	}
	r = signed(t, key, []byte("another cert"), "GET", "http://h/v1/x", "", now)
	if _, err := v.Verify(r, nil, now, keyOf); !errors.Is(err, errUnknown) {
		t.Errorf("unknown cert: %v, want keyOf's error", err)
	}
}

func TestPrune(t *testing.T) {
	key, cert, keyOf := setup(t)
	now := time.Unix(1_800_000_000, 0)
	v := NewVerifier(time.Minute)
	r := signed(t, key, cert, "GET", "http://h/v1/x", "", now)
	if _, err := v.Verify(r, nil, now, keyOf); err != nil {
		t.Fatal(err)
	}
	v.Prune(now.Add(30 * time.Second))
	if len(v.seen) != 1 {
		t.Fatal("pruned a nonce that can still pass the window")
	}
	v.Prune(now.Add(2*time.Minute + time.Second))
	if len(v.seen) != 0 {
		t.Fatal("did not prune an expired nonce")
	}
}
