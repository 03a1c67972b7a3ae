package translog_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/torchwood"
	"github.com/gorilla/mux"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/translog"
)

// memStorage keeps a log in memory: the real stores are tested against the
// same contract in directory/storetest.
type memStorage struct {
	mu      sync.Mutex
	entries [][]byte
	hashes  []tlog.Hash
	cp      []byte
	cpSize  int64
}

func (m *memStorage) AppendLog(_ context.Context, entries ...[]byte) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	first := int64(len(m.entries))
	for _, e := range entries {
		hs, err := translog.AppendHashes(int64(len(m.entries)), e, m.read)
		if err != nil {
			return 0, err
		}
		m.entries = append(m.entries, e)
		m.hashes = append(m.hashes, hs...)
	}
	return first, nil
}

func (m *memStorage) read(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x >= int64(len(m.hashes)) {
			return nil, fmt.Errorf("hash %d missing", x)
		}
		out[i] = m.hashes[x]
	}
	return out, nil
}

func (m *memStorage) LogTree(context.Context) (tlog.Tree, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := int64(len(m.entries))
	if n == 0 {
		return tlog.Tree{}, nil
	}
	h, err := tlog.TreeHash(n, tlog.HashReaderFunc(m.read))
	return tlog.Tree{N: n, Hash: h}, err
}

func (m *memStorage) ReadLogHashes(_ context.Context, indexes []int64) ([]tlog.Hash, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.read(indexes)
}

func (m *memStorage) ReadLogEntries(_ context.Context, start, end int64) ([][]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if start < 0 || end > int64(len(m.entries)) || start > end {
		return nil, errors.New("out of range")
	}
	return m.entries[start:end], nil
}

func (m *memStorage) LatestCheckpoint(context.Context) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cp, nil
}

func (m *memStorage) SaveCheckpoint(_ context.Context, size int64, signed []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if size >= m.cpSize {
		m.cp, m.cpSize = signed, size
	}
	return nil
}

func newLog(t testing.TB, name string, n int) (*translog.Log, *memStorage, note.Verifier) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	st := &memStorage{}
	l, err := translog.New(translog.Config{Storage: st, Key: skey})
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	keys.Store(name, skey)
	if translog.VerifierKey(skey) != vkey {
		t.Fatalf("VerifierKey = %q, want %q", translog.VerifierKey(skey), vkey)
	}
	appendN(t, st, 0, n)
	return l, st, v
}

