// Package privacyharness checks blindex's privacy invariants against a real
// server on loopback, after a scripted multi-user scenario:
//
//   - every byte the server wrote (database, WAL, key files, log, metrics,
//     observation transcript) holds no plaintext number, in five spellings;
//   - the bucket answer for a record the caller may not see (allowlisted to
//     others, denied, hidden from everyone) is byte-identical to the answer
//     with the record absent;
//   - the store does the same work (rows touched) for a caller who is
//     denied as for one who is allowed.
//
// Tests of other features run it with their own server settings (Options),
// so each feature is checked against the same invariants.
package privacyharness

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/client"
	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/internal/httpsig"
	"blindex.dev/blindex/internal/sms"
	"blindex.dev/blindex/oprf"
	"blindex.dev/blindex/record"
	"blindex.dev/blindex/server"
	"blindex.dev/blindex/threatmodel/privacyscan"
)

// Options adjust the server the harness runs.
type Options struct {
	// Configure, if set, changes the server configuration before start.
	Configure func(*server.Config)
	// Fillers is how many other public owners share the directory, so that
	// buckets are real subsets. Default 40.
	Fillers int
}

// Result is what the harness observed, for further checks.
type Result struct {
	DataDir    string
	Log        []byte
	Metrics    []byte
	Transcript []byte
	Numbers    []string // every number the scenario used
}

// The scenario's cast (fictional, valid numbers).
const (
	Owner    = "+14155550100" // publishes, and changes who may see
	Allowed  = "+14155552671" // on the owner's allowlist
	Denied   = "+12025550173" // never admitted
	Absent   = "+12015550123" // never registers
	minOwner = 4
)

// rowCounter counts the rows Buckets returns to the server core.
type rowCounter struct {
	directory.Store
	rows atomic.Int64
}

func (c *rowCounter) Buckets(ctx context.Context, epoch int, r []directory.BucketRange, p acl.Pseudonym, now time.Time) ([][]directory.Candidate, error) {
	out, err := c.Store.Buckets(ctx, epoch, r, p, now)
	for _, b := range out {
		c.rows.Add(int64(len(b)))
	}
	return out, err
}

