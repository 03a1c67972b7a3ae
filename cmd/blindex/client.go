package main

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/client"
	"blindex.dev/blindex/internal/contacts"
	"blindex.dev/blindex/record"
)

// clientFlags are the flags every client command takes.
type clientFlags struct {
	server, ca, state, region *string
	fed                       mapFlags // federation.go
	// Set by lookup's --trust-ca, --allow-unlogged and --min-bucket-owners.
	trust    []*x509.Certificate
	unlogged bool
	minCrowd int
}

func addClientFlags(fs *flag.FlagSet) clientFlags {
	return clientFlags{
		server: fs.String("server", "http://127.0.0.1:8390", "directory base `URL`"),
		ca:     fs.String("ca", "", "CA base `URL` for verify and renew (default: the --server's built-in CA)"),
		state:  fs.String("state", defaultStateDir(), "`directory` holding your credential and the directory's pinned key"),
		region: fs.String("region", "", "`region` (such as US or GB) for numbers written without +country code"),
		fed:    addMapFlags(fs, "route each number to the directory that holds it, instead of --server"),
	}
}

func (f clientFlags) client() (*client.Client, error) {
	if f.fed.given() {
		return f.home()
	}
	return client.New(client.Config{Server: *f.server, CA: *f.ca, StateDir: *f.state, DefaultRegion: *f.region,
		TrustRoots: f.trust, AllowUnlogged: f.unlogged, MinBucketOwners: f.minCrowd})
}

func cmdVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("verify", "verify start [--new-key] NUMBER | verify confirm CODE", `
Proves that you hold a phone number, in two steps:

  blindex verify start +14155550100   the directory texts a 6-digit code
  blindex verify confirm 123456       you send it back, and receive a
                                       credential for the number

The code is valid for 10 minutes and 5 tries. The credential and its key are
stored in --state; every other command uses them.

Each app (each --state) that proves a number holds it with its own key and
records; the latest SMS proof is the authority. When another key proves the
number later, this key goes on notice: its records are hidden until you
verify again, and it is retired after the directory's re-proof window
(blindex monitor tells you the deadline). Verifying again keeps this state's
key, and clears its notice. --new-key makes a new key instead: it puts the
old key, and any stolen copy of it, on notice, and publishes your records
again under the new key. Use it after losing a device, or when the directory
retired or revoked this key.`, stderr)
	cf := addClientFlags(fs)
	asJSON := fs.Bool("json", false, "print the result as JSON: the code's expiry after start, the credential's number and expiry after confirm")
	newKey := fs.Bool("new-key", false, "with start: make a new key at confirm, even if this state holds one for the number")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 || (fs.Arg(0) != "start" && fs.Arg(0) != "confirm") {
		fs.Usage()
		return errUsage
	}
	c, err := cf.verifier()
	if err != nil {
		return err
	}
	if *newKey && fs.Arg(0) != "start" {
		return errors.New("--new-key goes with verify start")
	}
	if fs.Arg(0) == "start" {
		verify := c.Verify
		if *newKey {
			verify = c.VerifyNewKey
		}
		expires, err := verify(ctx, fs.Arg(1))
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, struct {
				CodeExpires time.Time `json:"code_expires"`
			}{expires})
		}
		fmt.Fprintf(stdout, "A code is on its way by SMS. It expires at %s.\nNext: blindex verify confirm CODE\n",
			expires.Local().Format(time.Kitchen))
		return nil
	}
	if err := c.Confirm(ctx, fs.Arg(1)); err != nil {
		return err
	}
	n, exp, err := c.Identity()
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, credentialJSON{n, exp})
	}
	fmt.Fprintf(stdout, "Verified. Your credential is valid until %s.\nNext: blindex publish --app APP --endpoint URI --visibility public\n",
		exp.Local().Format(time.DateOnly))
	return nil
}

// credentialJSON is the --json form of a stored credential.
type credentialJSON struct {
	Number  string    `json:"number"`
	Expires time.Time `json:"expires"`
}

// accessFlags are the ACL flags of publish and acl.
type accessFlags struct {
	visibility          *string
	allow, deny         *stringList // repeatable, and comma-separated
	allowFile, denyFile *string
}

