package client_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/client"
	"blindex.dev/blindex/internal/sms"
	"blindex.dev/blindex/record"
	"blindex.dev/blindex/server"
)

// Example plays the whole story: Bob verifies his number and publishes a
// record that only Carol may see; Carol finds it, and Alice finds nothing,
// exactly as for a number nobody registered.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "blindex-example-")
	defer os.RemoveAll(dir)

	// A throwaway directory server on a loopback port.
	inbox := sms.NewInbox() // the phones that receive the codes
	srv, err := server.Start(ctx, server.Config{DataDir: filepath.Join(dir, "server"), Addr: "127.0.0.1:0", SMS: inbox})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	// Each app keeps its credential in its own state directory.
	register := func(name, number string) *client.Client {
		c, err := client.New(client.Config{Server: srv.URL(), StateDir: filepath.Join(dir, name)})
		if err != nil {
			log.Fatal(err)
		}
		if _, err := c.Verify(ctx, number); err != nil {
			log.Fatal(err)
		}
		if err := c.Confirm(ctx, inbox.Code(number)); err != nil {
			log.Fatal(err)
		}
		return c
	}
	bob := register("bob", "+14155550100")
	carol := register("carol", "+14155552671")
	alice := register("alice", "+12025550173")

	// Carol's number becomes a pseudonym on Bob's side, through blinded
	// evaluation; the directory never receives it.
	err = bob.Publish(ctx, record.Record{
		App:      "org.example.chat",
		Endpoint: "https://chat.example.org/u/bob",
		Expires:  time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second),
	}, client.Access{Visibility: acl.Allowlist, Allow: []string{"+14155552671"}})
	if err != nil {
		log.Fatal(err)
	}

	for _, caller := range []struct {
		name string
		c    *client.Client
	}{{"Carol", carol}, {"Alice", alice}} {
		results, err := caller.c.Lookup(ctx, "+14155550100", "+12015550123")
		if err != nil {
			log.Fatal(err)
		}
		for _, r := range results {
			if len(r.Records) == 0 {
				fmt.Printf("%s: %s -> nothing\n", caller.name, r.E164)
			}
			for _, rec := range r.Records {
				fmt.Printf("%s: %s -> %s %s\n", caller.name, r.E164, rec.App, rec.Endpoint)
			}
		}
	}
	// Output:
	// Carol: +14155550100 -> org.example.chat https://chat.example.org/u/bob
	// Carol: +12015550123 -> nothing
	// Alice: +14155550100 -> nothing
	// Alice: +12015550123 -> nothing
}
