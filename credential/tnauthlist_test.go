package credential

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestMarshalTNAuthListKnownAnswer(t *testing.T) {
	// RFC 8226, Section 9: the module is DEFINITIONS EXPLICIT TAGS, so "one"
	// is [2] constructed around a complete IA5String TLV.
	want := "" +
		"300f" + // SEQUENCE (TNAuthorizationList), 15 content bytes
		"a20d" + // [2] context-specific, constructed (EXPLICIT "one"), 13 bytes
		"160b" + // IA5String (TelephoneNumber), 11 bytes
		"3134313535353530313030" // "14155550100", the digits without '+'
	got, err := MarshalTNAuthList("+14155550100")
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(got) != want {
		t.Errorf("MarshalTNAuthList = %x, want %s", got, want)
	}
}

func TestTNAuthListRoundTrip(t *testing.T) {
	for _, n := range []string{"+1", "+14155550100", "+442071838750", "+81312345678", "+123456789012345"} {
		der, err := MarshalTNAuthList(n)
		if err != nil {
			t.Fatalf("MarshalTNAuthList(%q): %v", n, err)
		}
		got, err := ParseTNAuthList(der)
		if err != nil {
			t.Fatalf("ParseTNAuthList(Marshal(%q)): %v", n, err)
		}
		if !slices.Equal(got, []string{n}) {
			t.Errorf("ParseTNAuthList(Marshal(%q)) = %q", n, got)
		}
	}
}

func TestMarshalTNAuthListRejects(t *testing.T) {
	for _, n := range []string{
		"", "+", "14155550100", "++14155550100", "+1415555010a", "+1 415 555 0100",
		"+1234567890123456", // 16 digits
		"+1415#", "+1415*",  // valid TelephoneNumber characters, but not E.164
		"+\u0663", // a non-ASCII digit
	} {
		if _, err := MarshalTNAuthList(n); !errors.Is(err, ErrTNAuthList) {
			t.Errorf("MarshalTNAuthList(%q) error = %v, want ErrTNAuthList", n, err)
		}
	}
}

// pyasn1Vector is the TNAuthorizationList test value from pyasn1-modules
// (tests/test_rfc8226.py, by Russ Housley), an independent encoder of the
// RFC 8226 module: spc "bogus", range {start "5715551212", count 788},
// one "7035551212".
const pyasn1Vector = "MCugBxYFYm9ndXOhEjAQFgo1NzE1NTUxMjEyAgIDFKIMFgo3MDM1NTUxMjEy"

