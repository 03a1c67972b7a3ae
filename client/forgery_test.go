package client_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/client"
	"blindex.dev/blindex/credential"
	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/internal/sms"
	"blindex.dev/blindex/oprf"
	"blindex.dev/blindex/record"
	"blindex.dev/blindex/server"
	"blindex.dev/blindex/translog"
)

// forger is a directory operator turned against its callers: it holds the
// data directory's OPRF key, CA key and log key, and the store.
type forger struct {
	t      *testing.T
	srv    *server.Running
	ev     *oprf.Evaluator
	log    note.Signer
	info   string
	inject atomic.Pointer[[]byte] // a ciphertext the front end adds to bucket answers under victim's index
	victim string
}

func newForger(t *testing.T, srv *server.Running, victim string) *forger {
	signer, err := note.NewSigner(srv.Node.LogKey)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(srv.URL() + api.PathConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var cfg api.Config
	if err := json.NewDecoder(resp.Body).Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	return &forger{t: t, srv: srv, ev: oprf.NewEvaluator(srv.Node.OPRFKey), log: signer, info: api.EpochInfo(cfg.Info, cfg.Epoch), victim: victim}
}

// y is number's lookup OPRF output, which only the key holder computes
// without a lookup.
func (f *forger) y(number string) []byte {
	y, err := f.ev.FullEvaluate([]byte(f.info), []byte(number))
	if err != nil {
		f.t.Fatal(err)
	}
	return y
}

// credential issues, with ca, a credential for number to key, valid from
// nb for validity.
func (f *forger) credential(ca *credential.CA, number string, key *ecdsa.PrivateKey, nb time.Time, validity time.Duration) (*x509.Certificate, []byte) {
	der, err := ca.Issue(number, &key.PublicKey, validity, nb, nb)
	if err != nil {
		f.t.Fatal(err)
	}
	att, err := ca.Attest(der)
	if err != nil {
		f.t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		f.t.Fatal(err)
	}
	return leaf, att
}

// entry is the `credential` entry of leaf under number's log label.
func (f *forger) entry(number string, leaf *x509.Certificate, root *x509.Certificate) []byte {
	y, err := f.ev.FullEvaluate([]byte(api.LogLabelInfo), []byte(number))
	if err != nil {
		f.t.Fatal(err)
	}
	e, err := translog.CredentialEntry(oprf.LogLabel(y), leaf, root)
	if err != nil {
		f.t.Fatal(err)
	}
	return e
}

// seal seals rec under the victim's record key with a proof that is valid
// in every part the forger controls: the proved label of labelNumber and a
// log promise signed with the real log key for entry.
func (f *forger) seal(rec record.Record, att []byte, key *ecdsa.PrivateKey, signed time.Time, labelNumber string, entry []byte) []byte {
	u, err := oprf.Unblinded([]byte(labelNumber))
	if err != nil {
		f.t.Fatal(err)
	}
	el, proof, err := f.ev.Evaluate([]byte(api.LogLabelInfo), [][]byte{u})
	if err != nil {
		f.t.Fatal(err)
	}
	promise, err := translog.SignPromise(f.log, entry, signed)
	if err != nil {
		f.t.Fatal(err)
	}
	ct, err := record.SealProved(oprf.RecordKey(f.y(f.victim)), rec,
		&record.Proof{Attestation: att, Signed: signed, LabelElement: el[0], LabelProof: proof, Promise: promise}, key)
	if err != nil {
		f.t.Fatal(err)
	}
	return ct
}

// frontEnd is a front end for the directory that adds the forger's
// ciphertext, if any, to the bucket answers it passes: the targeted
// caller alone talks to it.
func (f *forger) frontEnd() string {
	target, err := url.Parse(f.srv.URL())
	if err != nil {
		f.t.Fatal(err)
	}
	index := oprf.Index(f.y(f.victim))
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(r *http.Response) error {
		ct := f.inject.Load()
		if r.Request.URL.Path != api.PathBuckets || r.StatusCode != 200 || ct == nil {
			return nil
		}
		b, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			return err
		}
		resp, err := api.ParseBuckets(b)
		if err != nil {
			return err
		}
		for i := range resp.Buckets {
			recs := append(resp.Buckets[i].Records, api.SealedEntry{Index: index[:], Ciphertext: *ct})
			slices.SortStableFunc(recs, func(a, b api.SealedEntry) int { return bytes.Compare(a.Index, b.Index) })
			resp.Buckets[i].Records = recs
			break // the one bucket of these lookups
		}
		var out bytes.Buffer
		if err := api.WriteBuckets(&out, resp); err != nil {
			return err
		}
		r.Body = io.NopCloser(&out)
		r.ContentLength = int64(out.Len())
		r.Header.Set("Content-Length", strconv.Itoa(out.Len()))
		return nil
	}
	fe := httptest.NewServer(proxy)
	f.t.Cleanup(fe.Close)
	return fe.URL
}

