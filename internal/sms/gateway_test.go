package sms

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The message and credentials used everywhere. The secrets must never
// appear in a log line or an error.
const (
	testNumber     = "+14155550100"
	testCode       = "804271"
	testText       = "Your blindex code is 804271. It expires in 10m0s."
	testID         = "9f0c6b1e2d3a4c5bfa79e0112233aabb"
	testQueryToken = "qtok-7d1e0c3b9a"
	testSID        = "AC0123456789abcdef0123456789abcdef"
	testToken      = "authtok-5e6f7a8b9c0d1e2f3a4b5c6d"
	testFrom       = "+15005550006"
)

var (
	testSecret  = []byte("whsec-0f1e2d3c4b5a69788796a5b4c3d2e1f0")
	testMessage = Message{To: testNumber, Code: testCode, Text: testText, VerificationID: testID}
	fastRetry   = Retry{Attempts: 3, Base: time.Millisecond, Max: 4 * time.Millisecond}
)

// codeRE finds the code as a token of its own. Durations and times in log
// lines hold long digit runs only after a '.', so they cannot match by chance.
var codeRE = regexp.MustCompile(`(^|[^0-9.])` + testCode + `([^0-9]|$)`)

// assertNoSecrets fails if s holds the number (E.164, digits only or
// national), the code, the text, the webhook secret, the URL's query token
// or the Twilio auth token.
func assertNoSecrets(t *testing.T, what, s string) {
	t.Helper()
	for _, bad := range []string{testNumber, "14155550100", "4155550100", testText, "blindex code",
		string(testSecret), testQueryToken, testToken} {
		if strings.Contains(s, bad) {
			t.Errorf("%s holds %q:\n%s", what, bad, s)
		}
	}
	if codeRE.MatchString(s) {
		t.Errorf("%s holds the code:\n%s", what, s)
	}
}

// hang, in a script, means: never answer; wait for the client to give up.
const hang = -1

// fakeGateway is a local server for one provider. It checks every request
// with check and answers the n-th with script[n-1] (the last entry repeats),
// or with the provider's success status for 0.
type fakeGateway struct {
	srv       *httptest.Server
	script    []int
	ok        int
	errBody   string
	check     func(t *testing.T, r *http.Request, body []byte)
	onRequest func(n int) // called after each request is counted; may be nil

	mu sync.Mutex
	n  int
}

func newFakeGateway(t *testing.T, p provider, script []int) *fakeGateway {
	f := &fakeGateway{script: script, ok: p.ok, errBody: p.errBody, check: p.check}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("reading request body: %v", err)
		}
		f.mu.Lock()
		f.n++
		n, onRequest := f.n, f.onRequest
		f.mu.Unlock()
		f.check(t, r, body)
		if onRequest != nil {
			onRequest(n)
		}
		status := f.script[min(n, len(f.script))-1]
		switch status {
		case hang:
			<-r.Context().Done()
			return
		case 0:
			status = f.ok
		}
		// Followed redirects would show up as extra requests.
		w.Header().Set("Location", "/elsewhere")
		if status >= 300 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			io.WriteString(w, f.errBody)
			return
		}
		w.WriteHeader(status)
		io.WriteString(w, `{"sid":"SM0123","status":"queued"}`)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeGateway) attempts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

// provider adapts one sender to the shared tests.
type provider struct {
	name    string
	ok      int    // the status the real service answers on success
	errBody string // an error body that quotes the number and the code
	// new returns a sender for the fake server at base.
	new   func(base string, timeout time.Duration, retry Retry, logger *slog.Logger) (Sender, error)
	check func(t *testing.T, r *http.Request, body []byte)
}

var providers = []provider{
	{
		name:    "webhook",
		ok:      200,
		errBody: `{"error":"cannot deliver to +14155550100 (code 804271)"}`,
		new: func(base string, timeout time.Duration, retry Retry, logger *slog.Logger) (Sender, error) {
			return NewWebhook(WebhookConfig{URL: base + "/hooks/sms?token=" + testQueryToken,
				Secret: testSecret, Timeout: timeout, Retry: retry, Logger: logger})
		},
		check: checkWebhookRequest,
	},
	{
		name:    "twilio",
		ok:      201,
		errBody: `{"code":21211,"message":"The 'To' number +14155550100 is not a valid phone number.","more_info":"https://www.twilio.com/docs/errors/21211","status":400}`,
		new: func(base string, timeout time.Duration, retry Retry, logger *slog.Logger) (Sender, error) {
			return NewTwilio(TwilioConfig{AccountSID: testSID, AuthToken: testToken, From: testFrom,
				BaseURL: base, Timeout: timeout, Retry: retry, Logger: logger})
		},
		check: checkTwilioRequest(url2form{"To": testNumber, "Body": testText, "From": testFrom}, ""),
	},
}

