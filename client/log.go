package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/mod/sumdb/note"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/oprf"
	"blindex.dev/blindex/record"
	"blindex.dev/blindex/translog"
)

// fileLog keeps what the client knows of the transparency log: the latest
// checkpoint it has seen (every later one must be consistent with it), its
// own log label, and the state it expects the directory to hold for it.
const fileLog = "log.json"

type logState struct {
	Checkpoint []byte   `json:"checkpoint,omitempty"` // signed note
	Label      []byte   `json:"label,omitempty"`      // own log label, from a verified evaluation
	Claimed    []byte   `json:"claimed,omitempty"`    // the label the credential entry gave, until Label is known
	Scanned    int64    `json:"scanned"`              // entries [0, Scanned) checked by the monitor
	StateIndex int64    `json:"state_index"`          // log index of the last State entry this client caused; -1 none
	Records    []expect `json:"records"`              // what this client published
	// Retired holds when this client found each lookup epoch retired: the
	// directory then logs an empty State for the old index, which names no
	// epoch, so the monitor accepts empty States near those times.
	Retired map[int]time.Time `json:"retired,omitempty"`
	// Pending is the write sent last whose answer this client has not
	// seen (resync).
	Pending *pendingWrite `json:"pending,omitempty"`
}

// expect is a record as the client published it: what the State
// commitment covers.
type expect struct {
	App        string          `json:"app"`
	Epoch      int             `json:"epoch"`            // the lookup epoch of its index
	Record     *record.Record  `json:"record,omitempty"` // the plaintext, to move it to a new epoch
	RecordID   []byte          `json:"record_id"`
	Ciphertext [32]byte        `json:"ciphertext_sha256"`
	Expires    time.Time       `json:"expires"`
	Visibility acl.Visibility  `json:"visibility"`
	Allow      []acl.Pseudonym `json:"allow,omitempty"`
	Deny       []acl.Pseudonym `json:"deny,omitempty"`
}

func (e expect) state() translog.StateRecord {
	return translog.StateRecord{RecordID: [32]byte(e.RecordID), CiphertextSHA256: e.Ciphertext, Expires: e.Expires,
		ACL: acl.List{Visibility: e.Visibility, Allow: e.Allow, Deny: e.Deny}}
}

// expectedState returns the records of epoch: what the State entries of
// the owner's index in that epoch commit to.
func expectedState(recs []expect, epoch int) []translog.StateRecord {
	var out []translog.StateRecord
	for _, r := range recs {
		if r.Epoch == epoch {
			out = append(out, r.state())
		}
	}
	return out
}

var (
	// ErrNoLog means the directory published no log key: it is not a
	// directory this client can hold to account.
	ErrNoLog = errors.New("client: the directory has no transparency log key")
	// ErrLogEntry means the server's log entry for a change does not say
	// what the change did.
	ErrLogEntry = errors.New("client: the directory logged something other than the change made")
)

func (c *Client) loadLog() (*logState, error) {
	b, err := os.ReadFile(filepath.Join(c.cfg.StateDir, fileLog))
	if errors.Is(err, fs.ErrNotExist) {
		return &logState{StateIndex: -1}, nil
	}
	if err != nil {
		return nil, err
	}
	var s logState
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("client: %s is corrupt: %w", fileLog, err)
	}
	for _, r := range s.Records {
		if len(r.RecordID) != 32 {
			return nil, fmt.Errorf("client: %s is corrupt: a record id is not 32 bytes", fileLog)
		}
	}
	return &s, nil
}

func (c *Client) saveLog(s *logState) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return writeFile(filepath.Join(c.cfg.StateDir, fileLog), b, 0o600)
}

