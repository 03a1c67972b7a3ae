package client

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/mod/sumdb/note"

	"blindex.dev/blindex/oprf"
	"blindex.dev/blindex/record"
	"blindex.dev/blindex/translog"
)

// filePromises keeps the log promises this client accepted in looked-up
// records, until an audit finds their entries in the log.
const filePromises = "promises.json"

// maxKeptPromises bounds promises.json. A promise is per credential, not
// per lookup, so an address book's worth fits many times over; past the
// bound the oldest go first.
const maxKeptPromises = 20000

// promiseDelay is how long after a promise's time an audit waits before it
// calls the promise unhonoured: the clock skew a record's signing time may
// have (record.Proof.Verify), since every checkpoint signed after the
// promise must hold the entry.
const promiseDelay = 5 * time.Minute

type keptPromise struct {
	Entry     []byte `json:"entry"`
	Time      int64  `json:"time"`
	Signature []byte `json:"signature"`
	// The record's proved label, whose proof the lookup took on trust,
	// for the next audit to check (checkLabels). The number is kept only
	// until then.
	Number       string `json:"number,omitempty"`
	LabelElement []byte `json:"label_element,omitempty"`
	LabelProof   []byte `json:"label_proof,omitempty"`
}

type keptPromises struct {
	Promises []keptPromise `json:"promises"`
	// Mislabelled are promises whose entry's label failed its proof: kept
	// for good, as evidence every audit reports.
	Mislabelled []keptPromise `json:"mislabelled,omitempty"`
}

