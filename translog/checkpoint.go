package translog

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// A Checkpoint is a signed tree head: a C2SP tlog-checkpoint in a C2SP
// signed note.
type Checkpoint struct {
	Origin string
	tlog.Tree
	Note []byte // the signed note, as received; evidence when trust fails
}

var (
	ErrCheckpoint = errors.New("translog: bad checkpoint")
)

// SignCheckpoint formats and signs the checkpoint of tree for the log origin.
func SignCheckpoint(origin string, tree tlog.Tree, signer note.Signer) ([]byte, error) {
	body := torchwood.Checkpoint{Origin: origin, Tree: tree}.String()
	return note.Sign(&note.Note{Text: body}, signer)
}

// OpenCheckpoint verifies a signed checkpoint against the log's key and
// checks that it names the log's origin (the key's name). Signatures by
// other keys are ignored here; see witness.RequireCosignatures.
func OpenCheckpoint(signed []byte, logKey note.Verifier) (Checkpoint, error) {
	n, err := note.Open(signed, note.VerifierList(logKey))
	var unverified *note.UnverifiedNoteError
	if errors.As(err, &unverified) {
		// Say whose log it is instead: a reader pointed at another
		// directory, or pinned to another key, learns which.
		var by []string
		for _, sig := range unverified.Note.UnverifiedSigs {
			by = append(by, fmt.Sprintf("%s (key %08x)", sig.Name, sig.Hash))
		}
		if len(by) == 0 {
			by = []string{"no key"}
		}
		return Checkpoint{}, fmt.Errorf("%w: signed by %s, not by the log key %s (key %08x): this is another log, or the key you trust is not this log's",
			ErrCheckpoint, strings.Join(by, ", "), logKey.Name(), logKey.KeyHash())
	}
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %w", ErrCheckpoint, err)
	}
	c, err := torchwood.ParseCheckpoint(n.Text)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %w", ErrCheckpoint, err)
	}
	if c.Origin != logKey.Name() {
		return Checkpoint{}, fmt.Errorf("%w: origin %q is not the log's %q", ErrCheckpoint, c.Origin, logKey.Name())
	}
	return Checkpoint{Origin: c.Origin, Tree: c.Tree, Note: bytes.Clone(signed)}, nil
}

// A ForkError says two checkpoints of one log cannot both be true: the log
// forked (the server showed different histories to different readers) or
// was rolled back. Old and New carry both signed checkpoints as evidence;
// each is signed by the log key, so together they prove misbehaviour to
// anyone.
type ForkError struct {
	Old, New Checkpoint
	Reason   string
}

func (e *ForkError) Error() string {
	return fmt.Sprintf("translog: log %q is inconsistent: %s (checkpoints of size %d and %d)", e.Old.Origin, e.Reason, e.Old.N, e.New.N)
}

// CheckConsistency checks that old and latest are checkpoints of one
// append-only history, with proof a tlog consistency proof between the
// smaller and the larger tree. Any failure is a *ForkError.
func CheckConsistency(old, latest Checkpoint, proof tlog.TreeProof) error {
	small, large := old, latest
	if small.N > large.N {
		small, large = large, small
	}
	if small.N == large.N {
		if small.Hash != large.Hash {
			return &ForkError{Old: old, New: latest, Reason: "two different trees of the same size"}
		}
		return nil
	}
	if small.N == 0 {
		return nil // the empty tree is a prefix of every tree
	}
	if err := tlog.CheckTree(proof, large.N, large.Hash, small.N, small.Hash); err != nil {
		return &ForkError{Old: old, New: latest, Reason: "the smaller tree is not a prefix of the larger"}
	}
	return nil
}

// CheckInclusion checks that entry is at index in the checkpoint's tree.
func CheckInclusion(c Checkpoint, index int64, entry []byte, proof tlog.RecordProof) error {
	if index < 0 || index >= c.N {
		return fmt.Errorf("translog: entry %d is outside the tree of size %d", index, c.N)
	}
	if err := tlog.CheckRecord(proof, c.N, c.Hash, index, tlog.RecordHash(entry)); err != nil {
		return fmt.Errorf("translog: entry %d is not in the checkpoint's tree: %w", index, err)
	}
	return nil
}

// VerifierKey returns the note verifier key (name+hash+key, the form
// note.NewVerifier parses) for the signer key skey, or "" if skey is not an
// Ed25519 note signer key.
func VerifierKey(skey string) string {
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 || parts[0] != "PRIVATE" || parts[1] != "KEY" {
		return ""
	}
	key, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(key) != 1+ed25519.SeedSize || key[0] != 1 {
		return ""
	}
	pub := ed25519.NewKeyFromSeed(key[1:]).Public().(ed25519.PublicKey)
	vkey := parts[2] + "+" + parts[3] + "+" + base64.StdEncoding.EncodeToString(append([]byte{1}, pub...))
	if _, err := note.NewVerifier(vkey); err != nil {
		return "" // the hash did not match the name and key
	}
	return vkey
}
