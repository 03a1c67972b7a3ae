// Package contacts extracts phone-number strings from contact files: CSV
// exports and vCard (RFC 6350, versions 3.0 and 4.0). Owners use it to build
// allowlists and callers to build address-book lookups.
//
// It does not validate numbers: it returns the strings as written, and
// callers normalize them to E.164 and refuse what does not parse. Nothing
// here leaves the device; the numbers are blinded before any request.
package contacts

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
)

// MaxFileSize is the largest input Parse accepts, in bytes.
const MaxFileSize = 4 << 20

// MaxNumbers is the most distinct numbers Parse returns; it matches the
// allowlist limit.
const MaxNumbers = 10000

var (
	ErrTooLarge = errors.New("contacts: file too large")
	ErrFormat   = errors.New("contacts: malformed file")
)

// Parse reads a contact file and returns its phone-number strings in file
// order, trimmed of surrounding spaces, with empty strings and exact
// duplicates removed.
//
// A file whose first non-empty line is BEGIN:VCARD (in any case) is read as
// vCard: every TEL property is taken, with any parameters or group prefix
// ("TEL;TYPE=cell:...", "item1.TEL:..."), and a "tel:" URI scheme is
// stripped. URI parameters such as ";ext=" are kept, so that normalization
// refuses them rather than silently dropping part of the number.
//
// Any other file is read as CSV. If the first row has a column whose name
// contains "phone" or "number" (in any case), every such column is taken,
// except label or type columns such as Google's "Phone 1 - Label";
// otherwise every cell of every row is taken. Google exports several numbers
// in one cell separated by " ::: "; they are split.
//
// Inputs over MaxFileSize, or with more than MaxNumbers distinct numbers,
// give an error wrapping ErrTooLarge. Malformed CSV gives an error wrapping
// ErrFormat; vCard lines that are not properties are skipped.
func Parse(r io.Reader) ([]string, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("contacts: %w", err)
	}
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, MaxFileSize)
	}
	text := strings.TrimPrefix(string(b), "\uFEFF") // spreadsheet programs write a BOM
	s := &set{seen: make(map[string]bool)}
	if isVCard(text) {
		err = parseVCard(text, s)
	} else {
		err = parseCSV(text, s)
	}
	if err != nil {
		return nil, err
	}
	return s.list, nil
}

// set collects distinct numbers in order and enforces MaxNumbers.
type set struct {
	list []string
	seen map[string]bool
}

func (s *set) add(n string) error {
	n = strings.TrimSpace(n)
	if n == "" || s.seen[n] {
		return nil
	}
	if len(s.list) == MaxNumbers {
		return fmt.Errorf("%w: more than %d numbers", ErrTooLarge, MaxNumbers)
	}
	s.seen[n] = true
	s.list = append(s.list, n)
	return nil
}

func isVCard(text string) bool {
	for line := range strings.Lines(text) {
		if line = strings.TrimSpace(line); line != "" {
			return strings.EqualFold(line, "BEGIN:VCARD")
		}
	}
	return false
}

func parseCSV(text string, s *set) error {
	cr := csv.NewReader(strings.NewReader(text))
	cr.FieldsPerRecord = -1 // exports often have ragged rows
	cr.ReuseRecord = true
	var cols []int // nil: take every cell
	for row := 0; ; row++ {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrFormat, err)
		}
		if row == 0 {
			cols = phoneColumns(rec)
			if cols != nil {
				continue // a header, not data
			}
		}
		if cols == nil {
			for _, cell := range rec {
				if err := addCell(s, cell); err != nil {
					return err
				}
			}
			continue
		}
		for _, c := range cols {
			if c < len(rec) {
				if err := addCell(s, rec[c]); err != nil {
					return err
				}
			}
		}
	}
}

// phoneColumns returns the indexes of the header's phone columns, or nil if
// it has none.
func phoneColumns(header []string) []int {
	var cols []int
	for i, name := range header {
		name = strings.ToLower(name)
		if !strings.Contains(name, "phone") && !strings.Contains(name, "number") {
			continue
		}
		// "Phone 1 - Label" and "Phone 1 - Type" hold words like "Mobile".
		if strings.Contains(name, "label") || strings.Contains(name, "type") {
			continue
		}
		cols = append(cols, i)
	}
	return cols
}

func addCell(s *set, cell string) error {
	for n := range strings.SplitSeq(cell, " ::: ") {
		if err := s.add(n); err != nil {
			return err
		}
	}
	return nil
}

func parseVCard(text string, s *set) error {
	var err error
	unfold(text, func(line string) bool {
		name, value, ok := splitProperty(line)
		// Lines without a value are skipped rather than refused: vCard 2.1
		// quoted-printable soft breaks produce them, and they carry no TEL.
		if !ok || !strings.EqualFold(name, "TEL") {
			return true
		}
		if len(value) >= 4 && strings.EqualFold(value[:4], "tel:") {
			value = value[4:]
		}
		err = s.add(value)
		return err == nil
	})
	return err
}

// unfold calls yield with each logical line of text, joining folded lines
// (RFC 6350, Section 3.2): a line break followed by a space or tab continues
// the previous line, and both are removed. It stops if yield returns false.
func unfold(text string, yield func(string) bool) {
	var cur strings.Builder
	started := false
	for l := range strings.Lines(text) {
		l = strings.TrimSuffix(strings.TrimSuffix(l, "\n"), "\r")
		if started && l != "" && (l[0] == ' ' || l[0] == '\t') {
			cur.WriteString(l[1:])
			continue
		}
		if started && !yield(cur.String()) {
			return
		}
		cur.Reset()
		cur.WriteString(l)
		started = true
	}
	if started {
		yield(cur.String())
	}
}

// splitProperty splits a content line "group.NAME;param=x:value" into its
// name without group and its value. The value starts at the first colon
// outside a quoted parameter value.
func splitProperty(line string) (name, value string, ok bool) {
	quoted := false
	for i := 0; i < len(line); i++ {
		switch line[i] {
		case '"':
			quoted = !quoted
		case ':':
			if quoted {
				continue
			}
			name = line[:i]
			if j := strings.IndexByte(name, ';'); j >= 0 {
				name = name[:j]
			}
			if j := strings.IndexByte(name, '.'); j >= 0 {
				name = name[j+1:]
			}
			return name, line[i+1:], true
		}
	}
	return "", "", false
}