type scenario struct {
	name     string
	script   []int         // answers; see fakeGateway
	retry    Retry         // zero means fastRetry
	timeout  time.Duration // zero means 10s
	closed   bool          // the server is gone: connections are refused
	cancel   bool          // cancel the caller's context during the first request
	wantErr  error         // nil, ErrRejected or ErrTemporary
	attempts int           // attempts made: log lines, and requests the server sees
	wantText string        // in the error's text
}

var scenarios = []scenario{
	{name: "success", script: []int{0}, attempts: 1},
	{name: "any 2xx", script: []int{202}, attempts: 1},
	{name: "5xx then success", script: []int{500, 502, 0}, attempts: 3},
	{name: "429 then success", script: []int{429, 0}, attempts: 2},
	{name: "400", script: []int{400}, wantErr: ErrRejected, attempts: 1, wantText: "HTTP 400"},
	{name: "401", script: []int{401}, wantErr: ErrRejected, attempts: 1, wantText: "HTTP 401"},
	{name: "403", script: []int{403}, wantErr: ErrRejected, attempts: 1, wantText: "HTTP 403"},
	{name: "404", script: []int{404}, wantErr: ErrRejected, attempts: 1, wantText: "HTTP 404"},
	{name: "422", script: []int{422}, wantErr: ErrRejected, attempts: 1, wantText: "HTTP 422"},
	{name: "400 after a 503", script: []int{503, 400}, wantErr: ErrRejected, attempts: 2, wantText: "HTTP 400"},
	{name: "redirect not followed", script: []int{307}, wantErr: ErrRejected, attempts: 1, wantText: "HTTP 307"},
	{name: "persistent 503", script: []int{503}, wantErr: ErrTemporary, attempts: 3, wantText: "HTTP 503"},
	{name: "persistent 500, 5 attempts", script: []int{500},
		retry: Retry{Attempts: 5, Base: time.Millisecond, Max: time.Millisecond}, wantErr: ErrTemporary, attempts: 5, wantText: "HTTP 500"},
	{name: "persistent 429", script: []int{429}, wantErr: ErrTemporary, attempts: 3, wantText: "HTTP 429"},
	{name: "no retries", script: []int{500}, retry: Retry{Attempts: 1}, wantErr: ErrTemporary, attempts: 1, wantText: "HTTP 500"},
	{name: "hang then success", script: []int{hang, 0}, timeout: 100 * time.Millisecond, attempts: 2},
	{name: "persistent hang", script: []int{hang}, timeout: 100 * time.Millisecond, wantErr: ErrTemporary, attempts: 3, wantText: "no answer within 100ms"},
	{name: "connection refused", closed: true, wantErr: ErrTemporary, wantText: "3 attempts"},
	// A long backoff: only the cancellation can end these promptly.
	{name: "cancel stops retries", script: []int{503}, retry: Retry{Attempts: 5, Base: time.Minute, Max: time.Minute},
		cancel: true, wantErr: ErrTemporary, attempts: 1, wantText: "context canceled"},
	{name: "cancel during a hung attempt", script: []int{hang}, timeout: time.Minute, cancel: true,
		wantErr: ErrTemporary, attempts: 1, wantText: "context canceled"},
}

// run sends testMessage through p as sc describes, logging to logger, and
// checks the outcome and the number of requests.
func (sc scenario) run(t *testing.T, p provider, logger *slog.Logger) error {
	t.Helper()
	f := newFakeGateway(t, p, sc.script)
	if sc.closed {
		f.srv.Close()
	}
	retry, timeout := sc.retry, sc.timeout
	if retry == (Retry{}) {
		retry = fastRetry
	}
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	s, err := p.new(f.srv.URL, timeout, retry, logger)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if sc.cancel {
		f.mu.Lock()
		f.onRequest = func(int) { time.AfterFunc(20*time.Millisecond, cancel) }
		f.mu.Unlock()
	}

	start := time.Now()
	err = s.Send(ctx, testMessage)
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("Send took %v", d)
	}
	switch {
	case sc.wantErr == nil && err != nil:
		t.Errorf("Send: %v, want success", err)
	case sc.wantErr != nil && !errors.Is(err, sc.wantErr):
		t.Errorf("Send: %v, want %v", err, sc.wantErr)
	case errors.Is(err, ErrRejected) && errors.Is(err, ErrTemporary):
		t.Errorf("Send: %v is both rejected and temporary", err)
	}
	if err != nil {
		if !strings.Contains(err.Error(), sc.wantText) {
			t.Errorf("error %q lacks %q", err, sc.wantText)
		}
		if !strings.Contains(err.Error(), p.name) {
			t.Errorf("error %q does not name the sender", err)
		}
		assertNoSecrets(t, "error", err.Error())
	}
	if sc.cancel && !errors.Is(err, context.Canceled) {
		t.Errorf("Send: %v, want context.Canceled in the chain", err)
	}
	switch {
	case sc.closed:
	case slices.Contains(sc.script, hang) && !sc.cancel:
		// An attempt may time out before its request reaches a busy
		// server; the log lines count those.
		if n := f.attempts(); n < 1 || n > sc.attempts {
			t.Errorf("server saw %d requests, want 1 to %d", n, sc.attempts)
		}
	case f.attempts() != sc.attempts:
		t.Errorf("server saw %d requests, want %d", f.attempts(), sc.attempts)
	}
	return err
}