// forgeryEnv: Bob publishes a public record; Carol looks him up through
// the forger's front end, Alice directly.
type forgeryEnv struct {
	srv          *server.Running
	inbox        *sms.Inbox
	bob, alice   *client.Client
	carol        *client.Client
	f            *forger
	carolsOffset atomic.Int64 // added to Carol's clock, for her audit
}

const (
	forgeBob   = "+14155550100"
	forgeDave  = "+12015550123"
	forgeCarol = "+14155552671"
	forgeAlice = "+12025550173"
	bobsChat   = "https://chat.example.org/u/bob"
)

func newForgeryEnv(t *testing.T) *forgeryEnv {
	inbox := sms.NewInbox()
	srv := startServer(t, inbox, directory.Config{})
	e := &forgeryEnv{srv: srv, inbox: inbox}
	e.bob = register(t, srv, inbox, t.TempDir(), forgeBob, 0)
	publishPublic(t, e.bob, bobsChat)
	e.alice = register(t, srv, inbox, t.TempDir(), forgeAlice, 0)
	e.f = newForger(t, srv, forgeBob)
	carol, err := client.New(client.Config{Server: e.f.frontEnd(), StateDir: t.TempDir(), MinBucketOwners: 1,
		Now: func() time.Time { return time.Now().Add(time.Duration(e.carolsOffset.Load())) }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := carol.Verify(t.Context(), forgeCarol); err != nil {
		t.Fatal(err)
	}
	if err := carol.Confirm(t.Context(), inbox.Code(forgeCarol)); err != nil {
		t.Fatal(err)
	}
	e.carol = carol
	return e
}

// misissue has the built-in CA issue a credential for Bob's number to an
// attacker's key, a second past Bob's proof so that its record wins his
// app, and returns its time, key, certificate and attestation.
func (e *forgeryEnv) misissue() (time.Time, *ecdsa.PrivateKey, *x509.Certificate, []byte) {
	now := time.Now().Truncate(time.Second).Add(2 * time.Second)
	attacker, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf, att := e.f.credential(e.srv.CA, forgeBob, attacker, now, time.Hour)
	return now, attacker, leaf, att
}

// lookupBob returns what c sees for Bob: the endpoints accepted, and the
// drops.
func lookupBob(t *testing.T, c *client.Client) ([]string, map[string]int) {
	t.Helper()
	res, err := c.Lookup(t.Context(), forgeBob)
	if err != nil {
		t.Fatal(err)
	}
	var eps []string
	for _, r := range res[0].Records {
		eps = append(eps, r.Endpoint)
	}
	return eps, res[0].Dropped
}

func forgedRecord(endpoint string) record.Record {
	return record.Record{App: "org.example.chat", Endpoint: endpoint, Expires: time.Now().Add(time.Hour).UTC().Truncate(time.Second)}
}

// Each forgery the operator can make without a credential for Bob's
// number that shows in the log, served to Carol alone: she drops it for
// the right reason and still sees Bob's real record; Alice, looking up
// directly, never sees it.
func TestForgeRejected(t *testing.T) {
	e := newForgeryEnv(t)
	f := e.f
	builtin := e.srv.CA
	now := time.Now().Truncate(time.Second)
	attacker, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rogueCA, err := credential.GenerateCA("rogue CA", now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}

	// Another number's credential signs Bob's record.
	daveLeaf, daveAtt := f.credential(builtin, forgeDave, attacker, now, time.Hour)
	// An untrusted CA vouches for the attacker's key for Bob's number.
	rogueLeaf, rogueAtt := f.credential(rogueCA, forgeBob, attacker, now, time.Hour)
	// A credential for Bob's number that had ended when it signed.
	oldLeaf, oldAtt := f.credential(builtin, forgeBob, attacker, now.Add(-3*time.Hour), time.Hour)

	for _, c := range []struct {
		name, reason string
		ct           []byte
	}{
		{"no proof", client.DropUnsigned, mustSealPlain(t, f, forgedRecord("https://evil.example/unsigned"))},
		{"another number's key", client.DropOtherNumber, f.seal(forgedRecord("https://evil.example/dave"), daveAtt, attacker, now,
			forgeDave, f.entry(forgeDave, daveLeaf, builtin.Root()))},
		{"untrusted CA", client.DropUntrustedCA, f.seal(forgedRecord("https://evil.example/rogue"), rogueAtt, attacker, now,
			forgeBob, f.entry(forgeBob, rogueLeaf, rogueCA.Root()))},
		{"signed outside its validity", client.DropNotValidThen, f.seal(forgedRecord("https://evil.example/old"), oldAtt, attacker, now,
			forgeBob, f.entry(forgeBob, oldLeaf, builtin.Root()))},
		{"garbage", client.DropUnreadable, []byte("not a record at all")},
	} {
		t.Run(c.name, func(t *testing.T) {
			f.inject.Store(&c.ct)
			defer f.inject.Store(nil)
			eps, dropped := lookupBob(t, e.carol)
			if !slices.Equal(eps, []string{bobsChat}) {
				t.Errorf("Carol sees %v, want Bob's real record alone", eps)
			}
			if dropped[c.reason] != 1 || len(dropped) != 1 {
				t.Errorf("Carol dropped %v, want one %s", dropped, c.reason)
			}
			if eps, dropped := lookupBob(t, e.alice); !slices.Equal(eps, []string{bobsChat}) || len(dropped) != 0 {
				t.Errorf("Alice sees %v, dropped %v", eps, dropped)
			}
		})
	}

	// A caller that chose to trust the rogue CA accepts its record: the
	// roots are the caller's choice. (Its SMS proof is later than Bob's,
	// a second later, so it wins Bob's app, as it would at the directory.)
	later := now.Add(2 * time.Second)
	laterLeaf, laterAtt := f.credential(rogueCA, forgeBob, attacker, later, time.Hour)
	ct := f.seal(forgedRecord("https://evil.example/rogue"), laterAtt, attacker, later, forgeBob, f.entry(forgeBob, laterLeaf, rogueCA.Root()))
	f.inject.Store(&ct)
	trusting, err := client.New(client.Config{Server: f.frontEnd(), StateDir: t.TempDir(), MinBucketOwners: 1,
		TrustRoots: []*x509.Certificate{builtin.Root(), rogueCA.Root()}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := trusting.Verify(t.Context(), forgeAlice); err != nil {
		t.Fatal(err)
	}
	if err := trusting.Confirm(t.Context(), e.inbox.Code(forgeAlice)); err != nil {
		t.Fatal(err)
	}
	if eps, dropped := lookupBob(t, trusting); !slices.Equal(eps, []string{"https://evil.example/rogue"}) || dropped[client.DropSuperseded] != 1 {
		t.Errorf("a caller trusting the rogue CA sees %v, dropped %v", eps, dropped)
	}
}

// The tampered store: a record written straight into the directory's
// database under Bob's index and key, without a proof, is served to every
// caller and accepted by none.
func TestForgeInStore(t *testing.T) {
	e := newForgeryEnv(t)
	f := e.f
	y := f.y(forgeBob)
	chain, _, err := e.bob.Chain()
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		t.Fatal(err)
	}
	ct := mustSealPlain(t, f, record.Record{App: "org.example.video", Endpoint: "sip:evil@example.org", Expires: time.Now().Add(time.Hour).UTC().Truncate(time.Second)})
	if _, err := e.srv.Node.Store.PutRecord(t.Context(), directory.Record{Index: oprf.Index(y), Holder: sha256.Sum256(leaf.RawSubjectPublicKeyInfo),
		RecordID: oprf.RecordID(y, "org.example.video"), Ciphertext: ct, ACL: acl.List{Visibility: acl.Public},
		Expires: time.Now().Add(time.Hour), Updated: time.Now()}, 32); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*client.Client{"alice": e.alice, "carol": e.carol} {
		eps, dropped := lookupBob(t, c)
		if !slices.Equal(eps, []string{bobsChat}) || dropped[client.DropUnsigned] != 1 {
			t.Errorf("%s sees %v, dropped %v; want Bob's real record and one unsigned drop", name, eps, dropped)
		}
	}
}

// A credential the built-in CA misissues for Bob's number: if the operator
// logs it, Bob's monitor alarms; if it only promises it, Carol accepts the
// forged record, and her next audit reports the unhonoured promise with
// the signed evidence.
func TestForgeMisissued(t *testing.T) {
	e := newForgeryEnv(t)
	f, ca := e.f, e.srv.CA
	now, attacker, leaf, att := e.misissue()
	entry := f.entry(forgeBob, leaf, ca.Root())

	// Promised, not logged.
	ct := f.seal(forgedRecord("https://evil.example/misissued"), att, attacker, now, forgeBob, entry)
	f.inject.Store(&ct)
	eps, _ := lookupBob(t, e.carol)
	if !slices.Equal(eps, []string{"https://evil.example/misissued"}) {
		t.Fatalf("Carol sees %v: a misissued credential with a valid promise is accepted until her audit", eps)
	}
	e.carolsOffset.Store(int64(10 * time.Minute)) // past the promise's 5 minutes
	rep, err := e.carol.Audit(t.Context(), client.MonitorConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Unhonoured) != 1 || !bytes.Equal(rep.Unhonoured[0].Entry, entry) {
		t.Fatalf("audit: %d unhonoured promises, want the misissued credential's", len(rep.Unhonoured))
	}
	if _, err := note.Open([]byte(rep.Unhonoured[0].Evidence), note.VerifierList(kanonLogKey(t, e.srv))); err != nil {
		t.Errorf("evidence does not open under the log key: %v", err)
	}
	// A later audit still reports it: the evidence is kept.
	if rep, err := e.carol.Audit(t.Context(), client.MonitorConfig{}); err != nil || len(rep.Unhonoured) != 1 {
		t.Errorf("second audit: %v, %v", rep, err)
	}

	// Logged: Bob's monitor alarms on the credential for another key.
	if _, err := e.srv.Node.Store.AppendLog(t.Context(), entry); err != nil {
		t.Fatal(err)
	}
	alarms := collectAlarms(t, e.bob, "credential")
	if got, err := translog.Parse([]byte(alarms["credential"].Evidence[0])); err != nil || got.Key != sha256.Sum256(leaf.RawSubjectPublicKeyInfo) {
		t.Errorf("Bob's alarm evidence: %v %+v", err, got)
	}
	// And Carol's audit now finds the promise honoured.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		rep, err := e.carol.Audit(t.Context(), client.MonitorConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Unhonoured) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the promise is still reported after its entry was logged")
		}
	}
}

// TestForgeMislabelled: the operator misissues a credential for Bob's
// number and promises its entry under a label that is not Bob's (one made
// from Dave's proved element), so that Bob's monitor would never see it.
// The lookup takes the label proof on trust, as it takes the promise, and
// Carol accepts the record; her next audit checks the label's proof and
// reports the promise with the signed evidence, then and at every audit
// after.
func TestForgeMislabelled(t *testing.T) {
	e := newForgeryEnv(t)
	f, ca := e.f, e.srv.CA
	now, attacker, leaf, att := e.misissue()
	u, err := oprf.Unblinded([]byte(forgeDave))
	if err != nil {
		t.Fatal(err)
	}
	el, proof, err := f.ev.Evaluate([]byte(api.LogLabelInfo), [][]byte{u})
	if err != nil {
		t.Fatal(err)
	}
	y, err := oprf.ProvedOutput([]byte(api.LogLabelInfo), []byte(forgeBob), el[0])
	if err != nil {
		t.Fatal(err)
	}
	entry, err := translog.CredentialEntry(oprf.LogLabel(y), leaf, ca.Root())
	if err != nil {
		t.Fatal(err)
	}
	promise, err := translog.SignPromise(f.log, entry, now)
	if err != nil {
		t.Fatal(err)
	}
	ct, err := record.SealProved(oprf.RecordKey(f.y(f.victim)), forgedRecord("https://evil.example/mislabelled"),
		&record.Proof{Attestation: att, Signed: now, LabelElement: el[0], LabelProof: proof, Promise: promise}, attacker)
	if err != nil {
		t.Fatal(err)
	}
	f.inject.Store(&ct)
	if eps, _ := lookupBob(t, e.carol); !slices.Equal(eps, []string{"https://evil.example/mislabelled"}) {
		t.Fatalf("Carol sees %v: the label is checked at her audit, not at the lookup", eps)
	}
	for i := range 2 {
		rep, err := e.carol.Audit(t.Context(), client.MonitorConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Mislabelled) != 1 || !bytes.Equal(rep.Mislabelled[0].Entry, entry) {
			t.Fatalf("audit %d: %d mislabelled promises, want the forged credential's", i+1, len(rep.Mislabelled))
		}
		if _, err := note.Open([]byte(rep.Mislabelled[0].Evidence), note.VerifierList(kanonLogKey(t, e.srv))); err != nil {
			t.Errorf("evidence does not open under the log key: %v", err)
		}
	}
	// Bob's real record, looked up directly, passes its label check.
	if _, dropped := lookupBob(t, e.alice); len(dropped) != 0 {
		t.Fatalf("Alice dropped %v", dropped)
	}
	if rep, err := e.alice.Audit(t.Context(), client.MonitorConfig{}); err != nil || len(rep.Mislabelled) != 0 {
		t.Errorf("Alice's audit: %v, %+v", err, rep)
	}
}

func mustSealPlain(t *testing.T, f *forger, r record.Record) []byte {
	t.Helper()
	ct, err := record.Seal(oprf.RecordKey(f.y(f.victim)), r)
	if err != nil {
		t.Fatal(err)
	}
	return ct
}
