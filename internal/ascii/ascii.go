// Package ascii checks the text fields of signed notes (log entries,
// federation maps): one spelling per value, nothing that could hide.
package ascii

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
