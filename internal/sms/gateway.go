package sms

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"time"
)

// Retry is the retry policy of the HTTP senders. The zero value is the
// default policy: 3 attempts, 200ms base delay, 2s cap.
//
// A sender retries after a 5xx, a 429, a network error or an attempt that
// timed out, and never after any other status: a refused message would be
// refused again. A retry after a timeout or a 5xx may deliver the message
// twice, since the gateway may have sent it before failing to answer.
type Retry struct {
	// Attempts is the number of requests per message, including the first.
	// Default 3; 1 disables retries.
	Attempts int
	// Base is the delay after the first failed attempt; each later delay
	// doubles, up to Max. Default 200ms.
	Base time.Duration
	// Max caps each delay. Default 2s.
	Max time.Duration
}

const (
	defaultTimeout = 5 * time.Second
	// maxResponse caps what is read of a gateway's answer. Bodies are read
	// only so the connection can be reused and Twilio's numeric error code
	// extracted; they are never logged, since they may echo the number.
	maxResponse = 4 << 10
)

func (r Retry) withDefaults() (Retry, error) {
	if r.Attempts < 0 || r.Base < 0 || r.Max < 0 {
		return r, errors.New("sms: retry attempts, base and max must not be negative")
	}
	if r.Attempts == 0 {
		r.Attempts = 3
	}
	if r.Base == 0 {
		r.Base = 200 * time.Millisecond
	}
	if r.Max == 0 {
		r.Max = 2 * time.Second
	}
	return r, nil
}

// delay returns the pause after failed attempt n (from 1): Base doubled n-1
// times, capped at Max, then drawn uniformly from its upper half, so that
// requests which failed together do not all retry together.
func (r Retry) delay(n int) time.Duration {
	d := min(r.Base, r.Max)
	for i := 1; i < n && d < r.Max; i++ {
		d = min(2*d, r.Max)
	}
	half := d / 2
	return d - half + rand.N(half+1)
}

// gateway is the HTTP machinery that Webhook and Twilio share: one request
// per attempt, each with its own timeout, the retry policy, and one log line
// per attempt.
type gateway struct {
	name    string // "webhook" or "twilio", for logs and errors
	client  *http.Client
	timeout time.Duration
	retry   Retry
	log     *slog.Logger
}

func newGateway(name string, timeout time.Duration, retry Retry, logger *slog.Logger) (*gateway, error) {
	if timeout < 0 {
		return nil, fmt.Errorf("sms: %s timeout must not be negative", name)
	}
	if timeout == 0 {
		timeout = defaultTimeout
	}
	retry, err := retry.withDefaults()
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &gateway{
		name: name,
		client: &http.Client{
			// Its own connection pool, apart from other clients'.
			Transport: http.DefaultTransport.(*http.Transport).Clone(),
			// A redirect would resend the number and code (and, for
			// Twilio, the credentials) to a URL the operator did not
			// configure. A 3xx is therefore a rejection.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		timeout: timeout,
		retry:   retry,
		log:     logger,
	}, nil
}

// parseURL checks that raw is an absolute http or https URL. Its error never
// quotes raw, which may hold a credential in its query.
func parseURL(what, raw string) (*url.URL, error) {
	if raw == "" {
		return nil, fmt.Errorf("sms: %s is required", what)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("sms: %s must be an absolute http or https URL", what)
	}
	return u, nil
}

// warnPlainHTTP logs once, at construction, when the number and the code
// would cross a network unencrypted.
func (g *gateway) warnPlainHTTP(u *url.URL) {
	if u.Scheme != "http" {
		return
	}
	h := u.Hostname()
	if ip := net.ParseIP(h); h == "localhost" || (ip != nil && ip.IsLoopback()) {
		return
	}
	g.log.Warn("sms gateway URL uses plain http: numbers and codes are sent unencrypted",
		"sender", g.name, "host", h)
}

// send delivers one message, retrying as the policy allows. build returns a
// fresh request for each attempt; detail, if not nil, turns the capped body
// of a non-2xx answer into a short suffix for errors and logs, which must
// not contain anything from the message.
func (g *gateway) send(ctx context.Context, id string,
	build func(context.Context) (*http.Request, error), detail func([]byte) string) error {
	var last string
	for n := 1; ; n++ {
		status, extra, err := g.attempt(ctx, id, n, build, detail)
		switch {
		case err == nil && status >= 200 && status < 300:
			return nil
		case err == nil && status != http.StatusTooManyRequests && status < 500:
			// Any other 4xx (or a 1xx or 3xx) refuses this very request:
			// sending it again would be refused again.
			return fmt.Errorf("%w: %s: HTTP %d%s", ErrRejected, g.name, status, extra)
		case err == nil:
			last = fmt.Sprintf("HTTP %d%s", status, extra)
		default:
			last = err.Error()
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %s: %w after %d attempts (last: %s)", ErrTemporary, g.name, ctx.Err(), n, last)
		}
		if n >= g.retry.Attempts {
			return fmt.Errorf("%w: %s: gave up after %d attempts (last: %s)", ErrTemporary, g.name, n, last)
		}
		t := time.NewTimer(g.retry.delay(n))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w: %s: %w after %d attempts (last: %s)", ErrTemporary, g.name, ctx.Err(), n, last)
		case <-t.C:
		}
	}
}

// attempt makes request n and logs its outcome. It returns the status of the
// answer, or an error if there was none.
func (g *gateway) attempt(ctx context.Context, id string, n int,
	build func(context.Context) (*http.Request, error), detail func([]byte) string) (status int, extra string, err error) {
	actx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	start := time.Now()
	req, err := build(actx)
	if err != nil {
		return 0, "", err
	}
	resp, err := g.client.Do(req)
	if err != nil {
		err = g.transportError(ctx, err)
	} else {
		// A 2xx stands even if its body cannot be read: the message was
		// accepted, and retrying it would send it twice.
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
		resp.Body.Close()
		status = resp.StatusCode
		if (status < 200 || status >= 300) && detail != nil {
			extra = detail(body)
		}
	}

	level := slog.LevelInfo
	attrs := []slog.Attr{
		slog.String("sender", g.name),
		slog.String("verification_id", id),
		slog.Int("attempt", n),
		slog.Int("status", status),
		slog.Duration("duration", time.Since(start)),
	}
	if extra != "" {
		attrs = append(attrs, slog.String("detail", extra))
	}
	if err != nil {
		attrs = append(attrs, slog.String("err", err.Error()))
	}
	if err != nil || status < 200 || status >= 300 {
		level = slog.LevelWarn
	}
	g.log.LogAttrs(ctx, level, "sms attempt", attrs...)
	return status, extra, err
}

// transportError strips the request URL from a client error: the webhook
// URL's query may hold a credential, and callers log errors.
func (g *gateway) transportError(ctx context.Context, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if ctx.Err() != nil {
		return ctx.Err() // the caller's context ended, not the attempt's
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("no answer within %v", g.timeout)
	}
	return err
}