// Run plays the scenario and checks the invariants; failures are reported
// through t.
func Run(t *testing.T, opts Options) *Result {
	t.Helper()
	if opts.Fillers == 0 {
		opts.Fillers = 40
	}
	ctx := t.Context()
	dir := t.TempDir()
	logPath := filepath.Join(dir, "server.log")
	transcriptPath := filepath.Join(dir, "transcript.jsonl")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	transcript, err := os.Create(transcriptPath)
	if err != nil {
		t.Fatal(err)
	}
	defer transcript.Close()

	ph := sms.NewInbox()
	counter := &rowCounter{}
	cfg := server.Config{
		DataDir:   filepath.Join(dir, "server"),
		Addr:      "127.0.0.1:0",
		SMS:       ph,
		Logger:    slog.New(slog.NewJSONHandler(logFile, &slog.HandlerOptions{Level: slog.LevelDebug})),
		WrapStore: func(s directory.Store) directory.Store { counter.Store = s; return counter },
	}
	cfg.Directory.MinBucketOwners = minOwner
	cfg.Directory.Observe = directory.NewTranscript(transcript)
	cfg.CA.Limits.NetworkPerHour = 10_000 // one test client registers everyone
	if opts.Configure != nil {
		opts.Configure(&cfg)
	}
	srv, err := server.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	res := &Result{DataDir: cfg.DataDir, Numbers: []string{Owner, Allowed, Denied, Absent}}

	register := func(number string) *client.Client {
		c, err := client.New(client.Config{Server: srv.URL(), StateDir: filepath.Join(dir, "clients", number)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Verify(ctx, number); err != nil {
			t.Fatalf("verify %s: %v", number, err)
		}
		if err := c.Confirm(ctx, ph.Code(number)); err != nil {
			t.Fatalf("confirm %s: %v", number, err)
		}
		return c
	}
	expires := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
	rec := func(app string) record.Record {
		return record.Record{App: app, Endpoint: "https://" + app + "/u", Expires: expires}
	}
	for i := range opts.Fillers {
		n := fmt.Sprintf("+1415555%04d", 2000+i)
		res.Numbers = append(res.Numbers, n)
		if err := register(n).Publish(ctx, rec("org.example.chat"), client.Access{Visibility: acl.Public}); err != nil {
			t.Fatal(err)
		}
	}
	owner, allowed, denied := register(Owner), register(Allowed), register(Denied)
	// The numbers' clients look each other up, as apps do.
	for _, c := range []*client.Client{allowed, denied} {
		if _, err := c.Lookup(ctx, Owner, Absent); err != nil {
			t.Fatal(err)
		}
	}

	// Raw bucket answers for the owner's bucket, as each caller.
	y, err := oprf.NewEvaluator(srv.Node.OPRFKey).FullEvaluate([]byte("blindex lookup v1"), []byte(Owner))
	if err != nil {
		t.Fatal(err)
	}
	deniedSig := rawSigner(t, denied)
	allowedSig := rawSigner(t, allowed)
	cfgResp := get(t, srv.URL()+api.PathConfig)
	var conf api.Config
	if err := json.Unmarshal(cfgResp, &conf); err != nil {
		t.Fatal(err)
	}
	// One bit wider than the server's prefix, so that the owner's bucket
	// holds some of the fillers for certain (40 public owners in four
	// buckets, not eight: empty with probability (3/4)^40, not (7/8)^40).
	bucket := func(s *rawSigned) []byte {
		return s.bucket(t, srv.URL(), y, max(conf.PrefixBits-1, 0), conf.PrefixBits)
	}
	absent := bucket(deniedSig)
	if !bytes.Contains(absent, []byte(`"records":[{`)) {
		t.Fatalf("the owner's bucket holds no other owner; the comparison would prove nothing: %s", absent)
	}
	for _, a := range []client.Access{
		{Visibility: acl.Allowlist, Allow: []string{Allowed}},                                 // denied: not on the list
		{Visibility: acl.Public, Deny: []string{Denied}},                                      // filtered: on the denylist
		{Visibility: acl.Nobody},                                                              // hidden from everyone
		{Visibility: acl.Allowlist, Allow: []string{Allowed, Denied}, Deny: []string{Denied}}, // deny beats allow
	} {
		if err := owner.Publish(ctx, rec("org.example.chat"), a); err != nil {
			t.Fatal(err)
		}
		if got := bucket(deniedSig); !bytes.Equal(got, absent) {
			t.Errorf("access %v: the denied caller's answer differs from the answer with the record absent", a)
		}
		if a.Visibility == acl.Allowlist && len(a.Deny) == 0 {
			counter.rows.Store(0)
			bucket(deniedSig)
			deniedRows := counter.rows.Swap(0)
			if got := bucket(allowedSig); bytes.Equal(got, absent) {
				t.Errorf("the allowed caller does not see the record: the comparison would prove nothing")
			}
			if allowedRows := counter.rows.Load(); allowedRows != deniedRows {
				t.Errorf("store work differs: %d rows for the denied caller, %d for the allowed one", deniedRows, allowedRows)
			}
		}
	}
	// Through the client library too: the denied caller gets nothing for the
	// owner, exactly as for an absent number.
	results, err := denied.Lookup(ctx, Owner, Absent)
	if err != nil {
		t.Fatal(err)
	}
	if len(results[0].Records) != 0 || len(results[1].Records) != 0 {
		t.Errorf("the denied caller saw records: %+v", results)
	}

	res.Metrics = get(t, srv.URL()+"/metrics")
	srv.Close()
	logFile.Sync()
	res.Log, _ = os.ReadFile(logPath)
	res.Transcript, _ = os.ReadFile(transcriptPath)
	if !bytes.Contains(res.Transcript, []byte(`"endpoint":"buckets"`)) || !bytes.Contains(res.Log, []byte("credential issued")) {
		t.Fatalf("the transcript or log is not from this scenario")
	}

	sc, err := privacyscan.New(res.Numbers...)
	if err != nil {
		t.Fatal(err)
	}
	found, files, err := sc.Dir(res.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if files < 4 {
		t.Fatalf("scanned only %d files", files)
	}
	found = append(found, sc.Bytes("server log", res.Log)...)
	found = append(found, sc.Bytes("metrics", res.Metrics)...)
	found = append(found, sc.Bytes("transcript", res.Transcript)...)
	for _, f := range found {
		t.Error(f)
	}
	return res
}

// rawSigned signs raw requests.
type rawSigned struct {
	key  *ecdsa.PrivateKey
	cert []byte
}

// rawSigner signs raw requests with a registered client's own credential.
func rawSigner(t *testing.T, c *client.Client) *rawSigned {
	t.Helper()
	chain, key, err := c.Chain()
	if err != nil {
		t.Fatal(err)
	}
	return &rawSigned{key: key, cert: chain[0]}
}

func (s *rawSigned) post(t *testing.T, url string, body any) (int, []byte) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if err := httpsig.Sign(req, b, s.key, s.cert, time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// bucket fetches y's bucket at prefixBits, with the server at serverBits:
// it evaluates first as many elements as the fetch costs.
func (s *rawSigned) bucket(t *testing.T, base string, y []byte, prefixBits, serverBits int) []byte {
	t.Helper()
	inputs := make([][]byte, 1<<(serverBits-prefixBits))
	for i := range inputs {
		inputs[i] = []byte(Absent)
	}
	_, blinded, _ := oprf.Blind(inputs)
	if code, b := s.post(t, base+api.PathEvaluate, api.EvaluateRequest{Elements: blinded}); code != 200 {
		t.Fatalf("evaluate: %d %s", code, b)
	}
	idx := oprf.Index(y)
	var p uint32
	if prefixBits > 0 {
		p = binary.BigEndian.Uint32(idx[:4]) >> (32 - prefixBits)
	}
	code, b := s.post(t, base+api.PathBuckets, api.BucketsRequest{PrefixBits: prefixBits, Prefixes: []uint32{p}})
	if code != 200 {
		t.Fatalf("buckets: %d %s", code, b)
	}
	return b
}

func get(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}
