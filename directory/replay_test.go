package directory_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"io"
	"net/http"
	"testing"
	"time"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/directory/postgres/pgtest"
	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/internal/httpsig"
	"blindex.dev/blindex/internal/sms"
	"blindex.dev/blindex/oprf"
	"blindex.dev/blindex/record"
	"blindex.dev/blindex/server"
)

// TestReplayAfterRestart captures signed requests to each service (an
// evaluation, a publish, a renewal at the built-in CA), and replays them
// once the server has restarted over the same data: each replay is refused
// as one, while a fresh request with the same credential is served. On
// PostgreSQL the replays also go to a second server on the same database,
// as behind a load balancer.
func TestReplayAfterRestart(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testReplayAfterRestart(t, "") })
	t.Run("postgres", func(t *testing.T) { testReplayAfterRestart(t, pgtest.FreshDSN(t)) })
}

// captured is a signed request as it went over the wire.
type captured struct {
	name, method, path string
	header             http.Header
	body               []byte
}

// replayHost is the Host every request is signed for, as behind one load
// balancer: the servers' own ports change with each start.
const replayHost = "blindex.test"

func testReplayAfterRestart(t *testing.T, db string) {
	dir := t.TempDir()
	start := func() *server.Running {
		t.Helper()
		srv, err := server.Start(t.Context(), server.Config{DataDir: dir, DB: db, Addr: "127.0.0.1:0", SMS: sms.NewInbox()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
		return srv
	}
	srv := start()

	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	issued := time.Now().Add(-time.Minute)
	cert, err := srv.CA.Issue(bob, &key.PublicKey, 24*time.Hour, issued, issued)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(name, method, path string, body []byte) captured {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+replayHost+path, bytes.NewReader(body))
		if err := httpsig.Sign(req, body, key, cert, time.Now()); err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		return captured{name: name, method: method, path: path, header: req.Header, body: body}
	}
	send := func(srv *server.Running, c captured) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(c.method, srv.URL()+c.path, bytes.NewReader(c.body))
		req.Header = c.header.Clone()
		req.Host = replayHost
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, response{body: b}.message()
	}

	y, err := oprf.NewEvaluator(srv.Node.OPRFKey).FullEvaluate([]byte("blindex lookup v1"), []byte(bob))
	if err != nil {
		t.Fatal(err)
	}
	publish := func(endpoint string) []byte {
		idx, rid := oprf.Index(y), oprf.RecordID(y, "org.example.chat")
		expires := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
		ct, err := record.Seal(oprf.RecordKey(y), record.Record{App: "org.example.chat", Endpoint: endpoint, Expires: expires})
		if err != nil {
			t.Fatal(err)
		}
		return jsonBody(api.PublishRequest{Index: idx[:], RecordID: rid[:], Ciphertext: ct,
			ACL: &acl.List{Visibility: acl.Public}, Expires: expires})
	}
	fresh := func() []captured {
		return []captured{
			sign("evaluate", "POST", api.PathEvaluate, evaluateBody(1)),
			sign("publish", "PUT", api.PathRecords, publish("https://org.example.chat/u/1")),
			sign("renew", "POST", api.PathRenew, []byte(`{}`)),
		}
	}
	requests := fresh()
	for _, c := range requests {
		if status, msg := send(srv, c); status != http.StatusOK {
			t.Fatalf("%s: %d %q", c.name, status, msg)
		}
		// At once, to the same process: the in-memory check.
		if status, msg := send(srv, c); status != http.StatusUnauthorized || msg != msgWindow {
			t.Errorf("%s replayed to the same server: %d %q, want 401 %q", c.name, status, msg, msgWindow)
		}
	}
	// A later publish that a replay of the first would undo.
	if status, msg := send(srv, sign("publish", "PUT", api.PathRecords, publish("https://org.example.chat/u/2"))); status != http.StatusOK {
		t.Fatalf("second publish: %d %q", status, msg)
	}

	refused := func(srv *server.Running, when string) {
		t.Helper()
		for _, c := range requests {
			if status, msg := send(srv, c); status != http.StatusUnauthorized || msg != msgWindow {
				t.Errorf("%s replayed %s: %d %q, want 401 %q", c.name, when, status, msg, msgWindow)
			}
		}
	}
	if db != "" {
		refused(start(), "to a second server on the database")
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	srv = start()
	refused(srv, "after a restart")
	// The same credential, Host and endpoints still serve fresh requests
	// (new nonces, the same bodies), so the refusals above are of the
	// replays, not of the requests.
	for _, c := range fresh() {
		if status, msg := send(srv, c); status != http.StatusOK {
			t.Errorf("fresh %s after the restart: %d %q", c.name, status, msg)
		}
	}
}
