package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"blindex.dev/blindex/internal/sms"
)

// smsFlags choose and configure the SMS sender (docs/operations.md).
type smsFlags struct {
	name                      *string
	webhookURL, webhookSecret *string
	twilioSID, twilioToken    *string
	twilioFrom, twilioService *string
	twilioBaseURL             *string
}

func addSMSFlags(fs *flag.FlagSet) smsFlags {
	return smsFlags{
		name:          fs.String("sms", "log", "SMS sender: log (development only: codes go to the server log), webhook or twilio"),
		webhookURL:    fs.String("sms-webhook-url", "", "`URL` the webhook sender POSTs each code to"),
		webhookSecret: fs.String("sms-webhook-secret-file", "", "`file` holding the webhook HMAC secret (at least 32 bytes)"),
		twilioSID:     fs.String("twilio-account-sid", "", "Twilio account `SID`"),
		twilioToken:   fs.String("twilio-auth-token-file", "", "`file` holding the Twilio auth token"),
		twilioFrom:    fs.String("twilio-from", "", "sender `number` for Twilio (or --twilio-messaging-service-sid)"),
		twilioService: fs.String("twilio-messaging-service-sid", "", "Twilio messaging service `SID` (or --twilio-from)"),
		twilioBaseURL: fs.String("twilio-base-url", sms.DefaultTwilioBaseURL, "Twilio-compatible API base `URL`"),
	}
}

// readSecret reads a secret file, without surrounding whitespace.
func readSecret(flagName, path string) ([]byte, error) {
	if path == "" {
		return nil, fmt.Errorf("--%s is required", flagName)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", flagName, err)
	}
	return bytes.TrimSpace(b), nil
}

func (f smsFlags) sender(logger *slog.Logger) (sms.Sender, error) {
	switch *f.name {
	case "log":
		logger.Warn("using the log SMS sender: verification codes are written to this log (development only)")
		return sms.Log{Logger: logger}, nil
	case "webhook":
		secret, err := readSecret("sms-webhook-secret-file", *f.webhookSecret)
		if err != nil {
			return nil, err
		}
		w, err := sms.NewWebhook(sms.WebhookConfig{URL: *f.webhookURL, Secret: secret, Logger: logger})
		if err != nil {
			return nil, fmt.Errorf("--sms webhook: %w", err)
		}
		return w, nil
	case "twilio":
		token, err := readSecret("twilio-auth-token-file", *f.twilioToken)
		if err != nil {
			return nil, err
		}
		t, err := sms.NewTwilio(sms.TwilioConfig{AccountSID: *f.twilioSID, AuthToken: string(token), From: *f.twilioFrom,
			MessagingServiceSID: *f.twilioService, BaseURL: *f.twilioBaseURL, Logger: logger})
		if err != nil {
			return nil, fmt.Errorf("--sms twilio: %w", err)
		}
		return t, nil
	default:
		return nil, errors.New("--sms must be log, webhook or twilio")
	}
}
