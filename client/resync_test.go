package client_test

import (
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/client"
	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/internal/sms"
	"blindex.dev/blindex/record"
	"blindex.dev/blindex/server"
)

// lossyTransport loses the answer to one write after the directory has
// made it, as a server SIGKILLed (or failing with a 500) after its commit
// does. Armed, the next request for which match holds is forwarded and its
// answer read in full (the write is committed) and then lost: with
// failWith500 the client gets a 500; otherwise the directory is down from
// then on (every request fails, the client's retries too) until up.
type lossyTransport struct {
	mu          sync.Mutex
	match       func(*http.Request) bool
	failWith500 bool
	down        bool
	lost        int // answers lost
}

var errDown = errors.New("test: the directory is down")

func (l *lossyTransport) arm(match func(*http.Request) bool, failWith500 bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.match, l.failWith500 = match, failWith500
}

func (l *lossyTransport) up() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down = false
}

func (l *lossyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	l.mu.Lock()
	down, match := l.down, l.match != nil && l.match(r)
	if match {
		l.match = nil
	}
	l.mu.Unlock()
	if down {
		return nil, errDown
	}
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil || !match {
		return resp, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lost++
	if l.failWith500 {
		return &http.Response{StatusCode: http.StatusInternalServerError, Header: http.Header{"Content-Type": {"application/json"}},
			Body: io.NopCloser(strings.NewReader(`{"error":"internal error"}`)), Request: r}, nil
	}
	l.down = true
	return nil, errDown
}

func isWrite(method string) func(*http.Request) bool {
	return func(r *http.Request) bool { return r.Method == method && strings.HasPrefix(r.URL.Path, "/v1/records") }
}

// TestUnacknowledgedWrite loses the answer to a publish, an ACL change and
// an unpublish after the directory committed it, for an owner with one app
// and one with two. The client resynchronises with what the directory
// holds: the next write goes through, the monitor raises no alarm (neither
// for the lost write's log entry nor for the state it left), and
// published.json and a caller's lookup show the lost write made.
func TestUnacknowledgedWrite(t *testing.T) {
	inbox := sms.NewInbox()
	srv := startServer(t, inbox, directory.Config{})
	const caller = "+12015550123"
	callerClient := register(t, srv, inbox, t.TempDir(), caller, 0)
	expires := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	n := 0
	for _, op := range []string{"publish", "acl", "unpublish"} {
		for _, apps := range []int{1, 2} {
			for _, with500 := range []bool{false, true} {
				name := fmt.Sprintf("%s/%d-apps/", op, apps)
				if with500 {
					name += "500"
				} else {
					name += "killed"
				}
				n++
				number := fmt.Sprintf("+1415555%04d", 1000+n)
				t.Run(name, func(t *testing.T) {
					lossy := &lossyTransport{}
					state := t.TempDir()
					c, err := client.New(client.Config{Server: srv.URL(), StateDir: state, HTTPClient: &http.Client{Transport: lossy}})
					if err != nil {
						t.Fatal(err)
					}
					if _, err := c.Verify(t.Context(), number); err != nil {
						t.Fatal(err)
					}
					if err := c.Confirm(t.Context(), inbox.Code(number)); err != nil {
						t.Fatal(err)
					}
					publish := func(app, endpoint string, a client.Access) error {
						return c.Publish(t.Context(), record.Record{App: app, Endpoint: endpoint, Expires: expires}, a)
					}
					public := client.Access{Visibility: acl.Public}
					if err := publish("org.example.one", "sip:v1@example.com", public); err != nil {
						t.Fatal(err)
					}
					if apps == 2 {
						if err := publish("org.example.two", "sip:two@example.com", public); err != nil {
							t.Fatal(err)
						}
					}

					// The write whose answer is lost.
					var lostErr error
					switch op {
					case "publish":
						lossy.arm(isWrite("PUT"), with500)
						lostErr = publish("org.example.one", "sip:v2@example.com", public)
					case "acl":
						lossy.arm(isWrite("PUT"), with500)
						lostErr = c.SetACL(t.Context(), "org.example.one", client.Access{Visibility: acl.Nobody})
					case "unpublish":
						lossy.arm(isWrite("DELETE"), with500)
						lostErr = c.Delete(t.Context(), "org.example.one")
					}
					if lostErr == nil || lossy.lost != 1 {
						t.Fatalf("the lost write: %v (%d answers lost), want an error", lostErr, lossy.lost)
					}
					lossy.up() // the directory restarted

					// The owner goes on: with one app, the monitor first (it
					// settles the lost write); then another write, then the
					// monitor.
					if apps == 1 {
						if rep := collectQuiet(t, c); len(rep.Alarms) != 0 || !rep.StateOK {
							t.Fatalf("monitor right after the lost write: alarms %v, state ok %v", alarmKinds(rep), rep.StateOK)
						}
					}
					if apps == 2 {
						if err := c.SetACL(t.Context(), "org.example.two", client.Access{Visibility: acl.Allowlist, Allow: []string{caller}}); err != nil {
							t.Fatalf("the next write: %v", err)
						}
					} else if op != "unpublish" {
						if err := c.SetACL(t.Context(), "org.example.one", client.Access{Visibility: acl.Allowlist, Allow: []string{caller}}); err != nil {
							t.Fatalf("the next write: %v", err)
						}
					}
					rep := collectQuiet(t, c)
					if len(rep.Alarms) != 0 || !rep.StateOK {
						t.Fatalf("monitor after the lost write: alarms %v, state ok %v", alarmKinds(rep), rep.StateOK)
					}

					// What the lost write did is what the owner's files say.
					pub, err := c.Published()
					if err != nil {
						t.Fatal(err)
					}
					one, ok := pub.Records["org.example.one"]
					switch op {
					case "unpublish":
						if ok {
							t.Errorf("published.json keeps the unpublished app: %+v", one)
						}
					case "acl":
						if apps == 2 && one.Visibility != "nobody" {
							t.Errorf("published.json: app one is %q, want nobody", one.Visibility)
						}
					}
					res, err := callerClient.Lookup(t.Context(), number)
					if err != nil {
						t.Fatal(err)
					}
					var endpoints []string
					for _, r := range res[0].Records {
						if r.App == "org.example.one" {
							endpoints = append(endpoints, r.Endpoint)
						}
					}
					want := map[string][]string{"publish": {"sip:v2@example.com"}, "unpublish": nil}[op]
					if op == "acl" {
						want = []string{"sip:v1@example.com"} // visible to the caller again after the next write
						if apps == 2 {
							want = nil // nobody
						}
					}
					if !slices.Equal(endpoints, want) {
						t.Errorf("the caller finds %v for app one, want %v", endpoints, want)
					}
				})
			}
		}
	}
}

// collectQuiet runs the monitor until the directory has published a
// checkpoint covering the lost write's entry (the monitor waits for one,
// but a loaded machine may be slower), and returns the last report.
func collectQuiet(t *testing.T, c *client.Client) *client.Report {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		rep := monitor(t, c)
		if len(rep.Alarms) > 0 || rep.Behind == 0 || time.Now().After(deadline) {
			return rep
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestResyncStateNotCaused: while a write's answer is lost, the directory's
// state for the owner changes in a way the owner did not cause (an
// allowlist widened straight in the database). Resynchronising does not
// adopt it: the next write fails with ErrStateNotCaused and the monitor
// raises a stored-state alarm.
func TestResyncStateNotCaused(t *testing.T) {
	inbox := sms.NewInbox()
	dataDir := t.TempDir()
	srv, err := server.Start(t.Context(), server.Config{DataDir: dataDir, Addr: "127.0.0.1:0", SMS: inbox})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	lossy := &lossyTransport{}
	c, err := client.New(client.Config{Server: srv.URL(), StateDir: t.TempDir(), HTTPClient: &http.Client{Transport: lossy}})
	if err != nil {
		t.Fatal(err)
	}
	const number = "+14155550100"
	if _, err := c.Verify(t.Context(), number); err != nil {
		t.Fatal(err)
	}
	if err := c.Confirm(t.Context(), inbox.Code(number)); err != nil {
		t.Fatal(err)
	}
	expires := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	allow := client.Access{Visibility: acl.Allowlist, Allow: []string{"+12015550123"}}
	for _, app := range []string{"org.example.one", "org.example.two"} {
		if err := c.Publish(t.Context(), record.Record{App: app, Endpoint: "sip:owner@example.com", Expires: expires}, allow); err != nil {
			t.Fatal(err)
		}
	}
	lossy.arm(isWrite("PUT"), false)
	if err := c.Publish(t.Context(), record.Record{App: "org.example.one", Endpoint: "sip:v2@example.com", Expires: expires}, allow); err == nil {
		t.Fatal("the lost write succeeded")
	}
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(dataDir, "blindex.db")+"?_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Exec(`INSERT INTO acl_members (idx, holder, record_id, kind, pseudonym)
		SELECT idx, holder, record_id, kind, randomblob(32) FROM acl_members WHERE kind = 1`)
	if err != nil {
		t.Fatalf("widening the allowlists: %v", err)
	}
	if n, _ := res.RowsAffected(); n != 2 {
		t.Fatalf("widening the allowlists: %v (%d rows)", err, n)
	}
	lossy.up()
	err = c.SetACL(t.Context(), "org.example.two", client.Access{Visibility: acl.Public})
	if !errors.Is(err, client.ErrStateNotCaused) {
		t.Fatalf("the next write: %v, want ErrStateNotCaused", err)
	}
	rep := monitor(t, c)
	if !slices.Contains(alarmKinds(rep), "stored-state") || rep.StateOK {
		t.Fatalf("monitor: alarms %v, state ok %v; want a stored-state alarm", alarmKinds(rep), rep.StateOK)
	}
	// It stays an alarm: resynchronising again adopts nothing.
	if err := c.Resync(t.Context()); !errors.Is(err, client.ErrStateNotCaused) {
		t.Fatalf("Resync: %v, want ErrStateNotCaused", err)
	}
}
