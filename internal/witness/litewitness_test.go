package witness_test

import (
	"errors"
	"testing"

	"blindex.dev/blindex/internal/witness"
	"blindex.dev/blindex/internal/witness/witnesstest"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// TestLitewitness runs the client against litewitness, the reference witness,
// through the life of a log: first checkpoint, extensions, a wrong old size,
// and forks, which the witness must refuse to cosign.
func TestLitewitness(t *testing.T) {
	lw := witnesstest.Start(t)
	l := newTestLog(t, "log.example.com/litewitness")
	lw.AddLog(t, l.origin, l.vkey)
	w, err := witness.New(lw.URL, lw.VerifierKey)
	if err != nil {
		t.Fatal(err)
	}
	witnesses := []note.Verifier{w.Verifier}

	// addOK submits the checkpoint for size n and checks the result.
	addOK := func(t *testing.T, old int64, proof tlog.TreeProof, n int64) []byte {
		t.Helper()
		cp := l.checkpoint(t, n)
		sigs, err := w.AddCheckpoint(t.Context(), old, proof, cp)
		if err != nil {
			t.Fatalf("AddCheckpoint(old %d, size %d): %v", old, n, err)
		}
		cosigned := append(cp, sigs...)
		got, err := witness.RequireCosignatures(cosigned, l.verifier(t), witnesses, 1)
		if err != nil {
			t.Fatalf("RequireCosignatures: %v\n%s", err, cosigned)
		}
		if got.Text != l.text(t, n) {
			t.Fatalf("cosigned text %q", got.Text)
		}
		var insufficient *witness.InsufficientCosignaturesError
		if _, err := witness.RequireCosignatures(cosigned, l.verifier(t), witnesses, 2); !errors.As(err, &insufficient) || insufficient.Found != 1 {
			t.Fatalf("k=2 with one witness: err = %v", err)
		}
		return cosigned
	}
	// wantSize checks the size the witness has cosigned, by asking it to
	// cosign from a wrong old size of 0.
	wantSize := func(t *testing.T, size int64) {
		t.Helper()
		_, err := w.AddCheckpoint(t.Context(), 0, nil, l.checkpoint(t, size+1))
		var conflict *witness.ConflictError
		if !errors.As(err, &conflict) || conflict.Size != size {
			t.Fatalf("probe: err = %v, want ConflictError{Size: %d}", err, size)
		}
	}

	l.grow(t, 5, "")
	l.grow(t, 20, "") // room to probe sizes beyond the cosigned one
	t.Run("first checkpoint", func(t *testing.T) {
		addOK(t, 0, nil, 5)
		wantSize(t, 5)
	})
	t.Run("consistent extension", func(t *testing.T) {
		addOK(t, 5, l.proof(t, 9, 5), 9)
		wantSize(t, 9)
	})
	t.Run("same checkpoint again", func(t *testing.T) {
		addOK(t, 9, nil, 9)
	})
	t.Run("wrong old size", func(t *testing.T) {
		_, err := w.AddCheckpoint(t.Context(), 5, l.proof(t, 12, 5), l.checkpoint(t, 12))
		var conflict *witness.ConflictError
		if !errors.As(err, &conflict) || conflict.Size != 9 {
			t.Fatalf("err = %v, want ConflictError{Size: 9}", err)
		}
		// The error carries what the retry needs.
		addOK(t, conflict.Size, l.proof(t, 12, conflict.Size), 12)
	})

	// fork shares the first 7 entries with l, which the witness has cosigned
	// up to size 12, and then diverges.
	fork := l.fork(t, 7)
	fork.grow(t, 10, "fork")
	t.Run("fork at the same size", func(t *testing.T) {
		_, err := w.AddCheckpoint(t.Context(), 12, nil, fork.checkpoint(t, 12))
		// c2sp.org/tlog-witness asks for a 409 here; litewitness answers 422.
		var conflict *witness.ConflictError
		if !errors.Is(err, witness.ErrInconsistent) && !(errors.As(err, &conflict) && conflict.Size == 12) {
			t.Fatalf("err = %v, want a refusal", err)
		}
		wantSize(t, 12)
	})
	t.Run("fork with its own proof", func(t *testing.T) {
		// A valid proof within the fork, which does not reach the witness's root.
		_, err := w.AddCheckpoint(t.Context(), 12, fork.proof(t, 15, 12), fork.checkpoint(t, 15))
		if !errors.Is(err, witness.ErrInconsistent) {
			t.Fatalf("err = %v, want ErrInconsistent", err)
		}
		wantSize(t, 12)
	})
	t.Run("tampered proof", func(t *testing.T) {
		proof := l.proof(t, 15, 12)
		proof[0][0] ^= 1
		_, err := w.AddCheckpoint(t.Context(), 12, proof, l.checkpoint(t, 15))
		if !errors.Is(err, witness.ErrInconsistent) {
			t.Fatalf("err = %v, want ErrInconsistent", err)
		}
		wantSize(t, 12)
	})
	t.Run("wrong log key", func(t *testing.T) {
		impostor := newTestLog(t, l.origin)
		impostor.append(t, l.entries...)
		_, err := w.AddCheckpoint(t.Context(), 12, impostor.proof(t, 15, 12), impostor.checkpoint(t, 15))
		if !errors.Is(err, witness.ErrForbidden) {
			t.Fatalf("err = %v, want ErrForbidden", err)
		}
		wantSize(t, 12)
	})
	t.Run("unknown log", func(t *testing.T) {
		other := newTestLog(t, "log.example.com/unknown")
		other.grow(t, 1, "")
		_, err := w.AddCheckpoint(t.Context(), 0, nil, other.checkpoint(t, 1))
		// c2sp.org/tlog-witness asks for a 404 here; litewitness answers 403.
		if !errors.Is(err, witness.ErrUnknownLog) && !errors.Is(err, witness.ErrForbidden) {
			t.Fatalf("err = %v, want a refusal", err)
		}
	})
	t.Run("wrong witness key", func(t *testing.T) {
		// The witness cosigns, but not under the key the log trusts.
		wrong, err := witness.New(lw.URL, newCosigner(t, lw.Name).Verifier().String())
		if err != nil {
			t.Fatal(err)
		}
		_, err = wrong.AddCheckpoint(t.Context(), 12, l.proof(t, 15, 12), l.checkpoint(t, 15))
		if !errors.Is(err, witness.ErrNoCosignature) {
			t.Fatalf("err = %v, want ErrNoCosignature", err)
		}
		wantSize(t, 15)
	})
	t.Run("extension after refusals", func(t *testing.T) {
		addOK(t, 15, l.proof(t, 25, 15), 25)
	})
}
