package contacts

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

func parse(t *testing.T, in string) []string {
	t.Helper()
	got, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return got
}

func check(t *testing.T, name string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got %q\nwant %q", name, got, want)
	}
}

func TestCSVWithHeader(t *testing.T) {
	// Shaped like a Google Contacts export.
	in := "\uFEFFName,Given Name,Phone 1 - Label,Phone 1 - Value,Phone 2 - Type,Phone 2 - Value,Notes\r\n" +
		"Alice,Alice,Mobile,+1 415 555 0100,Work,+1 415 555 0101,call 555 0199\r\n" +
		"Bob,Bob,* Mobile,+44 20 7946 0000 ::: +44 20 7946 0001,,,\r\n" +
		"\"Carol, Jr.\",Carol,Home,+1 415 555 0100,,\r\n" + // duplicate, short row
		"Dan,Dan,,  ,,\r\n" // blank cells
	check(t, "google", parse(t, in), []string{
		"+1 415 555 0100", "+1 415 555 0101", "+44 20 7946 0000", "+44 20 7946 0001",
	})

	in = "First Name,Last Name,Mobile Phone,Home Phone,Account Number\n" +
		"Eve,E,(415) 555-0102,,42\n"
	check(t, "outlook", parse(t, in), []string{"(415) 555-0102", "42"})

	in = "name,PHONE\nx,1\ny,2\n"
	check(t, "case", parse(t, in), []string{"1", "2"})
}

func TestCSVWithoutHeader(t *testing.T) {
	in := "+1 415 555 0100\n+1 415 555 0101, +1 415 555 0102\n\n,\n+1 415 555 0100\n"
	check(t, "plain", parse(t, in), []string{"+1 415 555 0100", "+1 415 555 0101", "+1 415 555 0102"})

	// Without a phone column, the first row is data.
	in = "Alice,+14155550100\nBob,+14155550101\n"
	check(t, "names", parse(t, in), []string{"Alice", "+14155550100", "Bob", "+14155550101"})
}

func TestCSVMalformed(t *testing.T) {
	for _, in := range []string{
		"a,\"b\n",         // unterminated quote
		"a,b\"c\",d\n",    // bare quote
		"phone\n\"1\"2\n", // text after a closing quote
	} {
		if _, err := Parse(strings.NewReader(in)); !errors.Is(err, ErrFormat) {
			t.Errorf("Parse(%q): err = %v, want ErrFormat", in, err)
		}
	}
}

func TestVCard3(t *testing.T) {
	in := "\r\n" +
		"BEGIN:VCARD\r\n" +
		"VERSION:3.0\r\n" +
		"FN:Alice Example\r\n" +
		"N:Example;Alice;;;\r\n" +
		"TEL;TYPE=CELL:+1 415 555 0100\r\n" +
		"TEL;TYPE=WORK,VOICE:+1 415\r\n" +
		"  555 0101\r\n" + // folded: the first space is removed, the second kept
		"item1.TEL;type=pref:+44 20 \r\n" +
		"\t7946 0000\r\n" +
		"item1.X-ABLabel:_$!<Mobile>!$_\r\n" +
		"NOTE:TEL:+1 000 000 0000 is not a property\r\n" +
		"END:VCARD\r\n" +
		"begin:vcard\r\n" +
		"version:3.0\r\n" +
		"tel:+1 415 555 0100\r\n" + // duplicate
		"Tel;Type=home:  +1 415 555 0103  \r\n" +
		"TEL:\r\n" +
		"end:vcard\r\n"
	check(t, "3.0", parse(t, in), []string{"+1 415 555 0100", "+1 415 555 0101", "+44 20 7946 0000", "+1 415 555 0103"})
}

