package strictjson

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

type inner struct {
	Visibility string   `json:"visibility"`
	Allow      []string `json:"allow,omitempty"`
}

type Base struct {
	ID   int    `json:"id"`
	Note string // no tag: named by the field
}

type selfDecoding struct{ raw string }

func (s *selfDecoding) UnmarshalJSON(b []byte) error { s.raw = string(b); return nil }

type request struct {
	Base
	Number  string          `json:"number"`
	Inner   *inner          `json:"inner"`
	List    []inner         `json:"list"`
	Labels  map[string]int  `json:"labels"`
	Any     any             `json:"any"`
	Self    selfDecoding    `json:"self"`
	When    time.Time       `json:"when"`
	Skipped string          `json:"-"`
	Raw     json.RawMessage `json:"raw"`
	hidden  string
}

func TestDecode(t *testing.T) {
	for _, c := range []struct {
		body string
		want error // nil: accepted; errAny: some other error
	}{
		{`{"number":"+14155550100"}`, nil},
		{`{"id":1,"Note":"x","number":"y"}`, nil},                 // promoted fields, untagged name
		{`{"inner":{"visibility":"public","allow":["a"]}}`, nil},  // nested struct
		{`{"list":[{"visibility":"a"},{"visibility":"b"}]}`, nil}, // one object per element
		{`{"labels":{"A":1,"a":2}}`, nil},                         // map keys are data, case and all
		{`{"any":{"X":1,"x":2}}`, nil},                            // so are an interface's
		{`{"self":{"Whatever":1}}`, nil},                          // a type that decodes itself checks its own names
		{`{"raw":{"Q":[1,{"q":2}]}}`, nil},                        // a RawMessage is kept as is
		{`{"when":"2027-01-01T00:00:00Z"}`, nil},                  // time.Time is a string
		{`{"\u006eumber":"x"}`, nil},                              // the same name, escaped
		{`null`, nil},
		{`{"number":"a","number":"b"}`, ErrDuplicate},
		{`{"number":"a","\u006eumber":"b"}`, ErrDuplicate},              // equal once unescaped
		{`{"inner":{"visibility":"a","visibility":"b"}}`, ErrDuplicate}, // at any depth
		{`{"list":[{},{"visibility":"a","visibility":"a"}]}`, ErrDuplicate},
		{`{"labels":{"a":1,"a":1}}`, ErrDuplicate},      // in maps too
		{`{"any":[{"x":{"y":1,"y":1}}]}`, ErrDuplicate}, // and in untyped values
		{`{"self":{"x":1,"x":2}}`, ErrDuplicate},        // and inside a self-decoding type
		{`{"raw":{"x":1,"x":2}}`, ErrDuplicate},
		{`{"NUMBER":"x"}`, ErrName}, // encoding/json alone folds case
		{`{"Number":"x"}`, ErrName},
		{`{"ID":1}`, ErrName},                     // promoted fields too
		{`{"note":"x"}`, ErrName},                 // the untagged name is exact too
		{`{"inner":{"Visibility":"a"}}`, ErrName}, // at any depth
		{`{"list":[{"visibility":"a"},{"VISIBILITY":"b"}]}`, ErrName},
		{`{"Skipped":"x"}`, ErrName},
		{`{"hidden":"x"}`, ErrName},
		{`{"extra":1}`, ErrName}, // unknown
		{`{"number":"a"} {}`, ErrTrailing},
		{`{"number":"a"}x`, errAny},
		{`{"number":1}`, errAny},
		{`{"number":`, errAny},
		{`{"number" "a"}`, errAny},
		{``, errAny},
		{strings.Repeat("[", maxDepth+1), ErrDepth},
		{`{"any":` + strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth) + `}`, ErrDepth},
	} {
		var v request
		err := Decode([]byte(c.body), &v)
		if v.hidden != "" {
			t.Errorf("Decode(%.60q) filled an unexported field", c.body)
		}
		switch {
		case c.want == nil && err != nil:
			t.Errorf("Decode(%.60q) = %v, want success", c.body, err)
		case c.want == errAny && err == nil:
			t.Errorf("Decode(%.60q) succeeded, want an error", c.body)
		case c.want != nil && c.want != errAny && !errors.Is(err, c.want):
			t.Errorf("Decode(%.60q) = %v, want %v", c.body, err, c.want)
		}
	}
}

var errAny = errors.New("any error")

// TestDecodeLeavesValue checks that a refused member leaves v untouched:
// the rules are checked before anything is decoded.
func TestDecodeLeavesValue(t *testing.T) {
	v := request{Number: "kept"}
	if err := Decode([]byte(`{"number":"a","number":"b"}`), &v); !errors.Is(err, ErrDuplicate) {
		t.Fatal(err)
	}
	if v.Number != "kept" {
		t.Errorf("v.Number = %q after a refused body", v.Number)
	}
}

// TestDecodeErrorsQuoteNothing checks that the strict errors say which rule
// failed without the member name, which is part of the body.
func TestDecodeErrorsQuoteNothing(t *testing.T) {
	for _, body := range []string{`{"SECRET":1}`, `{"number":"SECRET","number":"SECRET"}`} {
		var v request
		err := Decode([]byte(body), &v)
		if err == nil || strings.Contains(strings.ToLower(err.Error()), "secret") || strings.Contains(err.Error(), "number") {
			t.Errorf("Decode(%q) = %v", body, err)
		}
	}
}

// TestEncodingJSONIsLenient pins why the package exists: if encoding/json
// started refusing these itself, the scan could go.
func TestEncodingJSONIsLenient(t *testing.T) {
	var v struct {
		Number string `json:"number"`
	}
	if err := json.Unmarshal([]byte(`{"NUMBER":"a","number":"b"}`), &v); err != nil || v.Number != "b" {
		t.Errorf("encoding/json: %v, %q", err, v.Number)
	}
}
