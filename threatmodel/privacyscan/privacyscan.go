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
	"maps"
	"os"
	"path/filepath"
	"slices"
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
	// Every needle of at least 3 bytes, by its first 3 bytes, and a bitset
	// of those prefixes: one pass over the bytes finds them all, where a
	// search per needle would read the bytes once per needle (twenty per
	// number).
	byPrefix map[uint32][]string
	prefixes []uint64 // 1<<24 bits
	short    []string // needles under 3 bytes: searched one by one
}

// New prepares a scanner for numbers (E.164). Besides each spelling it
// looks for the spelling's SHA-256, raw, in hex and in base64: nothing may
// be derived from a bare hash of a number (anyone can hash every number),
// so a log label or an index that is such a hash is a finding too.
func New(numbers ...string) (*Scanner, error) {
	s := &Scanner{needles: map[string]string{}, byPrefix: map[uint32][]string{}, prefixes: make([]uint64, 1<<24/64)}
	for _, n := range numbers {
		sp, err := Spellings(n)
		if err != nil {
			return nil, fmt.Errorf("privacyscan: %s: %w", n, err)
		}
		for _, x := range sp {
			h := sha256.Sum256([]byte(x))
			for _, needle := range []string{x, string(h[:]), hex.EncodeToString(h[:]), base64.StdEncoding.EncodeToString(h[:])} {
				if _, dup := s.needles[needle]; dup {
					continue
				}
				s.needles[needle] = n
				if len(needle) < 3 {
					s.short = append(s.short, needle)
					continue
				}
				p := prefix3(needle[0], needle[1], needle[2])
				s.byPrefix[p] = append(s.byPrefix[p], needle)
				s.prefixes[p/64] |= 1 << (p % 64)
			}
		}
	}
	return s, nil
}

func prefix3(a, b, c byte) uint32 { return uint32(a)<<16 | uint32(b)<<8 | uint32(c) }

// Bytes scans b, naming it where: one finding per spelling found, sorted.
func (s *Scanner) Bytes(where string, b []byte) []Finding {
	found := map[string]bool{}
	for i := 0; i+3 <= len(b); i++ {
		p := prefix3(b[i], b[i+1], b[i+2])
		if s.prefixes[p/64]&(1<<(p%64)) == 0 {
			continue
		}
		for _, needle := range s.byPrefix[p] {
			if bytes.HasPrefix(b[i:], []byte(needle)) {
				found[needle] = true
			}
		}
	}
	for _, needle := range s.short {
		if bytes.Contains(b, []byte(needle)) {
			found[needle] = true
		}
	}
	var out []Finding
	for _, needle := range slices.Sorted(maps.Keys(found)) {
		out = append(out, Finding{Where: where, Number: s.needles[needle], Spelling: needle})
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
