package directory_test

import (
	"net/http"
	"testing"
	"time"

	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/internal/api"
)

// TestBucketCreditNeedsEvaluation: a caller that evaluated nothing gets no
// bucket, and the refusal carries no Retry-After, because waiting buys no
// credit; only evaluating does (protocol §8.1, §10).
func TestBucketCreditNeedsEvaluation(t *testing.T) {
	e := newEnv(t, directory.Config{})
	s := e.issue("+12025550111", time.Now().Add(-time.Minute), 24*time.Hour)
	r := e.do(http.MethodPost, api.PathBuckets, api.BucketsRequest{PrefixBits: 0, Prefixes: []uint32{0}}, &s)
	if r.status != http.StatusTooManyRequests || r.message() != "bucket fetches exceed the evaluations bought: evaluate first" {
		t.Fatalf("a fetch without credit: %d %q", r.status, r.body)
	}
	if ra := r.header.Get("Retry-After"); ra != "" {
		t.Errorf("a credit refusal carries Retry-After %q: waiting does not buy credit", ra)
	}
}
