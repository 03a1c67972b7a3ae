package witness

import (
	"errors"
	"fmt"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/note"
)

// InsufficientCosignaturesError is returned by RequireCosignatures when a
// checkpoint is validly signed by the log but too few of the given witnesses
// cosigned it.
type InsufficientCosignaturesError struct {
	Found    int // valid cosignatures from distinct given witnesses
	Required int // the k asked for
}

func (e *InsufficientCosignaturesError) Error() string {
	return fmt.Sprintf("witness: checkpoint has %d valid cosignatures from known witnesses, need %d", e.Found, e.Required)
}

// RequireCosignatures opens signedNote, a checkpoint, and returns it only if
// it carries a valid signature from logVerifier and valid cosignatures from
// at least k distinct verifiers in witnesses. Signatures from unknown keys are
// ignored, but an invalid signature from a known key rejects the note: it is
// evidence that someone forged or altered it. Too few cosignatures is an
// *InsufficientCosignaturesError saying how many were found.
//
// Witnesses are counted by (name, key hash); a verifier listed twice, or equal
// to the log's, counts once or not at all. Each witness must have its own
// key: cosignature/v1 does not sign the witness name, so one key listed under
// two names would count twice. The caller checks the origin and size in the
// returned note's text; the cosignature timestamps are not checked.
func RequireCosignatures(signedNote []byte, logVerifier note.Verifier, witnesses []note.Verifier, k int) (*note.Note, error) {
	if logVerifier == nil || k < 0 {
		return nil, ErrInvalidArgument
	}
	type id struct {
		name string
		hash uint32
	}
	logID := id{logVerifier.Name(), logVerifier.KeyHash()}
	list := []note.Verifier{logVerifier}
	seen := map[id]bool{logID: true}
	for _, w := range witnesses {
		if w == nil {
			return nil, ErrInvalidArgument
		}
		// A witness sharing the log's identity adds no independent view.
		if wid := (id{w.Name(), w.KeyHash()}); !seen[wid] {
			seen[wid] = true
			list = append(list, w)
		}
	}

	n, err := note.Open(signedNote, note.VerifierList(list...))
	var unverified *note.UnverifiedNoteError
	var invalid *note.InvalidSignatureError
	switch {
	case errors.As(err, &unverified):
		return nil, ErrLogSignature
	case errors.As(err, &invalid):
		return nil, fmt.Errorf("%w: %w", ErrInvalidSignature, err)
	case err != nil:
		return nil, ErrMalformedCheckpoint
	}
	if _, err := torchwood.ParseCheckpoint(n.Text); err != nil {
		return nil, ErrMalformedCheckpoint
	}

	// note.Open verifies each (name, key hash) at most once, so every
	// signature in n.Sigs is from a distinct verifier in list.
	hasLog, found := false, 0
	for _, s := range n.Sigs {
		if (id{s.Name, s.Hash}) == logID {
			hasLog = true
		} else {
			found++
		}
	}
	if !hasLog {
		return nil, ErrLogSignature
	}
	if found < k {
		return nil, &InsufficientCosignaturesError{Found: found, Required: k}
	}
	return n, nil
}
