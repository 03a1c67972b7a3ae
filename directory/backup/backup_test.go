package backup

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"filippo.io/age"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/directory/sqlite"
)

func TestRoundTripWhileLive(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	live, err := sqlite.Open(filepath.Join(dir, "live.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	now := time.Unix(1_800_000_000, 0)
	holder := [32]byte{0xb}
	put := func(i byte) {
		r := directory.Record{Holder: holder, Ciphertext: bytes.Repeat([]byte{i}, 64), ACL: acl.List{Visibility: acl.Public},
			Expires: now.Add(time.Hour), Updated: now}
		r.Index[0], r.RecordID[0] = i, i
		join := func(hs []directory.Holder) (directory.HolderChange, error) {
			return directory.DecideProof(hs, directory.Proof{KeyHash: holder, Time: now}, now, time.Hour), nil
		}
		if _, err := live.ChangeHolders(ctx, 0, r.Index, join, now); err != nil {
			t.Fatal(err)
		}
		if _, err := live.PutRecord(ctx, r, 10); err != nil {
			t.Fatal(err)
		}
	}
	put(1)
	put(2)
	if _, err := live.DeleteRecord(ctx, [32]byte{2}, holder, [32]byte{2}, time.Now()); err != nil {
		t.Fatal(err)
	}

	id, err := age.GenerateHybridIdentity()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Backup(ctx, filepath.Join(dir, "live.db"), []age.Recipient{id.Recipient()}, &buf); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(buf.Bytes(), bytes.Repeat([]byte{1}, 64)) {
		t.Fatal("the backup holds a ciphertext in the clear")
	}
	put(3) // the live server goes on after the snapshot

	restored := filepath.Join(dir, "restored", "blindex.db")
	if err := Restore(ctx, bytes.NewReader(buf.Bytes()), []age.Identity{id}, restored); err != nil {
		t.Fatal(err)
	}
	s, err := sqlite.Open(restored)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Buckets(ctx, 0, []directory.BucketRange{{Lo: 0, Hi: 1<<32 - 1}}, acl.Pseudonym{}, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(got[0]) != 1 || got[0][0].Index[0] != 1 {
		t.Errorf("restored records = %+v, want exactly record 1 (2 was deleted, 3 came after)", got[0])
	}

	// Never over an existing database; never with the wrong identity; never
	// from a damaged file.
	if err := Restore(ctx, bytes.NewReader(buf.Bytes()), []age.Identity{id}, restored); !errors.Is(err, ErrExists) {
		t.Errorf("restore over a database: %v", err)
	}
	other, _ := age.GenerateHybridIdentity()
	if err := Restore(ctx, bytes.NewReader(buf.Bytes()), []age.Identity{other}, filepath.Join(dir, "x.db")); !errors.Is(err, ErrDecrypt) {
		t.Errorf("wrong identity: %v", err)
	}
	bad := bytes.Clone(buf.Bytes())
	bad[len(bad)-100] ^= 1
	if err := Restore(ctx, bytes.NewReader(bad), []age.Identity{id}, filepath.Join(dir, "y.db")); !errors.Is(err, ErrDecrypt) {
		t.Errorf("damaged backup: %v", err)
	}
	for _, p := range []string{"x.db", "y.db", "y.db.restoring"} {
		if _, err := filepath.Glob(filepath.Join(dir, p)); err == nil {
			if m, _ := filepath.Glob(filepath.Join(dir, p)); len(m) != 0 {
				t.Errorf("a failed restore left %s", p)
			}
		}
	}
}

// A snapshot that decrypts but is not a blindex database is refused.
func TestRestoreRefusesForeignDatabase(t *testing.T) {
	id, _ := age.GenerateHybridIdentity()
	var buf bytes.Buffer
	w, _ := age.Encrypt(&buf, id.Recipient())
	w.Write([]byte("SQLite format 3\x00 but not really"))
	w.Close()
	dir := t.TempDir()
	if err := Restore(t.Context(), &buf, []age.Identity{id}, filepath.Join(dir, "blindex.db")); !errors.Is(err, ErrInvalid) {
		t.Errorf("foreign file: %v, want ErrInvalid", err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*")); len(m) != 0 {
		t.Errorf("a refused restore left %v", m)
	}
}
