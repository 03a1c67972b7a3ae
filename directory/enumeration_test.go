package directory_test

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/client"
	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/oprf"
)

// TestEnumeration scripts an attacker holding K credentials who walks a
// number range through the client library and tries to scrape buckets. It
// is stopped at the budget and learns nothing beyond the numbers it could
// pay for. The figures are the ones docs/threat-model.md reports.
func TestEnumeration(t *testing.T) {
	const (
		burst  = 1024 // the smallest allowed: one full batch
		perDay = 100
		k      = 3
		batch  = 512
	)
	e := newEnv(t, directory.Config{Budget: directory.Budget{Burst: burst, PerDay: perDay}, MinBucketOwners: 2})
	ctx := t.Context()
	number := func(i int) string { return fmt.Sprintf("+1415555%04d", i) }
	// Owners inside the range the attackers can afford, and beyond it.
	owners := map[string]bool{}
	for _, i := range []int{2, 500, 1500, 2900, 3500, 4000, 4100, 4200} {
		o := e.register(number(i))
		if err := o.Publish(ctx, rec("org.example.chat"), client.Access{Visibility: acl.Public}); err != nil {
			t.Fatal(err)
		}
		owners[number(i)] = true
	}

	found := map[string]bool{}
	walked := 0
	for a := range k {
		c := e.register(fmt.Sprintf("+1202555%04d", 100+a))
		for start := walked; ; start += batch {
			var nums []string
			for i := start; i < start+batch; i++ {
				nums = append(nums, number(i))
			}
			res, err := c.Lookup(ctx, nums...)
			if err != nil {
				ce := clientError(err)
				if ce == nil || ce.Status != http.StatusTooManyRequests || !strings.Contains(ce.Message, "evaluation budget exhausted") {
					t.Fatalf("attacker %d: %v", a, err)
				}
				// Retry-After says when the next batch is affordable.
				want := time.Duration(float64(batch) / perDay * 86400 * float64(time.Second))
				if ce.RetryAfter < want-time.Minute || ce.RetryAfter > want+time.Minute {
					t.Errorf("Retry-After %v, want about %v", ce.RetryAfter, want)
				}
				walked = start
				break
			}
			for _, r := range res {
				if len(r.Records) > 0 {
					found[r.E164] = true
				}
			}
		}
	}
	if walked != k*burst {
		t.Errorf("%d credentials walked %d numbers, want exactly %d (the burst each)", k, walked, k*burst)
	}
	for n := range found {
		i, _ := strconv.Atoi(n[len(n)-4:])
		if i >= walked {
			t.Errorf("the attacker learned %s, beyond the %d numbers it paid for", n, walked)
		}
	}
	for n := range owners {
		if i, _ := strconv.Atoi(n[len(n)-4:]); i < walked && !found[n] {
			t.Errorf("owner %s inside the walked range was not found: the test lost its control", n)
		}
	}

	// A day later each credential affords PerDay more evaluations, and no
	// more: the enumeration rate is PerDay numbers per day per credential.
	e.skew.Store(int64(24 * time.Hour))
	s := e.issue("+12025550150", time.Now().Add(24*time.Hour), 48*time.Hour)
	elems := func(n int) [][]byte {
		in := make([][]byte, n)
		for i := range in {
			in[i] = []byte(number(9000 + i))
		}
		_, blinded, _ := oprf.Blind(in)
		return blinded
	}
	// A fresh credential has its burst; spend it, then a day's refill.
	for _, n := range []int{1024} {
		if r := e.do("POST", api.PathEvaluate, api.EvaluateRequest{Elements: elems(n)}, &s); r.status != 200 {
			t.Fatalf("burst: %d %s", r.status, r.body)
		}
	}
	e.skew.Store(int64(48 * time.Hour))
	if r := e.do("POST", api.PathEvaluate, api.EvaluateRequest{Elements: elems(perDay + 1)}, &s); r.status != 429 {
		t.Errorf("a day's refill plus one: %d", r.status)
	}
	if r := e.do("POST", api.PathEvaluate, api.EvaluateRequest{Elements: elems(perDay)}, &s); r.status != 200 {
		t.Errorf("a day's refill: %d %s", r.status, r.body)
	}

	// Bucket scraping: fetches are bounded by the evaluations bought. This
	// credential bought burst+perDay evaluations and no fetches yet.
	cfg := e.do("GET", api.PathConfig, nil, nil)
	var conf api.Config
	mustJSON(t, cfg.body, &conf)
	bought := burst + perDay
	fetched := 0
	for p := uint32(0); fetched < bought+10; {
		var prefixes []uint32
		for range 100 {
			prefixes = append(prefixes, p%(1<<conf.PrefixBits))
			p++
			if conf.PrefixBits == 0 {
				break
			}
		}
		r := e.do("POST", api.PathBuckets, api.BucketsRequest{PrefixBits: conf.PrefixBits, Prefixes: prefixes}, &s)
		if r.status == 429 {
			if !strings.Contains(r.message(), "evaluations bought") {
				t.Errorf("scrape refusal: %q", r.message())
			}
			break
		}
		if r.status != 200 {
			t.Fatalf("buckets: %d %s", r.status, r.body)
		}
		fetched += len(prefixes)
	}
	if fetched > bought {
		t.Errorf("fetched %d buckets with %d evaluations bought", fetched, bought)
	}
	if fetched < bought-100 {
		t.Errorf("fetched only %d of %d buckets bought", fetched, bought)
	}
	metrics := e.do("GET", "/metrics", nil, nil)
	for _, want := range []string{`blindex_budget_refusals_total{budget="caller"}`, `blindex_budget_refusals_total{budget="buckets"} 1`} {
		if !strings.Contains(string(metrics.body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	t.Logf("enumeration rate: %d numbers per day per credential after a one-time burst of %d (defaults: 1,000 and 5,000)", perDay, burst)
}

// Requests to unknown paths are counted too, so probing shows in metrics.
func TestUnmatchedRequestsCounted(t *testing.T) {
	e := newEnv(t, directory.Config{})
	e.do("GET", "/v1/nope", nil, nil)
	e.do("DELETE", api.PathConfig, nil, nil)
	m := string(e.do("GET", "/metrics", nil, nil).body)
	for _, want := range []string{`blindex_http_requests_total{code="404",route="unmatched"} 1`, `blindex_http_requests_total{code="405",route="unmatched"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
