package disclose_test

import (
	"strings"
	"testing"

	"blindex.dev/blindex/threatmodel/disclose"
	"blindex.dev/blindex/threatmodel/privacyscan"
)

// scanReport renders r both ways and checks, with the privacy scanner, that
// no spelling of any of numbers appears outside the owner sections. Without
// withOwner the report must have no owner section at all.
func scanReport(t *testing.T, r *disclose.Report, numbers []string, withOwner bool) {
	t.Helper()
	sc, err := privacyscan.New(numbers...)
	if err != nil {
		t.Fatal(err)
	}
	md := render(t, r, (*disclose.Report).WriteMarkdown)
	html := render(t, r, (*disclose.Report).WriteHTML)
	mdOut, mdOwner := cut(t, md, disclose.MarkdownOwnerBegin, disclose.MarkdownOwnerEnd)
	htmlOut, htmlOwner := cut(t, html, `<section id="`+disclose.OwnerDataID+`"`, "</section>")
	for _, f := range append(sc.Bytes("report.md", []byte(mdOut)), sc.Bytes("report.html", []byte(htmlOut))...) {
		t.Errorf("outside the owner sections: %v", f)
	}
	if !withOwner && (mdOwner != "" || htmlOwner != "") {
		t.Error("a report without owner files has an owner section")
	}
	if withOwner && (mdOwner == "" || htmlOwner == "") {
		t.Error("a report with owner files has no owner section")
	}
}

// cut returns s without the part from begin to end (inclusive), and that
// part. Only one such part may exist.
func cut(t *testing.T, s, begin, end string) (outside, inside string) {
	t.Helper()
	i := strings.Index(s, begin)
	if i < 0 {
		return s, ""
	}
	j := strings.Index(s[i:], end)
	if j < 0 {
		t.Fatalf("%q without %q", begin, end)
	}
	j += i + len(end)
	if strings.Contains(s[j:], begin) {
		t.Fatalf("two owner sections")
	}
	return s[:i] + s[j:], s[i:j]
}
