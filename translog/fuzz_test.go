package translog_test

import (
	"bytes"
	"testing"

	"blindex.dev/blindex/translog"
)

// FuzzParse checks that Parse never panics and accepts only canonical
// encodings: whatever it accepts marshals back to the same bytes.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"blindex-log/v1 state\nlabel AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\ncommitment BQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nrecords 3\nat 1790000000\n",
		"blindex-log/v1 ca-roots\nroot AQI=\nroot AwQF\n",
		"blindex-log/v1 oprf-key\ninfo blindex lookup v1\nkey AQID\n",
		"blindex-log/v1 map\nname example.org/federation\nversion 7\nexpires 1790000000\nhash BgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
		"blindex-log/v1 holder\nlabel AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nkey AwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nprevious CQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nretired 2\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := translog.Parse(data)
		if err != nil {
			return
		}
		again, err := e.Marshal()
		if err != nil {
			t.Fatalf("parsed entry does not marshal: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("Parse accepted a non-canonical entry:\n%q\nmarshals to\n%q", data, again)
		}
	})
}
