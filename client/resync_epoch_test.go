package client_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/client"
	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/internal/sms"
	"blindex.dev/blindex/record"
)

// previousEpochLoss fails the first publish to lookup epoch 0 once armed:
// with made it forwards the request and loses the answer (the directory
// committed it), otherwise it never sends it. Either way the directory then
// looks down, the client's retries included, until up.
type previousEpochLoss struct {
	mu          sync.Mutex
	armed, made bool
	down        bool
	lost        int
}

func (p *previousEpochLoss) up() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

func (p *previousEpochLoss) RoundTrip(r *http.Request) (*http.Response, error) {
	p.mu.Lock()
	match := p.armed && isWrite("PUT")(r) && toEpoch0(r)
	if match {
		p.armed = false
	}
	down, made := p.down, p.made
	if match {
		p.down = true
		p.lost++
	}
	p.mu.Unlock()
	if down || (match && !made) {
		return nil, errDown
	}
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil || !match {
		return resp, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return nil, errDown
}

// toEpoch0 reports whether a request's body names epoch 0.
func toEpoch0(r *http.Request) bool {
	if r.GetBody == nil {
		return false
	}
	b, err := r.GetBody()
	if err != nil {
		return false
	}
	defer b.Close()
	body, _ := io.ReadAll(b)
	return bytes.Contains(body, []byte(`"epoch":0`))
}

// TestResyncPreviousEpoch loses a publish to the previous lookup epoch
// during an overlap, for an owner with two apps. The directory's state
// answer covers only the current epoch, so the client settles the write by
// its entry in the log: adopted when the directory made it, dropped when
// the request never arrived. Either way the owner's next write in the
// previous epoch (whose expectation includes the settled record) goes
// through, the monitor raises no alarm, and a caller, who looks up in the
// previous epoch during the overlap, finds what the directory holds.
func TestResyncPreviousEpoch(t *testing.T) {
	for _, made := range []bool{true, false} {
		name := "made"
		if !made {
			name = "never-arrived"
		}
		t.Run(name, func(t *testing.T) { testResyncPreviousEpoch(t, made) })
	}
}

func testResyncPreviousEpoch(t *testing.T, made bool) {
	inbox := sms.NewInbox()
	srv := startServer(t, inbox, directory.Config{MinBucketOwners: 1})
	const caller = "+12015550123"
	callerClient := register(t, srv, inbox, t.TempDir(), caller, 0)
	loss := &previousEpochLoss{made: made}
	c, err := client.New(client.Config{Server: srv.URL(), StateDir: t.TempDir(), HTTPClient: &http.Client{Transport: loss}})
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
	public := client.Access{Visibility: acl.Public}
	publish := func(app, endpoint string) error {
		return c.Publish(t.Context(), record.Record{App: app, Endpoint: endpoint, Expires: expires}, public)
	}
	for _, app := range []string{"org.example.one", "org.example.two"} {
		if err := publish(app, "sip:v1@example.com"); err != nil {
			t.Fatal(err)
		}
	}

	// Epoch 1 begins, with an overlap that outlasts the test.
	if e, err := directory.StartEpoch(t.Context(), srv.Node.Store, time.Hour, time.Now()); err != nil || e.Current != 1 {
		t.Fatalf("StartEpoch: %+v, %v", e, err)
	}
	time.Sleep(2500 * time.Millisecond) // the server's view of the epochs refreshes

	// The publish goes to epoch 1, then again to epoch 0, whose answer is lost.
	loss.mu.Lock()
	loss.armed = true
	loss.mu.Unlock()
	if err := publish("org.example.one", "sip:v2@example.com"); !errors.Is(err, errDown) || loss.lost != 1 {
		t.Fatalf("the lost write: %v (%d lost), want the directory down", err, loss.lost)
	}
	loss.up()

	if err := c.Resync(t.Context()); err != nil {
		t.Fatalf("Resync: %v", err)
	}
	// An ACL change for app two in both epochs: the log entry it makes in
	// epoch 0 must commit to app one as settled, or the client refuses it.
	if err := c.SetACL(t.Context(), "org.example.two", client.Access{Visibility: acl.Allowlist, Allow: []string{caller}}); err != nil {
		t.Fatalf("the next write: %v", err)
	}
	if rep := collectQuiet(t, c); len(rep.Alarms) != 0 || !rep.StateOK {
		t.Fatalf("monitor: alarms %v, state ok %v", alarmKinds(rep), rep.StateOK)
	}
	res, err := callerClient.Lookup(t.Context(), number)
	if err != nil {
		t.Fatal(err)
	}
	want := "sip:v1@example.com"
	if made {
		want = "sip:v2@example.com"
	}
	var got []string
	for _, r := range res[0].Records {
		if r.App == "org.example.one" {
			got = append(got, r.Endpoint)
		}
	}
	if len(got) != 1 || got[0] != want {
		t.Errorf("the caller finds %v for app one in the previous epoch, want [%s]", got, want)
	}
}