func addAccessFlags(fs *flag.FlagSet) accessFlags {
	f := accessFlags{
		visibility: fs.String("visibility", "", "who may see the record: public, allowlist or nobody (required)"),
		allow:      &stringList{},
		allowFile:  fs.String("allow-file", "", "CSV or vCard `file` of contacts to allow"),
		deny:       &stringList{},
		denyFile:   fs.String("deny-file", "", "CSV or vCard `file` of contacts to deny"),
	}
	fs.Var(f.allow, "allow", "comma-separated `numbers` that may see the record (with --visibility allowlist); repeat to add more")
	fs.Var(f.deny, "deny", "comma-separated `numbers` that may never see the record; repeat to add more")
	return f
}

func (f accessFlags) access() (client.Access, error) {
	if *f.visibility == "" {
		return client.Access{}, errors.New("--visibility is required: public, allowlist or nobody")
	}
	v, err := acl.ParseVisibility(*f.visibility)
	if err != nil {
		return client.Access{}, fmt.Errorf("--visibility: %w (want public, allowlist or nobody)", err)
	}
	allow, err := numbersFrom(strings.Join(*f.allow, ","), *f.allowFile)
	if err != nil {
		return client.Access{}, err
	}
	deny, err := numbersFrom(strings.Join(*f.deny, ","), *f.denyFile)
	if err != nil {
		return client.Access{}, err
	}
	if len(allow) > 0 && v != acl.Allowlist {
		return client.Access{}, errors.New("--allow needs --visibility allowlist")
	}
	return client.Access{Visibility: v, Allow: allow, Deny: deny}, nil
}

func numbersFrom(list, file string) ([]string, error) {
	var out []string
	for _, n := range strings.Split(list, ",") {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		ns, err := contacts.Parse(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		out = append(out, ns...)
	}
	return out, nil
}

func cmdPublish(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("publish", "publish --app APP --endpoint URI --visibility V [flags]", `
Publishes your record for one app under your verified number, or replaces it.
The record is encrypted on this machine; the directory stores only the
ciphertext and the access list. Allowed and denied numbers are turned into
pseudonyms here, through blinded evaluation: the directory never sees them.

Example:
  blindex publish --app org.example.chat --endpoint https://chat.example.org/u/bob \
      --visibility allowlist --allow +14155552671,+12025550173`, stderr)
	cf := addClientFlags(fs)
	af := addAccessFlags(fs)
	app := fs.String("app", "", "reverse-DNS app `id`, such as org.example.chat (required)")
	endpoint := fs.String("endpoint", "", "`URI` where callers reach you on this app (required)")
	pubKey := fs.String("public-key", "", "optional app-level public key, `base64`")
	priority := fs.Int("priority", 0, "preference among your apps, 0 to 65535, lower first")
	ttl := fs.Duration("expires", 30*24*time.Hour, "how long the record stays valid")
	asJSON := fs.Bool("json", false, "print what was published as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 || *app == "" || *endpoint == "" {
		fs.Usage()
		return errUsage
	}
	access, err := af.access()
	if err != nil {
		return err
	}
	var pk []byte
	if *pubKey != "" {
		if pk, err = base64.StdEncoding.DecodeString(*pubKey); err != nil {
			return errors.New("--public-key must be base64")
		}
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	r := record.Record{App: *app, Endpoint: *endpoint, PublicKey: pk, Priority: *priority,
		Expires: time.Now().Add(*ttl).UTC().Truncate(time.Second)}
	if err := c.Publish(ctx, r, access); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, struct {
			App        string    `json:"app"`
			Visibility string    `json:"visibility"`
			Allowed    int       `json:"allowed"`
			Denied     int       `json:"denied"`
			Expires    time.Time `json:"expires"`
		}{*app, access.Visibility.String(), len(access.Allow), len(access.Deny), r.Expires})
	}
	fmt.Fprintf(stdout, "Published %s (%s", *app, access.Visibility)
	if n := len(access.Allow); n > 0 {
		fmt.Fprintf(stdout, ", %d allowed", n)
	}
	if n := len(access.Deny); n > 0 {
		fmt.Fprintf(stdout, ", %d denied", n)
	}
	fmt.Fprintf(stdout, "), valid until %s.\n", r.Expires.Local().Format(time.DateOnly))
	return nil
}

