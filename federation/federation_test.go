package federation_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"blindex.dev/blindex/credential"
	"blindex.dev/blindex/federation"
	"blindex.dev/blindex/oprf"
)

var now = time.Unix(1790000000, 0).UTC()

// fedName is the name of testMap's federation.
const fedName = "example.org/federation"

// testDirectory returns a directory at u with fresh keys and CA roots.
func testDirectory(t testing.TB, u string, prefixes ...string) federation.Directory {
	t.Helper()
	k, err := oprf.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	_, vkey, err := note.GenerateKey(rand.Reader, strings.TrimPrefix(u, "https://")+"/log")
	if err != nil {
		t.Fatal(err)
	}
	var roots [][]byte
	for i := range 2 {
		ca, err := credential.GenerateCA(fmt.Sprintf("CA %d of %s", i, u), now)
		if err != nil {
			t.Fatal(err)
		}
		roots = append(roots, ca.Root().Raw)
	}
	return federation.Directory{URL: u, Prefixes: prefixes, OPRFKey: k.Public().Bytes(), OPRFInfo: "blindex lookup v1",
		OPRFEpoch: 2, LogKey: vkey, CARoots: roots}
}

func testMap(t testing.TB) *federation.Map {
	t.Helper()
	m, err := federation.Build(fedName, 3, now.Add(30*24*time.Hour), []federation.Directory{
		testDirectory(t, "https://uk.example.org", "+44"),
		testDirectory(t, "https://us.example.org", "+1"),
		testDirectory(t, "https://intl.example.org", "+", "+33"),
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func signer(t testing.TB, name string) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

func sign(t testing.TB, m *federation.Map, signers ...note.Signer) []byte {
	t.Helper()
	text, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	signed, err := federation.Sign(text, signers...)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// The text is exactly what docs/protocol.md specifies: a header, the map's
// name, version and expiry, then one block per directory (sorted by URL)
// with its prefixes (sorted), keys and CA roots (sorted).
func TestFormat(t *testing.T) {
	m := testMap(t)
	text, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString
	var want strings.Builder
	fmt.Fprintf(&want, "blindex-map/v1\nname example.org/federation\nversion 3\nexpires %d\n", now.Add(30*24*time.Hour).Unix())
	for i, u := range []string{"https://intl.example.org", "https://uk.example.org", "https://us.example.org"} {
		d := m.Directories[i]
		if d.URL != u {
			t.Fatalf("directory %d is %s, want %s", i, d.URL, u)
		}
		fmt.Fprintf(&want, "directory %s\n", u)
		for _, p := range map[string][]string{"https://intl.example.org": {"+", "+33"}, "https://uk.example.org": {"+44"}, "https://us.example.org": {"+1"}}[u] {
			fmt.Fprintf(&want, "prefix %s\n", p)
		}
		fmt.Fprintf(&want, "oprf-key %s\noprf-info blindex lookup v1\noprf-epoch 2\nlog-key %s\n", b64(d.OPRFKey), d.LogKey)
		if bytes.Compare(d.CARoots[0], d.CARoots[1]) >= 0 {
			t.Fatalf("CA roots of %s not sorted", u)
		}
		for _, r := range d.CARoots {
			fmt.Fprintf(&want, "ca-root %s\n", b64(r))
		}
	}
	if string(text) != want.String() {
		t.Fatalf("text:\n%s\nwant:\n%s", text, want.String())
	}
	got, err := federation.Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := got.Marshal()
	if !bytes.Equal(again, text) || got.Hash() != m.Hash() || got.Hash() == [32]byte{} {
		t.Fatal("round trip changed the map")
	}
}

func TestOpen(t *testing.T) {
	m := testMap(t)
	s, v := signer(t, fedName)
	signed := sign(t, m, s)
	got, err := federation.Open(signed, federation.Trust{Name: fedName, Keys: []note.Verifier{v}}, now)
	if err != nil {
		t.Fatal(err)
	}
	if got.Hash() != m.Hash() || !bytes.Equal(got.Note, signed) {
		t.Fatal("opened map differs")
	}

	// Text gives the same map text from the bare text and the signed note.
	bare, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range [][]byte{bare, signed} {
		if text, err := federation.Text(doc); err != nil || !bytes.Equal(text, bare) {
			t.Fatalf("Text: %q, %v; want the map text", text, err)
		}
	}
	if _, err := federation.Text(append(bare, "\nnot a signature line\n"...)); err == nil {
		t.Error("Text accepted a note with a malformed signature block")
	}

	other, otherV := signer(t, fedName)
	cosigner, cosignerV := signer(t, "us.example.org")
	tampered := bytes.Replace(signed, []byte("prefix +44\n"), []byte("prefix +45\n"), 1)
	cosigned, err := federation.Sign(signed, cosigner)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := federation.Open(cosigned, federation.Trust{Name: fedName, Keys: []note.Verifier{v, cosignerV}, Quorum: 2}, now); err != nil {
		t.Fatalf("cosigned map with quorum 2: %v", err)
	}
	if _, err := federation.Open(signed, federation.Trust{Keys: []note.Verifier{v}}, now); err == nil {
		t.Error("opened a map with no Trust.Name")
	}
	// A cosigner alone, with the default quorum of 1, must not be able to
	// sign a map: neither one named after itself that routes every number
	// to it, nor one under the federation's name.
	own, err := federation.Build("us.example.org", 4, now.Add(time.Hour), []federation.Directory{testDirectory(t, "https://us.example.org", "+")})
	if err != nil {
		t.Fatal(err)
	}
	withCosigner := federation.Trust{Name: fedName, Keys: []note.Verifier{v, cosignerV}}
	for _, c := range []struct {
		name   string
		signed []byte
		trust  federation.Trust
		at     time.Time
		want   error
	}{
		{"expired", signed, federation.Trust{Name: fedName, Keys: []note.Verifier{v}}, m.Expires, federation.ErrExpired},
		{"unknown signer", signed, federation.Trust{Name: fedName, Keys: []note.Verifier{otherV}}, now, federation.ErrUnknownSigner},
		{"unsigned", mustMarshal(t, m), federation.Trust{Name: fedName, Keys: []note.Verifier{v}}, now, federation.ErrUnsigned},
		{"tampered", tampered, federation.Trust{Name: fedName, Keys: []note.Verifier{v}}, now, federation.ErrSignature},
		{"too few signatures", signed, federation.Trust{Name: fedName, Keys: []note.Verifier{v, cosignerV}, Quorum: 2}, now, federation.ErrQuorum},
		{"only a cosigner", sign(t, m, cosigner), federation.Trust{Name: fedName, Keys: []note.Verifier{cosignerV}}, now, federation.ErrUnknownSigner},
		{"only a trusted cosigner", sign(t, m, cosigner), withCosigner, now, federation.ErrUnknownSigner},
		{"a cosigner's own map", sign(t, own, cosigner), withCosigner, now, federation.ErrName},
		{"a cosigner's own map, cosigned", sign(t, own, cosigner, s), withCosigner, now, federation.ErrName},
		{"another federation's map", signed, federation.Trust{Name: "other.example/federation", Keys: []note.Verifier{v}}, now, federation.ErrName},
		{"signed by another key", sign(t, m, other), federation.Trust{Name: fedName, Keys: []note.Verifier{v}}, now, federation.ErrUnknownSigner},
		{"too large", append(bytes.Repeat([]byte{'x'}, federation.MaxSize), signed...), federation.Trust{Name: fedName, Keys: []note.Verifier{v}}, now, federation.ErrTooLarge},
	} {
		if _, err := federation.Open(c.signed, c.trust, c.at); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}

	// Every one-byte change is refused, or (in a signature's unused base64
	// bits) leaves the same map.
	for i := range signed {
		b := bytes.Clone(signed)
		b[i] ^= 0x01
		if got, err := federation.Open(b, federation.Trust{Name: fedName, Keys: []note.Verifier{v}}, now); err == nil && got.Hash() != m.Hash() {
			t.Fatalf("byte %d changed: opened a different map", i)
		}
	}
}

func mustMarshal(t *testing.T, m *federation.Map) []byte {
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRoute(t *testing.T) {
	m := testMap(t)
	for number, want := range map[string]string{
		"+14155550100":   "https://us.example.org +1",
		"+447911123456":  "https://uk.example.org +44",
		"+33612345678":   "https://intl.example.org +33",
		"+4915123456789": "https://intl.example.org +",
		"+81312345678":   "https://intl.example.org +",
	} {
		d, p, err := m.Route(number)
		if err != nil || d.URL+" "+p != want {
			t.Errorf("Route(%s) = %v %q %v, want %s", number, d, p, err, want)
		}
	}
	for _, bad := range []string{"", "+", "14155550100", "+1415555010a", "+1234567890123456"} {
		if _, _, err := m.Route(bad); !errors.Is(err, federation.ErrNumber) {
			t.Errorf("Route(%q): %v, want ErrNumber", bad, err)
		}
	}
	// Without a catch-all, a number outside every prefix has no directory.
	noCatchAll, err := federation.Build("x", 1, now.Add(time.Hour), []federation.Directory{testDirectory(t, "https://us.example.org", "+1")})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := noCatchAll.Route("+447911123456"); !errors.Is(err, federation.ErrNoDirectory) {
		t.Errorf("Route outside every prefix: %v, want ErrNoDirectory", err)
	}
	if d := m.ByURL("https://uk.example.org/"); d == nil || d.Prefixes[0] != "+44" {
		t.Errorf("ByURL: %v", d)
	}
	holds := m.Holds("https://uk.example.org/")
	for number, want := range map[string]struct {
		elsewhere string
		ok        bool
	}{
		"+447911123456": {"https://uk.example.org", true},
		"+14155550100":  {"https://us.example.org", false},
		"+81312345678":  {"https://intl.example.org", false},
		"not a number":  {"", false},
	} {
		if elsewhere, ok := holds(number); elsewhere != want.elsewhere || ok != want.ok {
			t.Errorf("Holds(%q) = %q %v, want %q %v", number, elsewhere, ok, want.elsewhere, want.ok)
		}
	}
	if _, ok := noCatchAll.Holds("https://us.example.org")("+447911123456"); ok {
		t.Error("a number no directory holds is held")
	}
}

// Each rule of the format has a map that breaks it.
func TestBuildRules(t *testing.T) {
	us, uk := testDirectory(t, "https://us.example.org", "+1"), testDirectory(t, "https://uk.example.org", "+44")
	with := func(d federation.Directory, change func(*federation.Directory)) federation.Directory {
		d.Prefixes, d.CARoots = append([]string(nil), d.Prefixes...), append([][]byte(nil), d.CARoots...)
		change(&d)
		return d
	}
	upperHash := func(vkey string) string {
		parts := strings.SplitN(vkey, "+", 3)
		return parts[0] + "+" + strings.ToUpper(parts[1]) + "+" + parts[2]
	}
	for upperHash(us.LogKey) == us.LogKey { // a hash without a letter has no other case
		us = testDirectory(t, "https://us.example.org", "+1")
	}
	for name, c := range map[string]struct {
		name    string
		version int64
		dirs    []federation.Directory
	}{
		"duplicate prefix":   {"x", 1, []federation.Directory{us, with(uk, func(d *federation.Directory) { d.Prefixes = []string{"+1"} })}},
		"same prefix twice":  {"x", 1, []federation.Directory{with(us, func(d *federation.Directory) { d.Prefixes = []string{"+1", "+1"} })}},
		"same URL twice":     {"x", 1, []federation.Directory{us, with(uk, func(d *federation.Directory) { d.URL = us.URL })}},
		"no prefix":          {"x", 1, []federation.Directory{with(us, func(d *federation.Directory) { d.Prefixes = nil })}},
		"prefix with 0":      {"x", 1, []federation.Directory{with(us, func(d *federation.Directory) { d.Prefixes = []string{"+01"} })}},
		"prefix without +":   {"x", 1, []federation.Directory{with(us, func(d *federation.Directory) { d.Prefixes = []string{"1"} })}},
		"prefix too long":    {"x", 1, []federation.Directory{with(us, func(d *federation.Directory) { d.Prefixes = []string{"+1234567890123456"} })}},
		"prefix with letter": {"x", 1, []federation.Directory{with(us, func(d *federation.Directory) { d.Prefixes = []string{"+1a"} })}},
		"trailing slash":     {"x", 1, []federation.Directory{with(us, func(d *federation.Directory) { d.URL += "/" })}},
		"query":              {"x", 1, []federation.Directory{with(us, func(d *federation.Directory) { d.URL += "?a=b" })}},
		"other scheme":       {"x", 1, []federation.Directory{with(us, func(d *federation.Directory) { d.URL = "ftp://us.example.org" })}},
		"upper-case host":    {"x", 1, []federation.Directory{with(us, func(d *federation.Directory) { d.URL = "https://US.example.org" })}},
		"identity key":       {"x", 1, []federation.Directory{with(us, func(d *federation.Directory) { d.OPRFKey = make([]byte, 32) })}},
		"empty info":         {"x", 1, []federation.Directory{with(us, func(d *federation.Directory) { d.OPRFInfo = "" })}},
		"negative epoch":     {"x", 1, []federation.Directory{with(us, func(d *federation.Directory) { d.OPRFEpoch = -1 })}},
		"bad log key":        {"x", 1, []federation.Directory{with(us, func(d *federation.Directory) { d.LogKey = "nope" })}},
		"log key upper hex":  {"x", 1, []federation.Directory{with(us, func(d *federation.Directory) { d.LogKey = upperHash(d.LogKey) })}},
		"no CA root":         {"x", 1, []federation.Directory{with(us, func(d *federation.Directory) { d.CARoots = nil })}},
		"bad CA root":        {"x", 1, []federation.Directory{with(us, func(d *federation.Directory) { d.CARoots = [][]byte{{1, 2, 3}} })}},
		"same CA root twice": {"x", 1, []federation.Directory{with(us, func(d *federation.Directory) { d.CARoots = [][]byte{d.CARoots[0], d.CARoots[0]} })}},
		"no directory":       {"x", 1, nil},
		"version 0":          {"x", 0, []federation.Directory{us}},
		"name with space":    {"a b", 1, []federation.Directory{us}},
		"name with +":        {"a+b", 1, []federation.Directory{us}},
	} {
		if _, err := federation.Build(c.name, c.version, now, c.dirs); !errors.Is(err, federation.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

// Parse accepts only the canonical text.
func TestParseStrict(t *testing.T) {
	m := testMap(t)
	text := string(mustMarshal(t, m))
	us := m.ByURL("https://intl.example.org")
	for name, bad := range map[string]string{
		"no final newline":  strings.TrimSuffix(text, "\n"),
		"blank line":        text + "\n",
		"CRLF":              strings.ReplaceAll(text, "\n", "\r\n"),
		"trailing space":    strings.Replace(text, "version 3\n", "version 3 \n", 1),
		"leading zero":      strings.Replace(text, "version 3\n", "version 03\n", 1),
		"version 0":         strings.Replace(text, "version 3\n", "version 0\n", 1),
		"negative version":  strings.Replace(text, "version 3\n", "version -3\n", 1),
		"expires 0":         regexp.MustCompile("(?m)^expires [0-9]+$").ReplaceAllString(text, "expires 0"),
		"other header":      strings.Replace(text, "blindex-map/v1", "blindex-map/v2", 1),
		"unsorted prefixes": strings.Replace(text, "prefix +\nprefix +33\n", "prefix +33\nprefix +\n", 1),
		"lines swapped":     strings.Replace(text, "oprf-key "+base64.StdEncoding.EncodeToString(us.OPRFKey)+"\noprf-info blindex lookup v1\n", "oprf-info blindex lookup v1\noprf-key "+base64.StdEncoding.EncodeToString(us.OPRFKey)+"\n", 1),
		"unknown field":     text + "extra 1\n",
		"unpadded base64":   strings.Replace(text, "=\n", "\n", 1),
		"empty":             "",
	} {
		if bad == text {
			t.Fatalf("%s: the change did not apply", name)
		}
		if _, err := federation.Parse([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestCheckSuccessor(t *testing.T) {
	m := testMap(t)
	s, v := signer(t, m.Name)
	open := func(m *federation.Map) *federation.Map {
		got, err := federation.Open(sign(t, m, s), federation.Trust{Name: fedName, Keys: []note.Verifier{v}}, now)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	v3 := open(m)
	next := *m
	next.Version = 4
	v4 := open(&next)
	other := *m
	other.Directories = m.Directories[:2]
	v3b := open(&other)
	if err := federation.CheckSuccessor(v3, v4); err != nil {
		t.Errorf("newer: %v", err)
	}
	if err := federation.CheckSuccessor(v3, v3); err != nil {
		t.Errorf("same: %v", err)
	}
	if err := federation.CheckSuccessor(v4, v3); !errors.Is(err, federation.ErrRollback) {
		t.Errorf("older: %v, want ErrRollback", err)
	}
	renamed := next
	renamed.Name, renamed.Version = "other.example/federation", 5
	if err := federation.CheckSuccessor(v4, &renamed); !errors.Is(err, federation.ErrName) {
		t.Errorf("renamed: %v, want ErrName", err)
	}
	var conflict *federation.ConflictError
	if err := federation.CheckSuccessor(v3, v3b); !errors.As(err, &conflict) || !bytes.Equal(conflict.Old, v3.Note) || !bytes.Equal(conflict.New, v3b.Note) {
		t.Errorf("two maps of version 3: %v, want a ConflictError with both notes", err)
	}
}
