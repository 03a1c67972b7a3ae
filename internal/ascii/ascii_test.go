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

func TestLines(t *testing.T) {
	if _, ok := NewLines([]byte("head\nname x")); ok {
		t.Error("NewLines accepted a text without a final newline")
	}
	if _, ok := NewLines(nil); ok {
		t.Error("NewLines accepted an empty text")
	}
	l, ok := NewLines([]byte("head\nname x\nprefix \nprefix +1\nnamex y\n"))
	if !ok || l.Len() != 5 {
		t.Fatalf("NewLines: %v, %d lines, want 5", ok, l.Len())
	}
	if h, ok := l.Line(); !ok || h != "head" {
		t.Errorf("Line() = %q, %v; want head", h, ok)
	}
	if _, ok := l.Field("prefix"); ok || l.Len() != 4 {
		t.Errorf("Field(prefix) on a name line: ok %v, %d left; want false, 4", ok, l.Len())
	}
	if v, ok := l.Field("name"); !ok || v != "x" {
		t.Errorf("Field(name) = %q, %v; want x", v, ok)
	}
	var prefixes []string
	for {
		p, ok := l.Field("prefix")
		if !ok {
			break
		}
		prefixes = append(prefixes, p)
	}
	if len(prefixes) != 2 || prefixes[0] != "" || prefixes[1] != "+1" {
		t.Errorf("prefixes %q, want an empty one then +1", prefixes)
	}
	if _, ok := l.Field("name"); ok {
		t.Error(`Field(name) matched "namex y"`)
	}
	if v, ok := l.Line(); !ok || v != "namex y" || l.Len() != 0 {
		t.Errorf("Line() = %q, %v, %d left", v, ok, l.Len())
	}
	if _, ok := l.Line(); ok {
		t.Error("Line() past the end")
	}
	if _, ok := l.Field("name"); ok {
		t.Error("Field past the end")
	}
}
