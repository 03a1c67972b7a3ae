package client_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
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

func startServer(t *testing.T, inbox *sms.Inbox, cfg directory.Config) *server.Running {
	t.Helper()
	srv, err := server.Start(t.Context(), server.Config{DataDir: t.TempDir(), Addr: "127.0.0.1:0", SMS: inbox, Directory: cfg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

func register(t *testing.T, srv *server.Running, inbox *sms.Inbox, dir, number string, maxBits int) *client.Client {
	t.Helper()
	// Crowds of one: these tests' directories are small, and set their own
	// MinBucketOwners; the client's floor is tested in kanon_test.go.
	c, err := client.New(client.Config{Server: srv.URL(), StateDir: dir, MaxPrefixBits: maxBits, MinBucketOwners: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Verify(t.Context(), number); err != nil {
		t.Fatal(err)
	}
	if err := c.Confirm(t.Context(), inbox.Code(number)); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestKeyChanged(t *testing.T) {
	inbox := sms.NewInbox()
	a := startServer(t, inbox, directory.Config{})
	state := t.TempDir()
	c := register(t, a, inbox, state, "+14155550100", 0)
	if _, err := c.Lookup(t.Context(), "+12015550123"); err != nil {
		t.Fatal(err)
	}
	// Another directory (another key) at the same client state: the
	// credential is from A's CA, so register anew with B but keep A's pin.
	b := startServer(t, inbox, directory.Config{})
	pin, err := os.ReadFile(filepath.Join(state, "directory.json"))
	if err != nil {
		t.Fatal(err)
	}
	state2 := t.TempDir()
	c2 := register(t, b, inbox, state2, "+14155550100", 0)
	if err := os.WriteFile(filepath.Join(state2, "directory.json"), pin, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Lookup(t.Context(), "+12015550123"); !errors.Is(err, client.ErrKeyChanged) {
		t.Errorf("lookup against a directory with another key: %v, want ErrKeyChanged", err)
	}
}

// hookTransport runs after once the first answer from path arrives.
type hookTransport struct {
	path  string
	after func()
	once  sync.Once
}

func (h *hookTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && r.URL.Path == h.path && h.after != nil {
		h.once.Do(h.after)
	}
	return resp, err
}

func publishPublic(t *testing.T, c *client.Client, endpoint string) {
	t.Helper()
	err := c.Publish(t.Context(), record.Record{App: "org.example.chat", Endpoint: endpoint,
		Expires: time.Now().Add(time.Hour).UTC().Truncate(time.Second)}, client.Access{Visibility: acl.Public})
	if err != nil {
		t.Fatal(err)
	}
}

// The client never asks for more buckets than its MaxPrefixBits allows, and
// when the directory's bucket count shrinks between the two rounds it
// widens its own.
func TestPrefixBits(t *testing.T) {
	inbox := sms.NewInbox()
	var mu sync.Mutex
	var sent []uint64
	srv := startServer(t, inbox, directory.Config{MinBucketOwners: 1, Observe: func(o directory.Observation) {
		if o.Endpoint == "buckets" {
			mu.Lock()
			sent = append(sent, o.Buckets())
			mu.Unlock()
		}
	}})
	numbers := []string{"+14155550100", "+14155550101", "+14155550102", "+14155550103"}
	owners := make([]*client.Client, len(numbers))
	for i, n := range numbers {
		owners[i] = register(t, srv, inbox, t.TempDir(), n, 0)
		publishPublic(t, owners[i], "https://x.example/"+n[1:])
	}
	// 4 owners, 1 per bucket: the directory has 4 buckets.
	narrow := register(t, srv, inbox, t.TempDir(), "+12015550123", 1)
	res, err := narrow.Lookup(t.Context(), numbers[0])
	if err != nil || len(res[0].Records) != 1 {
		t.Fatalf("lookup with MaxPrefixBits 1: %+v, %v", res, err)
	}
	if full := register(t, srv, inbox, t.TempDir(), "+12015550124", 0); full != nil {
		if _, err := full.Lookup(t.Context(), numbers[0]); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	if len(sent) != 2 || sent[0] != 2 || sent[1] != 4 {
		t.Errorf("bucket counts sent = %v, want [2 4]", sent)
	}
	sent = nil
	mu.Unlock()

	// Three owners leave between the evaluate and bucket rounds.
	hook := &hookTransport{path: "/v1/evaluate"}
	shrinking, err := client.New(client.Config{Server: srv.URL(), StateDir: t.TempDir(), HTTPClient: &http.Client{Transport: hook}, MinBucketOwners: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := shrinking.Verify(t.Context(), "+12015550125"); err != nil {
		t.Fatal(err)
	}
	if err := shrinking.Confirm(t.Context(), inbox.Code("+12015550125")); err != nil {
		t.Fatal(err)
	}
	hook.after = func() {
		for _, o := range owners[1:] {
			if err := o.Delete(t.Context(), "org.example.chat"); err != nil {
				t.Error(err)
			}
		}
	}
	// One prefix per buckets request, so the lookup's prefixes go in
	// several parts at once; after the retry they all widen to one bucket,
	// which is fetched once and whose record is found once.
	defer client.SetBucketPartSize(client.SetBucketPartSize(1))
	res, err = shrinking.Lookup(t.Context(), numbers...)
	if err != nil || len(res[0].Records) != 1 {
		t.Fatalf("lookup across a shrinking prefix: %+v, %v", res, err)
	}
	for _, r := range res[1:] {
		if len(r.Records) != 0 {
			t.Errorf("%s: %d records after its owner deleted them", r.Number, len(r.Records))
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sent) != 1 || sent[0] != 1 {
		t.Errorf("bucket counts after the retry = %v, want [1]", sent)
	}
}

func TestNoCredential(t *testing.T) {
	c, err := client.New(client.Config{Server: "http://127.0.0.1:1", StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.Lookup(ctx, "+14155550100"); !errors.Is(err, client.ErrNoCredential) {
		t.Errorf("Lookup: %v", err)
	}
	if err := c.Confirm(ctx, "123456"); !errors.Is(err, client.ErrNoPending) {
		t.Errorf("Confirm: %v", err)
	}
}

func TestPublishedState(t *testing.T) {
	inbox := sms.NewInbox()
	srv := startServer(t, inbox, directory.Config{})
	c := register(t, srv, inbox, t.TempDir(), "+14155550100", 0)
	exp := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	err := c.Publish(t.Context(), record.Record{App: "org.example.chat", Endpoint: "https://x.example/", Expires: exp},
		client.Access{Visibility: acl.Allowlist, Allow: []string{"+1 415 555 2671"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetACL(t.Context(), "org.example.chat", client.Access{Visibility: acl.Public, Deny: []string{"+12025550173"}}); err != nil {
		t.Fatal(err)
	}
	p, err := c.Published()
	if err != nil {
		t.Fatal(err)
	}
	r := p.Records["org.example.chat"]
	if r.Visibility != "public" || len(r.Allow) != 0 || len(r.Deny) != 1 || r.Deny[0] != "+12025550173" || !r.Expires.Equal(exp) {
		t.Errorf("published.json = %+v", r)
	}
	if err := c.Delete(t.Context(), "org.example.chat"); err != nil {
		t.Fatal(err)
	}
	if p, _ := c.Published(); len(p.Records) != 0 {
		t.Errorf("published.json after delete = %+v", p.Records)
	}
}
