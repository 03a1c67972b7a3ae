package client_test

import (
	"crypto/rand"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/ca"
	"blindex.dev/blindex/client"
	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/federation"
	"blindex.dev/blindex/internal/sms"
	"blindex.dev/blindex/oprf"
	"blindex.dev/blindex/record"
	"blindex.dev/blindex/server"
	"blindex.dev/blindex/translog"
)

// fedDirectory is one directory of a test federation, recording what it
// observes.
type fedDirectory struct {
	name     string
	prefixes []string
	data     string
	addr     string
	root     *x509.Certificate
	entry    federation.Directory
	run      *server.Running

	mu  sync.Mutex
	obs []directory.Observation
}

func (d *fedDirectory) URL() string { return "http://" + d.addr }

func (d *fedDirectory) observe(o directory.Observation) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.obs = append(d.obs, o)
}

// observed returns and forgets the observations so far.
func (d *fedDirectory) observed() []directory.Observation {
	d.mu.Lock()
	defer d.mu.Unlock()
	o := d.obs
	d.obs = nil
	return o
}

type federationEnv struct {
	inbox  *sms.Inbox
	dirs   []*fedDirectory
	signer note.Signer
	trust  federation.Trust
	m      *federation.Map
}

// startFederation starts three directories on loopback, for +1, +44 and
// everything else, each trusting the others' CAs and started with one
// signed map.
func startFederation(t *testing.T) *federationEnv {
	t.Helper()
	env := &federationEnv{inbox: sms.NewInbox()}
	skey, vkey, err := note.GenerateKey(rand.Reader, "federation.test/map")
	if err != nil {
		t.Fatal(err)
	}
	env.signer, _ = note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	env.trust = federation.Trust{Name: "federation.test/map", Keys: []note.Verifier{v}}

	var roots [][]byte
	for _, d := range []*fedDirectory{{name: "us", prefixes: []string{"+1"}}, {name: "uk", prefixes: []string{"+44"}}, {name: "intl", prefixes: []string{"+"}}} {
		// A first start makes the keys; the map needs them, and the URL.
		d.data = t.TempDir()
		r, err := server.Start(t.Context(), server.Config{DataDir: d.data, Addr: "127.0.0.1:0", SMS: env.inbox})
		if err != nil {
			t.Fatal(err)
		}
		d.root = r.CA.Root()
		d.entry = federation.Directory{Prefixes: d.prefixes, OPRFKey: r.Node.OPRFKey.Public().Bytes(),
			OPRFInfo: "blindex lookup v1", LogKey: translog.VerifierKey(r.Node.LogKey)}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		d.addr = ln.Addr().String()
		ln.Close()
		d.entry.URL = d.URL()
		roots = append(roots, d.root.Raw)
		env.dirs = append(env.dirs, d)
	}
	var entries []federation.Directory
	for _, d := range env.dirs {
		d.entry.CARoots = roots // every directory accepts every directory's credentials
		entries = append(entries, d.entry)
	}
	env.m = env.sign(t, 1, entries)
	for _, d := range env.dirs {
		env.start(t, d)
	}
	return env
}

// sign builds, signs and opens a map of entries.
func (env *federationEnv) sign(t *testing.T, version int64, entries []federation.Directory) *federation.Map {
	t.Helper()
	return signMap(t, env.signer, env.trust, version, entries)
}

// signMap builds a map of entries named trust.Name, signs it with signer
// and opens it with trust.
func signMap(t *testing.T, signer note.Signer, trust federation.Trust, version int64, entries []federation.Directory) *federation.Map {
	t.Helper()
	m, err := federation.Build(trust.Name, version, time.Now().Add(time.Hour), entries)
	if err != nil {
		t.Fatal(err)
	}
	text, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	signed, err := federation.Sign(text, signer)
	if err != nil {
		t.Fatal(err)
	}
	if m, err = federation.Open(signed, trust, time.Now()); err != nil {
		t.Fatal(err)
	}
	return m
}

