package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
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

	"blindex.dev/blindex/directory/postgres/pgtest"
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
	servers := []*process{a, b}

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
			for j, s := range []*process{servers[i%2], servers[(i+1)%2]} {
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

// TestPostgresBackupRestore backs a live PostgreSQL directory up with
// "blindex backup --db" (pg_dump), restores it into a new database, and
// finds that the server refuses the older log until told, then serves it.
func TestPostgresBackupRestore(t *testing.T) {
	if _, err := exec.LookPath("pg_dump"); err != nil {
		t.Fatal("pg_dump is missing: install postgresql-client (scripts/test.sh does)")
	}
	dsn := pgtest.FreshDatabase(t) // pg_dump takes the whole database
	tmp := t.TempDir()
	data := filepath.Join(tmp, "data")
	s := startServer(t, data, "--db", dsn)
	bobPublishes(t, s, "sip:bob@example.com")
	id, idFile := operatorIdentity(t, tmp)
	snap := filepath.Join(tmp, "snapshot.age")
	if out, err := exec.Command(binary, "backup", "--db", dsn, "--recipient", id.Recipient().String(), "--out", snap).CombinedOutput(); err != nil {
		t.Fatalf("backup --db: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(snap); bytes.Contains(b, []byte("PGDMP")) || bytes.Contains(b, []byte("records")) {
		t.Fatal("the snapshot is not encrypted")
	}
	// The log grows past the snapshot and is published.
	cli(t, s, "bob", "publish", "--app", "org.example.video", "--endpoint", "sip:bob@video.example.com", "--visibility", "public")
	untilExit(t, s, "auditor", 0, "log", "verify")
	time.Sleep(1500 * time.Millisecond) // one more publishing round writes keys/log.checkpoint
	s.stop(t)

	restoredDSN := pgtest.FreshDatabase(t)
	if out, err := exec.Command(binary, "restore", "--db", restoredDSN, "--identity", idFile, "--in", snap).CombinedOutput(); err != nil {
		t.Fatalf("restore --db: %v\n%s", err, out)
	}
	if out, err := exec.Command(binary, "restore", "--db", restoredDSN, "--identity", idFile, "--in", snap).CombinedOutput(); err == nil ||
		!strings.Contains(string(out), "not empty") {
		t.Fatalf("restore into a non-empty database: %v\n%s", err, out)
	}
	out, err := exec.Command(binary, "serve", "--data", data, "--db", restoredDSN, "--addr", "127.0.0.1:0").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--accept-log-rollback") {
		t.Fatalf("serve on the older PostgreSQL backup: %v\n%s", err, out)
	}
	s2 := startServer(t, data, "--db", restoredDSN, "--accept-log-rollback")
	if got := lookupApps(t, s2, "bob", bob); !slices.Equal(got[bob], []string{"org.example.chat"}) {
		t.Errorf("after the restore bob sees %v", got)
	}
}
