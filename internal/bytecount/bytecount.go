// Package bytecount counts the response body bytes an HTTP client
// receives: what a lookup downloads, for benchmarks (blindex servers never
// compress their answers, so the bodies are the bytes on the wire, less
// HTTP framing).
package bytecount

import (
	"io"
	"net/http"
	"sync/atomic"
)

// A Transport counts the response body bytes its Next delivers.
type Transport struct {
	Next http.RoundTripper
	n    atomic.Int64
}

// Received is the body bytes read so far.
func (t *Transport) Received() int64 { return t.n.Load() }

func (t *Transport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.Next.RoundTrip(r)
	if err == nil {
		resp.Body = &body{ReadCloser: resp.Body, n: &t.n}
	}
	return resp, err
}

type body struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}
