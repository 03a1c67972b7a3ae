package credential

import (
	encoding_asn1 "encoding/asn1"
	"fmt"
	"math/big"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// OIDTNAuthList is id-pe-TNAuthList, 1.3.6.1.5.5.7.1.26 (RFC 8226).
var OIDTNAuthList = encoding_asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 26}

// The module in RFC 8226, Section 9, is DEFINITIONS EXPLICIT TAGS, so every arm
// of TNEntry is a constructed context-specific tag wrapping the full inner TLV:
//
//	TNAuthorizationList ::= SEQUENCE SIZE (1..MAX) OF TNEntry
//	TNEntry ::= CHOICE {
//	  spc   [0] ServiceProviderCode,   -- IA5String
//	  range [1] TelephoneNumberRange,  -- SEQUENCE { start TelephoneNumber, count INTEGER (2..MAX), ... }
//	  one   [2] TelephoneNumber }
//	TelephoneNumber ::= IA5String (SIZE (1..15)) (FROM ("0123456789#*"))
var (
	tagSPC   = asn1.Tag(0).ContextSpecific().Constructed()
	tagRange = asn1.Tag(1).ContextSpecific().Constructed()
	tagOne   = asn1.Tag(2).ContextSpecific().Constructed()
)

// maxDigits is the size limit of TelephoneNumber, which is also E.164's limit.
const maxDigits = 15

// MarshalTNAuthList encodes a TNAuthList holding one TelephoneNumber entry for
// an E.164 number given as "+14155550100". The entry holds the digits without
// the '+'. Only '+' followed by 1 to 15 ASCII digits is accepted: '#' and '*'
// are valid TelephoneNumber characters but never part of an E.164 number.
func MarshalTNAuthList(number string) ([]byte, error) {
	digits, ok := e164Digits(number)
	if !ok {
		return nil, fmt.Errorf("%w: number is not '+' and 1 to %d digits", ErrTNAuthList, maxDigits)
	}
	var b cryptobyte.Builder
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(tagOne, func(b *cryptobyte.Builder) {
			b.AddASN1(asn1.IA5String, func(b *cryptobyte.Builder) {
				b.AddBytes([]byte(digits))
			})
		})
	})
	return b.Bytes()
}

// ParseTNAuthList parses the value of a TNAuthList extension. It checks all
// three TNEntry arms (spc, range, one) but returns only the TelephoneNumber
// ("one") entries, each as "+" and the entry's characters. A returned entry may
// contain '#' or '*', which RFC 8226 allows but E.164 does not.
//
// The encoding must be DER, with no trailing data and at least one entry.
func ParseTNAuthList(der []byte) ([]string, error) {
	input := cryptobyte.String(der)
	var list cryptobyte.String
	if !input.ReadASN1(&list, asn1.SEQUENCE) || !input.Empty() {
		return nil, fmt.Errorf("%w: not a single DER SEQUENCE", ErrTNAuthList)
	}
	if list.Empty() {
		return nil, fmt.Errorf("%w: empty list", ErrTNAuthList)
	}
	numbers := []string{}
	for !list.Empty() {
		var entry cryptobyte.String
		var tag asn1.Tag
		if !list.ReadAnyASN1(&entry, &tag) {
			return nil, fmt.Errorf("%w: malformed entry", ErrTNAuthList)
		}
		switch tag {
		case tagSPC:
			var spc cryptobyte.String
			if !entry.ReadASN1(&spc, asn1.IA5String) || !entry.Empty() || !isIA5(spc) {
				return nil, fmt.Errorf("%w: malformed spc entry", ErrTNAuthList)
			}
		case tagRange:
			if !parseRange(entry) {
				return nil, fmt.Errorf("%w: malformed range entry", ErrTNAuthList)
			}
		case tagOne:
			var tn cryptobyte.String
			if !entry.ReadASN1(&tn, asn1.IA5String) || !entry.Empty() || !isTelephoneNumber(tn) {
				return nil, fmt.Errorf("%w: malformed telephone number entry", ErrTNAuthList)
			}
			numbers = append(numbers, "+"+string(tn))
		default:
			// This also rejects IMPLICIT tagging ([2] primitive, 0x82), which
			// some encoders produce by mistake: accepting both would give one
			// value two encodings.
			return nil, fmt.Errorf("%w: unknown entry tag", ErrTNAuthList)
		}
	}
	return numbers, nil
}

// parseRange checks the body of a range [1] entry.
func parseRange(entry cryptobyte.String) bool {
	var rng, start cryptobyte.String
	if !entry.ReadASN1(&rng, asn1.SEQUENCE) || !entry.Empty() {
		return false
	}
	if !rng.ReadASN1(&start, asn1.IA5String) || !isTelephoneNumber(start) {
		return false
	}
	count := new(big.Int)
	if !rng.ReadASN1Integer(count) || count.Cmp(big.NewInt(2)) < 0 {
		return false
	}
	// The type is extensible ("..."): later additions must be well-formed
	// elements, and are ignored.
	for !rng.Empty() {
		var ext cryptobyte.String
		var tag asn1.Tag
		if !rng.ReadAnyASN1(&ext, &tag) {
			return false
		}
	}
	return true
}

// isTelephoneNumber reports whether s is a TelephoneNumber: 1 to 15
// characters from "0123456789#*".
func isTelephoneNumber(s []byte) bool {
	if len(s) < 1 || len(s) > maxDigits {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && c != '#' && c != '*' {
			return false
		}
	}
	return true
}

// isIA5 reports whether s holds only IA5 (7-bit ASCII) characters.
func isIA5(s []byte) bool {
	for _, c := range s {
		if c > 0x7f {
			return false
		}
	}
	return true
}

// e164Digits returns the digits of number if it is '+' followed by 1 to 15
// ASCII digits. Full E.164 validation (country code, length per region) is the
// job of the caller's phone number library; this only fixes the shape.
func e164Digits(number string) (string, bool) {
	if len(number) < 2 || len(number) > 1+maxDigits || number[0] != '+' {
		return "", false
	}
	digits := number[1:]
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return "", false
		}
	}
	return digits, true
}
