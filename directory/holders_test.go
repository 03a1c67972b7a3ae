package directory_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/client"
	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/oprf"
	"blindex.dev/blindex/record"
	"blindex.dev/blindex/translog"
)

func numberN(i int) string { return fmt.Sprintf("+1415555%04d", 2000+i) }

// later moves the server's (and the clients') clock on by d, so that the
// next SMS proof is strictly later than the last, in whole seconds.
func (e *env) later(d time.Duration) { e.skew.Add(int64(d)) }

// verifyAgain proves number again by SMS with c's own key.
func (e *env) verifyAgain(c *client.Client, number string) {
	e.t.Helper()
	if _, err := c.Verify(e.t.Context(), number); err != nil {
		e.t.Fatalf("verify %s again: %v", number, err)
	}
	if err := c.Confirm(e.t.Context(), e.phones.code(number)); err != nil {
		e.t.Fatalf("confirm %s again: %v", number, err)
	}
}

func (e *env) index(number string) [32]byte {
	e.t.Helper()
	y, err := oprf.NewEvaluator(e.srv.Node.OPRFKey).FullEvaluate([]byte(directory.DefaultInfo), []byte(number))
	if err != nil {
		e.t.Fatal(err)
	}
	return oprf.Index(y)
}

func (e *env) holders(number string) []directory.Holder {
	e.t.Helper()
	hs, err := e.srv.Node.Store.Holders(e.t.Context(), e.index(number))
	if err != nil {
		e.t.Fatal(err)
	}
	return hs
}

// holderEvents returns the events of the log's Holder entries, in order.
func (e *env) holderEvents() []translog.HolderEvent {
	e.t.Helper()
	tree, err := e.srv.Node.Store.LogTree(e.t.Context())
	if err != nil {
		e.t.Fatal(err)
	}
	entries, err := e.srv.Node.Store.ReadLogEntries(e.t.Context(), 0, tree.N)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []translog.HolderEvent
	for _, b := range entries {
		if ent, err := translog.Parse(b); err == nil && ent.Kind == translog.Holder {
			out = append(out, ent.Event)
		}
	}
	return out
}

func publish(t *testing.T, c *client.Client, app string, access client.Access) {
	t.Helper()
	if err := c.Publish(t.Context(), rec(app), access); err != nil {
		t.Fatalf("publish %s: %v", app, err)
	}
}

// TestSeveralApps: two apps with their own keys hold one number. The later
// proof puts the earlier app on notice, which hides its records until it
// proves the number again; then both are served.
func TestSeveralApps(t *testing.T) {
	e := newEnv(t, directory.Config{})
	carol := e.register(carol)
	chat := e.client("chat")
	e.verifyAgain(chat, bob)
	publish(t, chat, "org.example.chat", client.Access{Visibility: acl.Public})
	if got := apps(t, carol, bob); !slices.Equal(got, []string{"org.example.chat"}) {
		t.Fatalf("carol sees %v, want chat's record", got)
	}

	e.later(2 * time.Second)
	video := e.client("video")
	e.verifyAgain(video, bob)
	publish(t, video, "org.example.video", client.Access{Visibility: acl.Public})
	if got := apps(t, carol, bob); !slices.Equal(got, []string{"org.example.video"}) {
		t.Errorf("carol sees %v while chat is on notice, want video's record only", got)
	}
	hs := e.holders(bob)
	if len(hs) != 2 {
		t.Fatalf("%d holders, want 2", len(hs))
	}
	var onNotice int
	for _, h := range hs {
		if h.OnNotice() {
			onNotice++
			if h.Records != 1 || !h.NoticeUntil.After(time.Now().Add(directory.DefaultReproofWindow-time.Minute)) {
				t.Errorf("holder on notice: %+v", h)
			}
		}
	}
	if onNotice != 1 {
		t.Errorf("%d holders on notice, want 1 (chat)", onNotice)
	}

	e.later(2 * time.Second)
	e.verifyAgain(chat, bob) // the same key: a re-proof
	if got := apps(t, carol, bob); !slices.Equal(got, []string{"org.example.chat", "org.example.video"}) {
		t.Errorf("carol sees %v after chat proved again, want both", got)
	}
	for _, h := range e.holders(bob) {
		if h.OnNotice() {
			t.Errorf("a holder still on notice after the re-proof: %+v", h)
		}
	}
	// Each app still changes only its own records.
	if err := video.Delete(t.Context(), "org.example.chat"); err == nil {
		t.Error("video deleted chat's record")
	}
	if got := apps(t, carol, bob); len(got) != 2 {
		t.Errorf("carol sees %v, want both", got)
	}
	want := []translog.HolderEvent{translog.Join, translog.Join, translog.Join, translog.Notice, translog.Reproof}
	if got := e.holderEvents(); !slices.Equal(got, want) {
		t.Errorf("holder events %v, want %v (carol's join, chat's, video's and chat's notice, chat's re-proof)", got, want)
	}
}

