package httpapi_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
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
	})
}

// TestDecodeStrict pins what Decode accepts beyond the letter of the
// protocol (docs/protocol.md §2 says clients must not rely on it) and what
// it refuses.
func TestDecodeStrict(t *testing.T) {
	for _, c := range []struct {
		body string
		ok   bool
	}{
		{`{"number":"+14155550100"}`, true},
		{` {"number":"+14155550100"} ` + "\n", true},
		{`{"NUMBER":"+14155550100"}`, true},                         // Go matches names case-insensitively
		{`{"number":"+12025550173","number":"+14155550100"}`, true}, // the last duplicate wins
		{`null`, true},
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
	// An unknown member inside the ACL is refused too.
	var p api.PublishRequest
	if err := httpapi.Decode([]byte(`{"acl":{"visibility":"public","x":1}}`), &p); err == nil {
		t.Error("unknown member in acl accepted")
	}
}