// start serves d under env's map, as blindex serve --map does.
func (env *federationEnv) start(t *testing.T, d *fedDirectory) {
	t.Helper()
	var others []*x509.Certificate
	for _, o := range env.dirs {
		if o != d {
			others = append(others, o.root)
		}
	}
	holds := env.m.Holds(d.URL())
	r, err := server.Start(t.Context(), server.Config{DataDir: d.data, Addr: d.addr, SMS: env.inbox,
		CA: ca.Config{Holds: holds},
		Directory: directory.Config{Roots: others, Holds: holds, Observe: d.observe,
			MapEntry: &translog.Entry{Kind: translog.Map, MapName: env.m.Name, MapVersion: env.m.Version,
				MapExpires: env.m.Expires, MapHash: env.m.Hash()}}})
	if err != nil {
		t.Fatal(err)
	}
	d.run = r
	t.Cleanup(func() { r.Close() })
}

func (env *federationEnv) federated(t *testing.T, state string, m *federation.Map) *client.Federated {
	t.Helper()
	f, err := client.NewFederated(client.FederatedConfig{Map: m, StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// register verifies number through the map: the code goes out from the
// number's own directory.
func (env *federationEnv) register(t *testing.T, number string) (*client.Federated, string) {
	t.Helper()
	state := t.TempDir()
	f := env.federated(t, state, env.m)
	if _, err := f.Verify(t.Context(), number); err != nil {
		t.Fatal(err)
	}
	if err := f.Confirm(t.Context(), env.inbox.Code(number)); err != nil {
		t.Fatal(err)
	}
	return f, state
}

// withCredential returns a new state directory holding state's credential
// and nothing else.
func withCredential(t *testing.T, state string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"credential.key", "credential.pem"} {
		b, err := os.ReadFile(filepath.Join(state, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const (
	fedBob   = "+14155550100"  // US, registered
	fedDave  = "+12015550123"  // US, never registered
	fedUma   = "+447911123456" // UK, registered
	fedUnreg = "+447400123456" // UK, never registered
	fedInes  = "+33612345678"  // France: the catch-all directory
	fedJun   = "+81312345678"  // Japan: the catch-all directory, never registered
	fedCarol = "+14155552671"  // the caller
)

// Three directories on loopback, one signed map, and an address book that
// spans all three: each number is looked up at its own directory, and each
// directory sees only the blinded elements of its own numbers.
func TestFederatedLookup(t *testing.T) {
	env := startFederation(t)
	us, uk, intl := env.dirs[0], env.dirs[1], env.dirs[2]
	owners := map[string]string{}
	for _, number := range []string{fedBob, fedUma, fedInes} {
		f, state := env.register(t, number)
		owners[number] = state
		home, err := f.Home()
		if err != nil {
			t.Fatal(err)
		}
		publishPublic(t, home, "https://chat.example/"+number[1:])
	}
	carol, carolState := env.register(t, fedCarol)

	// Registration routing: each directory verifies only its own numbers
	// and names the right one for others.
	plain, err := client.New(client.Config{Server: us.URL(), StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var e *client.Error
	if _, err := plain.Verify(t.Context(), fedUma); !errors.As(err, &e) || e.Status != http.StatusMisdirectedRequest || !strings.Contains(e.Message, uk.URL()) {
		t.Errorf("verifying a +44 number at the +1 directory: %v, want 421 naming %s", err, uk.URL())
	}
	// A +44 credential (from the UK directory's CA, which the US directory
	// trusts for lookups) cannot publish at the US directory.
	umaAtUS, err := client.New(client.Config{Server: us.URL(), StateDir: withCredential(t, owners[fedUma])})
	if err != nil {
		t.Fatal(err)
	}
	err = umaAtUS.Publish(t.Context(), record.Record{App: "org.example.chat", Endpoint: "https://wrong.example",
		Expires: time.Now().Add(time.Hour).UTC().Truncate(time.Second)}, client.Access{Visibility: acl.Public})
	if !errors.As(err, &e) || e.Status != http.StatusMisdirectedRequest || !strings.Contains(e.Message, uk.URL()) {
		t.Errorf("publishing a +44 number at the +1 directory: %v, want 421 naming %s", err, uk.URL())
	}

	for _, d := range env.dirs {
		d.observed()
	}
	book := []string{fedUma, fedBob, fedJun, fedDave, fedInes, fedUnreg, "+1 800 FLOWERS", fedBob}
	res, err := carol.Lookup(t.Context(), book...)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != len(book) {
		t.Fatalf("%d results for %d numbers", len(res), len(book))
	}
	for i, r := range res {
		if r.Number != book[i] {
			t.Errorf("result %d is for %q, want %q (input order)", i, r.Number, book[i])
		}
		_, registered := owners[r.E164]
		switch {
		case book[i] == "+1 800 FLOWERS":
			if !errors.Is(r.Err, oprf.ErrNumber) {
				t.Errorf("%s: %v, want an invalid-number error", r.Number, r.Err)
			}
		case r.Err != nil:
			t.Errorf("%s: %v", r.Number, r.Err)
		case registered && (len(r.Records) != 1 || r.Records[0].Endpoint != "https://chat.example/"+r.E164[1:]):
			t.Errorf("%s: records %+v, want the owner's", r.Number, r.Records)
		case !registered && len(r.Records) != 0:
			t.Errorf("%s: records %+v, want none", r.Number, r.Records)
		}
	}
	// Carol (+1) looked up at the +44 and catch-all directories with her
	// credential, but holds no index there: only a directory that holds a
	// number keeps a holder for it, so another range's CA cannot take over
	// its owners and lookups leave no holder entry in its log.
	for _, d := range []*fedDirectory{uk, intl} {
		y, err := oprf.NewEvaluator(d.run.Node.OPRFKey).FullEvaluate([]byte("blindex lookup v1"), []byte(fedCarol))
		if err != nil {
			t.Fatal(err)
		}
		if hs, err := d.run.Node.Store.Holders(t.Context(), oprf.Index(y)); err != nil || len(hs) != 0 {
			t.Errorf("%s keeps %d holders for a number outside its prefixes (%v)", d.name, len(hs), err)
		}
	}
	if hs, err := us.run.Node.Store.Holders(t.Context(), func() [32]byte {
		y, _ := oprf.NewEvaluator(us.run.Node.OPRFKey).FullEvaluate([]byte("blindex lookup v1"), []byte(fedCarol))
		return oprf.Index(y)
	}()); err != nil || len(hs) != 1 {
		t.Errorf("the +1 directory has %d holders for Carol, want 1 (%v)", len(hs), err)
	}
	// Each directory evaluated exactly its own distinct numbers in one
	// batch, and fetched no more buckets than that.
	for d, want := range map[*fedDirectory]int{us: 2, uk: 2, intl: 2} {
		var evals, buckets []int
		for _, o := range d.observed() {
			switch o.Endpoint {
			case "evaluate":
				evals = append(evals, o.Count)
			case "buckets":
				buckets = append(buckets, o.Count)
			}
		}
		if !slices.Equal(evals, []int{want}) || len(buckets) != 1 || buckets[0] > want {
			t.Errorf("%s directory observed evaluations %v and bucket fetches %v, want one evaluation of %d", d.name, evals, buckets, want)
		}
	}

	// Each directory logged the map it serves under.
	for _, d := range env.dirs {
		c, err := client.New(client.Config{Server: d.URL(), StateDir: t.TempDir(), Pin: client.PinOf(env.m.ByURL(d.URL()))})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := c.Audit(t.Context(), client.MonitorConfig{})
		if err != nil || rep.Kinds[translog.Map] != 1 {
			t.Errorf("%s directory's log: %v, %v; want one map entry", d.name, rep, err)
		}
	}

	// A map without a catch-all: a number outside every prefix gets a
	// per-number error, never a guess.
	partial := env.sign(t, 1, []federation.Directory{us.entry, uk.entry})
	res, err = env.federated(t, withCredential(t, carolState), partial).Lookup(t.Context(), fedBob, fedInes)
	if err != nil || len(res[0].Records) != 1 || !errors.Is(res[1].Err, federation.ErrNoDirectory) {
		t.Errorf("lookup outside every prefix: %+v, %v", res, err)
	}

	// An older map than one seen before is refused, and so is a different
	// map of the same version.
	newer := env.sign(t, 2, []federation.Directory{us.entry, uk.entry, intl.entry})
	env.federated(t, carolState, newer)
	if _, err := client.NewFederated(client.FederatedConfig{Map: env.m, StateDir: carolState}); !errors.Is(err, federation.ErrRollback) {
		t.Errorf("an older map: %v, want ErrRollback", err)
	}
	var conflict *federation.ConflictError
	other := env.sign(t, 2, []federation.Directory{us.entry, intl.entry})
	if _, err := client.NewFederated(client.FederatedConfig{Map: other, StateDir: carolState}); !errors.As(err, &conflict) {
		t.Errorf("two maps of version 2: %v, want a ConflictError", err)
	}
	// So is a newer map of another federation, however well signed.
	skey, vkey, err := note.GenerateKey(rand.Reader, "other.test/map")
	if err != nil {
		t.Fatal(err)
	}
	otherSigner, _ := note.NewSigner(skey)
	otherV, _ := note.NewVerifier(vkey)
	foreign := signMap(t, otherSigner, federation.Trust{Name: "other.test/map", Keys: []note.Verifier{otherV}}, 3,
		[]federation.Directory{us.entry, uk.entry, intl.entry})
	if _, err := client.NewFederated(client.FederatedConfig{Map: foreign, StateDir: carolState}); !errors.Is(err, federation.ErrName) {
		t.Errorf("a map of another federation: %v, want ErrName", err)
	}

	// An expired map is refused even by a client that opened it in time.
	expired, err := client.NewFederated(client.FederatedConfig{Map: newer, StateDir: carolState,
		Now: func() time.Time { return newer.Expires }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := expired.Lookup(t.Context(), fedBob); !errors.Is(err, federation.ErrExpired) {
		t.Errorf("lookup with an expired map: %v, want ErrExpired", err)
	}
}

// A directory that answers with a key other than the map's is refused:
// before any evaluation if its /v1/config differs, and at the proof if it
// changed after the client pinned it.
func TestFederatedWrongKey(t *testing.T) {
	env := startFederation(t)
	us, uk, intl := env.dirs[0], env.dirs[1], env.dirs[2]
	for _, n := range []string{fedBob, fedUma} {
		f, _ := env.register(t, n)
		home, err := f.Home()
		if err != nil {
			t.Fatal(err)
		}
		publishPublic(t, home, "https://chat.example/"+n[1:])
	}
	_, carolState := env.register(t, fedCarol)

	// The map gives the UK directory a key it does not hold.
	k, err := oprf.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	wrong := uk.entry
	wrong.OPRFKey = k.Public().Bytes()
	m := env.sign(t, 1, []federation.Directory{us.entry, wrong, intl.entry})
	uk.observed()
	res, err := env.federated(t, withCredential(t, carolState), m).Lookup(t.Context(), fedBob, fedUma)
	var de *client.DirectoryError
	if !errors.Is(err, client.ErrPinMismatch) || !errors.As(res[1].Err, &de) || de.URL != uk.URL() || len(res[0].Records) != 1 {
		t.Fatalf("a directory whose key is not the map's: %+v, %v; want ErrPinMismatch for it alone", res, err)
	}
	for _, o := range uk.observed() {
		if o.Endpoint == "evaluate" {
			t.Errorf("the refused directory evaluated %d elements", o.Count)
		}
	}

	// Carol pins the right keys, then the UK directory is replaced by one
	// with other keys at the same address: its proofs are refused.
	carol := env.federated(t, carolState, env.m)
	if res, err := carol.Lookup(t.Context(), fedUma); err != nil || len(res[0].Records) != 1 {
		t.Fatalf("lookup: %+v, %v", res, err)
	}
	if err := uk.run.Close(); err != nil {
		t.Fatal(err)
	}
	impostor, err := server.Start(t.Context(), server.Config{DataDir: t.TempDir(), Addr: uk.addr, SMS: env.inbox,
		Directory: directory.Config{Roots: []*x509.Certificate{us.root, intl.root}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { impostor.Close() })
	if _, err := carol.Lookup(t.Context(), fedUma); !errors.Is(err, client.ErrKeyChanged) {
		t.Errorf("lookup at a directory with another key than pinned: %v, want ErrKeyChanged", err)
	}
}
