package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

func testBuckets() *BucketsResponse {
	idx := func(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }
	return &BucketsResponse{Buckets: []Bucket{
		{Prefix: 13, Records: []SealedEntry{
			{Index: idx(1), Ciphertext: []byte("age-encryption.org/v1 one")},
			{Index: idx(1), Ciphertext: []byte("a second record of the same owner")},
			{Index: idx(2), Ciphertext: []byte{}},
		}},
		{Prefix: 0, Records: []SealedEntry{}},
		{Prefix: 1<<32 - 1, Records: []SealedEntry{{Index: idx(0xff), Ciphertext: bytes.Repeat([]byte{7}, 5000)}}},
	}}
}

func encodeBuckets(t testing.TB, resp *BucketsResponse) []byte {
	var buf bytes.Buffer
	if err := WriteBuckets(&buf, resp); err != nil {
		t.Fatal(err)
	}
	// The JSON encoder writes exactly what encoding the whole answer would.
	var js bytes.Buffer
	e := NewBucketsEncoder(&js, false, len(resp.Buckets))
	for _, b := range resp.Buckets {
		e.Bucket(b)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if whole, _ := json.Marshal(resp); resp.Buckets != nil && !bytes.Equal(js.Bytes(), append(whole, '\n')) {
		t.Fatalf("streamed JSON differs from the whole answer's:\n%s\n%s", js.Bytes(), whole)
	}
	return buf.Bytes()
}

// TestBucketsBinaryMatchesJSON checks that the binary answer carries what the
// JSON answer carries, and pins the encoding of docs/protocol.md §8.6.
func TestBucketsBinaryMatchesJSON(t *testing.T) {
	want := testBuckets()
	b := encodeBuckets(t, want)
	got, err := ParseBuckets(b)
	if err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	var fromJSON BucketsResponse
	if err := json.Unmarshal(j, &fromJSON); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, &fromJSON) {
		t.Errorf("binary and JSON answers differ:\n%+v\n%+v", got, &fromJSON)
	}

	// An empty answer, and a one-bucket answer byte by byte.
	if b := encodeBuckets(t, &BucketsResponse{}); !bytes.Equal(b, []byte{0, 0, 0, 0}) {
		t.Errorf("empty answer: %x", b)
	}
	one := &BucketsResponse{Buckets: []Bucket{{Prefix: 0x0102, Records: []SealedEntry{{Index: bytes.Repeat([]byte{0xaa}, 32), Ciphertext: []byte("xyz")}}}}}
	pinned := append([]byte{0, 0, 0, 1, 0, 0, 1, 2, 0, 0, 0, 1}, bytes.Repeat([]byte{0xaa}, 32)...)
	pinned = append(pinned, 0, 0, 0, 3, 'x', 'y', 'z')
	if b := encodeBuckets(t, one); !bytes.Equal(b, pinned) {
		t.Errorf("one-bucket answer:\n got %x\nwant %x", b, pinned)
	}
}

func TestParseBucketsRejects(t *testing.T) {
	valid := encodeBuckets(t, testBuckets())
	for n := range len(valid) {
		if _, err := ParseBuckets(valid[:n]); !errors.Is(err, ErrBucketsEncoding) {
			t.Fatalf("truncated to %d of %d bytes: err = %v", n, len(valid), err)
		}
	}
	if _, err := ParseBuckets(append(valid, 0)); !errors.Is(err, ErrBucketsEncoding) {
		t.Errorf("trailing byte: err = %v", err)
	}
	for name, b := range map[string][]byte{
		"count beyond the bytes":       {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0},
		"records beyond the bytes":     {0, 0, 0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff},
		"ciphertext beyond the bytes":  append(append([]byte{0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1}, make([]byte, 32)...), 0, 0, 0, 1),
		"ciphertext length at maximum": append(append([]byte{0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1}, make([]byte, 32)...), 0xff, 0xff, 0xff, 0xff, 0),
	} {
		if _, err := ParseBuckets(b); !errors.Is(err, ErrBucketsEncoding) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

// FuzzParseBuckets parses untrusted answers: a parsed answer re-encodes to
// the same bytes, since every length in the encoding is explicit.
func FuzzParseBuckets(f *testing.F) {
	f.Add(encodeBuckets(f, testBuckets()))
	f.Add(encodeBuckets(f, &BucketsResponse{}))
	f.Add(encodeBuckets(f, &BucketsResponse{Buckets: []Bucket{{Prefix: 5, Records: []SealedEntry{}}}}))
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		resp, err := ParseBuckets(b)
		if err != nil {
			if resp != nil {
				t.Fatal("an answer with an error")
			}
			return
		}
		for _, bk := range resp.Buckets {
			if bk.Records == nil {
				t.Fatal("nil records")
			}
			for _, e := range bk.Records {
				if len(e.Index) != 32 {
					t.Fatalf("index of %d bytes", len(e.Index))
				}
			}
		}
		if again := encodeBuckets(t, resp); !bytes.Equal(again, b) {
			t.Fatalf("re-encoded differently:\n%x\n%x", again, b)
		}
	})
}
