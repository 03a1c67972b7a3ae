package sms

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestLogNeverWritesNumber(t *testing.T) {
	var buf bytes.Buffer
	s := Log{Logger: slog.New(slog.NewTextHandler(&buf, nil))}
	err := s.Send(t.Context(), Message{To: "+14155550100", Code: "123456",
		Text: "blindex code 123456 for +14155550100", VerificationID: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if strings.Contains(out, "4155550100") {
		t.Errorf("log line holds the number: %s", out)
	}
	if !strings.Contains(out, "verification_id=v1") || !strings.Contains(out, "code=123456") {
		t.Errorf("log line lacks id or code: %s", out)
	}
}
