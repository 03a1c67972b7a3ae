package httpapi_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/internal/httpapi"
)

// decodeKinds are the request bodies the services decode with
// httpapi.Decode, one per request type in internal/api.
var decodeKinds = []decodeKind{
	kindOf[api.VerifyStartRequest](),
	kindOf[api.VerifyConfirmRequest](),
	kindOf[api.EvaluateRequest](),
	kindOf[api.BucketsRequest](),
	kindOf[api.PublishRequest](),
	kindOf[api.SetACLRequest](),
}

type decodeKind struct {
	name    string
	decodes func(body []byte) bool
	check   func(t *testing.T, body []byte)
}

func kindOf[T any]() decodeKind {
	return decodeKind{
		name:    reflect.TypeFor[T]().Name(),
		decodes: func(body []byte) bool { var v T; return httpapi.Decode(body, &v) == nil },
		check:   roundTrip[T],
	}
}

// roundTrip checks that a body Decode accepts re-encodes to a body Decode
// accepts again as an equal value, and that a second round changes nothing
// at all: the values are reflect.DeepEqual and the encodings byte-equal.
//
// The first comparison is made with times in UTC. A time sent with the
// offset +00:00 decodes with a fixed or local zone and re-encodes as Z,
// which decodes as UTC: the same instant (time.Equal), which is all the
// server uses, but not DeepEqual. Every other field must be DeepEqual.
func roundTrip[T any](t *testing.T, body []byte) {
	var v T
	if err := httpapi.Decode(body, &v); err != nil {
		if !errors.Is(err, httpapi.ErrBadRequest) {
			t.Fatalf("Decode error %v, want ErrBadRequest", err)
		}
		return
	}
	enc, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("Marshal of an accepted %T: %v\nbody: %q", v, err, body)
	}
	var w T
	if err := httpapi.Decode(enc, &w); err != nil {
		t.Fatalf("Decode of own encoding %s: %v\nbody: %q", enc, err, body)
	}
	if vu, wu := utcTimes(v), utcTimes(w); !reflect.DeepEqual(vu, wu) {
		t.Fatalf("decode∘encode changed the value:\n%#v\n%#v\nbody: %q", vu, wu, body)
	}
	enc2, err := json.Marshal(w)
	if err != nil || !bytes.Equal(enc, enc2) {
		t.Fatalf("encoding not stable: %s != %s (%v)", enc, enc2, err)
	}
	var x T
	if err := httpapi.Decode(enc2, &x); err != nil || !reflect.DeepEqual(w, x) {
		t.Fatalf("second round changed the value:\n%#v\n%#v (%v)", w, x, err)
	}
}

// utcTimes returns v with its time.Time fields in UTC.
func utcTimes[T any](v T) T {
	rv := reflect.ValueOf(&v).Elem()
	if rv.Kind() != reflect.Struct {
		return v
	}
	for i := range rv.NumField() {
		if f := rv.Field(i); f.Type() == reflect.TypeFor[time.Time]() {
			f.Set(reflect.ValueOf(f.Interface().(time.Time).UTC()))
		}
	}
	return v
}

