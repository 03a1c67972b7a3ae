package acl

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// p returns a distinct, non-zero pseudonym for test index i.
func p(i int) Pseudonym {
	var ps Pseudonym
	ps[0] = 0xa5
	ps[1] = byte(i >> 8)
	ps[2] = byte(i)
	return ps
}

func b64(ps Pseudonym) string { return base64.StdEncoding.EncodeToString(ps[:]) }

func TestDecide(t *testing.T) {
	tests := []struct {
		v               Visibility
		allowed, denied bool
		want            bool
	}{
		{Nobody, false, false, false},
		{Nobody, true, false, false},
		{Nobody, false, true, false},
		{Nobody, true, true, false},
		{Public, false, false, true},
		{Public, true, false, true},
		{Public, false, true, false},
		{Public, true, true, false},
		{Allowlist, false, false, false},
		{Allowlist, true, false, true},
		{Allowlist, false, true, false},
		{Allowlist, true, true, false},
	}
	for _, tt := range tests {
		if got := Decide(tt.v, tt.allowed, tt.denied); got != tt.want {
			t.Errorf("Decide(%v, allowed=%v, denied=%v) = %v, want %v", tt.v, tt.allowed, tt.denied, got, tt.want)
		}
	}
	// An unknown visibility must fail closed.
	for _, a := range []bool{false, true} {
		if Decide(Visibility(3), a, false) || Decide(Visibility(255), a, false) {
			t.Errorf("Decide admitted with unknown visibility (allowed=%v)", a)
		}
	}
}

