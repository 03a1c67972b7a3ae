package sms

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"
)

// MinWebhookSecret is the shortest webhook secret accepted, in bytes.
const MinWebhookSecret = 32

// WebhookConfig configures a [Webhook].
type WebhookConfig struct {
	// URL receives one POST per attempt. Required; http or https. Its
	// query is sent but never logged, so it may carry a token. Use plain
	// http only to loopback or a trusted private network: the body holds
	// the number and the code.
	URL string
	// Secret keys the HMAC-SHA256 request signature. Required, at least
	// MinWebhookSecret bytes. The receiver must hold the same bytes.
	Secret []byte
	// Timeout bounds each attempt, from sending the request to reading
	// the answer. Default 5s.
	Timeout time.Duration
	// Retry is the retry policy; the zero value is the default.
	Retry Retry
	// Logger receives one line per attempt; nil discards them.
	Logger *slog.Logger
}

// Webhook posts each message to an operator's URL, which delivers it by any
// means. It is safe for concurrent use.
//
// Each attempt is a POST with a compact JSON body, fields in this order:
//
//	{"to":"+14155550100","text":"Your blindex code is 123456. It expires in 10m0s.","code":"123456","verification_id":"9f0c..."}
//
// and the headers
//
//	Content-Type: application/json
//	Blindex-Timestamp: 1767225600
//	Blindex-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>
//
// where timestamp is the Blindex-Timestamp value (Unix seconds, decimal) and
// body is the exact bytes received. Retries resend the same body with a new
// timestamp and signature.
//
// A receiver must, before it parses the body: read the raw body; reject the
// request if the timestamp is more than 5 minutes from its clock (the replay
// window); compute the HMAC over timestamp, ".", body; and compare it with
// the hex after "v1=" in constant time ([hmac.Equal]). Any 2xx answer means
// accepted; 429 and 5xx are retried; any other status is a rejection. See
// docs/operations.md for an example.
type Webhook struct {
	url    string
	secret []byte
	g      *gateway
}

// NewWebhook checks cfg and returns a Webhook sender.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	u, err := parseURL("webhook URL", cfg.URL)
	if err != nil {
		return nil, err
	}
	if len(cfg.Secret) < MinWebhookSecret {
		// A short secret could be guessed offline from one signed request,
		// after which anyone could forge deliveries to the receiver.
		return nil, fmt.Errorf("sms: webhook secret must be at least %d bytes (generate one with: openssl rand -hex 32)", MinWebhookSecret)
	}
	g, err := newGateway("webhook", cfg.Timeout, cfg.Retry, cfg.Logger)
	if err != nil {
		return nil, err
	}
	g.warnPlainHTTP(u)
	return &Webhook{url: cfg.URL, secret: bytes.Clone(cfg.Secret), g: g}, nil
}

type webhookBody struct {
	To             string `json:"to"`
	Text           string `json:"text"`
	Code           string `json:"code"`
	VerificationID string `json:"verification_id"`
}

// Send posts m, retrying as w's policy allows. It returns nil on a 2xx and
// otherwise an error wrapping ErrRejected or ErrTemporary.
func (w *Webhook) Send(ctx context.Context, m Message) error {
	body, err := json.Marshal(webhookBody{m.To, m.Text, m.Code, m.VerificationID})
	if err != nil {
		return err // unreachable: strings always marshal
	}
	return w.g.send(ctx, m.VerificationID, func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
		if err != nil {
			return nil, errors.New("cannot build request") // unreachable: URL checked by NewWebhook
		}
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Blindex-Timestamp", ts)
		req.Header.Set("Blindex-Signature", "v1="+webhookSignature(w.secret, ts, body))
		return req, nil
	}, nil)
}

// webhookSignature is hex(HMAC-SHA256(secret, timestamp || "." || body)).
// The timestamp is signed so that a captured request cannot be replayed
// outside the receiver's window.
func webhookSignature(secret []byte, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(timestamp))
	mac.Write([]byte("."))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}
