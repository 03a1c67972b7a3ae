package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"

	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/threatmodel/disclose"
)

func cmdDisclose(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("disclose", "disclose [flags]", `
Reports what a directory discloses, for reviewers: registered owners and
records by visibility, the bucket sizes a lookup hides in, how long
enumerating a country's numbers takes under the evaluation budgets, and what
the data directory reveals with and without its key files. It writes
PREFIX.md and PREFIX.html (self-contained: inline CSS and SVG plots).

It only reads the data directory, and is safe while the server runs. The key
files are opened only with --with-keys, and nothing is decrypted into the
report.

--owner-state adds, from a client's state directory, who can see each of that
owner's records; --acl-old and --acl-new (files in the shape of the client's
published.json) add who gains and who loses visibility. Those two sections
show the owner's own contacts' numbers; nothing else in the report holds a
number.

The budgets and limits are the server's configuration, which the data
directory does not record: pass the values "blindex serve" runs with. The
flags have the same names as serve's, so the same BLINDEX_ environment
variables set both.`, stderr)
	data := fs.String("data", "blindex-data", "the server's data `directory` (read only)")
	out := fs.String("out", "blindex-disclosure", "output `prefix`: writes PREFIX.md and PREFIX.html")
	ownerState := fs.String("owner-state", "", "a client's state `directory`: adds who can see each of that owner's records")
	aclOld := fs.String("acl-old", "", "ACL `file` (published.json shape) before a change; needs --acl-new")
	aclNew := fs.String("acl-new", "", "ACL `file` (published.json shape) after a change; needs --acl-old")
	burst := fs.Int("budget-burst", disclose.DefaultBurst, "the server's evaluation burst per credential")
	perDay := fs.Int("budget-per-day", disclose.DefaultPerDay, "the server's evaluations per credential per day")
	ceiling := fs.Int("budget-global-per-second", disclose.DefaultGlobalPerSecond, "the server's evaluations per second across all callers, per process")
	verifyDay := fs.Int("limit-global-per-day", disclose.DefaultVerificationsDay, "the CA's verification starts per day, all clients")
	networkHour := fs.Int("limit-network-per-hour", disclose.DefaultNetworkPerHour, "the CA's verification starts per client network per hour")
	creds := fs.Int("credentials", disclose.DefaultCredentials, "credentials held by the many-credential attacker")
	country := fs.String("country", disclose.DefaultRegion, "CLDR `region` whose numbering space the enumeration figures use")
	samples := fs.Int("samples", disclose.DefaultSamples, "random national numbers tried per length to estimate the numbering space")
	minBucket := fs.Int("min-bucket-owners", disclose.DefaultMinBucketOwners, "the server's --min-bucket-owners")
	withKeys := fs.Bool("with-keys", false, "open the key files (in memory) to check them and to time what their holder can do")
	identity := fs.String("identity", "", "age identity `file` for --with-keys (default <data>/identity.age-key)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return errUsage
	}
	if (*aclOld == "") != (*aclNew == "") {
		return fmt.Errorf("--acl-old and --acl-new go together")
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"--budget-burst", *burst}, {"--budget-per-day", *perDay}, {"--budget-global-per-second", *ceiling},
		{"--limit-global-per-day", *verifyDay}, {"--limit-network-per-hour", *networkHour}, {"--credentials", *creds}, {"--samples", *samples}, {"--min-bucket-owners", *minBucket}} {
		if f.v < 1 {
			return fmt.Errorf("%s must be at least 1", f.name)
		}
	}
	if *out == "" {
		return fmt.Errorf("--out must not be empty")
	}
	r, err := disclose.Gather(ctx, disclose.Config{
		DataDir: *data, WithKeys: *withKeys, IdentityPath: *identity,
		MinBucketOwners:     *minBucket,
		Budget:              directory.Budget{Burst: *burst, PerDay: *perDay, GlobalPerSecond: *ceiling},
		VerificationsPerDay: *verifyDay, NetworkPerHour: *networkHour,
		Credentials: *creds, Region: *country, Samples: *samples,
		OwnerState: *ownerState, ACLOld: *aclOld, ACLNew: *aclNew,
	})
	if err != nil {
		return err
	}
	var md, html bytes.Buffer
	if err := r.WriteMarkdown(&md); err != nil {
		return err
	}
	if err := r.WriteHTML(&html); err != nil {
		return err
	}
	// The owner sections hold the owner's contacts: keep the files private.
	if err := os.WriteFile(*out+".md", md.Bytes(), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(*out+".html", html.Bytes(), 0o600); err != nil {
		return err
	}
	for _, s := range r.Summary() {
		fmt.Fprintln(stdout, "- "+s)
	}
	fmt.Fprintf(stdout, "wrote %s.md and %s.html\n", *out, *out)
	return nil
}
