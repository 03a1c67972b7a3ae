package sms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultTwilioBaseURL is the Twilio REST API.
const DefaultTwilioBaseURL = "https://api.twilio.com"

// TwilioConfig configures a [Twilio] sender. Exactly one of From and
// MessagingServiceSID must be set.
type TwilioConfig struct {
	// AccountSID is the account ("AC..."), the basic-auth user and part of
	// the request path. Required; letters, digits and '-' only.
	AccountSID string
	// AuthToken is the account's auth token, the basic-auth password.
	// Required. Never logged.
	AuthToken string
	// From is the sending number (E.164), short code or alphanumeric
	// sender id. Excludes MessagingServiceSID.
	From string
	// MessagingServiceSID ("MG...") lets Twilio choose the sender from a
	// messaging service. Excludes From.
	MessagingServiceSID string
	// BaseURL is the API root, without the "/2010-04-01" version path.
	// Default DefaultTwilioBaseURL; set it for a compatible provider or a
	// test server.
	BaseURL string
	// Timeout bounds each attempt, from sending the request to reading
	// the answer. Default 5s.
	Timeout time.Duration
	// Retry is the retry policy; the zero value is the default.
	Retry Retry
	// Logger receives one line per attempt; nil discards them.
	Logger *slog.Logger
}

// Twilio sends messages with the Twilio Messages API: a form-encoded
//
//	POST {BaseURL}/2010-04-01/Accounts/{AccountSID}/Messages.json
//
// with fields To, Body and either From or MessagingServiceSid, and HTTP basic
// auth AccountSID:AuthToken. Any 2xx (Twilio answers 201) means accepted. On
// a rejection, the error holds the HTTP status and Twilio's numeric error
// code, never the body, whose message may quote the number. It is safe for
// concurrent use.
type Twilio struct {
	endpoint string
	sid      string
	token    string
	from     string // form field From, or ""
	service  string // form field MessagingServiceSid, or ""
	g        *gateway
}

// NewTwilio checks cfg and returns a Twilio sender.
func NewTwilio(cfg TwilioConfig) (*Twilio, error) {
	if cfg.AccountSID == "" {
		return nil, errors.New("sms: twilio account SID is required")
	}
	if strings.ContainsFunc(cfg.AccountSID, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-')
	}) {
		return nil, errors.New("sms: twilio account SID may hold only letters, digits and '-'")
	}
	if cfg.AuthToken == "" {
		return nil, errors.New("sms: twilio auth token is required")
	}
	if strings.ContainsFunc(cfg.AuthToken, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return nil, errors.New("sms: twilio auth token contains whitespace or control characters (a trailing newline in the token file?)")
	}
	switch {
	case cfg.From != "" && cfg.MessagingServiceSID != "":
		return nil, errors.New("sms: set either the twilio From number or the messaging service SID, not both")
	case cfg.From == "" && cfg.MessagingServiceSID == "":
		return nil, errors.New("sms: twilio needs a From number or a messaging service SID")
	}
	base := cfg.BaseURL
	if base == "" {
		base = DefaultTwilioBaseURL
	}
	u, err := parseURL("twilio base URL", base)
	if err != nil {
		return nil, err
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("sms: twilio base URL must not hold credentials, a query or a fragment")
	}
	g, err := newGateway("twilio", cfg.Timeout, cfg.Retry, cfg.Logger)
	if err != nil {
		return nil, err
	}
	g.warnPlainHTTP(u)
	return &Twilio{
		endpoint: strings.TrimRight(base, "/") + "/2010-04-01/Accounts/" + url.PathEscape(cfg.AccountSID) + "/Messages.json",
		sid:      cfg.AccountSID,
		token:    cfg.AuthToken,
		from:     cfg.From,
		service:  cfg.MessagingServiceSID,
		g:        g,
	}, nil
}

// Send submits m, retrying as t's policy allows. It returns nil on a 2xx and
// otherwise an error wrapping ErrRejected or ErrTemporary.
func (t *Twilio) Send(ctx context.Context, m Message) error {
	form := url.Values{"To": {m.To}, "Body": {m.Text}}
	if t.from != "" {
		form.Set("From", t.from)
	} else {
		form.Set("MessagingServiceSid", t.service)
	}
	body := form.Encode()
	return t.g.send(ctx, m.VerificationID, func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.endpoint, strings.NewReader(body))
		if err != nil {
			return nil, errors.New("cannot build request") // unreachable: URL checked by NewTwilio
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		req.SetBasicAuth(t.sid, t.token)
		return req, nil
	}, twilioErrorCode)
}

// twilioErrorCode returns " (twilio error N)" from a Twilio error body, or
// "". Only the number is kept: the body's message may quote the recipient.
func twilioErrorCode(body []byte) string {
	var e struct {
		Code int `json:"code"`
	}
	if json.Unmarshal(body, &e) != nil || e.Code <= 0 {
		return ""
	}
	return fmt.Sprintf(" (twilio error %d)", e.Code)
}
