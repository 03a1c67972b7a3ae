package client

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"blindex.dev/blindex/credential"
	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/oprf"
	"blindex.dev/blindex/record"
	"blindex.dev/blindex/translog"
)

// verifyRecords keeps one record per app, the one the directory would
// serve: the later SMS proof; for one key, the later signed (an old record
// replayed next to the new one loses). Every other record counts as a drop.
func TestVerifyRecordsSameApp(t *testing.T) {
	const number = "+14155550100"
	now := time.Now().Truncate(time.Second)
	ca, err := credential.GenerateCA("test CA", now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, "test/log")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)
	oprfKey, err := oprf.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	ev := oprf.NewEvaluator(oprfKey)
	y, err := ev.FullEvaluate([]byte(api.LogLabelInfo), []byte(number))
	if err != nil {
		t.Fatal(err)
	}
	u, _ := oprf.Unblinded([]byte(number))
	el, labelProof, err := ev.Evaluate([]byte(api.LogLabelInfo), [][]byte{u})
	if err != nil {
		t.Fatal(err)
	}
	recordKey := [32]byte{1}
	// seal seals a record of app signed at signed by a key that proved the
	// number at proofTime.
	seal := func(key *ecdsa.PrivateKey, proofTime, signed time.Time, endpoint string) []byte {
		der, err := ca.Issue(number, &key.PublicKey, 24*time.Hour, proofTime, proofTime)
		if err != nil {
			t.Fatal(err)
		}
		att, _ := ca.Attest(der)
		leaf, _ := x509.ParseCertificate(der)
		entry, err := translog.CredentialEntry(oprf.LogLabel(y), leaf, ca.Root())
		if err != nil {
			t.Fatal(err)
		}
		promise, _ := translog.SignPromise(signer, entry, proofTime)
		ct, err := record.SealProved(recordKey, record.Record{App: "org.example.chat", Endpoint: endpoint, Expires: now.Add(time.Hour).UTC()},
			&record.Proof{Attestation: att, Signed: signed, LabelElement: el[0], LabelProof: labelProof, Promise: promise}, key)
		if err != nil {
			t.Fatal(err)
		}
		return ct
	}
	older, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	newer, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	first, second := now.Add(-30*time.Minute), now.Add(-10*time.Minute)
	trust := record.Trust{Roots: []*x509.Certificate{ca.Root()}, OPRFKey: oprfKey.Public(), LogKey: verifier}
	cts := [][]byte{
		seal(newer, second, now.Add(-5*time.Minute), "https://chat.example.org/replayed"),
		seal(older, first, now.Add(-time.Minute), "https://chat.example.org/older-key"),
		seal(newer, second, now.Add(-2*time.Minute), "https://chat.example.org/current"),
		[]byte("not a record"),
	}
	got := verifyRecords(recordKey, cts, number, now, trust)
	if len(got.records) != 1 || got.records[0].Endpoint != "https://chat.example.org/current" {
		t.Fatalf("kept %+v, want the newer key's latest record alone", got.records)
	}
	if got.dropped[DropSuperseded] != 2 || got.dropped[DropUnreadable] != 1 || len(got.dropped) != 2 {
		t.Errorf("dropped %v, want 2 superseded and 1 unreadable", got.dropped)
	}
	if !got.vouched[0].Logged || CAFingerprint(got.vouched[0].Root) != CAFingerprint(ca.Root()) {
		t.Errorf("vouched %+v", got.vouched[0])
	}
}