// logKey returns the pinned log key.
func (c *Client) logKey(ctx context.Context) (note.Verifier, error) {
	p, err := c.pinnedCtx(ctx)
	if err != nil {
		return nil, err
	}
	if p.LogKey == "" {
		// Pinned before the directory had a log: adopt its log key once,
		// if it still answers under the pinned OPRF key.
		cfg, err := c.config(ctx)
		if err != nil {
			return nil, err
		}
		if cfg.LogKey == "" || !bytes.Equal(cfg.PublicKey, p.PublicKey) {
			return nil, ErrNoLog
		}
		p.LogKey, p.LogLabelInfo = cfg.LogKey, cfg.LogLabelInfo
		if err := c.savePinned(p); err != nil {
			return nil, err
		}
	}
	v, err := note.NewVerifier(p.LogKey)
	if err != nil {
		return nil, fmt.Errorf("client: pinned log key: %w", err)
	}
	return v, nil
}

// advance checks that cp is consistent with the latest checkpoint the
// client has seen, and keeps the larger of the two. An inconsistency is a
// *translog.ForkError carrying both checkpoints.
func (c *Client) advance(ctx context.Context, s *logState, cp translog.Checkpoint, logKey note.Verifier) error {
	if s.Checkpoint == nil {
		s.Checkpoint = cp.Note
		return nil
	}
	old, err := translog.OpenCheckpoint(s.Checkpoint, logKey)
	if err != nil {
		return fmt.Errorf("client: stored checkpoint: %w", err)
	}
	from, to := min(old.N, cp.N), max(old.N, cp.N)
	var proof translog.ConsistencyProof
	if from != to && from > 0 {
		path := api.PathLog + "/consistency?from=" + strconv.FormatInt(from, 10) + "&to=" + strconv.FormatInt(to, 10)
		err := c.do(ctx, "GET", path, nil, &proof, nil)
		if asStatus(err, http.StatusNotFound) != nil {
			// The log no longer has a tree this client has seen.
			return &translog.ForkError{Old: old, New: cp, Reason: "the log was rolled back: it cannot prove the tree seen before"}
		}
		if err != nil {
			return err
		}
	}
	p, err := proof.Proof()
	if err != nil {
		return err
	}
	if err := translog.CheckConsistency(old, cp, p); err != nil {
		return err
	}
	if cp.N > old.N {
		s.Checkpoint = cp.Note
	}
	return nil
}

// checkProof verifies a log proof from a response and the consistency of
// its checkpoint, and returns the entry.
func (c *Client) checkProof(ctx context.Context, s *logState, p *translog.Proof) (*translog.Entry, error) {
	logKey, err := c.logKey(ctx)
	if err != nil {
		return nil, err
	}
	cp, e, err := p.Verify(logKey)
	if err != nil {
		return nil, err
	}
	if err := c.advance(ctx, s, cp, logKey); err != nil {
		return nil, err
	}
	return e, nil
}

// label returns the client's own log label, evaluating it through the
// directory (with a proof against the pinned key) the first time.
func (c *Client) label(ctx context.Context, s *logState, cred *identity) ([32]byte, error) {
	if len(s.Label) == 32 {
		return [32]byte(s.Label), nil
	}
	_, pk, err := c.pinnedKey(ctx)
	if err != nil {
		return [32]byte{}, err
	}
	blinding, blinded, err := oprf.Blind([][]byte{[]byte(cred.number)})
	if err != nil {
		return [32]byte{}, err
	}
	var resp api.EvaluateResponse
	if err := c.do(ctx, "POST", api.PathLogLabel, api.EvaluateRequest{Elements: blinded}, &resp, cred); err != nil {
		return [32]byte{}, err
	}
	ys, err := blinding.Finalize(pk, []byte(api.LogLabelInfo), resp.Evaluated, resp.Proof)
	if err != nil {
		return [32]byte{}, fmt.Errorf("client: the log label's proof does not verify against the pinned key: %w", err)
	}
	label := oprf.LogLabel(ys[0])
	if s.Claimed != nil && string(s.Claimed) != string(label[:]) {
		return [32]byte{}, fmt.Errorf("%w: the credential was logged under another label than your number's", ErrLogEntry)
	}
	s.Label, s.Claimed = label[:], nil
	return label, nil
}