func cmdACL(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("acl", "acl --app APP --visibility V [--allow NUMBERS] [--allow-file FILE] [--deny ...]", `
Replaces who may see your record for one app, without republishing it.
Visibility is public (any caller with a credential), allowlist (only the
numbers you allow) or nobody. A denied number never sees the record, even if
it is public. Contacts files may be CSV or vCard. To a caller you do not
allow, your number looks exactly like one that was never registered.`, stderr)
	cf := addClientFlags(fs)
	af := addAccessFlags(fs)
	app := fs.String("app", "", "reverse-DNS app `id` of the record (required)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 || *app == "" {
		fs.Usage()
		return errUsage
	}
	access, err := af.access()
	if err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	if err := c.SetACL(ctx, *app, access); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Access for %s is now %s (%d allowed, %d denied).\n", *app, access.Visibility, len(access.Allow), len(access.Deny))
	return nil
}

func cmdUnpublish(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("unpublish", "unpublish --app APP", `
Deletes your record for one app from the directory.`, stderr)
	cf := addClientFlags(fs)
	app := fs.String("app", "", "reverse-DNS app `id` of the record (required)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 || *app == "" {
		fs.Usage()
		return errUsage
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	if err := c.Delete(ctx, *app); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Deleted your record for %s.\n", *app)
	return nil
}

func cmdLookup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("lookup", "lookup [--file CONTACTS] [--json] NUMBER...", `
Looks numbers up. The numbers are blinded on this machine: the directory
evaluates them without seeing them, proves it used its published key, and then
returns whole buckets of records, of which this machine keeps and decrypts its
own. "nothing" means not registered, or not shared with you: the directory's
answer is the same for both, by design.

Every record is checked here, not taken on the directory's word: its
publisher signed it with a key that a CA you trust certified for that number,
and the log promised to hold that credential, so the owner's monitor sees it.
By default you trust the CAs the directory published when it was first used;
--trust-ca replaces them with the given PEM root files. A record that fails a
check is dropped as if absent, and --json counts the drops per number.

Nor is the bucket size taken on the directory's word: the buckets must hold at
least --min-bucket-owners owners on average, by the owner count the
directory's log key signs (which "blindex log verify" holds against the log).
If the directory asks for smaller buckets, lookup fetches wider ones, or
refuses. Single buckets scatter around that mean ("blindex disclose" shows
how far).`, stderr)
	cf := addClientFlags(fs)
	file := fs.String("file", "", "CSV or vCard `file` of contacts to look up as well")
	asJSON := fs.Bool("json", false, "print results as JSON, with each record's CA fingerprint and the drops per number")
	trust := fs.String("trust-ca", "", "comma-separated PEM `files` of the only CA roots whose records to accept")
	unlogged := fs.Bool("allow-unlogged", false, "also accept records whose credential has no valid log promise (not recommended)")
	minCrowd := fs.Int("min-bucket-owners", client.DefaultMinBucketOwners, "the fewest owners per bucket to accept, by the signed owner count")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *trust != "" {
		roots, err := loadRootFiles(*trust)
		if err != nil {
			return err
		}
		if len(roots) == 0 {
			return errors.New("--trust-ca: no root certificate given")
		}
		cf.trust = roots
	}
	cf.unlogged = *unlogged
	if *minCrowd < 1 {
		return errors.New("--min-bucket-owners must be at least 1")
	}
	cf.minCrowd = *minCrowd
	numbers, err := numbersFrom("", *file)
	if err != nil {
		return err
	}
	numbers = append(fs.Args(), numbers...)
	if len(numbers) == 0 {
		fs.Usage()
		return errUsage
	}
	results, err := cf.lookup(ctx, numbers)
	if results == nil {
		return err
	}
	lookupErr := err // with --map, some directories may have answered
	if lookupErr == nil && !anyLookedUp(results) {
		lookupErr = errors.New("lookup: no valid number to look up")
	}
	if *asJSON {
		// A record's fields, then the CA that vouched for it.
		type jsonRecord struct {
			record.Record
			CA     string `json:"ca"`
			Logged bool   `json:"logged"`
		}
		type jsonResult struct {
			Number  string         `json:"number"`
			E164    string         `json:"e164,omitempty"`
			Records []jsonRecord   `json:"records"`
			Dropped map[string]int `json:"dropped"`
			Error   string         `json:"error,omitempty"`
		}
		out := make([]jsonResult, len(results))
		for i, r := range results {
			out[i] = jsonResult{Number: r.Number, E164: r.E164, Records: []jsonRecord{}, Dropped: r.Dropped}
			for j, rec := range r.Records {
				out[i].Records = append(out[i].Records, jsonRecord{rec, client.CAFingerprint(r.Vouched[j].Root), r.Vouched[j].Logged})
			}
			if out[i].Dropped == nil {
				out[i].Dropped = map[string]int{}
			}
			if r.Err != nil {
				out[i].Error = r.Err.Error()
			}
		}
		if err := printJSON(stdout, out); err != nil {
			return err
		}
		return lookupErr
	}
	for _, r := range results {
		switch {
		case r.Err != nil:
			fmt.Fprintf(stderr, "%s: %v\n", r.Number, r.Err)
		case len(r.Records) == 0:
			fmt.Fprintf(stdout, "%s: nothing (not registered, or not shared with you)\n", r.E164)
		default:
			fmt.Fprintf(stdout, "%s:\n", r.E164)
			for j, rec := range r.Records {
				fmt.Fprintf(stdout, "  %-24s %s (priority %d, until %s; CA %s)\n", rec.App, rec.Endpoint, rec.Priority,
					rec.Expires.Local().Format(time.DateOnly), caName(r.Vouched[j].Root))
			}
		}
		if n := dropped(r.Dropped); n > 0 {
			fmt.Fprintf(stderr, "%s: %d record(s) failed their checks and were dropped (%s)\n", r.E164, n, dropList(r.Dropped))
		}
	}
	return lookupErr
}