func TestVCard4(t *testing.T) {
	in := "begin:vcard\n" +
		"VERSION:4.0\n" +
		"FN:Bob\n" +
		"TEL;VALUE=uri;PREF=1;TYPE=\"voice,home\":tel:+1-415-555-0100\n" +
		"TEL;VALUE=uri;TYPE=\"x:odd\":TEL:+1-415-555-0101;ext=12\n" +
		"TEL;VALUE=uri:tel:+1-4\n" +
		" 15-555-0102\n" +
		"work.TEL;VALUE=text:+1 415 555 0103\n" +
		"TELEX:12345\n" +
		"X-TEL:999\n" +
		"END:VCARD\n"
	check(t, "4.0", parse(t, in), []string{"+1-415-555-0100", "+1-415-555-0101;ext=12", "+1-415-555-0102", "+1 415 555 0103"})
}

func TestVCardNotFirstLine(t *testing.T) {
	// BEGIN:VCARD after other content is not a vCard; it is read as CSV.
	in := "phone\nBEGIN:VCARD\nTEL:+1 415 555 0100\n"
	check(t, "csv", parse(t, in), []string{"BEGIN:VCARD", "TEL:+1 415 555 0100"})
}

func TestEmpty(t *testing.T) {
	for _, in := range []string{"", "\n\n", "\uFEFF", "Name,Phone\n"} {
		if got := parse(t, in); len(got) != 0 {
			t.Errorf("Parse(%q) = %q, want none", in, got)
		}
	}
}

func TestTooLarge(t *testing.T) {
	ok := strings.Repeat("1", MaxFileSize)
	if got := parse(t, ok); len(got) != 1 {
		t.Errorf("file of MaxFileSize bytes: %d numbers", len(got))
	}
	if _, err := Parse(strings.NewReader(ok + "1")); !errors.Is(err, ErrTooLarge) {
		t.Errorf("file of MaxFileSize+1 bytes: err = %v, want ErrTooLarge", err)
	}
}

func TestTooManyNumbers(t *testing.T) {
	var csvIn, vcf strings.Builder
	vcf.WriteString("BEGIN:VCARD\n")
	for i := range MaxNumbers {
		fmt.Fprintf(&csvIn, "+1415555%05d\n", i)
		fmt.Fprintf(&vcf, "TEL:+1415555%05d\n", i)
	}
	if got := parse(t, csvIn.String()+"+141555500000\n"); len(got) != MaxNumbers {
		t.Errorf("MaxNumbers plus a duplicate: %d numbers", len(got))
	}
	if _, err := Parse(strings.NewReader(csvIn.String() + "extra\n")); !errors.Is(err, ErrTooLarge) {
		t.Errorf("CSV with MaxNumbers+1: err = %v, want ErrTooLarge", err)
	}
	if _, err := Parse(strings.NewReader(vcf.String() + "TEL:extra\n")); !errors.Is(err, ErrTooLarge) {
		t.Errorf("vCard with MaxNumbers+1: err = %v, want ErrTooLarge", err)
	}
}

func TestReadError(t *testing.T) {
	boom := errors.New("boom")
	if _, err := Parse(iotest.ErrReader(boom)); !errors.Is(err, boom) {
		t.Errorf("err = %v, want the read error", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add("Name,Phone 1 - Value\nAlice,+1 415 555 0100 ::: +1 415 555 0101\n")
	f.Add("+14155550100,+14155550101\n")
	f.Add("BEGIN:VCARD\r\nVERSION:3.0\r\nitem1.TEL;TYPE=cell:+1 415\r\n 555 0100\r\nEND:VCARD\r\n")
	f.Add("BEGIN:VCARD\nVERSION:4.0\nTEL;VALUE=uri;TYPE=\"a:b\":tel:+1-415-555-0100;ext=1\nEND:VCARD\n")
	f.Add("BEGIN:VCARD\nTEL;X=\"unterminated:+1\n")
	f.Add("a,\"b\n")
	f.Fuzz(func(t *testing.T, in string) {
		got, err := Parse(strings.NewReader(in))
		if err != nil {
			if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if len(got) > MaxNumbers {
			t.Fatalf("%d numbers", len(got))
		}
		seen := make(map[string]bool)
		for _, n := range got {
			if n == "" || n != strings.TrimSpace(n) || seen[n] {
				t.Fatalf("bad or duplicate entry %q in %q", n, got)
			}
			seen[n] = true
		}
	})
}
