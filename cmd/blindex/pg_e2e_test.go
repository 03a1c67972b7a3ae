package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"blindex.dev/blindex/client"
	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/internal/httpsig"
	"blindex.dev/blindex/oprf"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
	// The log stays one linear history: every publish above already checked
	// its proof against the checkpoint its client last saw, from either
	// server. An auditor replays the log through one server, then through
	// the other, whose checkpoint must be consistent with the first's.
	for _, s := range servers {
		out := untilExit(t, s, "auditor", 0, "log", "verify")
		if !strings.Contains(out, "entries verified") {
			t.Fatalf("log verify via %s:\n%s", s.url, out)
		}
	}
	// Once published, the checkpoint covers every write made through both.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		out := untilExit(t, servers[time.Now().Second()%2], "auditor", 0, "log", "verify", "--json")
		var rep struct {
			Size  int64
			Kinds map[string]int
		}
		json.Unmarshal([]byte(out), &rep)
		if rep.Kinds["credential"] == len(numbers) && rep.Kinds["state"] == 2*len(numbers) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the log never covered every write: %s", out)
		}
	}
	// A request accepted by one server is a replay to the other.
	c, err := client.New(client.Config{Server: a.url, StateDir: filepath.Join(statesDir(t), "u0")})
	if err != nil {
		t.Fatal(err)
	}
	chain, key, err := c.Chain()
	if err != nil {
		t.Fatal(err)
	}
	_, blinded, _ := oprf.Blind([][]byte{[]byte(numbers[1])})
	body, _ := json.Marshal(api.EvaluateRequest{Elements: blinded})
	// Signed for one Host, as both servers are behind one load balancer.
	req, _ := http.NewRequest("POST", "http://blindex.test"+api.PathEvaluate, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if err := httpsig.Sign(req, body, key, chain[0], time.Now()); err != nil {
		t.Fatal(err)
	}
	for i, s := range servers {
		r2, _ := http.NewRequest("POST", s.url+api.PathEvaluate, bytes.NewReader(body))
		r2.Header = req.Header.Clone()
		r2.Host = req.Host
		resp, err := http.DefaultClient.Do(r2)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := []int{200, 401}[i]; resp.StatusCode != want {
			t.Errorf("request %d (server %d): %d, want %d", i+1, i, resp.StatusCode, want)
		}
	}

	// Nothing of it touched the SQLite file: the data directory holds keys.
	if _, err := os.Stat(filepath.Join(data, "blindex.db")); err == nil {
		t.Errorf("a SQLite database was created next to --db")
	}
	scanForNumbers(t, data, a.log()+b.log(), numbers...)
}
