// Package privacyscan searches bytes a server wrote (files, logs, metrics)
// for phone numbers in every common spelling. Tests use it to check the
// invariant that no plaintext number survives at rest.
package privacyscan

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// A Finding is one spelling of one number found in one place.
type Finding struct {
	Where    string // file path or source name
	Number   string // E.164
	Spelling string
}

func (f Finding) String() string {
	return fmt.Sprintf("%s holds %s (as %q)", f.Where, f.Number, f.Spelling)
}

// Spellings returns the forms in which e164 could appear: E.164, digits
// only, national ("(415) 555-0100"), national significant number
// ("4155550100") and international ("+1 415-555-0100").
func Spellings(e164 string) ([]string, error) {
	n, err := phonenumbers.Parse(e164, "")
	if err != nil {
		return nil, err
	}
	return []string{
		e164,
		strings.TrimPrefix(e164, "+"),
		phonenumbers.Format(n, phonenumbers.NATIONAL),
		phonenumbers.GetNationalSignificantNumber(n),
		phonenumbers.Format(n, phonenumbers.INTERNATIONAL),
	}, nil
}

// Scanner holds the spellings to look for.
type Scanner struct {
	needles map[string]string // spelling -> number
}

// New prepares a scanner for numbers (E.164). Besides each spelling it
// looks for the spelling's SHA-256, raw, in hex and in base64: nothing may
// be derived from a bare hash of a number (anyone can hash every number),
// so a log label or an index that is such a hash is a finding too.
func New(numbers ...string) (*Scanner, error) {
	s := &Scanner{needles: map[string]string{}}
	for _, n := range numbers {
		sp, err := Spellings(n)
		if err != nil {
			return nil, fmt.Errorf("privacyscan: %s: %w", n, err)
		}
		for _, x := range sp {
			s.needles[x] = n
			h := sha256.Sum256([]byte(x))
			s.needles[string(h[:])] = n
			s.needles[hex.EncodeToString(h[:])] = n
			s.needles[base64.StdEncoding.EncodeToString(h[:])] = n
		}
	}
	return s, nil
}

// Bytes scans b, naming it where.
func (s *Scanner) Bytes(where string, b []byte) []Finding {
	var out []Finding
	for sp, n := range s.needles {
		if bytes.Contains(b, []byte(sp)) {
			out = append(out, Finding{Where: where, Number: n, Spelling: sp})
		}
	}
	return out
}

// Dir scans every regular file under dir and returns the findings and the
// number of files scanned.
func (s *Scanner) Dir(dir string) ([]Finding, int, error) {
	var out []Finding
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		out = append(out, s.Bytes(path, b)...)
		return nil
	})
	return out, files, err
}
