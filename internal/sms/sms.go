// Package sms delivers one-time verification codes to phones.
//
// Three senders implement [Sender]: [Log] for development, [Webhook] for an
// operator's own gateway, and [Twilio] for the Twilio Messages API (or a
// compatible one). The gateway necessarily learns the number and the code;
// the server's log does not. Senders never log the destination number, the
// text or, outside development, the code: a log line is tied to its
// verification by the verification id. Errors returned by the HTTP senders
// never contain the number, the code or a credential, because callers log
// them.
package sms

import (
	"context"
	"errors"
	"log/slog"
	"sync"
)

var (
	// ErrTemporary means the message was not accepted after every allowed
	// attempt (5xx, 429, network errors, timeouts) or before the caller's
	// context ended. Asking again later may succeed.
	ErrTemporary = errors.New("sms: temporary delivery failure")
	// ErrRejected means the gateway refused the message with a 4xx (or
	// other non-retryable) status. It was not retried: the same request
	// would be refused again.
	ErrRejected = errors.New("sms: gateway rejected the message")
)

// Message is one code to deliver.
type Message struct {
	To             string // E.164 destination; never log it
	Code           string // the one-time code
	Text           string // full text to send, containing Code
	VerificationID string // opaque id for correlating logs
}

// Sender delivers messages. Implementations must be safe for concurrent use
// and return an error only when the message was not accepted for delivery.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// Log is the development sender: it writes the code and the verification id
// (never the number) to the server's log, so a developer can complete a
// verification without a phone. Do not use it in production.
type Log struct {
	Logger *slog.Logger
}

func (l Log) Send(ctx context.Context, m Message) error {
	l.Logger.LogAttrs(ctx, slog.LevelInfo, "sms (log sender, development only)",
		slog.String("verification_id", m.VerificationID), slog.String("code", m.Code))
	return nil
}

// Inbox keeps the last code sent to each number in memory: the phones of
// the demo and of tests. It never leaves the process.
type Inbox struct {
	mu    sync.Mutex
	codes map[string]string
}

// NewInbox returns an empty Inbox.
func NewInbox() *Inbox { return &Inbox{codes: map[string]string{}} }

func (in *Inbox) Send(_ context.Context, m Message) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.codes[m.To] = m.Code
	return nil
}

// Code returns the last code sent to number ("" if none).
func (in *Inbox) Code(number string) string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.codes[number]
}
