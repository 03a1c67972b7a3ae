package ascii

import "testing"

func TestPrintable(t *testing.T) {
	for s, want := range map[string]bool{
		"blindex lookup v1": true, "x": true, "": false, " x": false, "x ": false,
		"a\tb": false, "a\nb": false, "é": false, "a~b!": true, "a\x7fb": false,
	} {
		if got := Printable(s); got != want {
			t.Errorf("Printable(%q) = %v, want %v", s, got, want)
		}
	}
}
