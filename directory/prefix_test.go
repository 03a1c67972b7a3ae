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
// recount waits until 20·d have passed, and without a publish the count
// holds for 10 s.
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
	config()
	counted := time.Now()
	before := e.store.counts.Load()
	for range 5 {
		publish()
		config()
	}
	if n := e.store.counts.Load() - before; n != 0 && time.Since(counted) < 20*delay {
		t.Fatalf("%d counts within %v of a count that took %v", n, time.Since(counted), delay)
	}
	// The publishes' recount waits for the spacing, then happens once.
	time.Sleep(time.Until(counted.Add(20*delay + 100*time.Millisecond)))
	config()
	config()
	if n := e.store.counts.Load() - before; n != 1 {
		t.Fatalf("%d counts once the spacing passed, want 1", n)
	}
	// Without a publish, the count holds for 10 s.
	time.Sleep(20*delay + 100*time.Millisecond)
	config()
	if n := e.store.counts.Load() - before; n != 1 {
		t.Fatalf("%d counts without a publish, want still 1", n)
	}
}
