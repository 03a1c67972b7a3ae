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

func TestDecimal(t *testing.T) {
	for _, c := range []struct {
		s    string
		max  int64
		want int64
		ok   bool
	}{
		{"0", 10, 0, true}, {"10", 10, 10, true}, {"11", 10, 0, false}, {"007", 10, 0, false},
		{"+1", 10, 0, false}, {"-1", 10, 0, false}, {" 1", 10, 0, false}, {"", 10, 0, false},
		{"9223372036854775807", 1<<63 - 1, 1<<63 - 1, true}, {"9223372036854775808", 1<<63 - 1, 0, false},
	} {
		if n, ok := Decimal(c.s, c.max); n != c.want || ok != c.ok {
			t.Errorf("Decimal(%q, %d) = %d, %v; want %d, %v", c.s, c.max, n, ok, c.want, c.ok)
		}
	}
}

func TestBase64(t *testing.T) {
	for s, want := range map[string]bool{
		"AQ==": true, "AQ": false, "AR==": false, "": false, "A Q==": false, "AQ==\n": false, "AQ\r==": false, "-_8=": false,
	} {
		if _, ok := Base64(s); ok != want {
			t.Errorf("Base64(%q) ok = %v, want %v", s, ok, want)
		}
	}
}
