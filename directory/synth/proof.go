package synth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/note"

	"blindex.dev/blindex/credential"
	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/oprf"
	"blindex.dev/blindex/record"
	"blindex.dev/blindex/translog"
)

// A publisher makes the publisher proofs of synthetic records
// (docs/protocol.md §11.1), as a real owner's client gets them: a
// credential from the data directory's built-in CA with its attestation,
// the proved log label, and a log promise. So a caller that checks every
// record, as the Go client does, accepts synthetic ones.
//
// One key publishes for every synthetic owner (a real key signs for one
// number; a caller checks only that the CA certified this key for the
// record's number). The promises are signed, but their credential entries
// are not appended: a synthetic directory is for benchmarks, and an audit
// of one reports the promises a lookup kept as unhonoured.
type publisher struct {
	ca       *credential.CA
	key      *ecdsa.PrivateKey
	log      note.Signer
	ev       *oprf.Evaluator
	now      time.Time
	validity time.Duration
}

// publisherKeyScalar seeds the shared publisher key, so that the same seed
// gives the same holders' keys on every build.
const publisherKeyScalar = "blindex synth publisher key"

func newPublisher(ca *credential.CA, logKey string, ev *oprf.Evaluator, now time.Time, validity time.Duration) (*publisher, error) {
	d := sha256.Sum256([]byte(publisherKeyScalar)) // below the P-256 order
	key, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d[:])
	if err != nil {
		return nil, fmt.Errorf("synth: publisher key: %w", err)
	}
	signer, err := note.NewSigner(logKey)
	if err != nil {
		return nil, fmt.Errorf("synth: log key: %w", err)
	}
	return &publisher{ca: ca, key: key, log: signer, ev: ev, now: now.Truncate(time.Second).UTC(), validity: validity}, nil
}

// proof returns the proof of number's records, all but the signature,
// which record.SealProved adds.
func (p *publisher) proof(number string) (*record.Proof, error) {
	der, err := p.ca.Issue(number, &p.key.PublicKey, p.validity, p.now, p.now)
	if err != nil {
		return nil, err
	}
	att, err := p.ca.Attest(der)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	u, err := oprf.Unblinded([]byte(number))
	if err != nil {
		return nil, err
	}
	el, proof, err := p.ev.Evaluate([]byte(api.LogLabelInfo), [][]byte{u})
	if err != nil {
		return nil, err
	}
	y, err := p.ev.FullEvaluate([]byte(api.LogLabelInfo), []byte(number))
	if err != nil {
		return nil, err
	}
	entry, err := translog.CredentialEntry(oprf.LogLabel(y), leaf, p.ca.Root())
	if err != nil {
		return nil, err
	}
	promise, err := translog.SignPromise(p.log, entry, p.now)
	if err != nil {
		return nil, err
	}
	return &record.Proof{Attestation: att, Signed: p.now, LabelElement: el[0], LabelProof: proof, Promise: promise}, nil
}
