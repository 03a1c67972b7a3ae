package directory_test

import (
	"encoding/json"
	"testing"
	"time"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/client"
	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/internal/api"
)

// countEnv is a server whose owner counts each take delay, with a
// registered owner who can publish.
type countEnv struct {
	*env
	t     *testing.T
	owner *client.Client
}

func newCountEnv(t *testing.T, delay time.Duration) *countEnv {
	e := newEnv(t, directory.Config{})
	c := &countEnv{env: e, t: t, owner: e.register(bob)}
	e.store.countDelay.Store(int64(delay))
	return c
}

func (c *countEnv) publish() {
	c.t.Helper()
	if err := c.owner.Publish(c.t.Context(), rec("org.example.chat"), client.Access{Visibility: acl.Public}); err != nil {
		c.t.Fatal(err)
	}
}

// config asks for /v1/config, which needs the prefix length, and returns
// how long the answer took.
func (c *countEnv) config() time.Duration {
	c.t.Helper()
	start := time.Now()
	if r := c.do("GET", api.PathConfig, nil, nil); r.status != 200 {
		c.t.Fatalf("config: %d", r.status)
	}
	return time.Since(start)
}

// waitCounts waits up to 5 s for n counts to have begun after since, and
// returns when they began.
func (c *countEnv) waitCounts(since time.Time, n int) []time.Time {
	c.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := c.store.countsSince(since)
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestOwnerCountSpacing checks that publishes cannot make the server
// recount owners back to back: after a count that took d, a publish's
// recount waits until 20·d have passed and then happens once, and without
// a publish the count holds for 10 s of the server's clock.
func TestOwnerCountSpacing(t *testing.T) {
	const delay = 50 * time.Millisecond // so a count "costs" 50 ms: spacing ≥ 1 s
	e := newCountEnv(t, delay)
	start := time.Now()
	e.publish() // invalidates whatever was counted before the delay was set
	e.config()
	first := e.waitCounts(start, 1)
	if len(first) != 1 {
		t.Fatalf("%d counts after a publish, want 1", len(first))
	}
	counted := first[0]
	time.Sleep(2 * delay) // until that count has ended
	for range 5 {
		e.publish()
		e.config()
	}
	spacing := 20 * delay
	time.Sleep(100 * time.Millisecond)
	if n := len(e.store.countsSince(counted)); n != 0 && time.Since(counted) < spacing {
		t.Fatalf("%d counts within %v of a count that took %v", n, time.Since(counted), delay)
	}
	time.Sleep(time.Until(counted.Add(spacing + 100*time.Millisecond)))
	e.config()
	e.waitCounts(counted, 1)
	time.Sleep(2 * delay)
	e.config()
	if later := e.store.countsSince(counted); len(later) != 1 {
		t.Fatalf("%d counts after the publishes, want exactly 1", len(later))
	}
	if gap := e.store.countsSince(counted)[0].Sub(counted); gap < spacing {
		t.Fatalf("a publish's count began %v after the last, before the %v spacing", gap, spacing)
	}
	// Without a publish the count holds for 10 s, then is redone.
	e.skew.Add(int64(9 * time.Second))
	e.config()
	time.Sleep(100 * time.Millisecond)
	if n := len(e.store.countsSince(counted)); n != 1 {
		t.Fatalf("%d counts within 10 s without a publish, want still 1", n)
	}
	e.skew.Add(int64(2 * time.Second))
	e.config()
	if n := len(e.waitCounts(counted, 2)); n != 2 {
		t.Fatalf("%d counts after 10 s, want 2", n)
	}
}

// TestRecountDoesNotDelayRequests checks that once the prefix length is
// known, a request that finds it stale answers with it at once and leaves
// the recount to the background.
func TestRecountDoesNotDelayRequests(t *testing.T) {
	const delay = 2 * time.Second
	e := newCountEnv(t, delay)
	start := time.Now()
	e.publish()
	if took := e.config(); took > delay/2 {
		t.Fatalf("config took %v while a %v recount ran", took, delay)
	}
	if n := len(e.waitCounts(start, 1)); n != 1 {
		t.Fatalf("%d counts after a publish, want 1 in the background", n)
	}
	// Other requests meanwhile neither wait nor start another count.
	for range 3 {
		if took := e.config(); took > delay/2 {
			t.Fatalf("config took %v during the recount", took)
		}
	}
	if n := len(e.store.countsSince(start)); n != 1 {
		t.Fatalf("%d counts at once, want 1", n)
	}
}

// prefixBits reads prefix_bits from /v1/config.
func (e *env) prefixBits() int { return e.config().PrefixBits }

// bucketCount reads bucket_count from /v1/config.
func (e *env) bucketCount() uint64 { return e.config().BucketCount }

func (e *env) config() api.Config {
	e.t.Helper()
	r := e.do("GET", api.PathConfig, nil, nil)
	var cfg api.Config
	if r.status != 200 || json.Unmarshal(r.body, &cfg) != nil {
		e.t.Fatalf("config: %d %s", r.status, r.body)
	}
	return cfg
}

// TestPrefixAfterDelete checks that owners who leave shorten the prefix at
// once, not at the next count: the prefix they no longer fill is refused,
// and the config a client then fetches has the shorter one (a client that
// read the stale one retried with it, and got a second 409).
func TestPrefixAfterDelete(t *testing.T) {
	e := newEnv(t, directory.Config{MinBucketOwners: 1})
	numbers := []string{bob, "+14155550101", "+14155550102", "+14155550103"}
	owners := make([]*client.Client, len(numbers))
	for i, n := range numbers {
		owners[i] = e.register(n)
		if err := owners[i].Publish(t.Context(), rec("org.example.chat"), client.Access{Visibility: acl.Public}); err != nil {
			t.Fatal(err)
		}
	}
	// 4 owners, 1 per bucket: 2 bits, once a count has seen them all.
	for deadline := time.Now().Add(5 * time.Second); e.prefixBits() != 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("prefix bits %d with 4 owners, want 2", e.prefixBits())
		}
	}
	// From now on a count takes longer than the test: only what the
	// deletes themselves tell the server can shorten the prefix.
	e.store.countDelay.Store(int64(time.Minute))
	for _, o := range owners[1:] {
		if err := o.Delete(t.Context(), "org.example.chat"); err != nil {
			t.Fatal(err)
		}
	}
	s := e.issue(dave, time.Now(), time.Hour)
	if r := e.do("POST", api.PathBuckets, api.BucketsRequest{PrefixBits: 2, Prefixes: []uint32{0}}, &s); r.status != 409 {
		t.Errorf("2 bits with 1 owner left: %d %q, want 409", r.status, r.message())
	}
	if pb := e.prefixBits(); pb != 0 {
		t.Errorf("prefix bits %d after 3 of 4 owners left, want 0", pb)
	}
	// A publish does not lengthen it before a count: a shorter prefix
	// than needed only widens buckets.
	if err := owners[1].Publish(t.Context(), rec("org.example.chat"), client.Access{Visibility: acl.Public}); err != nil {
		t.Fatal(err)
	}
	if pb := e.prefixBits(); pb != 0 {
		t.Errorf("prefix bits %d right after a publish, want still 0", pb)
	}
}