// caName names a CA for people: its subject, and the start of the
// fingerprint that --json gives in full.
func caName(root *x509.Certificate) string {
	return fmt.Sprintf("%q %s", root.Subject.String(), client.CAFingerprint(root)[:16])
}

func dropped(m map[string]int) int {
	n := 0
	for _, k := range m {
		n += k
	}
	return n
}

// dropList lists drop counts by reason, sorted.
func dropList(m map[string]int) string {
	var parts []string
	for _, reason := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s: %d", reason, m[reason]))
	}
	return strings.Join(parts, ", ")
}

// anyLookedUp reports whether at least one number was valid and looked up.
func anyLookedUp(results []client.Result) bool {
	for _, r := range results {
		if r.Err == nil {
			return true
		}
	}
	return false
}

func cmdWhoami(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("whoami", "whoami [--json]", `
Shows the number and validity of your stored credential. It reads --state
only, and sends nothing.`, stderr)
	state := fs.String("state", defaultStateDir(), "`directory` holding your credential and the directory's pinned key")
	asJSON := fs.Bool("json", false, "print the credential's number and expiry as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return errUsage
	}
	n, exp, err := client.StoredIdentity(*state)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, credentialJSON{n, exp})
	}
	fmt.Fprintf(stdout, "%s, credential valid until %s\n", n, exp.Local().Format(time.DateTime))
	return nil
}

func cmdRenew(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("renew", "renew", `
Asks the CA for a fresh credential for your number and key while the current
one is still valid: no SMS code is needed. Renew before "whoami" shows the
expiry; an expired credential needs "blindex verify" again.`, stderr)
	cf := addClientFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	if err := c.Renew(ctx); err != nil {
		return err
	}
	_, exp, err := c.Identity()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Renewed. Your credential is valid until %s.\n", exp.Local().Format(time.DateOnly))
	return nil
}

func cmdRevoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("revoke", "revoke", `
Tells the directory to refuse your credential's key from now on, for example
after losing a device that held it. To use the directory again, verify the
number again: the directory then retires the records published under the
old key, and you publish afresh.`, stderr)
	cf := addClientFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	if err := c.Revoke(ctx); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "Revoked. The directory refuses this credential from now on.")
	return nil
}
