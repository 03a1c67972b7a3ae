package oprf

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/nyaruka/phonenumbers"
)

// maxNumberLen bounds NormalizeNumber's input before any parsing. The longest
// E.164 number is 16 bytes; the rest is room for spaces and punctuation.
const maxNumberLen = 32

// NormalizeNumber returns the E.164 form ("+14155550100") of a phone number, via
// github.com/nyaruka/phonenumbers. defaultRegion is a CLDR region ("US", "GB") used when
// the input has no leading '+'; "" means the input must be international (+...).
//
// It accepts only ASCII digits, spaces, '+', '-', '.', '(' and ')'. It rejects
// letters, because phonenumbers would map vanity letters to digits, and
// extensions, because two spellings of one line must give one OPRF input. It
// rejects numbers that parse but are not valid. Errors wrap ErrNumber with a
// fixed reason and never contain the input.
func NormalizeNumber(s, defaultRegion string) (string, error) {
	if s == "" {
		return "", numberError("empty")
	}
	if len(s) > maxNumberLen {
		return "", numberError("too long")
	}
	for i, r := range s {
		switch {
		case r >= '0' && r <= '9', strings.ContainsRune(" +-.()", r):
			continue
		case r == 'x' || r == 'X' || hasPrefixFold(s[i:], "ext"),
			strings.ContainsRune("#*;,~", r):
			return "", numberError("extensions are not allowed")
		case unicode.IsLetter(r):
			return "", numberError("letters are not allowed")
		default:
			return "", numberError("invalid character")
		}
	}
	if defaultRegion != "" && !phonenumbers.GetSupportedRegions()[defaultRegion] {
		return "", numberError("unknown default region")
	}
	num, err := phonenumbers.Parse(s, defaultRegion)
	switch {
	case err == phonenumbers.ErrInvalidCountryCode && !strings.Contains(s, "+"):
		return "", numberError("the leading + and country code are missing (write + then the country code, then the number)")
	case err != nil:
		return "", numberError("not a valid number")
	}
	// The character rule already keeps extensions out; check what was parsed too.
	if num.GetExtension() != "" {
		return "", numberError("extensions are not allowed")
	}
	// Parsing succeeding does not mean the number exists in the numbering plan.
	if !phonenumbers.IsValidNumber(num) {
		return "", numberError("not a valid number")
	}
	return phonenumbers.Format(num, phonenumbers.E164), nil
}

// numberError never includes the input: a phone number is what blindex hides.
func numberError(reason string) error {
	return fmt.Errorf("%w: %s", ErrNumber, reason)
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