func TestAdmits(t *testing.T) {
	alice, bob, carol := p(1), p(2), p(3)
	tests := []struct {
		name   string
		l      List
		caller Pseudonym
		want   bool
	}{
		{"zero value denies", List{}, alice, false},
		{"nobody with deny", List{Visibility: Nobody, Deny: []Pseudonym{bob}}, alice, false},
		{"public", List{Visibility: Public}, alice, true},
		{"public denied", List{Visibility: Public, Deny: []Pseudonym{alice}}, alice, false},
		{"public other denied", List{Visibility: Public, Deny: []Pseudonym{bob}}, alice, true},
		{"allowlist member", List{Visibility: Allowlist, Allow: []Pseudonym{bob, alice}}, alice, true},
		{"allowlist non-member", List{Visibility: Allowlist, Allow: []Pseudonym{bob}}, carol, false},
		{"allowlist empty", List{Visibility: Allowlist}, alice, false},
		{"allowlist member denied", List{Visibility: Allowlist, Allow: []Pseudonym{alice}, Deny: []Pseudonym{alice}}, alice, false},
	}
	for _, tt := range tests {
		if got := tt.l.Admits(tt.caller); got != tt.want {
			t.Errorf("%s: Admits = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestVisibilityString(t *testing.T) {
	for _, v := range []Visibility{Nobody, Public, Allowlist} {
		got, err := ParseVisibility(v.String())
		if err != nil || got != v {
			t.Errorf("ParseVisibility(%q) = %v, %v; want %v", v.String(), got, err, v)
		}
	}
	if s := Visibility(9).String(); s != "Visibility(9)" {
		t.Errorf("Visibility(9).String() = %q", s)
	}
	for _, s := range []string{"", "Public", "PUBLIC", "everyone", "public ", "Visibility(9)"} {
		if _, err := ParseVisibility(s); !errors.Is(err, ErrVisibility) {
			t.Errorf("ParseVisibility(%q) error = %v, want ErrVisibility", s, err)
		}
	}
}

func TestValidate(t *testing.T) {
	many := make([]Pseudonym, MaxEntries+1)
	for i := range many {
		many[i] = p(i)
	}
	tests := []struct {
		name string
		l    List
		want error
	}{
		{"zero value", List{}, nil},
		{"public", List{Visibility: Public, Deny: []Pseudonym{p(1)}}, nil},
		{"nobody with deny", List{Visibility: Nobody, Deny: []Pseudonym{p(1)}}, nil},
		{"allow and deny overlap", List{Visibility: Allowlist, Allow: []Pseudonym{p(1)}, Deny: []Pseudonym{p(1)}}, nil},
		{"max allow", List{Visibility: Allowlist, Allow: many[:MaxEntries]}, nil},
		{"unknown visibility", List{Visibility: 3}, ErrVisibility},
		{"too many allow", List{Visibility: Allowlist, Allow: many}, ErrTooMany},
		{"too many deny", List{Visibility: Public, Deny: many}, ErrTooMany},
		{"allow on public", List{Visibility: Public, Allow: []Pseudonym{p(1)}}, ErrAllowWithoutAllowlist},
		{"allow on nobody", List{Visibility: Nobody, Allow: []Pseudonym{p(1)}}, ErrAllowWithoutAllowlist},
		{"duplicate allow", List{Visibility: Allowlist, Allow: []Pseudonym{p(1), p(2), p(1)}}, ErrDuplicate},
		{"duplicate deny", List{Visibility: Public, Deny: []Pseudonym{p(2), p(2)}}, ErrDuplicate},
		{"zero allow entry", List{Visibility: Allowlist, Allow: []Pseudonym{{}}}, ErrEntry},
		{"zero deny entry", List{Visibility: Public, Deny: []Pseudonym{p(1), {}}}, ErrEntry},
	}
	for _, tt := range tests {
		err := tt.l.Validate()
		if tt.want == nil && err != nil {
			t.Errorf("%s: Validate = %v, want nil", tt.name, err)
		}
		if tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("%s: Validate = %v, want %v", tt.name, err, tt.want)
		}
	}
	if !strings.Contains(ErrTooMany.Error(), fmt.Sprint(MaxEntries)) {
		t.Errorf("ErrTooMany %q does not name the limit", ErrTooMany)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	lists := []List{
		{},
		{Visibility: Public},
		{Visibility: Public, Deny: []Pseudonym{p(1), p(2)}},
		{Visibility: Allowlist, Allow: []Pseudonym{p(3), p(4)}, Deny: []Pseudonym{p(5)}},
	}
	for _, l := range lists {
		b, err := json.Marshal(l)
		if err != nil {
			t.Fatalf("Marshal(%+v): %v", l, err)
		}
		var got List
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("Unmarshal(%s): %v", b, err)
		}
		if !reflect.DeepEqual(got, l) {
			t.Errorf("round trip of %s: got %+v, want %+v", b, got, l)
		}
	}

	// Pin the wire form.
	l := List{Visibility: Allowlist, Allow: []Pseudonym{p(1)}, Deny: []Pseudonym{p(2)}}
	b, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"visibility":"allowlist","allow":["` + b64(p(1)) + `"],"deny":["` + b64(p(2)) + `"]}`
	if string(b) != want {
		t.Errorf("wire form:\n got %s\nwant %s", b, want)
	}
	if b, _ := json.Marshal(List{}); string(b) != `{"visibility":"nobody"}` {
		t.Errorf("zero List wire form: %s", b)
	}

	// Embedded in a request body, as the HTTP API uses it.
	var req struct{ ACL List }
	if err := json.Unmarshal([]byte(`{"ACL":{"visibility":"public"}}`), &req); err != nil || req.ACL.Visibility != Public {
		t.Errorf("embedded: %+v, %v", req, err)
	}
}

func TestMarshalInvalid(t *testing.T) {
	if _, err := json.Marshal(List{Visibility: Public, Allow: []Pseudonym{p(1)}}); !errors.Is(err, ErrAllowWithoutAllowlist) {
		t.Errorf("Marshal of invalid list: err = %v", err)
	}
}

func TestUnmarshalJSONErrors(t *testing.T) {
	a, c := b64(p(1)), b64(p(2))
	short := base64.StdEncoding.EncodeToString(make([]byte, 31))
	long := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 33))
	entries := func(n int) string {
		s := make([]string, n)
		for i := range s {
			s[i] = `"` + b64(p(i)) + `"`
		}
		return strings.Join(s, ",")
	}
	tests := []struct {
		name string
		in   string
		want error // nil means any error
	}{
		{"empty", ``, nil},
		{"null", `null`, ErrVisibility},
		{"not an object", `[]`, nil},
		{"missing visibility", `{}`, ErrVisibility},
		{"unknown visibility", `{"visibility":"friends"}`, ErrVisibility},
		{"wrong case visibility", `{"visibility":"Public"}`, ErrVisibility},
		{"unknown field", `{"visibility":"public","owner":"x"}`, nil},
		{"trailing data", `{"visibility":"public"} {}`, nil},
		{"trailing garbage", `{"visibility":"public"}x`, nil},
		{"bad base64", `{"visibility":"allowlist","allow":["!!!!"]}`, ErrEntry},
		{"url base64", `{"visibility":"allowlist","allow":["` + strings.NewReplacer("+", "-", "/", "_").Replace(b64(Pseudonym{0xfb, 0xff})) + `"]}`, ErrEntry},
		{"unpadded base64", `{"visibility":"allowlist","allow":["` + strings.TrimRight(a, "=") + `"]}`, ErrEntry},
		{"newline in base64", `{"visibility":"allowlist","allow":["` + a[:10] + `\n` + a[10:] + `"]}`, ErrEntry},
		{"31-byte entry", `{"visibility":"allowlist","allow":["` + short + `"]}`, ErrEntry},
		{"33-byte entry", `{"visibility":"public","deny":["` + long + `"]}`, ErrEntry},
		{"zero entry", `{"visibility":"public","deny":["` + b64(Pseudonym{}) + `"]}`, ErrEntry},
		{"entry not a string", `{"visibility":"public","deny":[1]}`, nil},
		{"duplicate", `{"visibility":"allowlist","allow":["` + a + `","` + c + `","` + a + `"]}`, ErrDuplicate},
		{"too many allow", `{"visibility":"allowlist","allow":[` + entries(MaxEntries+1) + `]}`, ErrTooMany},
		{"too many deny", `{"visibility":"public","deny":[` + entries(MaxEntries+1) + `]}`, ErrTooMany},
		{"allow on public", `{"visibility":"public","allow":["` + a + `"]}`, ErrAllowWithoutAllowlist},
		{"allow on nobody", `{"visibility":"nobody","allow":["` + a + `"]}`, ErrAllowWithoutAllowlist},
	}
	for _, tt := range tests {
		orig := List{Visibility: Public, Deny: []Pseudonym{p(7)}}
		l := orig
		err := l.UnmarshalJSON([]byte(tt.in))
		if err == nil {
			t.Errorf("%s: UnmarshalJSON succeeded: %+v", tt.name, l)
			continue
		}
		if tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
		if !reflect.DeepEqual(l, orig) {
			t.Errorf("%s: List modified on error: %+v", tt.name, l)
		}
	}

	// The limit itself is accepted.
	var l List
	if err := l.UnmarshalJSON([]byte(`{"visibility":"allowlist","allow":[` + entries(MaxEntries) + `]}`)); err != nil {
		t.Errorf("MaxEntries entries: %v", err)
	}
}

func FuzzUnmarshalJSON(f *testing.F) {
	a, c := b64(p(1)), b64(p(2))
	f.Add(`{"visibility":"nobody"}`)
	f.Add(`{"visibility":"public"}`)
	f.Add(`{"visibility":"public","deny":["` + a + `"]}`)
	f.Add(`{"visibility":"allowlist","allow":["` + a + `","` + c + `"],"deny":["` + c + `"]}`)
	f.Add(`{"visibility":"allowlist","allow":["` + a + `","` + a + `"]}`)
	f.Add(`{"visibility":"public","allow":["` + a + `"]}`)
	f.Add(`{"visibility":"allowlist","allow":[null]}`)
	f.Add(`{"Visibility":"public","DENY":[]}`)
	f.Add(`null`)
	f.Fuzz(func(t *testing.T, in string) {
		var l List
		if err := l.UnmarshalJSON([]byte(in)); err != nil {
			return
		}
		if err := l.Validate(); err != nil {
			t.Fatalf("accepted invalid list %q: %v", in, err)
		}
		b, err := l.MarshalJSON()
		if err != nil {
			t.Fatalf("MarshalJSON after accepting %q: %v", in, err)
		}
		var l2 List
		if err := l2.UnmarshalJSON(b); err != nil {
			t.Fatalf("UnmarshalJSON(%s) of own output: %v", b, err)
		}
		if !reflect.DeepEqual(l, l2) {
			t.Fatalf("round trip changed list: %+v != %+v", l, l2)
		}
		b2, err := l2.MarshalJSON()
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("marshal not stable: %s != %s (%v)", b, b2, err)
		}
	})
}