// TestNoticeRunsOut: a holder that does not prove the number again within
// the window is retired: tombstones, a revoked key, a retire entry.
func TestNoticeRunsOut(t *testing.T) {
	e := newEnv(t, directory.Config{ReproofWindow: time.Minute})
	carol := e.register(carol)
	old := e.client("old")
	e.verifyAgain(old, bob)
	publish(t, old, "org.example.chat", client.Access{Visibility: acl.Public})
	e.later(2 * time.Second)
	owner := e.client("owner")
	e.verifyAgain(owner, bob)
	publish(t, owner, "org.example.video", client.Access{Visibility: acl.Public})

	// A renewal carries the old proof: it clears nothing.
	if err := old.Renew(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := apps(t, carol, bob); !slices.Equal(got, []string{"org.example.video"}) {
		t.Errorf("carol sees %v after the old key renewed, want video only", got)
	}

	e.later(time.Minute + time.Second)
	e.srv.Housekeep(t.Context())
	if hs := e.holders(bob); len(hs) != 1 || hs[0].OnNotice() {
		t.Errorf("holders after the window: %+v, want the owner alone", hs)
	}
	ts, err := e.srv.Node.Store.Tombstones(t.Context(), e.index(bob))
	if err != nil || len(ts) != 1 {
		t.Errorf("tombstones = %d, %v, want 1", len(ts), err)
	}
	err = old.Publish(t.Context(), rec("org.example.chat"), client.Access{Visibility: acl.Public})
	if ce := clientError(err); ce == nil || ce.Status != 401 || !strings.Contains(ce.Message, "revoked") {
		t.Errorf("publishing with the retired key: %v, want 401 revoked", err)
	}
	if err := old.Renew(t.Context()); clientError(err) == nil || clientError(err).Status != 401 {
		t.Errorf("the retired key renewed: %v", err)
	}
	if got := apps(t, carol, bob); !slices.Equal(got, []string{"org.example.video"}) {
		t.Errorf("carol sees %v, want video only", got)
	}
	if ev := e.holderEvents(); ev[len(ev)-1] != translog.Retire {
		t.Errorf("holder events %v: want a retire last", ev)
	}
}

// TestLazyRetire: a holder whose notice has run out is retired by its own
// next request even before housekeeping runs.
func TestLazyRetire(t *testing.T) {
	e := newEnv(t, directory.Config{ReproofWindow: time.Minute})
	e.register(carol)
	old := e.client("old")
	e.verifyAgain(old, bob)
	e.later(2 * time.Second)
	e.verifyAgain(e.client("new"), bob)
	if _, err := old.Lookup(t.Context(), carol); err != nil {
		t.Fatalf("a holder on notice may still look up: %v", err)
	}
	e.later(time.Minute + time.Second)
	if _, err := old.Lookup(t.Context(), carol); clientError(err) == nil || clientError(err).Status != 401 {
		t.Errorf("a holder past its notice: %v, want 401", err)
	}
	if hs := e.holders(bob); len(hs) != 1 {
		t.Errorf("%d holders, want 1", len(hs))
	}
}

// TestEvict: an intruder's key joins the owner's number (an intercepted
// SMS). It cannot evict the owner, whose key joined first; the owner, once
// it has proved the number again within minutes, evicts the intruder at
// once. A stale proof, or a key on notice, evicts nobody.
func TestEvict(t *testing.T) {
	e := newEnv(t, directory.Config{})
	now := func() time.Time { return time.Now().Add(time.Duration(e.skew.Load())) }
	y, _ := oprf.NewEvaluator(e.srv.Node.OPRFKey).FullEvaluate([]byte(directory.DefaultInfo), []byte(bob))
	idx, rid := oprf.Index(y), oprf.RecordID(y, "org.example.chat")
	ct, err := record.Seal(oprf.RecordKey(y), rec("org.example.chat"))
	if err != nil {
		t.Fatal(err)
	}
	owner := e.issueProved(bob, now(), now())
	if r := e.do("POST", api.PathHolders, struct{}{}, &owner); r.status != 200 {
		t.Fatalf("holders: %d %s", r.status, r.body)
	}
	e.later(2 * time.Second)
	intruder := e.issueProved(bob, now(), now())
	req := api.PublishRequest{Index: idx[:], RecordID: rid[:], Ciphertext: ct,
		ACL: &acl.List{Visibility: acl.Public}, Expires: now().Add(time.Hour)}
	if r := e.do("PUT", api.PathRecords, req, &intruder); r.status != 200 {
		t.Fatalf("the intruder publishes: %d %s", r.status, r.body)
	}
	evict := func(s *signer, key [32]byte) response {
		return e.do("POST", api.PathHoldersEvict, api.EvictRequest{KeyHash: key[:]}, s)
	}
	ownerKey, intruderKey := sha256Key(t, owner), sha256Key(t, intruder)
	// The owner is on notice: it may not evict before proving again.
	if r := evict(&owner, intruderKey); r.status != 403 || !strings.Contains(r.message(), "prove the number") {
		t.Errorf("evicting while on notice: %d %s, want 403", r.status, r.body)
	}
	// The intruder's proof is fresh, but the owner's key joined first.
	if r := evict(&intruder, ownerKey); r.status != 403 || !strings.Contains(r.message(), "joined this number before yours") {
		t.Errorf("the intruder evicting the owner: %d %s, want 403", r.status, r.body)
	}
	e.later(2 * time.Second)
	owner = e.reprove(owner, bob, now())
	if r := evict(&owner, [32]byte{1}); r.status != 404 {
		t.Errorf("evicting a key that holds nothing: %d %s, want 404", r.status, r.body)
	}
	// A proof older than EvictFreshness is stale.
	e.later(directory.EvictFreshness + 2*time.Second)
	if r := evict(&owner, intruderKey); r.status != 403 || !strings.Contains(r.message(), "prove the number") {
		t.Errorf("evicting with a stale proof: %d %s, want 403", r.status, r.body)
	}
	owner = e.reprove(owner, bob, now())
	r := evict(&owner, intruderKey)
	var resp api.EvictResponse
	if r.status != 200 || json.Unmarshal(r.body, &resp) != nil || resp.Retired != 1 {
		t.Fatalf("evict: %d %s, want 200 with 1 record retired", r.status, r.body)
	}
	if hs := e.holders(bob); len(hs) != 1 || hs[0].KeyHash != ownerKey || hs[0].OnNotice() {
		t.Errorf("holders after the eviction: %+v, want the owner alone, not on notice", hs)
	}
	if r := e.do("POST", api.PathHolders, struct{}{}, &intruder); r.status != 401 {
		t.Errorf("the evicted key: %d %s, want 401", r.status, r.body)
	}
	if ev := e.holderEvents(); ev[len(ev)-1] != translog.Evict {
		t.Errorf("holder events %v: want an evict last", ev)
	}
	ts, err := e.srv.Node.Store.Tombstones(t.Context(), idx)
	if err != nil || len(ts) != 1 || ts[0].KeyHash != intruderKey {
		t.Errorf("tombstones %+v, %v; want the intruder's record", ts, err)
	}
}

func sha256Key(t *testing.T, s signer) [32]byte {
	t.Helper()
	cert, err := x509.ParseCertificate(s.cert)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(cert.RawSubjectPublicKeyInfo)
}

// TestSameAppLaterProofWins: two holders publish the same app; callers see
// the record of the holder with the later SMS proof, whichever wrote last.
func TestSameAppLaterProofWins(t *testing.T) {
	e := newEnv(t, directory.Config{})
	carol := e.register(carol)
	a := e.client("a")
	e.verifyAgain(a, bob)
	e.later(2 * time.Second)
	b := e.client("b")
	e.verifyAgain(b, bob)
	e.later(2 * time.Second)
	e.verifyAgain(a, bob) // a clears its notice; now a's proof is the later

	endpoint := func() string {
		t.Helper()
		res, err := carol.Lookup(t.Context(), bob)
		if err != nil || len(res[0].Records) != 1 {
			t.Fatalf("lookup: %v, %+v; want one record", err, res)
		}
		return res[0].Records[0].Endpoint
	}
	ra, rb := rec("org.example.chat"), rec("org.example.chat")
	ra.Endpoint, rb.Endpoint = "https://a.example/", "https://b.example/"
	if err := a.Publish(t.Context(), ra, client.Access{Visibility: acl.Public}); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(t.Context(), rb, client.Access{Visibility: acl.Public}); err != nil {
		t.Fatal(err)
	}
	if got := endpoint(); got != ra.Endpoint {
		t.Errorf("carol sees %s, want the later proof's %s", got, ra.Endpoint)
	}
	e.later(2 * time.Second)
	e.verifyAgain(b, bob) // now b's proof is later (and a goes on notice? no: a re-proof notices nobody)
	if got := endpoint(); got != rb.Endpoint {
		t.Errorf("carol sees %s after b proved again, want %s", got, rb.Endpoint)
	}
	// The winner's access list decides: denied by the winner is absent,
	// even though the other holder's record is public.
	if err := b.Publish(t.Context(), rb, client.Access{Visibility: acl.Nobody}); err != nil {
		t.Fatal(err)
	}
	if res, err := carol.Lookup(t.Context(), bob); err != nil || len(res[0].Records) != 0 {
		t.Errorf("lookup: %v, %+v; want nothing (the winner shows nobody)", err, res)
	}
}

// TestHiddenLooksAbsent: a bucket holding a record whose holder is on
// notice answers byte for byte as if the record did not exist.
func TestHiddenLooksAbsent(t *testing.T) {
	e := newEnv(t, directory.Config{MinBucketOwners: 4})
	for i := range 24 {
		c := e.register(numberN(i))
		publish(t, c, "org.example.chat", client.Access{Visibility: acl.Public})
	}
	aliceSigner := e.issue(alice, time.Now(), time.Hour)
	y, err := oprf.NewEvaluator(e.srv.Node.OPRFKey).FullEvaluate([]byte(directory.DefaultInfo), []byte(bob))
	if err != nil {
		t.Fatal(err)
	}
	before, beforeBin := bucketsAnswers(t, e, &aliceSigner, y, 2)
	if !bytes.Contains(before, []byte(`"records":[{`)) {
		t.Fatalf("bucket has no other owners; the test would prove nothing: %s", before)
	}
	old := e.client("old")
	e.verifyAgain(old, bob)
	publish(t, old, "org.example.chat", client.Access{Visibility: acl.Public})
	if shown, _ := bucketsAnswers(t, e, &aliceSigner, y, 2); bytes.Equal(shown, before) {
		t.Fatal("the published record does not show: the test would prove nothing")
	}
	e.later(2 * time.Second)
	e.verifyAgain(e.client("new"), bob)
	hidden, hiddenBin := bucketsAnswers(t, e, &aliceSigner, y, 2)
	if !bytes.Equal(hidden, before) || !bytes.Equal(hiddenBin, beforeBin) {
		t.Errorf("a hidden record's bucket differs from the absent one:\n%s\n%s", hidden, before)
	}
}

// TestRotationKeepsHolders: a new epoch's index inherits the holders of the
// one before, so the order in which holders first use the new epoch puts
// nobody on notice.
func TestRotationKeepsHolders(t *testing.T) {
	e := newEnv(t, directory.Config{})
	now := func() time.Time { return time.Now().Add(time.Duration(e.skew.Load())) }
	touch := func(s *signer) api.HoldersResponse {
		t.Helper()
		r := e.do("POST", api.PathHolders, struct{}{}, s)
		var resp api.HoldersResponse
		if r.status != 200 || json.Unmarshal(r.body, &resp) != nil {
			t.Fatalf("holders: %d %s", r.status, r.body)
		}
		return resp
	}
	x := e.issueProved(bob, now(), now())
	touch(&x)
	e.later(2 * time.Second)
	y := e.issueProved(bob, now(), now())
	touch(&y) // x goes on notice
	e.later(2 * time.Second)
	x = e.reprove(x, bob, now()) // x clears it, with the later proof now
	if resp := touch(&x); len(resp.Holders) != 2 || resp.Holders[0].NoticeUntil != nil || resp.Holders[1].NoticeUntil != nil {
		t.Fatalf("epoch 0 holders %+v: want two, neither on notice", resp.Holders)
	}
	// A third key joins and revokes itself: its row stays in epoch 0, but
	// the new epoch does not bring it back.
	e.later(2 * time.Second)
	w := e.issueProved(bob, now(), now())
	touch(&w)
	if r := e.do("POST", api.PathRevoke, struct{}{}, &w); r.status != 200 {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	e.later(2 * time.Second)
	x = e.reprove(x, bob, now()) // x and y clear the notices w's join gave them
	touch(&x)
	y = e.reprove(y, bob, now().Add(-time.Second))
	touch(&y)
	if _, err := directory.StartEpoch(t.Context(), e.srv.Node.Store, time.Hour, now()); err != nil {
		t.Fatal(err)
	}
	e.later(3 * time.Second) // past the server's epoch cache
	// The holder with the older proof uses the new epoch first: without
	// inheritance, x's later proof would then put it on notice.
	touch(&y)
	resp := touch(&x)
	if resp.Epoch != 1 || len(resp.Holders) != 2 {
		t.Fatalf("epoch %d holders %+v: want epoch 1, two holders", resp.Epoch, resp.Holders)
	}
	for _, h := range resp.Holders {
		if h.NoticeUntil != nil {
			t.Errorf("holder %x on notice after the rotation", h.KeyHash[:4])
		}
	}
}
