package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"blindex.dev/blindex/internal/storeerr"
)

// TestUnavailableStore checks that a store failure, unavailable or
// corrupt, is 503 with Retry-After and the fixed message, and that a
// client that hung up is neither a 500 nor logged as an ERROR.
func TestUnavailableStore(t *testing.T) {
	for _, err := range []error{
		fmt.Errorf("sqlite: writing: %w", storeerr.ErrUnavailable),
		fmt.Errorf("sqlite: corrupt holder row: %w", storeerr.ErrCorrupt),
	} {
		var logs strings.Builder
		w := httptest.NewRecorder()
		WriteError(w, httptest.NewRequest("GET", "/", nil), slog.New(slog.NewTextHandler(&logs, nil)), err)
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "30" ||
			!strings.Contains(w.Body.String(), "storage unavailable: retry later") {
			t.Errorf("%v: %d %q %q, want 503, Retry-After 30 and the fixed message", err, w.Code, w.Header().Get("Retry-After"), w.Body)
		}
		if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), storeerr.Classify(err).Error()) {
			t.Errorf("%v: log %q, want an ERROR naming the class", err, logs.String())
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var logs strings.Builder
	w := httptest.NewRecorder()
	WriteError(w, httptest.NewRequest("GET", "/", nil).WithContext(ctx), slog.New(slog.NewTextHandler(&logs, nil)), errors.New("sqlite: interrupted"))
	if w.Code == http.StatusInternalServerError || strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("client gone: %d, log %q; want no 500 and no ERROR", w.Code, logs.String())
	}
}