// confirmLogged checks the log proof of a credential just issued: the entry
// must name this certificate, its key and this client's label.
func (c *Client) confirmLogged(ctx context.Context, resp api.VerifyConfirmResponse, cred *identity) error {
	if resp.Log == nil {
		return nil // a CA that does not log (a standalone CA)
	}
	s, err := c.loadLog()
	if err != nil {
		return err
	}
	e, err := c.checkProof(ctx, s, resp.Log)
	if err != nil {
		return err
	}
	if e.Kind != translog.Credential || e.Cert != sha256.Sum256(resp.Certificate) ||
		e.Key != certHash(cred.cert) {
		return fmt.Errorf("%w: the credential entry does not match the credential", ErrLogEntry)
	}
	// The label is checked when it is first evaluated (label): asking now
	// would spend a label evaluation on every verification.
	if s.Label != nil && string(s.Label) != string(e.Label[:]) {
		return fmt.Errorf("%w: the credential was logged under another label than your number's", ErrLogEntry)
	}
	if s.Label == nil {
		s.Claimed = e.Label[:]
	}
	return c.saveLog(s)
}

// stateLogged checks the log proof of a write in epoch: its State entry
// must commit to exactly the records this client now expects under that
// epoch's index, and records the change (rec replaces app's record in
// epoch; nil removes it).
func (c *Client) stateLogged(ctx context.Context, cred *identity, p *translog.Proof, app string, epoch int, rec *expect) error {
	s, err := c.loadLog()
	if err != nil {
		return err
	}
	recs := replaced(s.Records, app, epoch, rec)
	if p == nil {
		return fmt.Errorf("%w: no log proof in the answer", ErrLogEntry)
	}
	e, err := c.checkProof(ctx, s, p)
	if err != nil {
		return err
	}
	label, err := c.label(ctx, s, cred)
	if err != nil {
		return err
	}
	want := translog.Commitment(translog.Live(expectedState(recs, epoch), e.At))
	if e.Kind != translog.State || e.Label != label || e.Commitment != want {
		return fmt.Errorf("%w: the state entry does not commit to the records published", ErrLogEntry)
	}
	// A fresh entry for this write: an old one replayed, or one dated past
	// every record's expiry (which commits to nothing), proves nothing.
	if p.Index <= s.StateIndex || !fresh(e.At, c.cfg.Now()) {
		return fmt.Errorf("%w: the state entry is not a new one for this write", ErrLogEntry)
	}
	s.Records, s.StateIndex, s.Pending = recs, p.Index, nil
	return c.saveLog(s)
}

// replaced returns recs with app's record in epoch replaced by rec (nil:
// removed).
func replaced(recs []expect, app string, epoch int, rec *expect) []expect {
	out := recs[:0:0]
	for _, r := range recs {
		if r.App != app || r.Epoch != epoch {
			out = append(out, r)
		}
	}
	if rec != nil {
		out = append(out, *rec)
	}
	return out
}

// forget drops app's record in a retired epoch from the local state: the
// directory deleted it.
func (c *Client) forget(app string, epoch int) error {
	s, err := c.loadLog()
	if err != nil {
		return err
	}
	if s.Retired == nil {
		s.Retired = map[int]time.Time{}
	}
	if _, ok := s.Retired[epoch]; !ok {
		s.Retired[epoch] = c.cfg.Now().UTC()
	}
	s.Records = replaced(s.Records, app, epoch, nil)
	return c.saveLog(s)
}

// clockSkew is how far a server's entry time may be from this client's
// clock.
const clockSkew = 5 * time.Minute

func fresh(at, now time.Time) bool {
	return at.After(now.Add(-clockSkew)) && at.Before(now.Add(clockSkew))
}

func certHash(cert *x509.Certificate) [32]byte { return sha256.Sum256(cert.RawSubjectPublicKeyInfo) }
