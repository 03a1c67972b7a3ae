package disclose_test

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"blindex.dev/blindex/server/demo"
	"blindex.dev/blindex/threatmodel/disclose"
)

// runDemo plays the demo and returns the directory it leaves (the server's
// data directory and the clients' state directories sit under it).
func runDemo(t *testing.T) (root, data string) {
	t.Helper()
	res, err := demo.Run(t.Context(), io.Discard, true)
	if err != nil {
		t.Fatal(err)
	}
	root = filepath.Dir(res.DataDir)
	t.Cleanup(func() { os.RemoveAll(root) })
	return root, res.DataDir
}

// The demo registers Bob, Carol and Alice; only Bob publishes: a public
// chat record and a video record allowlisted to Carol, and then narrows the
// chat record to Carol too.
func TestDemoFigures(t *testing.T) {
	root, data := runDemo(t)
	r, err := disclose.Gather(t.Context(), disclose.Config{DataDir: data, Samples: 20_000})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"owners", r.Owners, 1},
		{"verified numbers", r.Verified, 3},
		{"holders", r.Holders, 3},
		{"holders on notice", r.OnNotice, 0},
		{"holders without records", r.PendingHolders, 2},
		{"public records", r.Public, 0},
		{"allowlist records", r.Allowlist, 2},
		{"nobody records", r.Nobody, 0},
		{"public owners", r.PublicOwners, 0},
		{"allow edges", r.AllowEdges, 2},
		{"allowlisted callers", r.AllowCallers, 1},
		{"allowlisting owners", r.AllowOwners, 1},
		{"deny entries", r.DenyEntries, 0},
		{"expired", r.Expired, 0},
		{"pending verifications", r.Verifications, 0},
		// Carol looked up Bob, and Bob's allowlists name her pseudonym; her
		// budget row is keyed by an HMAC under a server secret, so the
		// database alone does not link it to those lists.
		{"linked budgets", r.LinkedBudgets, 0},
		{"buckets", int(r.Anonymity.Buckets), 1},
		{"smallest bucket", r.Anonymity.Min, 1},
		{"1st percentile", r.Anonymity.P1, 1},
		{"5th percentile", r.Anonymity.P5, 1},
		{"median", r.Anonymity.Median, 1},
		{"non-empty buckets", r.Anonymity.NonEmpty, 1},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	if r.Opened != disclose.OpenedQuiescent {
		t.Errorf("opened %q, want %q (the demo's server has stopped)", r.Opened, disclose.OpenedQuiescent)
	}
	if !r.Database.IdentityInDir {
		t.Error("the demo keeps its identity in the data directory, and the report did not say so")
	}
	if r.Database.Keys != nil {
		t.Error("the key files were opened without WithKeys")
	}
	if len(r.OPRFPublicKey) != 32 {
		t.Errorf("OPRF public key: %d bytes", len(r.OPRFPublicKey))
	}
	tables := map[string]int64{}
	for _, tb := range r.Database.Tables {
		tables[tb.Name] = tb.Rows
		if !tb.Known {
			t.Errorf("table %s is not described", tb.Name)
		}
	}
	if tables["records"] != 2 || tables["holders"] != 3 || tables["acl_members"] != 2 {
		t.Errorf("table rows %v", tables)
	}

	md := render(t, r, (*disclose.Report).WriteMarkdown)
	for _, want := range []string{
		"a lookup hides its target among at least 1 owner",
		"labels a day",
		"The age identity is inside the data directory",
		"| `acl_members` | 2 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q", want)
		}
	}
	scanReport(t, r, demoNumbers, false)

	// Bob's own view: both records are Carol's alone.
	r, err = disclose.Gather(t.Context(), disclose.Config{DataDir: data, Samples: 1000, OwnerState: filepath.Join(root, "bob")})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Owner) != 2 {
		t.Fatalf("owner view %+v", r.Owner)
	}
	for _, o := range r.Owner {
		if o.Visibility != "allowlist" || o.Audience.Everyone || len(o.Audience.Numbers) != 1 || o.Audience.Numbers[0] != demo.Carol {
			t.Errorf("owner view of %s: %+v", o.App, o)
		}
	}
	scanReport(t, r, demoNumbers, true)
}

var demoNumbers = []string{demo.Bob, demo.Carol, demo.Alice, demo.Dave}

func render(t *testing.T, r *disclose.Report, write func(*disclose.Report, io.Writer) error) string {
	t.Helper()
	var buf bytes.Buffer
	if err := write(r, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}
