package directory_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/internal/httpsig"
	"blindex.dev/blindex/oprf"
)

// TestBucketFetchStreams: a fetch of 1024 buckets is read from the store a
// chunk at a time, never more than 128 buckets' records at once, and its
// answer is the same whole answer; a store failure after the first chunk
// cuts the answer off, so that no client can take the buckets written so
// far for the whole answer.
func TestBucketFetchStreams(t *testing.T) {
	e, s := creditEnv(t, 4096, 4096)
	elements := make([][]byte, 1024)
	for i := range elements {
		_, b, _ := oprf.Blind([][]byte{fmt.Appendf(nil, "+1202555%04d", i)})
		elements[i] = b[0]
	}
	for range 2 {
		if r := e.do(http.MethodPost, api.PathEvaluate, api.EvaluateRequest{Elements: elements}, &s); r.status != 200 {
			t.Fatalf("evaluate: %d %s", r.status, r.body)
		}
	}
	count := uint64(4096)
	buckets := make([]uint32, 1024)
	for i := range buckets {
		buckets[i] = uint32(4 * i)
	}
	req := api.BucketsRequest{BucketCount: &count, Prefixes: buckets}
	e.store.calls.Store(0)
	r := e.do(http.MethodPost, api.PathBuckets, req, &s)
	if r.status != 200 {
		t.Fatalf("buckets: %d %s", r.status, r.body)
	}
	var resp api.BucketsResponse
	if err := json.Unmarshal(r.body, &resp); err != nil || len(resp.Buckets) != 1024 {
		t.Fatalf("answer: %v, %d buckets", err, len(resp.Buckets))
	}
	for i, b := range resp.Buckets {
		if b.Prefix != buckets[i] || b.Records == nil {
			t.Fatalf("bucket %d: %+v", i, b)
		}
	}
	if m, n := e.store.maxRanges.Load(), e.store.calls.Load(); m > 128 || n < 1024/128 {
		t.Errorf("the store read up to %d buckets at once in %d calls, want at most 128", m, n)
	}
	if r.header.Get("Content-Length") != "" {
		t.Errorf("a streamed answer has Content-Length %s", r.header.Get("Content-Length"))
	}

	// The store fails on the third call, after the first chunk's two,
	// whose buckets (a 4 KiB record each) fill more than the answer's
	// buffer: the client has the status and some buckets when the
	// answer is cut off.
	e.store.calls.Store(0)
	e.store.failFrom.Store(3)
	e.store.filler.Store(4096)
	defer e.store.failFrom.Store(0)
	defer e.store.filler.Store(0)
	body, _ := json.Marshal(req)
	hr, _ := http.NewRequest(http.MethodPost, e.srv.URL()+api.PathBuckets, bytes.NewReader(body))
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Accept", api.MediaTypeBuckets)
	if err := httpsig.Sign(hr, body, s.key, s.cert, time.Now()); err != nil {
		t.Fatal(err)
	}
	before := e.storeErrors()
	hresp, err := http.DefaultClient.Do(hr)
	defer func() {
		if after := e.storeErrors(); after != before+1 {
			t.Errorf("request errors went from %v to %v, want one more for the cut-off fetch", before, after)
		}
	}()
	if err != nil {
		t.Fatalf("the answer was cut off before its status: %v", err)
	}
	defer hresp.Body.Close()
	got, err := io.ReadAll(hresp.Body)
	if hresp.StatusCode != 200 || len(got) < 128*4096 {
		t.Fatalf("a failure after the first chunk answered %d with %d bytes, want a 200 with the first chunk", hresp.StatusCode, len(got))
	}
	if err == nil {
		t.Errorf("the cut-off answer (%d bytes) ended cleanly", len(got))
	}
	if _, perr := api.ParseBuckets(got); perr == nil {
		t.Fatalf("the cut-off answer (%d bytes) parses as a whole answer", len(got))
	}
}

// storeErrors reads blindex_store_errors_total{where="request"} from
// /metrics: 0 before the first.
func (e *env) storeErrors() float64 {
	e.t.Helper()
	for line := range strings.SplitSeq(string(e.do("GET", "/metrics", nil, nil).body), "\n") {
		if v, ok := strings.CutPrefix(line, `blindex_store_errors_total{where="request"} `); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				e.t.Fatalf("metric %q: %v", line, err)
			}
			return f
		}
	}
	return 0
}