// keepPromises adds the promises of the records a lookup accepted to
// promises.json, for the next audit to check against the whole log.
func (c *Client) keepPromises(found []verified) error {
	var fresh []keptPromise
	for _, f := range found {
		for _, v := range f.vouched {
			if v.Logged {
				fresh = append(fresh, keptPromise{Entry: v.Entry, Time: v.Promise.Time.Unix(), Signature: v.Promise.Signature[:],
					Number: f.number, LabelElement: v.LabelElement, LabelProof: v.LabelProof})
			}
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	c.keptMu.Lock()
	defer c.keptMu.Unlock()
	kept, err := c.loadPromises()
	if err != nil {
		return err
	}
	have := map[[32]byte]bool{}
	for _, p := range append(kept.Promises, kept.Mislabelled...) {
		have[sha256.Sum256(p.Entry)] = true
	}
	added := false
	for _, p := range fresh {
		if h := sha256.Sum256(p.Entry); !have[h] {
			have[h] = true
			kept.Promises = append(kept.Promises, p)
			added = true
		}
	}
	if !added {
		return nil
	}
	if n := len(kept.Promises); n > maxKeptPromises {
		kept.Promises = slices.Delete(kept.Promises, 0, n-maxKeptPromises)
	}
	return c.savePromises(kept)
}

func (c *Client) loadPromises() (*keptPromises, error) {
	var k keptPromises
	b, err := os.ReadFile(filepath.Join(c.cfg.StateDir, filePromises))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &k, nil
	case err != nil:
		return nil, err
	}
	if err := json.Unmarshal(b, &k); err != nil {
		return nil, fmt.Errorf("client: %s is corrupt: %w", filePromises, err)
	}
	return &k, nil
}

func (c *Client) savePromises(k *keptPromises) error {
	b, err := json.Marshal(k)
	if err != nil {
		return err
	}
	return writeFile(filepath.Join(c.cfg.StateDir, filePromises), b, 0o600)
}

// An UnhonouredPromise is a log promise this client accepted whose entry
// the log does not hold, though the audited checkpoint was fetched after
// the promise's time: signed evidence that the log's key promised an entry
// the owner's monitor could not see, for example a credential issued to
// forge a record for one caller.
type UnhonouredPromise struct {
	Entry    []byte    `json:"entry"`    // the promised `credential` entry
	Time     time.Time `json:"time"`     // when the log promised it
	Evidence string    `json:"evidence"` // the promise as a signed note under the log key (translog.Promise.Note)
}

// promisedEntries returns the SHA-256 of every kept promise's entry, each
// mapped to false (not yet found in the log).
func (c *Client) promisedEntries() (map[[32]byte]bool, error) {
	c.keptMu.Lock()
	defer c.keptMu.Unlock()
	kept, err := c.loadPromises()
	if err != nil {
		return nil, err
	}
	m := make(map[[32]byte]bool, len(kept.Promises))
	for _, p := range kept.Promises {
		m[sha256.Sum256(p.Entry)] = false
	}
	return m, nil
}

// checkPromises settles the kept promises against an audit's view of the
// whole log, in which logged marks the entries found (promisedEntries): a promise whose entry is
// logged is dropped (the log is append-only, and audits check that); one
// older than promiseDelay at fetched is unhonoured and kept, so that every
// later audit reports it too; the rest wait for a later audit.
func (c *Client) checkPromises(logKey note.Verifier, logged map[[32]byte]bool, fetched time.Time) ([]UnhonouredPromise, error) {
	c.keptMu.Lock()
	defer c.keptMu.Unlock()
	kept, err := c.loadPromises()
	if err != nil {
		return nil, err
	}
	var bad []UnhonouredPromise
	var left []keptPromise
	for _, p := range kept.Promises {
		if logged[sha256.Sum256(p.Entry)] {
			continue
		}
		left = append(left, p)
		if u, ok := p.evidence(logKey); ok && u.Time.Add(promiseDelay).Before(fetched) {
			bad = append(bad, u)
		}
	}
	if len(left) == len(kept.Promises) {
		return bad, nil
	}
	kept.Promises = left
	return bad, c.savePromises(kept)
}

// checkLabels checks the label proof of every promise kept since the last
// audit, under the pinned OPRF key: the proof must show that the promised
// entry's label is the looked-up number's, the one its owner's monitor
// reads. A promise that passes forgets its number; one that fails is kept
// for good in Mislabelled. It returns every mislabelled promise, as
// evidence under the log key.
func (c *Client) checkLabels(pk *oprf.PublicKey, logKey note.Verifier) ([]UnhonouredPromise, error) {
	c.keptMu.Lock()
	defer c.keptMu.Unlock()
	kept, err := c.loadPromises()
	if err != nil {
		return nil, err
	}
	changed := false
	left := kept.Promises[:0]
	for _, p := range kept.Promises {
		if p.Number != "" {
			changed = true
			e, err := translog.Parse(p.Entry)
			v := record.Verified{LabelElement: p.LabelElement, LabelProof: p.LabelProof}
			if err == nil {
				v.Label = e.Label
			}
			if err != nil || v.CheckLabel(pk, p.Number) != nil {
				kept.Mislabelled = append(kept.Mislabelled, p)
				continue
			}
			p.Number, p.LabelElement, p.LabelProof = "", nil, nil
		}
		left = append(left, p)
	}
	kept.Promises = left
	if changed {
		if err := c.savePromises(kept); err != nil {
			return nil, err
		}
	}
	var bad []UnhonouredPromise
	for _, p := range kept.Mislabelled {
		if u, ok := p.evidence(logKey); ok {
			bad = append(bad, u)
		}
	}
	return bad, nil
}

// evidence is p as a signed note under logKey, if it is the log's
// promise: only a promise under this log's key is evidence against it.
func (p keptPromise) evidence(logKey note.Verifier) (UnhonouredPromise, bool) {
	promise := translog.Promise{Time: time.Unix(p.Time, 0).UTC()}
	if len(p.Signature) != len(promise.Signature) {
		return UnhonouredPromise{}, false
	}
	copy(promise.Signature[:], p.Signature)
	if translog.VerifyPromise(logKey, p.Entry, promise) != nil {
		return UnhonouredPromise{}, false
	}
	return UnhonouredPromise{Entry: p.Entry, Time: promise.Time, Evidence: string(promise.Note(logKey, p.Entry))}, true
}
