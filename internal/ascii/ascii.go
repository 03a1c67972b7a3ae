// Package ascii reads the text fields of signed notes (log entries,
// federation maps) line by line, and checks each has one spelling per
// value, nothing that could hide.
package ascii

import (
	"encoding/base64"
	"strconv"
	"strings"
)

// Printable reports whether s is non-empty printable ASCII, with spaces
// allowed only inside (not leading or trailing).
func Printable(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		inner := s[i] == ' ' && i > 0 && i < len(s)-1
		if (s[i] < 0x21 || s[i] > 0x7e) && !inner {
			return false
		}
	}
	return true
}

// Decimal parses s as a non-negative decimal of at most max, in its one
// spelling: no sign, no leading zeros, no spaces.
func Decimal(s string, max int64) (int64, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > max || strconv.FormatInt(n, 10) != s {
		return 0, false
	}
	return n, true
}

// Base64 decodes s as non-empty standard base64 in its one spelling
// (padded, no stray bits, and none of the line breaks Go's decoder skips).
func Base64(s string) ([]byte, bool) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, false
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(b) == 0 {
		return nil, false
	}
	return b, true
}

// Lines reads a note's text one line at a time, each line a field
// "name value": log entries and federation maps share this one reader.
type Lines struct {
	rest []string
}

// NewLines splits text into its lines. Every line, the last too, must end
// in a newline: without one, NewLines returns false.
func NewLines(text []byte) (*Lines, bool) {
	s, ok := strings.CutSuffix(string(text), "\n")
	if !ok {
		return nil, false
	}
	return &Lines{rest: strings.Split(s, "\n")}, true
}

// Len is how many lines are left.
func (l *Lines) Len() int { return len(l.rest) }

// Line returns the next line and moves past it, or false if none is left.
func (l *Lines) Line() (string, bool) {
	if len(l.rest) == 0 {
		return "", false
	}
	line := l.rest[0]
	l.rest = l.rest[1:]
	return line, true
}

// Field returns the value of the next line and moves past it, if that line
// is name, a space and the value (which may be empty). Otherwise it returns
// false and stays on the line.
func (l *Lines) Field(name string) (string, bool) {
	if len(l.rest) == 0 {
		return "", false
	}
	v, ok := strings.CutPrefix(l.rest[0], name+" ")
	if !ok {
		return "", false
	}
	l.rest = l.rest[1:]
	return v, true
}
