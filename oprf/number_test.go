package oprf

import (
	"errors"
	"strings"
	"sync"
	"testing"
)

func TestNormalizeNumber(t *testing.T) {
	for _, tt := range []struct {
		in, region string
		want       string // "" means an error is expected
		reason     string // the fixed reason the error must carry
	}{
		{in: "+1 (415) 555-0100", want: "+14155550100"},
		{in: "+14155550100", want: "+14155550100"},
		{in: "+1.415.555.0100", want: "+14155550100"},
		{in: "(415) 555-0100", region: "US", want: "+14155550100"},
		{in: "+1 415 555 0100", region: "GB", want: "+14155550100"}, // '+' wins over region
		{in: "020 7946 0000", region: "GB", want: "+442079460000"},
		{in: "+44 20 7946 0000", want: "+442079460000"},
		{in: "+33 1 23 45 67 89", want: "+33123456789"},
		{in: "011 44 20 7946 0000", region: "US", want: "+442079460000"}, // international prefix

		{in: "", reason: "empty"},
		{in: "+1-800-FLOWERS", reason: "letters are not allowed"},
		{in: "+1 800 flowers", reason: "letters are not allowed"},
		{in: "+1 415 555 0100 ext 12", reason: "extensions are not allowed"},
		{in: "+14155550100x12", reason: "extensions are not allowed"},
		{in: "+1 415 555 0100 X12", reason: "extensions are not allowed"},
		{in: "+14155550100;ext=12", reason: "extensions are not allowed"},
		{in: "+14155550100#12", reason: "extensions are not allowed"},
		{in: "+14155550100*12", reason: "extensions are not allowed"},
		{in: "+1 415 555 010", reason: "not a valid number"},
		{in: "+447700900123", reason: "not a valid number"}, // parses; Ofcom drama range, not valid
		{in: "+1 555 555 5555", reason: "not a valid number"},
		{in: "+999 1234 5678", reason: "not a valid number"},
		{in: "+", reason: "not a valid number"},
		{in: "4155550100", reason: "the leading + and country code are missing (write + then the country code, then the number)"},
		{in: "(415) 555-0100", reason: "the leading + and country code are missing (write + then the country code, then the number)"},
		{in: "(415) 555-0100", region: "XX", reason: "unknown default region"},
		{in: strings.Repeat("1", 10<<10), reason: "too long"},
		{in: "+1 415 555 0100 " + strings.Repeat(" ", 32), reason: "too long"},
		{in: "+1\t415 555 0100", reason: "invalid character"},
		{in: "+1/415/555/0100", reason: "invalid character"},
		{in: "+１ 415 555 0100", reason: "invalid character"}, // full-width digit
		{in: "+1 415 555 0100\x00", reason: "invalid character"},
		{in: "+1 415 555 \xff100", reason: "invalid character"},
	} {
		got, err := NormalizeNumber(tt.in, tt.region)
		name := tt.in
		if len(name) > 40 {
			name = name[:40] + "..."
		}
		if tt.want != "" {
			if err != nil || got != tt.want {
				t.Errorf("NormalizeNumber(%q, %q) = %q, %v; want %q", name, tt.region, got, err, tt.want)
			}
			continue
		}
		if err == nil {
			t.Errorf("NormalizeNumber(%q, %q) = %q, want an error", name, tt.region, got)
			continue
		}
		if !errors.Is(err, ErrNumber) || got != "" {
			t.Errorf("NormalizeNumber(%q, %q) = %q, %v; want ErrNumber", name, tt.region, got, err)
		}
		if want := "oprf: invalid phone number: " + tt.reason; err.Error() != want {
			t.Errorf("NormalizeNumber(%q, %q): error %q, want %q", name, tt.region, err, want)
		}
		checkNoDigits(t, err)
	}
}

// checkNoDigits fails if an error message carries any digit: the fixed reasons
// have none, so a digit could only come from the input.
func checkNoDigits(t *testing.T, err error) {
	t.Helper()
	if strings.ContainsAny(err.Error(), "0123456789") {
		t.Errorf("error %q contains digits", err)
	}
}

func FuzzNormalizeNumber(f *testing.F) {
	for _, s := range []string{
		"+1 (415) 555-0100", "(415) 555-0100", "+44 20 7946 0000", "+447700900123",
		"+1-800-FLOWERS", "+14155550100x12", "+1 415 555 010", "", "+", "++1", "()",
		"0044 20 7946 0000", "+1 415-555-0100 ext. 7", "+800 1234 5678", "+882 1234 5678",
	} {
		f.Add(s, "")
		f.Add(s, "US")
		f.Add(s, "GB")
	}
	f.Fuzz(func(t *testing.T, s, region string) {
		got, err := NormalizeNumber(s, region)
		if err != nil {
			if !errors.Is(err, ErrNumber) {
				t.Fatalf("error %v does not wrap ErrNumber", err)
			}
			checkNoDigits(t, err)
			return
		}
		if !strings.HasPrefix(got, "+") {
			t.Fatalf("NormalizeNumber(%q, %q) = %q, want a leading '+'", s, region, got)
		}
		// E.164 is a fixed point: the OPRF input must not depend on how the
		// number was first written.
		again, err := NormalizeNumber(got, "")
		if err != nil || again != got {
			t.Fatalf("NormalizeNumber(%q) = %q, %v; not idempotent (from %q, %q)", got, again, err, s, region)
		}
	})
}

func TestNormalizeNumberConcurrent(t *testing.T) {
	// Servers normalize on many goroutines; phonenumbers keeps global metadata.
	var wg sync.WaitGroup
	for _, region := range []string{"", "US", "GB", "FR", "DE", "JP", "BR", "IN"} {
		wg.Go(func() {
			for _, s := range []string{"+1 (415) 555-0100", "020 7946 0000", "+33 1 23 45 67 89"} {
				if _, err := NormalizeNumber(s, region); err != nil && !errors.Is(err, ErrNumber) {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
}
