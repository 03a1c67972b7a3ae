// Package demo plays the blindex story against a real server on a loopback
// port over a throwaway SQLite directory, and prints who saw what and what
// the server observed.
package demo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/client"
	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/internal/sms"
	"blindex.dev/blindex/record"
	"blindex.dev/blindex/server"
)

// The cast. These numbers are valid (libphonenumber) but fictional: the
// 555-01xx and 555-2671 style US numbers are reserved for drama.
const (
	Bob   = "+14155550100"
	Carol = "+14155552671"
	Alice = "+12025550173"
	Dave  = "+12015550123" // never registers
)

// recorder keeps the bodies of bucket-fetch answers, to compare them.
type recorder struct {
	mu   sync.Mutex
	last []byte
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil || req.URL.Path != api.PathBuckets {
		return resp, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.last = b
	r.mu.Unlock()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp, nil
}

// Result is what the story produced, for tests.
type Result struct {
	DataDir      string
	Observations []directory.Observation
	Seen         map[string]map[string][]string // caller -> number -> apps
	SameBytes    bool                           // Alice's answers for Bob and Dave were identical
}

// Run plays the story, writing a narration to w. With keep set the data
// directory is left in place (and named in the output).
func Run(ctx context.Context, w io.Writer, keep bool) (*Result, error) {
	dir, err := os.MkdirTemp("", "blindex-demo-")
	if err != nil {
		return nil, err
	}
	if !keep {
		defer os.RemoveAll(dir)
	}
	res := &Result{DataDir: filepath.Join(dir, "server"), Seen: map[string]map[string][]string{}}
	var obsMu sync.Mutex
	ph := sms.NewInbox() // the cast's phones
	srv, err := server.Start(ctx, server.Config{
		DataDir: res.DataDir,
		Addr:    "127.0.0.1:0",
		SMS:     ph,
		Directory: directory.Config{Observe: func(o directory.Observation) {
			obsMu.Lock()
			res.Observations = append(res.Observations, o)
			obsMu.Unlock()
		}},
	})
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	fmt.Fprintf(w, "blindex demo: a directory server is listening on %s over %s\n\n", srv.URL(), res.DataDir)

	rec := &recorder{}
	clients := map[string]*client.Client{}
	names := map[string]string{Bob: "Bob", Carol: "Carol", Alice: "Alice", Dave: "Dave (never registered)"}
	for _, n := range []string{Bob, Carol, Alice} {
		c, err := client.New(client.Config{
			Server:     srv.URL(),
			StateDir:   filepath.Join(dir, strings.ToLower(names[n])),
			HTTPClient: &http.Client{Transport: rec, Timeout: 30 * time.Second},
		})
		if err != nil {
			return nil, err
		}
		if _, err := c.Verify(ctx, n); err != nil {
			return nil, fmt.Errorf("%s: verify: %w", names[n], err)
		}
		if err := c.Confirm(ctx, ph.Code(n)); err != nil {
			return nil, fmt.Errorf("%s: confirm: %w", names[n], err)
		}
		clients[n] = c
		fmt.Fprintf(w, "%-6s %s proved the number by SMS code and holds a credential for it\n", names[n], n)
	}

	expires := time.Now().Add(30 * 24 * time.Hour).UTC().Truncate(time.Second)
	bob := clients[Bob]
	if err := bob.Publish(ctx, record.Record{App: "org.example.chat", Endpoint: "https://chat.example.org/u/bob", Expires: expires},
		client.Access{Visibility: acl.Public}); err != nil {
		return nil, fmt.Errorf("bob: publish: %w", err)
	}
	if err := bob.Publish(ctx, record.Record{App: "org.example.video", Endpoint: "sip:bob@video.example.org", Priority: 1, Expires: expires},
		client.Access{Visibility: acl.Allowlist, Allow: []string{Carol}}); err != nil {
		return nil, fmt.Errorf("bob: publish: %w", err)
	}
	fmt.Fprintf(w, "\nBob    published org.example.chat  (public)\n")
	fmt.Fprintf(w, "Bob    published org.example.video (allowlist: Carol, sent as a pseudonym, not her number)\n\n")

	lookup := func(who string) error {
		obsMu.Lock()
		res.Observations = res.Observations[:0]
		obsMu.Unlock()
		results, err := clients[who].Lookup(ctx, Bob, Dave)
		if err != nil {
			return fmt.Errorf("%s: lookup: %w", names[who], err)
		}
		res.Seen[names[who]] = map[string][]string{}
		for _, r := range results {
			var apps []string
			for _, rec := range r.Records {
				apps = append(apps, rec.App+" "+rec.Endpoint)
			}
			res.Seen[names[who]][r.E164] = apps
			fmt.Fprintf(w, "%-6s looks up %-24s -> %s\n", names[who], names[r.E164], describe(apps))
		}
		obsMu.Lock()
		for _, o := range res.Observations {
			fmt.Fprintf(w, "         server observed: %s\n", describeObservation(o))
		}
		obsMu.Unlock()
		return nil
	}
	if err := lookup(Carol); err != nil {
		return nil, err
	}
	if err := lookup(Alice); err != nil {
		return nil, err
	}

	fmt.Fprintf(w, "\nBob    narrows org.example.chat to an allowlist of Carol\n")
	if err := bob.SetACL(ctx, "org.example.chat", client.Access{Visibility: acl.Allowlist, Allow: []string{Carol}}); err != nil {
		return nil, fmt.Errorf("bob: acl: %w", err)
	}
	var answers [2][]byte
	for i, n := range []string{Bob, Dave} {
		results, err := clients[Alice].Lookup(ctx, n)
		if err != nil {
			return nil, err
		}
		answers[i] = rec.last
		var apps []string
		for _, r := range results[0].Records {
			apps = append(apps, r.App)
		}
		fmt.Fprintf(w, "Alice  looks up %-24s -> %s; server's bucket answer sha256 %x\n",
			names[n], describe(apps), sha256.Sum256(answers[i]))
	}
	res.SameBytes = bytes.Equal(answers[0], answers[1])
	if res.SameBytes {
		fmt.Fprintf(w, "       the two answers are byte-identical: Alice cannot tell \"denied\" from \"not registered\"\n")
	} else {
		fmt.Fprintf(w, "       the two answers DIFFER\n")
	}
	fmt.Fprintf(w, "\nThe server never received a looked-up number: it saw blinded elements and bucket numbers.\n")
	fmt.Fprintf(w, "With this few owners the whole directory is one bucket; as owners join, the bucket count\n"+
		"grows so that buckets keep 16 owners on average, and a lookup hides among them.\n")
	if keep {
		fmt.Fprintf(w, "Data directory kept at %s\n", res.DataDir)
	}
	return res, nil
}

func describe(apps []string) string {
	if len(apps) == 0 {
		return "nothing (not registered, or not shared with this caller)"
	}
	return strings.Join(apps, ", ")
}

func describeObservation(o directory.Observation) string {
	switch o.Endpoint {
	case "evaluate":
		return fmt.Sprintf("caller %s evaluated %d blinded element(s)", o.Caller, o.Count)
	case "buckets":
		return fmt.Sprintf("caller %s fetched %d bucket(s) %v of %d", o.Caller, o.Count, o.Prefixes, o.Buckets())
	default:
		return fmt.Sprintf("caller %s: %s", o.Caller, o.Endpoint)
	}
}
