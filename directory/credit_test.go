package directory_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/client"
	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/oprf"
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

// shortPrefixEnv is a directory whose prefix length is 6 bits (64
// buckets), and a caller that has bought 16 bucket fetches.
func shortPrefixEnv(t *testing.T) (*env, signer) { return creditEnv(t, 64, 64) }

// creditEnv is a directory of owners owners, one per bucket on average,
// that has count buckets, and a caller that has bought 16 bucket fetches.
func creditEnv(t *testing.T, owners int, count uint64) (*env, signer) {
	e := newEnv(t, directory.Config{MinBucketOwners: 1})
	e.store.extra.Store(int64(owners - 1))
	owner := e.register(bob) // and its publish makes the server count again
	publish(t, owner, "org.example.chat", client.Access{Visibility: acl.Public})
	for deadline := time.Now().Add(5 * time.Second); e.bucketCount() != count; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d buckets with %d owners, want %d", e.bucketCount(), owners, count)
		}
	}
	s := e.issue(dave, time.Now(), time.Hour)
	elements := make([][]byte, 16)
	for i := range elements {
		_, b, _ := oprf.Blind([][]byte{fmt.Appendf(nil, "+1202555%04d", i)})
		elements[i] = b[0]
	}
	if r := e.do(http.MethodPost, api.PathEvaluate, api.EvaluateRequest{Elements: elements}, &s); r.status != 200 {
		t.Fatalf("evaluate: %d %s", r.status, r.body)
	}
	return e, s
}

// TestShortPrefixCostsEveryBucket: a fetch at a prefix shorter than the
// server's costs one fetch for every server bucket each prefix spans, and
// one that costs more than the credit left is refused whole.
func TestShortPrefixCostsEveryBucket(t *testing.T) {
	e, s := shortPrefixEnv(t)
	fetch := func(bits int, prefixes ...uint32) response {
		return e.do(http.MethodPost, api.PathBuckets, api.BucketsRequest{PrefixBits: bits, Prefixes: prefixes}, &s)
	}
	if r := fetch(4, 0); r.status != 200 { // 4 buckets of 6 bits: 12 left
		t.Fatalf("2 bits short: %d %s", r.status, r.body)
	}
	if r := fetch(2, 0); r.status != 429 { // 16 > 12
		t.Errorf("4 bits short with 12 fetches left: %d %s, want 429", r.status, r.body)
	}
	if r := fetch(4, 1, 2, 3); r.status != 200 { // the refusal charged nothing: 12 left
		t.Fatalf("3 prefixes 2 bits short: %d %s", r.status, r.body)
	}
	if r := fetch(6, 0); r.status != 429 {
		t.Errorf("a fetch after the credit is spent: %d %s, want 429", r.status, r.body)
	}
}

// TestScrapeRefused: a fetch far below the server's prefix, down to the
// whole directory at prefix_bits 0, is refused however much credit the
// caller has: one evaluation never buys more than one bucket's worth.
func TestScrapeRefused(t *testing.T) {
	e, s := shortPrefixEnv(t)
	for _, bits := range []int{0, 1} {
		r := e.do(http.MethodPost, api.PathBuckets, api.BucketsRequest{PrefixBits: bits, Prefixes: []uint32{0}}, &s)
		if r.status != 409 || !strings.Contains(r.message(), "wider than 16 of the server's") {
			t.Errorf("prefix_bits %d with the server at 6: %d %s, want 409", bits, r.status, r.body)
		}
	}
	// Nothing was charged: the 16 fetches bought are all there.
	r := e.do(http.MethodPost, api.PathBuckets, api.BucketsRequest{PrefixBits: 2, Prefixes: []uint32{0}}, &s)
	if r.status != 200 {
		t.Errorf("4 bits short with 16 fetches: %d %s, want 200", r.status, r.body)
	}
}

// TestShortPrefixByCountCostsEverySpan: with a bucket count that is not a
// power of two (100 owners, one per bucket: 96 buckets), a fetch among
// fewer buckets costs one fetch for each of the server's buckets it
// overlaps, a fetch among more is stale, and one more than 16 times wider
// is refused before anything is charged.
func TestShortPrefixByCountCostsEverySpan(t *testing.T) {
	e, s := creditEnv(t, 100, 96)
	fetch := func(count uint64, buckets ...uint32) response {
		return e.do(http.MethodPost, api.PathBuckets, api.BucketsRequest{BucketCount: &count, Prefixes: buckets}, &s)
	}
	for _, c := range []struct {
		count   uint64
		buckets []uint32
		status  int
		left    int // fetches left after it
	}{
		{96, []uint32{0, 95}, 200, 14},
		{40, []uint32{0}, 200, 11},  // [0, 2^32/40) overlaps buckets 0, 1 and 2 of 96
		{97, []uint32{0}, 409, 11},  // finer than the server's: stale
		{5, []uint32{0}, 409, 11},   // 96 > 16·5: too wide
		{6, []uint32{0}, 429, 11},   // 16 buckets > 11 left
		{96, []uint32{96}, 400, 11}, // out of range
		{0, []uint32{0}, 400, 11},
		{12, []uint32{11}, 200, 3}, // the last 8
	} {
		if r := fetch(c.count, c.buckets...); r.status != c.status {
			t.Errorf("%d buckets %v: %d %s, want %d", c.count, c.buckets, r.status, r.body, c.status)
		}
	}
	// A fetch by prefix still works against the same credit: prefix_bits
	// 6 is the server's prefix length for 96 buckets, one fetch each.
	for i := range 3 {
		if r := e.do(http.MethodPost, api.PathBuckets, api.BucketsRequest{PrefixBits: 6, Prefixes: []uint32{uint32(i)}}, &s); r.status != 200 {
			t.Fatalf("prefix %d of 6 bits: %d %s", i, r.status, r.body)
		}
	}
	if r := fetch(96, 1); r.status != 429 {
		t.Errorf("a fetch after the credit is spent: %d %s, want 429", r.status, r.body)
	}
	// Both fields at once are ambiguous.
	count := uint64(96)
	if r := e.do(http.MethodPost, api.PathBuckets, api.BucketsRequest{PrefixBits: 6, BucketCount: &count, Prefixes: []uint32{0}}, &s); r.status != 400 {
		t.Errorf("prefix_bits and bucket_count: %d %s, want 400", r.status, r.body)
	}
}
