// Package sms delivers one-time verification codes to phones.
//
// Senders never log the destination number or, outside development, the
// code: a log line is tied to its verification by the verification id.
package sms

import (
	"context"
	"log/slog"
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
