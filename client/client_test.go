package client_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/client"
	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/internal/serve"
	"blindex.dev/blindex/record"
)

func startServer(t *testing.T, inbox *phone, cfg directory.Config) *serve.Running {
	t.Helper()
	srv, err := serve.Start(t.Context(), serve.Config{DataDir: t.TempDir(), Addr: "127.0.0.1:0", Sender: inbox, Directory: cfg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

func register(t *testing.T, srv *serve.Running, inbox *phone, dir, number string, maxBits int) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{Server: srv.URL(), StateDir: dir, MaxPrefixBits: maxBits})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Verify(t.Context(), number); err != nil {
		t.Fatal(err)
	}
	if err := c.Confirm(t.Context(), inbox.code(number)); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestKeyChanged(t *testing.T) {
	inbox := &phone{codes: map[string]string{}}
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

func TestPrefixTooLong(t *testing.T) {
	inbox := &phone{codes: map[string]string{}}
	srv := startServer(t, inbox, directory.Config{MinBucketOwners: 1})
	numbers := []string{"+14155550100", "+14155550101", "+14155550102", "+14155550103"}
	var c *client.Client
	for i, n := range numbers {
		c = register(t, srv, inbox, t.TempDir(), n, 1)
		err := c.Publish(t.Context(), record.Record{App: "org.example.chat", Endpoint: "https://x.example/" + n,
			Expires: time.Now().Add(time.Hour).UTC().Truncate(time.Second)}, client.Access{Visibility: acl.Public})
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	// 4 owners, 1 per bucket: the server asks for 2-bit prefixes.
	if _, err := c.Lookup(t.Context(), numbers[0]); !errors.Is(err, client.ErrPrefixTooLong) {
		t.Errorf("lookup with MaxPrefixBits 1: %v, want ErrPrefixTooLong", err)
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
