package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"blindex.dev/blindex/internal/store/postgres/pgtest"
)

// TestTwoServersOnePostgres runs two "blindex serve" processes on one
// PostgreSQL database, sharing the key files: writes interleave from both,
// and lookups on either see every record.
func TestTwoServersOnePostgres(t *testing.T) {
	dsn := pgtest.FreshDSN(t)
	data := filepath.Join(t.TempDir(), "data")
	a := startServer(t, data, "--db", dsn)
	// The second server shares the keys (here: the same data directory;
	// in production, copies of the key files and identity).
	b := startServer(t, data, "--db", dsn)
	servers := []*server{a, b}

	// Verification starts on one server and confirms on the other: the
	// pending verification lives in the shared database.
	numbers := []string{"+14155550100", "+14155552671", "+12025550173", "+12025550174"}
	for i, n := range numbers {
		user := fmt.Sprintf("u%d", i)
		start, confirm := servers[i%2], servers[(i+1)%2]
		cli(t, start, user, "verify", "start", n)
		code := start.lastCode(t)
		cli(t, confirm, user, "verify", "confirm", code)
	}

	// Writes interleave: each owner publishes through alternating servers,
	// concurrently.
	var wg sync.WaitGroup
	for i := range numbers {
		wg.Go(func() {
			for j, s := range []*server{servers[i%2], servers[(i+1)%2]} {
				app := fmt.Sprintf("org.example.app%d", j)
				out, err := cliErr(t, s, fmt.Sprintf("u%d", i), "publish", "--app", app,
					"--endpoint", "https://x.example/"+app, "--visibility", "public")
				if err != nil {
					t.Errorf("publish via server %d: %v %s", (i+j)%2, err, out)
				}
			}
		})
	}
	wg.Wait()

	// Lookups on either server see all records.
	for _, s := range servers {
		got := lookupApps(t, s, "u0", numbers...)
		for _, n := range numbers {
			if !slices.Equal(got[n], []string{"org.example.app0", "org.example.app1"}) {
				t.Errorf("via %s, %s has %v", s.url, n, got[n])
			}
		}
	}
	// Nothing of it touched the SQLite file: the data directory holds keys.
	if _, err := os.Stat(filepath.Join(data, "blindex.db")); err == nil {
		t.Errorf("a SQLite database was created next to --db")
	}
	scanForNumbers(t, data, a.log()+b.log(), numbers...)
}
