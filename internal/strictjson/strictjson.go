// Package strictjson decodes JSON with one reading per document: besides
// what encoding/json refuses, and unknown members, it refuses an object that
// names a member twice (encoding/json keeps the last) and a member name that
// is not exactly a field's name (encoding/json folds case, so "NUMBER" would
// fill "number"). A check in front of a decoder that a proxy, a log or
// another implementation reads differently would otherwise be bypassed.
package strictjson

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"sync"
)

var (
	ErrDuplicate = errors.New("strictjson: duplicate member name")
	ErrName      = errors.New("strictjson: member name is not exactly a field's name")
	ErrTrailing  = errors.New("strictjson: data after the value")
	ErrDepth     = errors.New("strictjson: nested too deeply")
)

// maxDepth is encoding/json's own nesting limit.
const maxDepth = 10000

// Decode parses exactly one JSON value from b into v, which must be a
// pointer. Besides encoding/json's rules it refuses unknown members, a
// member named twice in one object (at any depth), a member name that is
// not exactly the name of a field of the struct it fills, and data after
// the value. The strict rules are checked before v is touched. Its errors
// name no member and quote nothing of b.
//
// Inside a value whose type decodes itself (json.Unmarshaler,
// encoding.TextUnmarshaler) only duplicates are checked: such a type
// checks its own member names, for instance by decoding with Decode.
func Decode(b []byte, v any) error {
	if err := Check(b, reflect.TypeOf(v)); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return ErrTrailing
	}
	return nil
}

// Check applies Decode's member rules to the first JSON value in b, read as
// type t (nil: any type, duplicates only). It also returns the syntax error
// of a malformed value.
func Check(b []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // numbers are skipped, not parsed
	s := scanner{dec: dec}
	return s.value(t, 0)
}

type scanner struct{ dec *json.Decoder }

func (s *scanner) value(t reflect.Type, depth int) error {
	tok, err := s.dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		return s.object(t, depth+1)
	case json.Delim('['):
		return s.array(t, depth+1)
	}
	return nil
}

func (s *scanner) object(t reflect.Type, depth int) error {
	if depth > maxDepth {
		return ErrDepth
	}
	t = concrete(t)
	var fields map[string]reflect.Type
	var elem reflect.Type // for every member when fields is nil
	switch {
	case t == nil:
	case t.Kind() == reflect.Struct:
		fields = fieldsOf(t)
	case t.Kind() == reflect.Map:
		elem = t.Elem()
	}
	seen := make(map[string]bool)
	for s.dec.More() {
		tok, err := s.dec.Token()
		if err != nil {
			return err
		}
		name, _ := tok.(string) // the decoder yields only strings here
		if seen[name] {
			return ErrDuplicate
		}
		seen[name] = true
		mt := elem
		if fields != nil {
			var ok bool
			if mt, ok = fields[name]; !ok {
				return ErrName
			}
		}
		if err := s.value(mt, depth); err != nil {
			return err
		}
	}
	_, err := s.dec.Token() // '}'
	return err
}

func (s *scanner) array(t reflect.Type, depth int) error {
	if depth > maxDepth {
		return ErrDepth
	}
	t = concrete(t)
	var elem reflect.Type
	if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
		elem = t.Elem()
	}
	for s.dec.More() {
		if err := s.value(elem, depth); err != nil {
			return err
		}
	}
	_, err := s.dec.Token() // ']'
	return err
}

var (
	unmarshalerType     = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// concrete returns the type a JSON value fills at t, or nil when the
// member names it takes are not known here: an interface, or a type that
// decodes itself.
func concrete(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		if decodesItself(t) {
			return nil
		}
		t = t.Elem()
	}
	if t == nil || t.Kind() == reflect.Interface || decodesItself(t) || decodesItself(reflect.PointerTo(t)) {
		return nil
	}
	return t
}

func decodesItself(t reflect.Type) bool {
	return t.Implements(unmarshalerType) || t.Implements(textUnmarshalerType)
}

var fieldCache sync.Map // reflect.Type -> map[string]reflect.Type

// fieldsOf returns the member names encoding/json fills in struct type t,
// each with its field's type, following its rules: exported fields, named by
// their tag or else the field name, "-" skipped, and the fields of an
// untagged embedded struct promoted unless a shallower field has the name.
func fieldsOf(t reflect.Type) map[string]reflect.Type {
	if f, ok := fieldCache.Load(t); ok {
		return f.(map[string]reflect.Type)
	}
	m := make(map[string]reflect.Type)
	addFields(m, t, map[reflect.Type]bool{})
	fieldCache.Store(t, m)
	return m
}

func addFields(m map[string]reflect.Type, t reflect.Type, visiting map[reflect.Type]bool) {
	if visiting[t] { // a struct that embeds itself through a pointer
		return
	}
	visiting[t] = true
	defer delete(visiting, t)
	var embedded []reflect.Type
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				embedded = append(embedded, ft)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if _, ok := m[name]; !ok {
			m[name] = f.Type
		}
	}
	// Promoted after the struct's own fields: the shallower field wins.
	for _, et := range embedded {
		inner := make(map[string]reflect.Type)
		addFields(inner, et, visiting)
		for name, ft := range inner {
			if _, ok := m[name]; !ok {
				m[name] = ft
			}
		}
	}
}
