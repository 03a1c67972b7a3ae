package directory

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"

	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/oprf"
	"blindex.dev/blindex/translog"
)

// logPromise answers POST /v1/log/promise: it logs the caller's credential
// as a `credential` entry, if it is not logged yet, and returns the log's
// promise for that entry with the proved log label of the caller's number.
// A publisher puts both in its records' proofs (docs/protocol.md §11.1), so
// a caller can check that the credential behind a record is in the log that
// the owner's monitor reads. This is how credentials from standalone CAs
// become logged: at the first promise asked for them.
//
// The label is evaluated on the caller's own number only, which it proved,
// so this is no registration oracle (unlike a label for any number).
func (s *Server) logPromise(ctx context.Context, c *caller, _ struct{}) (api.PromiseResponse, error) {
	// A number this directory does not hold is logged by the one that does.
	if err := s.misdirected(c); err != nil {
		return api.PromiseResponse{}, err
	}
	root, err := s.issuerOf(c.leaf)
	if err != nil {
		return api.PromiseResponse{}, err
	}
	label, err := s.Label(c.number)
	if err != nil {
		return api.PromiseResponse{}, err
	}
	entry, err := translog.CredentialEntry(label, c.leaf, root)
	if err != nil {
		return api.PromiseResponse{}, err
	}
	if err := s.logOnce(ctx, entry); err != nil {
		return api.PromiseResponse{}, err
	}
	u, err := oprf.Unblinded([]byte(c.number))
	if err != nil {
		return api.PromiseResponse{}, err
	}
	evaluated, proof, err := s.eval.Evaluate([]byte(LogLabelInfo), [][]byte{u})
	if err != nil {
		return api.PromiseResponse{}, err
	}
	// Signed after the append has committed: every checkpoint from now on
	// holds the entry.
	p, err := s.tlog.Promise(entry, s.cfg.Now())
	if err != nil {
		return api.PromiseResponse{}, err
	}
	return api.PromiseResponse{LabelElement: evaluated[0], LabelProof: proof,
		PromiseTime: p.Time.Unix(), PromiseSignature: p.Signature[:]}, nil
}

// issuerOf returns the trusted root that signed leaf (authenticate has
// checked that one did).
func (s *Server) issuerOf(leaf *x509.Certificate) (*x509.Certificate, error) {
	for _, der := range s.rootsDER {
		root, err := x509.ParseCertificate(der)
		if err == nil && leaf.CheckSignatureFrom(root) == nil {
			return root, nil
		}
	}
	return nil, errors.New("directory: no trusted root signed the credential")
}

// logOnce appends entry unless the store's meta marks it logged (as
// logKeys does for its entries). One at a time, so that two requests for
// one credential do not both append it.
func (s *Server) logOnce(ctx context.Context, entry []byte) error {
	s.logKeysMu.Lock()
	defer s.logKeysMu.Unlock()
	key := loggedKey(entry)
	if _, err := s.cfg.Store.Meta(ctx, key); err == nil {
		return nil
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	// Appended before it is marked: a crash in between logs it twice,
	// never not at all.
	if _, err := s.cfg.Store.AppendLog(ctx, entry); err != nil {
		return err
	}
	return s.cfg.Store.InitMeta(ctx, key, []byte{1})
}

// markLogged marks an entry the built-in CA appended, so that the owner's
// promise request does not append it again. A failure only costs a
// duplicate entry later.
func (s *Server) markLogged(ctx context.Context, entry []byte) {
	if err := s.cfg.Store.InitMeta(ctx, loggedKey(entry), []byte{1}); err != nil {
		s.log.Warn("marking a logged credential", "err", err)
	}
}

func loggedKey(entry []byte) string {
	h := sha256.Sum256(entry)
	return "logged_" + hex.EncodeToString(h[:])
}
