package record

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"blindex.dev/blindex/credential"
	"blindex.dev/blindex/oprf"
	"blindex.dev/blindex/translog"
	"golang.org/x/mod/sumdb/note"
)

const proofNumber = "+14155550100"

var proofNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// proofFixture is a credential, a directory's OPRF and log keys, and a
// record proved under them.
type proofFixture struct {
	ca     *credential.CA
	key    *ecdsa.PrivateKey
	oprf   *oprf.PrivateKey
	signer note.Signer
	trust  Trust
	rec    Record
	proof  *Proof
	entry  []byte
}

func newProofFixture(t testing.TB) *proofFixture {
	t.Helper()
	f := &proofFixture{rec: testRecord()}
	f.rec.Expires = proofNow.Add(90 * 24 * time.Hour)
	var err error
	if f.ca, err = credential.GenerateCA("blindex CA", proofNow.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if f.key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	der, err := f.ca.Issue(proofNumber, f.key.Public(), 30*24*time.Hour, proofNow, proofNow)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	att, err := f.ca.Attest(der)
	if err != nil {
		t.Fatal(err)
	}
	if f.oprf, err = oprf.GenerateKey(); err != nil {
		t.Fatal(err)
	}
	ev := oprf.NewEvaluator(f.oprf)
	u, _ := oprf.Unblinded([]byte(proofNumber))
	el, pr, err := ev.Evaluate([]byte(labelInfo), [][]byte{u})
	if err != nil {
		t.Fatal(err)
	}
	y, _ := ev.FullEvaluate([]byte(labelInfo), []byte(proofNumber))
	if f.entry, err = translog.CredentialEntry(oprf.LogLabel(y), leaf, f.ca.Root()); err != nil {
		t.Fatal(err)
	}
	skey, vkey, _ := note.GenerateKey(rand.Reader, "example.com/log")
	f.signer, _ = note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	promise, err := translog.SignPromise(f.signer, f.entry, proofNow)
	if err != nil {
		t.Fatal(err)
	}
	f.proof = &Proof{Attestation: att, Signed: proofNow, LabelElement: el[0], LabelProof: pr, Promise: promise}
	f.trust = Trust{Roots: []*x509.Certificate{f.ca.Root()}, OPRFKey: f.oprf.Public(), LogKey: v}
	return f
}

// reopen seals f's record and proof (signing with key) and opens them again.
func (f *proofFixture) reopen(t *testing.T, key *ecdsa.PrivateKey, p Proof) (Record, *Proof) {
	t.Helper()
	ct, err := SealProved(testKey, f.rec, &p, key)
	if err != nil {
		t.Fatal(err)
	}
	r, got, err := OpenProved(testKey, ct)
	if err != nil {
		t.Fatal(err)
	}
	return r, got
}

func TestProofVerifies(t *testing.T) {
	f := newProofFixture(t)
	ct, err := SealProved(testKey, f.rec, f.proof, f.key)
	if err != nil {
		t.Fatal(err)
	}
	// The fixture's record (Appendix A.4's, 583 bytes with its proof) is
	// a little longer than a synthetic one: the second class.
	if want := envelopeOverhead + SizeClasses[1]; len(ct) != want {
		t.Errorf("sealed proved record is %d bytes, want the 640 class's %d", len(ct), want)
	}
	r, p, err := OpenProved(testKey, ct)
	if err != nil {
		t.Fatal(err)
	}
	if p == nil {
		t.Fatal("OpenProved found no proof")
	}
	v, err := p.Verify(r, proofNumber, proofNow.Add(time.Hour), f.trust)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if v.Root != f.ca.Root() || !v.Logged || string(v.Entry) != string(f.entry) || v.Attestation.Number != proofNumber {
		t.Errorf("Verified = %+v", v)
	}
	// Open still reads a proved record; a record sealed without a proof has none.
	if _, err := Open(testKey, ct); err != nil {
		t.Errorf("Open(proved record): %v", err)
	}
	r, p, err = OpenProved(testKey, mustSeal(t, testKey, f.rec))
	if err != nil || p != nil {
		t.Fatalf("OpenProved(unproved) = %v, %v", p, err)
	}
	if _, err := p.Verify(r, proofNumber, proofNow, f.trust); !errors.Is(err, ErrUnsigned) {
		t.Errorf("unproved record: err = %v, want ErrUnsigned", err)
	}
}

func TestProofRejects(t *testing.T) {
	f := newProofFixture(t)
	at := proofNow.Add(time.Hour)
	other := newProofFixture(t) // another CA, OPRF key, log key and credential key

	check := func(name string, r Record, p *Proof, number string, now time.Time, trust Trust, want error) {
		t.Helper()
		if _, err := p.Verify(r, number, now, trust); !errors.Is(err, want) {
			t.Errorf("%s: err = %v, want %v", name, err, want)
		}
	}
	r, p := f.reopen(t, f.key, *f.proof)
	check("valid", r, p, proofNumber, at, f.trust, nil)

	untrusted := f.trust
	untrusted.Roots = []*x509.Certificate{other.ca.Root()}
	check("untrusted CA", r, p, proofNumber, at, untrusted, ErrUntrustedCA)
	check("no roots", r, p, proofNumber, at, Trust{OPRFKey: f.trust.OPRFKey, LogKey: f.trust.LogKey}, ErrUntrustedCA)
	check("another number", r, p, "+14155550101", at, f.trust, ErrOtherNumber)

	// Signed by a key the attestation does not name: the directory's own
	// key, say, sealing a record of its choosing under the owner's proof.
	r2, p2 := f.reopen(t, other.key, *f.proof)
	check("forged signature", r2, p2, proofNumber, at, f.trust, ErrSignature)

	// The same proof on another record: the signature covers the JSON.
	js, _ := encodeJSON(Record{App: f.rec.App, Endpoint: "https://evil.example/", Priority: 0, Expires: f.rec.Expires})
	good, _ := SealProved(testKey, f.rec, f.proof, f.key)
	_, gp, _ := OpenProved(testKey, good)
	unsigned, _ := gp.encodeUnsigned()
	body := binary.BigEndian.AppendUint16(nil, uint16(len(js)))
	body = append(body, js...)
	body = binary.BigEndian.AppendUint16(body, uint16(len(unsigned)+64))
	body = append(append(body, unsigned...), gp.Signature[:]...)
	padded, _ := pad(body)
	swapped, _ := seal(testKey, padded)
	r3, p3, err := OpenProved(testKey, swapped)
	if err != nil {
		t.Fatal(err)
	}
	check("proof moved to another record", r3, p3, proofNumber, at, f.trust, ErrSignature)

	// A signing time outside the credential's validity.
	early := *f.proof
	early.Signed = proofNow.Add(-2 * time.Minute) // notBefore is a minute before issue
	r4, p4 := f.reopen(t, f.key, early)
	check("signed before the credential", r4, p4, proofNumber, at, f.trust, ErrNotValidThen)
	late := *f.proof
	late.Signed = proofNow.Add(31 * 24 * time.Hour)
	r5, p5 := f.reopen(t, f.key, late)
	check("signed after the credential", r5, p5, proofNumber, proofNow.Add(32*24*time.Hour), f.trust, ErrNotValidThen)
	future := *f.proof
	future.Signed = proofNow.Add(time.Hour)
	r6, p6 := f.reopen(t, f.key, future)
	check("signed in the future", r6, p6, proofNumber, proofNow, f.trust, ErrNotValidThen)

	// Past the grace after the credential's end.
	na := proofNow.Add(30 * 24 * time.Hour)
	check("within the grace", r, p, proofNumber, na.Add(RecordGrace), f.trust, nil)
	check("past the grace", r, p, proofNumber, na.Add(RecordGrace+time.Second), f.trust, ErrStale)

	// A label proved under another OPRF key.
	wrongKey := f.trust
	wrongKey.OPRFKey = other.oprf.Public()
	check("label under another OPRF key", r, p, proofNumber, at, wrongKey, ErrLabel)
	badLabel := *f.proof
	badLabel.LabelElement = other.proof.LabelElement
	r7, p7 := f.reopen(t, f.key, badLabel)
	check("another directory's label", r7, p7, proofNumber, at, f.trust, ErrLabel)

	// With the label check deferred, Verify takes the label proof on trust
	// and CheckLabel does the check: a label proved under another key
	// verifies, and fails its check later; a label element that does not
	// yield the promised entry's label fails the promise at once.
	deferred := wrongKey
	deferred.DeferLabel = true
	v, err := p.Verify(r, proofNumber, at, deferred)
	if err != nil {
		t.Fatalf("deferred label: %v", err)
	}
	if err := v.CheckLabel(other.oprf.Public(), proofNumber); !errors.Is(err, ErrLabel) {
		t.Errorf("CheckLabel under another key: %v, want ErrLabel", err)
	}
	if err := v.CheckLabel(f.trust.OPRFKey, proofNumber); err != nil {
		t.Errorf("CheckLabel under the right key: %v", err)
	}
	if err := v.CheckLabel(f.trust.OPRFKey, "+14155550101"); !errors.Is(err, ErrLabel) {
		t.Errorf("CheckLabel for another number: %v, want ErrLabel", err)
	}
	deferred.OPRFKey = f.trust.OPRFKey
	check("another directory's label, deferred", r7, p7, proofNumber, at, deferred, ErrUnlogged)

	// A promise from another log, or for another entry.
	otherLog := f.trust
	otherLog.LogKey = other.trust.LogKey
	check("promise under another log key", r, p, proofNumber, at, otherLog, ErrUnlogged)
	noLog := f.trust
	noLog.LogKey = nil
	check("no log key", r, p, proofNumber, at, noLog, ErrUnlogged)
	noLog.Unlogged = true
	if v, err := p.Verify(r, proofNumber, at, noLog); err != nil || v.Logged {
		t.Errorf("Unlogged allowed: Verify = %+v, %v; want accepted, not logged", v, err)
	}
	wrongEntry := *f.proof
	wrongEntry.Promise = other.proof.Promise
	r8, p8 := f.reopen(t, f.key, wrongEntry)
	check("promise for another entry", r8, p8, proofNumber, at, f.trust, ErrUnlogged)
	futurePromise := *f.proof
	futurePromise.Promise, _ = translog.SignPromise(f.signer, f.entry, at.Add(time.Hour))
	r9, p9 := f.reopen(t, f.key, futurePromise)
	check("promise from the future", r9, p9, proofNumber, at, f.trust, ErrUnlogged)
}

func TestProofMalformed(t *testing.T) {
	f := newProofFixture(t)
	ct, _ := SealProved(testKey, f.rec, f.proof, f.key)
	padded, err := decrypt(testKey, ct)
	if err != nil {
		t.Fatal(err)
	}
	n := int(binary.BigEndian.Uint16(padded))
	m := int(binary.BigEndian.Uint16(padded[2+n:]))
	for _, tt := range []struct {
		name   string
		change func(b []byte)
	}{
		{"proof version", func(b []byte) { b[2+n+2] = 2 }},
		{"attestation length", func(b []byte) { b[2+n+3]++ }},
		{"proof length short", func(b []byte) { binary.BigEndian.PutUint16(b[2+n:], uint16(m-1)) }},
		{"proof length past end", func(b []byte) { binary.BigEndian.PutUint16(b[2+n:], uint16(len(b))) }},
		{"byte after proof", func(b []byte) { b[2+n+2+m] = 1 }},
	} {
		b := append([]byte(nil), padded...)
		tt.change(b)
		if _, _, err := parsePadded(b); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", tt.name, err)
		}
	}
}

// FuzzParsePadded feeds arbitrary plaintexts, as a key holder could seal
// them, to the parser of the padded payload and its proof, and every proof
// that parses to Verify: neither may panic, and a parse error returns
// nothing.
func FuzzParsePadded(f *testing.F) {
	fx := newProofFixture(f)
	ct, err := SealProved(testKey, fx.rec, fx.proof, fx.key)
	if err != nil {
		f.Fatal(err)
	}
	padded, err := decrypt(testKey, ct)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(padded)
	plain, err := decrypt(testKey, mustSeal(f, testKey, fx.rec))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(plain)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, p, err := parsePadded(b)
		if err != nil {
			if p != nil || r.App != "" {
				t.Fatalf("parsePadded returned a record or proof with error %v", err)
			}
			return
		}
		if p != nil {
			p.Verify(r, proofNumber, proofNow.Add(time.Hour), fx.trust)
		}
	})
}