func FuzzDecode(f *testing.F) {
	b64 := func(n int, fill byte) string {
		return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{fill}, n))
	}
	elem := b64(32, 0x11)
	seeds := [][]string{
		{ // VerifyStartRequest
			`{"number":"+14155550100"}`,
			`{"number":"+1 (415) 555-0100"}`,
			`{"number":""}`,
			`{"Number":"+14155550100"}`,
			`{"number":"+14155550100","extra":1}`,
			`null`,
		},
		{ // VerifyConfirmRequest
			`{"verification_id":"00112233445566778899aabbccddeeff","number":"+14155550100","code":"123456","public_key":"` + b64(91, 0x30) + `"}`,
			`{"verification_id":"","number":"","code":"","public_key":null}`,
			`{"verification_id":"x","code":"\u00e9\ud800","public_key":""}`,
		},
		{ // EvaluateRequest
			`{"elements":["` + elem + `"]}`,
			`{"elements":["` + elem + `","` + elem + `"]}`,
			`{"elements":[]}`,
			`{"elements":null}`,
			`{"elements":["` + elem[:20] + `\n` + elem[20:] + `"]}`,
			`{"elements":["AB=="]}`,
			`{"elements":[]} {}`,
		},
		{ // BucketsRequest
			`{"prefix_bits":3,"prefixes":[0,1,7]}`,
			`{"prefix_bits":0,"prefixes":[0]}`,
			`{"prefix_bits":32,"prefixes":[4294967295]}`,
			`{"prefix_bits":-1,"prefixes":[4294967296]}`,
			`{"prefix_bits":1e2,"prefixes":[]}`,
		},
		{ // PublishRequest
			`{"index":"` + b64(32, 1) + `","record_id":"` + b64(32, 2) + `","ciphertext":"` + b64(512, 3) + `","acl":{"visibility":"public"},"expires":"2027-01-01T00:00:00Z"}`,
			`{"index":"` + b64(32, 1) + `","record_id":"` + b64(32, 2) + `","ciphertext":"","acl":{"visibility":"allowlist","allow":["` + b64(32, 4) + `"],"deny":["` + b64(32, 5) + `"]},"expires":"2027-01-01T00:00:00.123456789+05:30"}`,
			`{"acl":null,"expires":"0001-01-01T00:00:00Z"}`,
			`{"acl":{"visibility":"nobody"},"expires":"2027-01-01T00:00:00+00:00"}`,
			`{"acl":{"visibility":"public","allow":["` + b64(32, 4) + `"]}}`,
		},
		{ // SetACLRequest
			`{"index":"` + b64(32, 1) + `","record_id":"` + b64(32, 2) + `","acl":{"visibility":"nobody"}}`,
			`{"index":"` + b64(32, 1) + `","record_id":"` + b64(32, 2) + `","acl":{"visibility":"allowlist","allow":["` + b64(32, 4) + `","` + b64(32, 6) + `"]}}`,
			`{"acl":{"visibility":"Public"}}`,
		},
	}
	if len(seeds) != len(decodeKinds) {
		f.Fatal("a request type has no seeds")
	}
	for kind, bodies := range seeds {
		accepted := 0
		for _, b := range bodies {
			f.Add(uint8(kind), []byte(b))
			if decodeKinds[kind].decodes([]byte(b)) {
				accepted++
			}
		}
		// Each type has at least one valid seed, so the round trip is
		// exercised from the start, not only once the fuzzer finds one.
		if accepted == 0 {
			f.Fatalf("%s: no seed decodes", decodeKinds[kind].name)
		}
	}
	f.Fuzz(func(t *testing.T, kind uint8, body []byte) {
		k := decodeKinds[int(kind)%len(decodeKinds)]
		k.check(t, body)
		checkStrict(t, k.decodes, body)
	})
}

