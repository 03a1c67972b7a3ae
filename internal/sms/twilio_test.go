package sms

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// url2form is the exact form a Twilio request must carry.
type url2form map[string]string

// checkTwilioRequest asserts the exact shape of a Messages API request under
// the base URL path prefix.
func checkTwilioRequest(want url2form, prefix string) func(*testing.T, *http.Request, []byte) {
	return func(t *testing.T, r *http.Request, body []byte) {
		t.Helper()
		path := prefix + "/2010-04-01/Accounts/" + testSID + "/Messages.json"
		if r.Method != http.MethodPost || r.URL.Path != path || r.URL.RawQuery != "" {
			t.Errorf("request %s %s, want POST %s", r.Method, r.URL, path)
		}
		if got := r.Header.Get("Content-Type"); got != "application/x-www-form-urlencoded" {
			t.Errorf("Content-Type %q", got)
		}
		if got := r.Header.Get("Accept"); got != "application/json" {
			t.Errorf("Accept %q", got)
		}
		if user, pass, ok := r.BasicAuth(); !ok || user != testSID || pass != testToken {
			t.Errorf("basic auth %q:%q (%v)", user, pass, ok)
		}
		form, err := url.ParseQuery(string(body))
		if err != nil {
			t.Fatalf("form %q: %v", body, err)
		}
		if len(form) != len(want) {
			t.Errorf("form %v, want %v", form, want)
		}
		for k, v := range want {
			if got := form[k]; len(got) != 1 || got[0] != v {
				t.Errorf("form field %s = %q, want %q", k, got, v)
			}
		}
	}
}

// twilioOnce serves one answer after checking the request with check, and
// returns the server.
func twilioOnce(t *testing.T, status int, body string, check func(*testing.T, *http.Request, []byte)) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		check(t, r, b)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestTwilioMessagingService(t *testing.T) {
	srv := twilioOnce(t, 201, `{"sid":"SM0123"}`, checkTwilioRequest(
		url2form{"To": testNumber, "Body": testText, "MessagingServiceSid": "MG0123456789abcdef0123456789abcdef"}, ""))
	s, err := NewTwilio(TwilioConfig{AccountSID: testSID, AuthToken: testToken,
		MessagingServiceSID: "MG0123456789abcdef0123456789abcdef", BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(t.Context(), testMessage); err != nil {
		t.Error(err)
	}
}

// A compatible provider may serve the API under a path.
func TestTwilioBaseURLPath(t *testing.T) {
	srv := twilioOnce(t, 201, `{}`, checkTwilioRequest(
		url2form{"To": testNumber, "Body": testText, "From": testFrom}, "/api/laml"))
	s, err := NewTwilio(TwilioConfig{AccountSID: testSID, AuthToken: testToken, From: testFrom,
		BaseURL: srv.URL + "/api/laml/"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(t.Context(), testMessage); err != nil {
		t.Error(err)
	}
}

// Twilio's numeric error code reaches the error and the log; its message,
// which quotes the number, reaches neither.
func TestTwilioErrorCode(t *testing.T) {
	check := checkTwilioRequest(url2form{"To": testNumber, "Body": testText, "From": testFrom}, "")
	for _, tc := range []struct {
		status  int
		body    string
		wantErr error
		want    string // in the error
		code    string // Twilio's code, in the error and the log; "" for none
	}{
		{400, providers[1].errBody, ErrRejected, "twilio: HTTP 400", "21211"},
		{429, `{"code":20429,"message":"Too Many Requests for +14155550100"}`, ErrTemporary, "HTTP 429", "20429"},
		{401, `not json +14155550100`, ErrRejected, "twilio: HTTP 401", ""},
		{404, `{"code":"20404"}`, ErrRejected, "twilio: HTTP 404", ""},
	} {
		var buf bytes.Buffer
		srv := twilioOnce(t, tc.status, tc.body, check)
		s, err := NewTwilio(TwilioConfig{AccountSID: testSID, AuthToken: testToken, From: testFrom,
			BaseURL: srv.URL, Retry: Retry{Attempts: 1}, Logger: slog.New(slog.NewTextHandler(&buf, nil))})
		if err != nil {
			t.Fatal(err)
		}
		err = s.Send(t.Context(), testMessage)
		if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("HTTP %d: %v, want %v with %q", tc.status, err, tc.wantErr, tc.want)
		}
		detail := "(twilio error " + tc.code + ")"
		if tc.code == "" {
			if strings.Contains(err.Error(), "twilio error") || strings.Contains(buf.String(), "twilio error") {
				t.Errorf("HTTP %d: a code invented from %q: %v", tc.status, tc.body, err)
			}
		} else if !strings.Contains(err.Error(), tc.want+" "+detail) || !strings.Contains(buf.String(), detail) {
			t.Errorf("HTTP %d: error %q or log %q lacks %q", tc.status, err, buf.String(), detail)
		}
		assertNoSecrets(t, "error", err.Error())
		assertNoSecrets(t, "log", buf.String())
	}
}

func TestTwilioConfig(t *testing.T) {
	tw, err := NewTwilio(TwilioConfig{AccountSID: testSID, AuthToken: testToken, From: testFrom})
	if err != nil {
		t.Fatal(err)
	}
	if want := "https://api.twilio.com/2010-04-01/Accounts/" + testSID + "/Messages.json"; tw.endpoint != want {
		t.Errorf("endpoint %q, want %q", tw.endpoint, want)
	}
	def := Retry{Attempts: 3, Base: 200 * time.Millisecond, Max: 2 * time.Second}
	if tw.g.timeout != 5*time.Second || tw.g.retry != def {
		t.Errorf("defaults: timeout %v, retry %+v", tw.g.timeout, tw.g.retry)
	}

	for _, tc := range []struct {
		name string
		edit func(*TwilioConfig)
		want string
	}{
		{"missing account SID", func(c *TwilioConfig) { c.AccountSID = "" }, "account SID is required"},
		{"account SID with a slash", func(c *TwilioConfig) { c.AccountSID = "AC01/../x" }, "letters, digits"},
		{"missing auth token", func(c *TwilioConfig) { c.AuthToken = "" }, "auth token is required"},
		{"auth token with newline", func(c *TwilioConfig) { c.AuthToken = testToken + "\n" }, "trailing newline"},
		{"both From and messaging service", func(c *TwilioConfig) { c.MessagingServiceSID = "MG01" }, "not both"},
		{"neither From nor messaging service", func(c *TwilioConfig) { c.From = "" }, "From number or a messaging service SID"},
		{"ftp base URL", func(c *TwilioConfig) { c.BaseURL = "ftp://api.twilio.com" }, "absolute http or https"},
		{"relative base URL", func(c *TwilioConfig) { c.BaseURL = "api.twilio.com" }, "absolute http or https"},
		{"base URL with query", func(c *TwilioConfig) { c.BaseURL = "https://api.twilio.com/?x=1" }, "query"},
		{"base URL with credentials", func(c *TwilioConfig) { c.BaseURL = "https://u:" + testToken + "@api.twilio.com" }, "credentials"},
		{"negative timeout", func(c *TwilioConfig) { c.Timeout = -1 }, "timeout"},
		{"negative retry base", func(c *TwilioConfig) { c.Retry.Base = -1 }, "retry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := TwilioConfig{AccountSID: testSID, AuthToken: testToken, From: testFrom}
			tc.edit(&c)
			_, err := NewTwilio(c)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "sms: ") {
				t.Errorf("NewTwilio: %v, want an error about %q", err, tc.want)
			}
			if err != nil {
				assertNoSecrets(t, "error", err.Error())
			}
		})
	}
}
