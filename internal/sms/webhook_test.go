package sms

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// verifyBlindexWebhook is the receiver's recipe, as printed in
// docs/operations.md ("Verifying webhook requests"). Keep the two identical.
func verifyBlindexWebhook(h http.Header, body, secret []byte, now time.Time) error {
	ts := h.Get("Blindex-Timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("missing or malformed Blindex-Timestamp")
	}
	// The replay window: a captured request is useless after 5 minutes.
	if d := now.Sub(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return errors.New("timestamp outside the replay window")
	}
	sigHex, ok := strings.CutPrefix(h.Get("Blindex-Signature"), "v1=")
	sig, err := hex.DecodeString(sigHex)
	if !ok || err != nil {
		return errors.New("missing or malformed Blindex-Signature")
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	if !hmac.Equal(sig, mac.Sum(nil)) {
		return errors.New("signature does not verify")
	}
	return nil
}

const wantWebhookBody = `{"to":"+14155550100","text":"Your blindex code is 804271. It expires in 10m0s.","code":"804271","verification_id":"9f0c6b1e2d3a4c5bfa79e0112233aabb"}`

// checkWebhookRequest asserts the exact shape of a webhook request.
func checkWebhookRequest(t *testing.T, r *http.Request, body []byte) {
	t.Helper()
	if r.Method != http.MethodPost || r.URL.Path != "/hooks/sms" || r.URL.RawQuery != "token="+testQueryToken {
		t.Errorf("request %s %s, want POST /hooks/sms?token=...", r.Method, r.URL)
	}
	if got := r.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type %q", got)
	}
	if got := r.Header.Get("Authorization"); got != "" {
		t.Errorf("unexpected Authorization %q", got)
	}
	if string(body) != wantWebhookBody {
		t.Errorf("body\n%s\nwant\n%s", body, wantWebhookBody)
	}
	if r.ContentLength != int64(len(body)) {
		t.Errorf("Content-Length %d for %d bytes", r.ContentLength, len(body))
	}
	ts, err := strconv.ParseInt(r.Header.Get("Blindex-Timestamp"), 10, 64)
	if d := time.Since(time.Unix(ts, 0)); err != nil || d < -2*time.Second || d > 5*time.Second {
		t.Errorf("Blindex-Timestamp %q is not now", r.Header.Get("Blindex-Timestamp"))
	}
	if err := verifyBlindexWebhook(r.Header, body, testSecret, time.Now()); err != nil {
		t.Errorf("signature: %v (Blindex-Signature %q)", err, r.Header.Get("Blindex-Signature"))
	}
}