func TestParseTNAuthListAccepts(t *testing.T) {
	vector, err := base64.StdEncoding.DecodeString(pyasn1Vector)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		der  []byte
		want []string
	}{
		{"pyasn1 spc+range+one", vector, []string{"+7035551212"}},
		// From the same project's sample certificate: one spc entry "fake".
		{"spc only", unhex(t, "3008a0061604"+hex.EncodeToString([]byte("fake"))), []string{}},
		{"range only", unhex(t, "3013a111300f160a3431353535353031303002010a"), []string{}},
		{"range with an extension addition", unhex(t, "3015a1133011160a343135353535303130300201640500"), []string{}},
		{"two numbers", unhex(t, "3010a206160431323334a206160435363738"), []string{"+1234", "+5678"}},
		{"hash and star", unhex(t, "3008a206160431322334"), []string{"+12#4"}},
		{"star only", unhex(t, "3005a20316012a"), []string{"+*"}},
	} {
		got, err := ParseTNAuthList(tc.der)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestParseTNAuthListRejects(t *testing.T) {
	valid := "300fa20d160b3134313535353530313030"
	for _, tc := range []struct{ name, hex string }{
		{"empty input", ""},
		{"empty list", "3000"},
		{"trailing bytes", valid + "00"},
		{"trailing element", valid + "3000"},
		{"wrong outer tag (SET)", "310fa20d160b3134313535353530313030"},
		{"outer tag is [2] not SEQUENCE", "a20d160b3134313535353530313030"},
		{"truncated", valid[:len(valid)-2]},
		{"non-minimal length", "30810fa20d160b3134313535353530313030"},
		{"indefinite length", "3080a20d160b31343135353535303130300000"},
		{"letter", "300fa20d160b3134313535353530313061"},
		{"plus sign", "300fa20d160b2b31343135353535303130"},
		{"space", "300fa20d160b3134313535353530312030"},
		{"16 digits", "3014a212161031323334353637383930313233343536"},
		{"zero digits", "3004a2021600"},
		{"implicit tagging", "300d820b3134313535353530313030"},
		{"UTF8String instead of IA5String", "300fa20d0c0b3134313535353530313030"},
		{"constructed IA5String", "3011a20f360d160b3134313535353530313030"},
		{"trailing data in explicit tag", "3011a20f160b31343135353535303130300500"},
		{"empty explicit tag", "3002a200"},
		{"unknown arm [3]", "300fa30d160b3134313535353530313030"},
		{"bare IA5String entry", "300d160b3134313535353530313030"},
		{"spc not IA5", "3007a0051603ff4142"},
		{"spc implicit", "3006800441424344"},
		{"range count 1", "3013a111300f160a34313535353530313030020101"},
		{"range count negative", "3013a111300f160a343135353535303130300201ff"},
		{"range count non-minimal", "3014a1123010160a343135353535303130300202000a"},
		{"range start letter", "3013a111300f160a3431353535353031306102010a"},
		{"range missing count", "3010a10e300c160a34313535353530313030"},
		{"range trailing garbage", "3014a1123010160a3431353535353031303002010a05"},
		{"high tag number", "3010bf020d160b3134313535353530313030"},
	} {
		der, err := hex.DecodeString(tc.hex)
		if err != nil {
			t.Fatalf("%s: bad test hex: %v", tc.name, err)
		}
		if got, err := ParseTNAuthList(der); !errors.Is(err, ErrTNAuthList) {
			t.Errorf("%s: ParseTNAuthList(%x) = %q, %v; want ErrTNAuthList", tc.name, der, got, err)
		}
	}
}

func FuzzParseTNAuthList(f *testing.F) {
	for _, n := range []string{"+1", "+14155550100", "+123456789012345"} {
		der, err := MarshalTNAuthList(n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(der)
	}
	vector, err := base64.StdEncoding.DecodeString(pyasn1Vector)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(vector)
	f.Add(unhex(f, "3008a0061604"+hex.EncodeToString([]byte("fake"))))
	f.Add(unhex(f, "3008a206160431322334"))
	f.Fuzz(func(t *testing.T, der []byte) {
		numbers, err := ParseTNAuthList(der)
		if err != nil {
			if !errors.Is(err, ErrTNAuthList) {
				t.Fatalf("error %v does not wrap ErrTNAuthList", err)
			}
			return
		}
		for _, n := range numbers {
			if !strings.HasPrefix(n, "+") || len(n) < 2 || len(n) > 16 {
				t.Fatalf("returned %q", n)
			}
			again, err := MarshalTNAuthList(n)
			if strings.ContainsAny(n, "#*") {
				// Valid TelephoneNumber characters, never E.164.
				if !errors.Is(err, ErrTNAuthList) {
					t.Fatalf("MarshalTNAuthList(%q) accepted a non-E.164 number", n)
				}
				continue
			}
			if err != nil {
				t.Fatalf("MarshalTNAuthList(%q): %v", n, err)
			}
			got, err := ParseTNAuthList(again)
			if err != nil || !slices.Equal(got, []string{n}) {
				t.Fatalf("round trip of %q gave %q, %v", n, got, err)
			}
			// The single-entry encoding must be found inside the input: one
			// value, one encoding.
			if !bytes.Contains(der, again[2:]) {
				t.Fatalf("entry for %q not found in input %x", n, der)
			}
		}
	})
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