func appendN(t testing.TB, st *memStorage, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		e := translog.Entry{Kind: translog.State, Label: [32]byte{byte(i)}, Commitment: [32]byte{byte(i >> 8), byte(i)},
			Records: i % 3, At: time.Unix(int64(1e9+i), 0)}
		b, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.AppendLog(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
}

func TestInclusionEveryIndex(t *testing.T) {
	ctx := context.Background()
	l, st, v := newLog(t, "example.com/incl", 37)
	for i := int64(0); i < 37; i++ {
		p, err := l.Prove(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		cp, e, err := p.Verify(v)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if cp.N != 37 || e.Records != int(i%3) {
			t.Fatalf("entry %d: checkpoint size %d, entry %+v", i, cp.N, e)
		}
		// The entry of another index, or a flipped proof hash, must fail.
		other := *p
		other.Entry = st.entries[(i+1)%37]
		if _, _, err := other.Verify(v); err == nil {
			t.Fatalf("entry %d: proof verified for another entry", i)
		}
		if len(p.Inclusion) > 0 {
			bad := *p
			bad.Inclusion = append([][]byte{}, p.Inclusion...)
			bad.Inclusion[0] = bytes.Clone(bad.Inclusion[0])
			bad.Inclusion[0][0] ^= 1
			if _, _, err := bad.Verify(v); err == nil {
				t.Fatalf("entry %d: tampered proof verified", i)
			}
		}
	}
	if _, err := l.Prove(ctx, 37); err == nil {
		t.Fatal("proof for an index past the tree")
	}
}

func TestConsistencyEveryPair(t *testing.T) {
	ctx := context.Background()
	const max = 100
	l, st, v := newLog(t, "example.com/cons", 0)
	signer, err := note.NewSigner(keyOf(t, l))
	if err != nil {
		t.Fatal(err)
	}
	var cps []translog.Checkpoint
	for n := int64(1); n <= max; n++ {
		appendN(t, st, int(n-1), 1)
		tree, err := st.LogTree(ctx)
		if err != nil {
			t.Fatal(err)
		}
		signed, err := translog.SignCheckpoint(l.Origin(), tree, signer)
		if err != nil {
			t.Fatal(err)
		}
		cp, err := translog.OpenCheckpoint(signed, v)
		if err != nil {
			t.Fatal(err)
		}
		cps = append(cps, cp)
	}
	for i := range cps {
		for j := i; j < len(cps); j++ {
			p, err := l.Consistency(ctx, cps[i].N, cps[j].N)
			if err != nil {
				t.Fatal(err)
			}
			if err := translog.CheckConsistency(cps[i], cps[j], p); err != nil {
				t.Fatalf("sizes %d and %d: %v", cps[i].N, cps[j].N, err)
			}
			if err := translog.CheckConsistency(cps[j], cps[i], p); err != nil {
				t.Fatalf("sizes %d and %d (reversed): %v", cps[j].N, cps[i].N, err)
			}
		}
		// The empty tree is a prefix of every tree, as Log.Consistency
		// and the client treat it.
		empty := translog.Checkpoint{Origin: cps[i].Origin}
		if err := translog.CheckConsistency(empty, cps[i], nil); err != nil {
			t.Fatalf("from the empty tree to size %d: %v", cps[i].N, err)
		}
	}
	if _, err := l.Consistency(ctx, 5, max+1); !errors.Is(err, translog.ErrAhead) {
		t.Fatalf("consistency past the log: %v, want ErrAhead", err)
	}
}

// keyOf digs the signer key out of a test log: tests keep it alongside.
var keys sync.Map

func keyOf(t testing.TB, l *translog.Log) string {
	k, ok := keys.Load(l.Origin())
	if !ok {
		t.Fatal("no key recorded")
	}
	return k.(string)
}

func TestForkAndRollback(t *testing.T) {
	ctx := context.Background()
	skey, vkey, _ := note.GenerateKey(rand.Reader, "example.com/fork")
	v, _ := note.NewVerifier(vkey)
	signer, _ := note.NewSigner(skey)
	honest, forked := &memStorage{}, &memStorage{}
	appendN(t, honest, 0, 20)
	appendN(t, forked, 0, 10)
	appendN(t, forked, 1000, 10) // same size, different history after entry 10
	sign := func(st *memStorage) translog.Checkpoint {
		tree, _ := st.LogTree(ctx)
		signed, err := translog.SignCheckpoint("example.com/fork", tree, signer)
		if err != nil {
			t.Fatal(err)
		}
		cp, err := translog.OpenCheckpoint(signed, v)
		if err != nil {
			t.Fatal(err)
		}
		return cp
	}
	a, b := sign(honest), sign(forked)
	var fork *translog.ForkError
	if err := translog.CheckConsistency(a, b, nil); !errors.As(err, &fork) {
		t.Fatalf("same-size fork: %v, want ForkError", err)
	}
	if !bytes.Equal(fork.Old.Note, a.Note) || !bytes.Equal(fork.New.Note, b.Note) {
		t.Fatal("ForkError does not carry both checkpoints")
	}
	// A longer forked log: the honest proof from 20 to 25 does not link.
	appendN(t, forked, 2000, 5)
	appendN(t, honest, 20, 5)
	lf, _ := translog.New(translog.Config{Storage: forked, Key: skey})
	p, err := lf.Consistency(ctx, 20, 25)
	if err != nil {
		t.Fatal(err)
	}
	if err := translog.CheckConsistency(a, sign(forked), p); !errors.As(err, &fork) {
		t.Fatalf("extension of a fork: %v, want ForkError", err)
	}
	// A rolled-back log cannot prove the tree seen before.
	rolled := &memStorage{}
	appendN(t, rolled, 0, 15)
	lr, _ := translog.New(translog.Config{Storage: rolled, Key: skey})
	if _, err := lr.Consistency(ctx, 15, 20); !errors.Is(err, translog.ErrAhead) {
		t.Fatalf("rolled-back log proved a larger tree: %v", err)
	}
	// Wrong key, wrong origin.
	other, _, _ := note.GenerateKey(rand.Reader, "example.com/other")
	os, _ := note.NewSigner(other)
	tree, _ := honest.LogTree(ctx)
	signed, _ := translog.SignCheckpoint("example.com/fork", tree, os)
	if _, err := translog.OpenCheckpoint(signed, v); !errors.Is(err, translog.ErrCheckpoint) ||
		!strings.Contains(err.Error(), "signed by example.com/other") || !strings.Contains(err.Error(), "not by the log key "+v.Name()) {
		t.Fatalf("checkpoint by another key: %v; want the error to name both keys", err)
	}
	signed, _ = translog.SignCheckpoint("example.com/elsewhere", tree, signer)
	if _, err := translog.OpenCheckpoint(signed, v); !errors.Is(err, translog.ErrCheckpoint) {
		t.Fatalf("checkpoint with another origin: %v", err)
	}
}

// serveLog serves a log's tiles, passing every response through tamper.
func serveLog(t *testing.T, l *translog.Log, tamper func(path string, body []byte) []byte) string {
	r := mux.NewRouter()
	l.Routes(r, "/log")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		body := rec.Body.Bytes()
		if tamper != nil {
			body = tamper(req.URL.Path, body)
		}
		w.WriteHeader(rec.Code)
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/log/"
}

func readAll(ctx context.Context, base string, tree tlog.Tree) ([][]byte, error) {
	tf, err := torchwood.NewTileFetcher(base)
	if err != nil {
		return nil, err
	}
	c, err := torchwood.NewClient(tf)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for start := int64(0); start < tree.N; {
		next := start
		for i, e := range c.Entries(ctx, tree, start) {
			out = append(out, e)
			next = i + 1
		}
		if err := c.Err(); err != nil {
			return nil, err
		}
		if next == start {
			return nil, errors.New("no progress")
		}
		start = next
	}
	return out, nil
}

func TestTiles(t *testing.T) {
	ctx := context.Background()
	const n = 600 // two full tiles and a partial one, and a level-1 tile
	l, st, v := newLog(t, "example.com/tiles", n)
	if err := l.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	base := serveLog(t, l, nil)
	resp, err := http.Get(base + "checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	signed, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	cp, err := translog.OpenCheckpoint(signed, v)
	if err != nil || cp.N != n {
		t.Fatalf("checkpoint: %v, size %d", err, cp.N)
	}
	got, err := readAll(ctx, base, cp.Tree)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n || !bytes.Equal(got[n-1], st.entries[n-1]) {
		t.Fatalf("read %d entries", len(got))
	}
	for _, path := range []string{"tile/0/000", "tile/0/002.p/88", "tile/1/000.p/2", "tile/entries/001", "tile/entries/002.p/88"} {
		resp, err := http.Get(base + path)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %v %v", path, err, resp.Status)
		}
		resp.Body.Close()
	}
	for _, path := range []string{"tile/0/003", "tile/0/002", "tile/entries/002.p/89", "tile/1/000"} {
		resp, err := http.Get(base + path)
		if err != nil || resp.StatusCode != 404 {
			t.Fatalf("GET %s (beyond the tree): %v, want 404", path, resp.Status)
		}
		resp.Body.Close()
	}

	// A single flipped bit in any tile a reader uses is detected.
	for _, target := range []string{"tile/0/001", "tile/entries/000", "tile/entries/002.p/88", "tile/1/000.p/2"} {
		base := serveLog(t, l, func(path string, body []byte) []byte {
			if strings.HasSuffix(path, target) && len(body) > 0 {
				body = bytes.Clone(body)
				body[len(body)/2] ^= 0x10
			}
			return body
		})
		if _, err := readAll(ctx, base, cp.Tree); err == nil {
			t.Errorf("bit flip in %s went unnoticed", target)
		}
	}
}

func TestPublishWithoutGrowth(t *testing.T) {
	ctx := context.Background()
	l, st, _ := newLog(t, "example.com/pub", 3)
	if err := l.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	first := st.cp
	if err := l.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, st.cp) {
		t.Fatal("republished a checkpoint for an unchanged tree")
	}
	appendN(t, st, 3, 1)
	if err := l.Publish(ctx); err != nil || st.cpSize != 4 {
		t.Fatalf("publish after growth: %v, size %d", err, st.cpSize)
	}
}

func TestEntryRoundTrip(t *testing.T) {
	now := time.Unix(1790000000, 0).UTC()
	for _, e := range []translog.Entry{
		{Kind: translog.Credential, Label: [32]byte{1}, Cert: [32]byte{2}, Key: [32]byte{3}, Issuer: [32]byte{4}, NotBefore: now, NotAfter: now.Add(time.Hour)},
		{Kind: translog.Holder, Label: [32]byte{1}, Key: [32]byte{3}, Previous: [32]byte{9}, Retired: 2}, // legacy
		{Kind: translog.Holder, Label: [32]byte{1}, Key: [32]byte{3}, Event: translog.Join, Proof: now},
		{Kind: translog.Holder, Label: [32]byte{1}, Key: [32]byte{3}, Event: translog.Notice, Proof: now, Until: now.Add(72 * time.Hour), By: [32]byte{4}},
		{Kind: translog.Holder, Label: [32]byte{1}, Key: [32]byte{3}, Event: translog.Reproof, Proof: now},
		{Kind: translog.Holder, Label: [32]byte{1}, Key: [32]byte{3}, Event: translog.Retire, Proof: now, Retired: 4},
		{Kind: translog.Holder, Label: [32]byte{1}, Key: [32]byte{3}, Event: translog.Evict, Proof: now, By: [32]byte{4}, Retired: 1},
		{Kind: translog.State, Label: [32]byte{1}, Commitment: [32]byte{5}, Records: 3, At: now}, // legacy
		{Kind: translog.State, Label: [32]byte{1}, Key: [32]byte{3}, Commitment: [32]byte{5}, Records: 3, At: now},
		{Kind: translog.OPRFKey, Info: "blindex lookup v1", PublicKey: []byte{1, 2, 3}},
		{Kind: translog.CARoots, Roots: [][]byte{{1, 2}, {3, 4, 5}}},
		{Kind: translog.Map, MapName: "example.org/federation", MapVersion: 7, MapExpires: now, MapHash: [32]byte{6}},
	} {
		b, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		got, err := translog.Parse(b)
		if err != nil {
			t.Fatalf("%s: %v\n%s", e.Kind, err, b)
		}
		again, _ := got.Marshal()
		if !bytes.Equal(again, b) {
			t.Fatalf("%s: round trip changed the entry", e.Kind)
		}
		// Every one-byte change is refused or parses to another encoding.
		for i := range b {
			m := bytes.Clone(b)
			m[i] ^= 0x01
			if got, err := translog.Parse(m); err == nil {
				again, _ := got.Marshal()
				if !bytes.Equal(again, m) {
					t.Fatalf("%s: mutated entry parsed to a different encoding", e.Kind)
				}
			}
		}
	}
	for _, bad := range []string{"", "blindex-log/v1 state\n", "blindex-log/v1 nope\nlabel AA==\n", "blindex-log/v2 ca-roots\nroot AA==\n",
		"blindex-log/v1 ca-roots\n", "blindex-log/v1 holder\nlabel AQ==\nkey AQ==\nprevious AQ==\nretired 01\n",
		// An unknown event, and a State entry naming the zero key (which
		// is written as the legacy form, without key).
		"blindex-log/v1 holder\nlabel AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nkey AwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nevent steal\nproof 1790000000\nuntil 0\nby AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nretired 0\n",
		"blindex-log/v1 state\nlabel AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nkey AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\ncommitment BQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nrecords 3\nat 1790000000\n",
		"blindex-log/v1 map\nname a b\nversion 1\nexpires 1790000000\nhash BgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"} {
		if _, err := translog.Parse([]byte(bad)); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func TestCommitmentOrderAndLiveness(t *testing.T) {
	t0 := time.Unix(1790000000, 0)
	a := translog.StateRecord{RecordID: [32]byte{1}, Expires: t0.Add(time.Hour), ACL: acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{{1}, {2}}}}
	b := translog.StateRecord{RecordID: [32]byte{2}, Expires: t0.Add(-time.Hour)}
	a2 := a
	a2.ACL.Allow = []acl.Pseudonym{{2}, {1}}
	if translog.Commitment([]translog.StateRecord{a, b}) != translog.Commitment([]translog.StateRecord{b, a2}) {
		t.Fatal("commitment depends on order")
	}
	wider := a
	wider.ACL.Allow = []acl.Pseudonym{{1}, {2}, {3}}
	if translog.Commitment([]translog.StateRecord{a}) == translog.Commitment([]translog.StateRecord{wider}) {
		t.Fatal("a widened allowlist has the same commitment")
	}
	if got := translog.Live([]translog.StateRecord{a, b}, t0); len(got) != 1 || got[0].RecordID != a.RecordID {
		t.Fatalf("Live kept %d records", len(got))
	}
}

func TestCheckHistory(t *testing.T) {
	ctx := context.Background()
	file := t.TempDir() + "/log.checkpoint"
	skey, _, _ := note.GenerateKey(rand.Reader, "example.com/history")
	open := func(st *memStorage) *translog.Log {
		l, err := translog.New(translog.Config{Storage: st, Key: skey, CheckpointFile: file})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	live := &memStorage{}
	appendN(t, live, 0, 10)
	l := open(live)
	if err := l.CheckHistory(ctx); err != nil {
		t.Fatalf("no checkpoint published yet: %v", err)
	}
	if err := l.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	appendN(t, live, 10, 2) // grown since: still contains the published tree
	if err := l.CheckHistory(ctx); err != nil {
		t.Fatalf("grown log: %v", err)
	}
	var rb *translog.RollbackError
	old := &memStorage{}
	appendN(t, old, 0, 7)
	if err := open(old).CheckHistory(ctx); !errors.As(err, &rb) || rb.Forked || rb.Published.N != 10 || rb.Tree.N != 7 {
		t.Fatalf("older database: %v", err)
	}
	forked := &memStorage{}
	appendN(t, forked, 0, 5)
	appendN(t, forked, 500, 6)
	if err := open(forked).CheckHistory(ctx); !errors.As(err, &rb) || !rb.Forked {
		t.Fatalf("forked database: %v", err)
	}
}

// VerifierKey must hold for every key, including those whose base64 holds
// a '+' (the separator of the key's fields).
func TestVerifierKey(t *testing.T) {
	for range 200 {
		skey, vkey, err := note.GenerateKey(rand.Reader, "example.com/vkey")
		if err != nil {
			t.Fatal(err)
		}
		if got := translog.VerifierKey(skey); got != vkey {
			t.Fatalf("VerifierKey(%q) = %q, want %q", skey, got, vkey)
		}
	}
	if translog.VerifierKey("PRIVATE+KEY+x+00000000+AQ==") != "" || translog.VerifierKey("nonsense") != "" {
		t.Fatal("VerifierKey accepted a malformed key")
	}
}

// TestTileErrorBodies: a refused tile request's plain-text body is its
// message and one newline (protocol §8.17).
func TestTileErrorBodies(t *testing.T) {
	l, _, _ := newLog(t, "example.com/errors", 10)
	if err := l.Publish(context.Background()); err != nil {
		t.Fatal(err)
	}
	base := serveLog(t, l, nil)
	for path, want := range map[string]string{
		"tile/0/x001":   "malformed tile path\n",
		"tile/0/x001/5": "malformed tile path\n",
		"tile/0/009":    "tile not in the tree\n",
	} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 400 || string(body) != want {
			t.Errorf("%s: %d %q, want %q", path, resp.StatusCode, body, want)
		}
	}
}