// captureWebhook sends testMessage and returns the request's headers and body.
func captureWebhook(t *testing.T) (http.Header, []byte) {
	var (
		mu   sync.Mutex
		h    http.Header
		body []byte
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		h, body = r.Header.Clone(), b
	}))
	defer srv.Close()
	s, err := NewWebhook(WebhookConfig{URL: srv.URL, Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(t.Context(), testMessage); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	return h, body
}

// The recipe must refuse anything but the request as signed, within the
// window: otherwise the signature check in the other tests proves nothing.
func TestWebhookSignatureRecipe(t *testing.T) {
	h, body := captureWebhook(t)
	now := time.Now()
	if err := verifyBlindexWebhook(h, body, testSecret, now); err != nil {
		t.Fatalf("genuine request: %v", err)
	}
	if want := "v1=" + webhookSignature(testSecret, h.Get("Blindex-Timestamp"), body); h.Get("Blindex-Signature") != want {
		t.Errorf("Blindex-Signature %q, want %q", h.Get("Blindex-Signature"), want)
	}

	for i := range body {
		b := bytes.Clone(body)
		b[i] ^= 0x01
		if verifyBlindexWebhook(h, b, testSecret, now) == nil {
			t.Errorf("body with byte %d changed verifies", i)
		}
	}
	if verifyBlindexWebhook(h, body, []byte("whsec-another-secret-of-32-bytes-x"), now) == nil {
		t.Error("wrong secret verifies")
	}
	ts, _ := strconv.ParseInt(h.Get("Blindex-Timestamp"), 10, 64)
	moved := h.Clone()
	moved.Set("Blindex-Timestamp", strconv.FormatInt(ts+1, 10))
	if verifyBlindexWebhook(moved, body, testSecret, now) == nil {
		t.Error("changed timestamp verifies")
	}
	for _, sig := range []string{"", "v1=", strings.TrimPrefix(h.Get("Blindex-Signature"), "v1="),
		"v2=" + strings.TrimPrefix(h.Get("Blindex-Signature"), "v1=")} {
		bad := h.Clone()
		bad.Set("Blindex-Signature", sig)
		if verifyBlindexWebhook(bad, body, testSecret, now) == nil {
			t.Errorf("signature header %q verifies", sig)
		}
	}

	// A correctly signed request outside the window is refused; inside, accepted.
	for age, ok := range map[time.Duration]bool{-6 * time.Minute: false, -4 * time.Minute: true,
		4 * time.Minute: true, 6 * time.Minute: false} {
		ts := strconv.FormatInt(now.Add(-age).Unix(), 10)
		hh := h.Clone()
		hh.Set("Blindex-Timestamp", ts)
		hh.Set("Blindex-Signature", "v1="+webhookSignature(testSecret, ts, body))
		if err := verifyBlindexWebhook(hh, body, testSecret, now); (err == nil) != ok {
			t.Errorf("request %v old: %v", age, err)
		}
	}
}

// Retries resend the same body, each with a fresh signature.
func TestWebhookRetrySameBody(t *testing.T) {
	var (
		mu     sync.Mutex
		bodies []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if err := verifyBlindexWebhook(r.Header, b, testSecret, time.Now()); err != nil {
			t.Errorf("signature: %v", err)
		}
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	s, err := NewWebhook(WebhookConfig{URL: srv.URL, Secret: testSecret, Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(t.Context(), testMessage); !errors.Is(err, ErrTemporary) {
		t.Fatalf("Send: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bodies) != 3 || bodies[0] != wantWebhookBody || bodies[1] != bodies[0] || bodies[2] != bodies[0] {
		t.Errorf("bodies %q", bodies)
	}
}

func TestWebhookConfig(t *testing.T) {
	good := WebhookConfig{URL: "https://sms.example.net/hook", Secret: bytes.Repeat([]byte{7}, 32)}
	w, err := NewWebhook(good)
	if err != nil {
		t.Fatal(err)
	}
	def := Retry{Attempts: 3, Base: 200 * time.Millisecond, Max: 2 * time.Second}
	if w.g.timeout != 5*time.Second || w.g.retry != def {
		t.Errorf("defaults: timeout %v, retry %+v", w.g.timeout, w.g.retry)
	}
	good.Secret[0] = 8
	if w.secret[0] != 7 {
		t.Error("the sender shares the caller's secret slice")
	}

	for _, tc := range []struct {
		name string
		edit func(*WebhookConfig)
		want string
	}{
		{"missing URL", func(c *WebhookConfig) { c.URL = "" }, "webhook URL is required"},
		{"relative URL", func(c *WebhookConfig) { c.URL = "/hook" }, "absolute http or https"},
		{"no host", func(c *WebhookConfig) { c.URL = "https:///hook" }, "absolute http or https"},
		{"ftp URL", func(c *WebhookConfig) { c.URL = "ftp://sms.example.net/?token=" + testQueryToken }, "absolute http or https"},
		{"unparsable URL", func(c *WebhookConfig) { c.URL = "https://sms.example.net/%zz?token=" + testQueryToken }, "absolute http or https"},
		{"no secret", func(c *WebhookConfig) { c.Secret = nil }, "at least 32 bytes"},
		{"short secret", func(c *WebhookConfig) { c.Secret = testSecret[:31] }, "at least 32 bytes"},
		{"negative timeout", func(c *WebhookConfig) { c.Timeout = -time.Second }, "timeout"},
		{"negative attempts", func(c *WebhookConfig) { c.Retry.Attempts = -1 }, "retry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := WebhookConfig{URL: "http://127.0.0.1:9/hook", Secret: testSecret}
			tc.edit(&c)
			_, err := NewWebhook(c)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "sms: ") {
				t.Errorf("NewWebhook: %v, want an error about %q", err, tc.want)
			}
			if err != nil {
				assertNoSecrets(t, "error", err.Error())
			}
		})
	}
}
