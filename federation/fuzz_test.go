package federation_test

import (
	"bytes"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"blindex.dev/blindex/federation"
)

// FuzzParse checks that Parse never panics and accepts only canonical
// text: whatever it accepts marshals back to the same bytes.
func FuzzParse(f *testing.F) {
	m := testMap(f)
	text, err := m.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(text)
	f.Add(bytes.Replace(text, []byte("prefix +44\n"), []byte("prefix +44\nprefix +441\n"), 1))
	f.Add([]byte("blindex-map/v1\nname x\nversion 1\nexpires 1\n"))
	f.Add([]byte("blindex-map/v1\nname x\nversion 1\nexpires 1\ndirectory https://a.example\nprefix +\noprf-key AA==\noprf-info i\noprf-epoch 0\nlog-key a+00000000+AQ==\nca-root AQ==\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := federation.Parse(data)
		if err != nil {
			return
		}
		again, err := m.Marshal()
		if err != nil {
			t.Fatalf("parsed map does not marshal: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("Parse accepted a non-canonical map:\n%q\nmarshals to\n%q", data, again)
		}
	})
}

// FuzzOpen checks that Open never panics on untrusted bytes and that what
// it accepts is a well-formed map carrying the known signature.
func FuzzOpen(f *testing.F) {
	m := testMap(f)
	s, v := signer(f, m.Name)
	signed := sign(f, m, s)
	f.Add(signed)
	f.Add(append(bytes.Clone(signed), "— other AAAAAAAA\n"...))
	f.Add(signed[:len(signed)/2])
	at := time.Unix(1790000000, 0)
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := federation.Open(data, federation.Trust{Name: m.Name, Keys: []note.Verifier{v}}, at)
		if err != nil {
			return
		}
		text, err := got.Marshal()
		if err != nil || !bytes.HasPrefix(data, text) {
			t.Fatalf("opened map does not marshal to the note's text: %v", err)
		}
	})
}