// TestDecodeStrict pins what Decode accepts and refuses (docs/protocol.md
// §2): member names are exact and unique, unlike encoding/json's.
func TestDecodeStrict(t *testing.T) {
	for _, c := range []struct {
		body string
		ok   bool
	}{
		{`{"number":"+14155550100"}`, true},
		{` {"number":"+14155550100"} ` + "\n", true},
		{`{"\u006eumber":"+14155550100"}`, true}, // the same name, escaped
		{`null`, true},
		// encoding/json alone would fold case and keep the last duplicate.
		{`{"NUMBER":"+14155550100"}`, false},
		{`{"Number":"+14155550100"}`, false},
		{`{"number":"+12025550173","number":"+14155550100"}`, false},
		{`{"number":"+14155550100","\u006eumber":"+14155550100"}`, false},
		{`{"number":"+14155550100","extra":1}`, false},
		{`{"number":"+14155550100"}{}`, false},
		{`{"number":"+14155550100"} x`, false},
		{`{"number":14155550100}`, false},
		{`{"number":"+14155550100"`, false},
		{``, false},
		{`[]`, false},
	} {
		var v api.VerifyStartRequest
		err := httpapi.Decode([]byte(c.body), &v)
		if (err == nil) != c.ok {
			t.Errorf("Decode(%q) = %v, want ok=%v", c.body, err, c.ok)
		}
		if err != nil && !errors.Is(err, httpapi.ErrBadRequest) {
			t.Errorf("Decode(%q) = %v, want ErrBadRequest", c.body, err)
		}
		if c.ok && c.body != "null" && v.Number != "+14155550100" {
			t.Errorf("Decode(%q) number = %q", c.body, v.Number)
		}
	}
	// Inside the ACL (which decodes itself) the same rules hold.
	for _, body := range []string{
		`{"acl":{"visibility":"public","x":1}}`,
		`{"acl":{"VISIBILITY":"public"}}`,
		`{"acl":{"visibility":"nobody","visibility":"public"}}`,
		`{"ACL":{"visibility":"public"}}`,
		`{"acl":{"visibility":"public"},"acl":{"visibility":"public"}}`,
	} {
		var p api.PublishRequest
		if err := httpapi.Decode([]byte(body), &p); !errors.Is(err, httpapi.ErrBadRequest) {
			t.Errorf("Decode(%s) = %v, want ErrBadRequest", body, err)
		}
	}
	var p api.PublishRequest
	if err := httpapi.Decode([]byte(`{"acl":{"visibility":"public"}}`), &p); err != nil {
		t.Errorf("a plain acl refused: %v", err)
	}
}

// member is one object member of a JSON text, at any depth: the name's
// bytes are body[name:colon] (quotes included), the whole member
// body[name:end].
type member struct{ name, end int }

// members lists the object members of a valid JSON text, outermost first.
// It only locates them (with json.Decoder's offsets); what Decode does with
// them is the thing tested.
func members(body []byte) []member {
	dec := json.NewDecoder(bytes.NewReader(body))
	var out []member
	var value func() bool
	value = func() bool {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		switch tok {
		case json.Delim('['):
			for dec.More() {
				if !value() {
					return false
				}
			}
			_, err = dec.Token()
		case json.Delim('{'):
			for dec.More() {
				start := int(dec.InputOffset()) // just after '{' or the previous value
				if _, err := dec.Token(); err != nil {
					return false
				}
				i := len(out)
				out = append(out, member{name: start + bytes.IndexByte(body[start:], '"')})
				if !value() {
					return false
				}
				out[i].end = int(dec.InputOffset())
			}
			_, err = dec.Token()
		}
		return err == nil
	}
	if !value() {
		return nil
	}
	return out
}

// checkStrict checks, for a body Decode accepts, that every variant with
// one member doubled, or one member name's letters in upper case, is
// refused: the request types have no maps, so every member name is a
// field's, matched exactly.
func checkStrict(t *testing.T, decodes func([]byte) bool, body []byte) {
	if !decodes(body) {
		return
	}
	for _, m := range members(body) {
		name, end := m.name, m.end
		dup := slices.Concat(body[:name], body[name:end], []byte(","), body[name:])
		if decodes(dup) {
			t.Fatalf("a doubled member accepted: %q", dup)
		}
		colon := name + 1 + bytes.IndexByte(body[name+1:], '"') + 1
		raw := body[name:colon]
		if bytes.IndexByte(raw, '\\') >= 0 {
			continue // an escape's hex digits may not change case
		}
		upper := bytes.ToUpper(raw)
		if bytes.Equal(upper, raw) {
			continue
		}
		folded := slices.Concat(body[:name], upper, body[colon:])
		if decodes(folded) {
			t.Fatalf("a case-folded member name accepted: %q", folded)
		}
	}
}
