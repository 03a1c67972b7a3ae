package directory_test

import (
	"testing"
	"time"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/client"
	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/internal/api"
)

// TestOwnerCountSpacing checks that publishes cannot make the server
// recount owners back to back: after a count that took d, a publish's
// recount waits until 20·d have passed and then happens once, and without
// a publish the count holds for 10 s of the server's clock.
func TestOwnerCountSpacing(t *testing.T) {
	e := newEnv(t, directory.Config{})
	b := e.register(bob)
	const delay = 50 * time.Millisecond // so a count "costs" 50 ms: spacing ≥ 1 s
	e.store.countDelay.Store(int64(delay))

	publish := func() {
		t.Helper()
		if err := b.Publish(t.Context(), rec("org.example.chat"), client.Access{Visibility: acl.Public}); err != nil {
			t.Fatal(err)
		}
	}
	config := func() {
		t.Helper()
		if r := e.do("GET", api.PathConfig, nil, nil); r.status != 200 {
			t.Fatalf("config: %d", r.status)
		}
	}
	publish() // invalidates whatever was counted before the delay was set
	start := time.Now()
	config()
	first := e.store.countsSince(start)
	if len(first) != 1 {
		t.Fatalf("%d counts for the first config after a publish, want 1", len(first))
	}
	counted := first[0]
	for range 5 {
		publish()
		config()
	}
	spacing := 20 * delay
	time.Sleep(time.Until(counted.Add(spacing + 100*time.Millisecond)))
	config()
	config()
	later := e.store.countsSince(counted)
	if len(later) != 1 {
		t.Fatalf("%d counts after the publishes, want exactly 1", len(later))
	}
	if gap := later[0].Sub(counted); gap < spacing {
		t.Fatalf("a publish's count began %v after the last, before the %v spacing", gap, spacing)
	}
	// Without a publish the count holds for 10 s, then is redone.
	e.skew.Add(int64(9 * time.Second))
	config()
	if n := len(e.store.countsSince(counted)); n != 1 {
		t.Fatalf("%d counts within 10 s without a publish, want still 1", n)
	}
	e.skew.Add(int64(2 * time.Second))
	config()
	if n := len(e.store.countsSince(counted)); n != 2 {
		t.Fatalf("%d counts after 10 s, want 2", n)
	}
}