func TestSend(t *testing.T) {
	for _, p := range providers {
		for _, sc := range scenarios {
			t.Run(p.name+"/"+sc.name, func(t *testing.T) {
				t.Parallel()
				var buf bytes.Buffer
				sc.run(t, p, slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
				// One line per attempt (the refused connections included),
				// each with the id, attempt number, status and duration.
				lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
				want := sc.attempts
				if sc.closed {
					want = 3
				}
				if len(lines) != want {
					t.Errorf("%d log lines, want %d:\n%s", len(lines), want, buf.String())
				}
				for i, l := range lines {
					for _, attr := range []string{"sender=" + p.name, "verification_id=" + testID,
						fmt.Sprintf("attempt=%d", i+1), "status=", "duration="} {
						if !strings.Contains(l, attr) {
							t.Errorf("log line %q lacks %q", l, attr)
						}
					}
				}
			})
		}
	}
}

// TestLogCapture runs every scenario against every sender with one JSON
// log and checks that the log ties lines to the verification id but never
// holds the number, the code, the text or a credential.
func TestLogCapture(t *testing.T) {
	for _, p := range providers {
		t.Run(p.name, func(t *testing.T) {
			var buf bytes.Buffer
			logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
			for _, sc := range scenarios {
				sc.run(t, p, logger)
			}
			// The constructor's warning path too: plain http to a
			// non-loopback host logs the host only.
			if _, err := p.new("http://sms-gateway.invalid", 0, Retry{}, logger); err != nil {
				t.Fatal(err)
			}
			out := buf.String()
			want := 0
			for _, sc := range scenarios {
				want += sc.attempts
				if sc.closed {
					want += 3
				}
			}
			if got := strings.Count(out, `"verification_id":"`+testID+`"`); got != want {
				t.Errorf("verification id appears %d times, want %d (one per attempt)", got, want)
			}
			if !strings.Contains(out, "sms-gateway.invalid") || !strings.Contains(out, "plain http") {
				t.Errorf("no plain-http warning in the log")
			}
			assertNoSecrets(t, "log", out)
			if strings.Contains(out, testSID) || strings.Contains(out, "hooks/sms") {
				t.Errorf("log holds the URL or account SID:\n%s", out)
			}
		})
	}
}

// A gateway that answers 2xx with an endless body must not hold Send until
// the timeout: only a small prefix is read.
func TestResponseBodyCapped(t *testing.T) {
	for _, p := range providers {
		t.Run(p.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(p.ok)
				chunk := bytes.Repeat([]byte("x"), 1<<10)
				for r.Context().Err() == nil {
					if _, err := w.Write(chunk); err != nil {
						return
					}
				}
			}))
			defer srv.Close()
			s, err := p.new(srv.URL, time.Minute, fastRetry, nil)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if err := s.Send(t.Context(), testMessage); err != nil {
				t.Errorf("Send: %v", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Send took %v reading an endless body", d)
			}
		})
	}
}

func TestConcurrentSend(t *testing.T) {
	for _, p := range providers {
		t.Run(p.name, func(t *testing.T) {
			f := newFakeGateway(t, p, []int{0})
			s, err := p.new(f.srv.URL, 0, fastRetry, nil)
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			for range 16 {
				wg.Go(func() {
					if err := s.Send(t.Context(), testMessage); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			if f.attempts() != 16 {
				t.Errorf("server saw %d requests, want 16", f.attempts())
			}
		})
	}
}

func TestRetryDefaults(t *testing.T) {
	r, err := Retry{}.withDefaults()
	if err != nil || r != (Retry{Attempts: 3, Base: 200 * time.Millisecond, Max: 2 * time.Second}) {
		t.Errorf("defaults: %+v, %v", r, err)
	}
	for _, bad := range []Retry{{Attempts: -1}, {Base: -1}, {Max: -1}} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestRetryDelay(t *testing.T) {
	r := Retry{Attempts: 100, Base: 200 * time.Millisecond, Max: 2 * time.Second}
	for n, want := range map[int]time.Duration{1: 200 * time.Millisecond, 2: 400 * time.Millisecond,
		3: 800 * time.Millisecond, 4: 1600 * time.Millisecond, 5: 2 * time.Second, 99: 2 * time.Second} {
		seen := map[time.Duration]bool{}
		for range 200 {
			d := r.delay(n)
			if d < want/2 || d > want {
				t.Fatalf("delay(%d) = %v, want in [%v, %v]", n, d, want/2, want)
			}
			seen[d] = true
		}
		if len(seen) < 2 {
			t.Errorf("delay(%d) has no jitter", n)
		}
	}
	// Max below Base caps the first delay too.
	if d := (Retry{Base: time.Second, Max: 10 * time.Millisecond}).delay(1); d > 10*time.Millisecond {
		t.Errorf("delay above Max: %v", d)
	}
}
