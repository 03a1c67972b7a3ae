package sqlite_test

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/ca"
	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/directory/sqlite"
	"blindex.dev/blindex/directory/storetest"
	"blindex.dev/blindex/internal/storeerr"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) directory.Store {
		return open(t, filepath.Join(t.TempDir(), "db"))
	})
}

// open opens path and fails the test if that fails. The caller closes it.
func open(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	return s
}

func closeStore(t *testing.T, s *sqlite.Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

var now = time.Unix(1_750_000_000, 0)

// testHolder is the key whose records the tests store.
var testHolder = [32]byte{'h', 'o', 'l', 'd', 'e', 'r'}

// hold makes key a holder of index in epoch 0, proved at now, with no
// label (so that its records' changes are not logged).
func hold(tb testing.TB, s *sqlite.Store, index, key [32]byte) {
	tb.Helper()
	_, err := s.ChangeHolders(tb.Context(), 0, index, func([]directory.Holder) (directory.HolderChange, error) {
		return directory.HolderChange{Put: []directory.Holder{{KeyHash: key, FirstProof: now, LastProof: now}}}, nil
	}, now)
	if err != nil {
		tb.Fatalf("ChangeHolders: %v", err)
	}
}

// unhold retires key, a holder of index with no records left, so that no
// row keeps index.
func unhold(tb testing.TB, s *sqlite.Store, index, key [32]byte) {
	tb.Helper()
	_, err := s.ChangeHolders(tb.Context(), 0, index, func([]directory.Holder) (directory.HolderChange, error) {
		return directory.HolderChange{Retire: []directory.Holder{{KeyHash: key}}}, nil
	}, now)
	if err != nil {
		tb.Fatalf("ChangeHolders: %v", err)
	}
}

// putRecord stores r as testHolder's record, making it a holder first.
func putRecord(tb testing.TB, s *sqlite.Store, r directory.Record, maxPerHolder int) (int64, error) {
	tb.Helper()
	r.Holder = testHolder
	hold(tb, s, r.Index, r.Holder)
	return s.PutRecord(tb.Context(), r, maxPerHolder)
}

func pseudonym(n byte) acl.Pseudonym {
	var p acl.Pseudonym
	p[0], p[31] = 'p', n
	return p
}

func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	v := ca.Verification{
		CodeMAC:  []byte("mac"),
		Created:  now,
		Expires:  now.Add(time.Hour),
		Attempts: 1,
	}
	v.ID[0], v.NumberTag[0] = 1, 2
	r := directory.Record{
		Ciphertext: []byte("sealed"),
		ACL:        acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{pseudonym(1)}, Deny: []acl.Pseudonym{pseudonym(2)}},
		Expires:    now.Add(time.Hour),
		Updated:    now,
	}
	r.Index[0], r.RecordID[0] = 3, 4

	s := open(t, path)
	if err := s.InitMeta(t.Context(), "k", []byte("value")); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateVerification(t.Context(), v); err != nil {
		t.Fatal(err)
	}
	if _, err := putRecord(t, s, r, 10); err != nil {
		t.Fatal(err)
	}
	closeStore(t, s)

	s = open(t, path)
	defer closeStore(t, s)
	if got, err := s.Meta(t.Context(), "k"); err != nil || string(got) != "value" {
		t.Errorf("Meta after reopening = %q, %v; want \"value\"", got, err)
	}
	got, err := s.Verification(t.Context(), v.ID)
	if err != nil {
		t.Fatalf("Verification after reopening: %v", err)
	}
	if got.NumberTag != v.NumberTag || got.Attempts != v.Attempts ||
		!got.Expires.Equal(v.Expires) || !bytes.Equal(got.CodeMAC, v.CodeMAC) {
		t.Errorf("Verification after reopening = %+v, want %+v", got, v)
	}
	for _, tt := range []struct {
		caller          acl.Pseudonym
		allowed, denied bool
	}{{pseudonym(1), true, false}, {pseudonym(2), false, true}} {
		bs, err := s.Buckets(t.Context(), 0, []directory.BucketRange{{Lo: 0, Hi: 0xffffffff}}, tt.caller, now)
		if err != nil {
			t.Fatalf("Buckets after reopening: %v", err)
		}
		if len(bs[0]) != 1 {
			t.Fatalf("Buckets after reopening: %d records, want 1", len(bs[0]))
		}
		c := bs[0][0]
		if c.Index != r.Index || c.RecordID != r.RecordID || !bytes.Equal(c.Ciphertext, r.Ciphertext) ||
			c.Visibility != acl.Allowlist || c.Allowed != tt.allowed || c.Denied != tt.denied ||
			c.Holder != testHolder || c.Hidden || !c.LastProof.Equal(now) {
			t.Errorf("Buckets after reopening = %+v", c)
		}
	}
	if err := s.IntegrityCheck(t.Context()); err != nil {
		t.Errorf("IntegrityCheck after reopening: %v", err)
	}
}

func userVersion(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestFutureSchemaVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	closeStore(t, open(t, path))

	future := sqlite.SchemaVersion + 41
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(fmt.Sprintf("PRAGMA user_version = %d", future)); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := sqlite.Open(path)
	if err == nil {
		s.Close()
		t.Fatalf("Open of a database with schema version %d succeeded", future)
	}
	// The message names the file's version and the one this binary supports.
	for _, v := range []int{future, sqlite.SchemaVersion} {
		if !regexp.MustCompile(`\b` + strconv.Itoa(v) + `\b`).MatchString(err.Error()) {
			t.Errorf("Open error %q does not name version %d", err, v)
		}
	}
	if got := userVersion(t, path); got != future {
		t.Errorf("refused database now has user_version %d, want %d left alone", got, future)
	}
}

func TestIntegrityCheck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	s := open(t, path)
	if err := s.IntegrityCheck(t.Context()); err != nil {
		t.Errorf("IntegrityCheck on a fresh store: %v", err)
	}
	// Enough records to spread the table over many pages.
	for i := range 200 {
		r := directory.Record{
			Ciphertext: bytes.Repeat([]byte{byte(i)}, 200),
			ACL:        acl.List{Visibility: acl.Public},
			Expires:    now.Add(time.Hour),
			Updated:    now,
		}
		r.Index[0], r.RecordID[0] = byte(i), byte(i)
		if _, err := putRecord(t, s, r, 10); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.IntegrityCheck(t.Context()); err != nil {
		t.Errorf("IntegrityCheck after writes: %v", err)
	}
	closeStore(t, s)

	// Overwrite the last page, a b-tree page, with garbage.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	const pageSize = 4096
	if fi.Size() < 4*pageSize {
		t.Fatalf("database is %d bytes, want several pages", fi.Size())
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xa5}, pageSize), fi.Size()-pageSize); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	// Open runs the check itself (quick_check), and refuses the damaged
	// file rather than serve from what is left of it.
	if s, err := sqlite.Open(path); err == nil {
		s.Close()
		t.Error("Open of a corrupted database succeeded")
	} else if !errors.Is(err, storeerr.ErrCorrupt) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "backup") {
		t.Errorf("Open of a corrupted database: %v, want storeerr.ErrCorrupt naming the file and the backup", err)
	}
}

// TestDeletedDataGone checks that a deleted verification or record, a
// replaced ciphertext and a removed ACL entry leave no copy in the database
// file, its WAL or its shared-memory file once the store is closed: a
// seized or backed-up file must not reveal pending number tags, sealed
// records, or whom an owner allowed.
// A deletionCase writes data and deletes it with run; none of its markers
// may remain in the database files afterwards.
type deletionCase struct {
	name    string
	markers map[string][]byte
	run     func(t *testing.T, s *sqlite.Store)
}

func TestDeletedDataGone(t *testing.T) {
	marker := func(name string, n int) []byte {
		return bytes.Repeat([]byte(name), n/len(name)+1)[:n]
	}
	var tag [32]byte
	copy(tag[:], marker("TAGMARKER", 32))
	var index, recordID [32]byte
	copy(index[:], marker("INDEXMARKER", 32))
	copy(recordID[:], marker("RECORDIDMARKER", 32))
	var allowed, denied acl.Pseudonym
	copy(allowed[:], marker("ALLOWMARKER", 32))
	copy(denied[:], marker("DENYMARKER", 32))

	tests := []deletionCase{
		{
			name: "DeleteVerification",
			markers: map[string][]byte{
				"number tag": tag[:],
				"code MAC":   marker("MACMARKER", 64),
			},
			run: func(t *testing.T, s *sqlite.Store) {
				v := ca.Verification{NumberTag: tag, CodeMAC: marker("MACMARKER", 64),
					Created: now, Expires: now.Add(time.Hour)}
				v.ID[0] = 1
				if err := s.CreateVerification(t.Context(), v); err != nil {
					t.Fatal(err)
				}
				if err := s.DeleteVerification(t.Context(), v.ID); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "DeleteExpiredVerifications",
			markers: map[string][]byte{
				"number tag": tag[:],
				"code MAC":   marker("MACMARKER", 64),
			},
			run: func(t *testing.T, s *sqlite.Store) {
				v := ca.Verification{NumberTag: tag, CodeMAC: marker("MACMARKER", 64),
					Created: now, Expires: now}
				v.ID[0] = 1
				if err := s.CreateVerification(t.Context(), v); err != nil {
					t.Fatal(err)
				}
				if n, err := s.DeleteExpiredVerifications(t.Context(), now); err != nil || n != 1 {
					t.Fatalf("DeleteExpiredVerifications = %d, %v", n, err)
				}
			},
		},
		{
			name: "DeleteRecord",
			markers: map[string][]byte{
				"ciphertext":      marker("SECRETMARKER", 64),
				"index":           index[:],
				"record id":       recordID[:],
				"allow pseudonym": allowed[:],
				"deny pseudonym":  denied[:],
			},
			run: func(t *testing.T, s *sqlite.Store) {
				r := directory.Record{Index: index, RecordID: recordID, Ciphertext: marker("SECRETMARKER", 64),
					ACL:     acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{allowed}, Deny: []acl.Pseudonym{denied}},
					Expires: now.Add(time.Hour), Updated: now}
				if _, err := putRecord(t, s, r, 10); err != nil {
					t.Fatal(err)
				}
				if _, err := s.DeleteRecord(t.Context(), index, testHolder, recordID, now); err != nil {
					t.Fatal(err)
				}
				// The holder row keeps the index: retire it too.
				unhold(t, s, index, testHolder)
			},
		},
		{
			name: "DeleteExpiredRecords",
			markers: map[string][]byte{
				"ciphertext":      marker("SECRETMARKER", 64),
				"index":           index[:],
				"allow pseudonym": allowed[:],
				"deny pseudonym":  denied[:],
			},
			run: func(t *testing.T, s *sqlite.Store) {
				r := directory.Record{Index: index, RecordID: recordID, Ciphertext: marker("SECRETMARKER", 64),
					ACL:     acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{allowed}, Deny: []acl.Pseudonym{denied}},
					Expires: now, Updated: now}
				if _, err := putRecord(t, s, r, 10); err != nil {
					t.Fatal(err)
				}
				if n, err := s.DeleteExpiredRecords(t.Context(), now); err != nil || n != 1 {
					t.Fatalf("DeleteExpiredRecords = %d, %v", n, err)
				}
				unhold(t, s, index, testHolder)
			},
		},
		{
			name: "ReplaceRecord",
			markers: map[string][]byte{
				"old ciphertext":      marker("SECRETMARKER", 64),
				"old allow pseudonym": allowed[:],
			},
			run: func(t *testing.T, s *sqlite.Store) {
				r := directory.Record{Index: index, RecordID: recordID, Ciphertext: marker("SECRETMARKER", 64),
					ACL:     acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{allowed}},
					Expires: now.Add(time.Hour), Updated: now}
				if _, err := putRecord(t, s, r, 10); err != nil {
					t.Fatal(err)
				}
				r.Ciphertext = bytes.Repeat([]byte{'x'}, 64)
				r.ACL = acl.List{Visibility: acl.Public}
				if _, err := putRecord(t, s, r, 10); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "SetACL",
			markers: map[string][]byte{
				"old allow pseudonym": allowed[:],
				"old deny pseudonym":  denied[:],
			},
			run: func(t *testing.T, s *sqlite.Store) {
				r := directory.Record{Index: index, RecordID: recordID, Ciphertext: []byte("sealed"),
					ACL:     acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{allowed}, Deny: []acl.Pseudonym{denied}},
					Expires: now.Add(time.Hour), Updated: now}
				if _, err := putRecord(t, s, r, 10); err != nil {
					t.Fatal(err)
				}
				if _, err := s.SetACL(t.Context(), index, testHolder, recordID, acl.List{Visibility: acl.Public}, now); err != nil {
					t.Fatal(err)
				}
			},
		},
		shortenedList(allowed),
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "db")
			s := open(t, path)
			// Rows that stay, so that the deleted ones share pages with live data.
			for i := range 20 {
				r := directory.Record{Ciphertext: bytes.Repeat([]byte{'k'}, 64),
					ACL: acl.List{Visibility: acl.Public}, Expires: now.Add(time.Hour), Updated: now}
				r.Index[0], r.RecordID[0] = 0xf0, byte(i)
				if _, err := putRecord(t, s, r, 100); err != nil {
					t.Fatal(err)
				}
			}
			tt.run(t, s)
			scan := func(when string) {
				files, err := filepath.Glob(path + "*")
				if err != nil {
					t.Fatal(err)
				}
				if len(files) == 0 {
					t.Fatal("no database files found")
				}
				for _, name := range files {
					b, err := os.ReadFile(name)
					if err != nil {
						t.Fatal(err)
					}
					for what, m := range tt.markers {
						if i := bytes.Index(b, m); i >= 0 {
							t.Errorf("%s: %s still holds the %s at offset %d", when, filepath.Base(name), what, i)
						}
					}
				}
			}
			// While the store is open (a snapshot of a live server), after
			// the checkpoint the server runs with every sweep.
			if err := s.Checkpoint(t.Context()); err != nil {
				t.Fatal(err)
			}
			scan("open, after Checkpoint")
			closeStore(t, s)
			scan("closed")
		})
	}
}

// shortenedList is a TestDeletedDataGone case: an allowlist of 200
// entries (200 acl_members rows, over several pages) cut down to one entry. The entries removed must leave no trace.
func shortenedList(kept acl.Pseudonym) deletionCase {
	long := acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{kept}}
	markers := map[string][]byte{}
	for i := range 199 {
		var p acl.Pseudonym
		copy(p[:], fmt.Sprintf("SHORTENED-LIST-ENTRY-%04d-MARKER", i))
		long.Allow = append(long.Allow, p)
		markers[fmt.Sprintf("removed entry %d", i)] = p[:]
	}
	return deletionCase{
		name:    "ShortenLongList",
		markers: markers,
		run: func(t *testing.T, s *sqlite.Store) {
			var index, recordID [32]byte
			index[0], recordID[0] = 0x42, 1
			r := directory.Record{Index: index, RecordID: recordID, Ciphertext: []byte("sealed"),
				ACL: long, Expires: now.Add(time.Hour), Updated: now}
			if _, err := putRecord(t, s, r, 10); err != nil {
				t.Fatal(err)
			}
			short := acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{kept}}
			if _, err := s.SetACL(t.Context(), index, testHolder, recordID, short, now); err != nil {
				t.Fatal(err)
			}
		},
	}
}

// TestMarkersFound checks that the scan in TestDeletedDataGone can find a
// live row, so that its passing means something.
func TestMarkersFound(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	s := open(t, path)
	secret := bytes.Repeat([]byte("SECRETMARKER"), 6)
	r := directory.Record{Ciphertext: secret, ACL: acl.List{Visibility: acl.Public},
		Expires: now.Add(time.Hour), Updated: now}
	if _, err := putRecord(t, s, r, 10); err != nil {
		t.Fatal(err)
	}
	closeStore(t, s)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, secret) {
		t.Error("a live record's ciphertext is not found in the closed database file")
	}
}

// Only uniqueness violations are conflicts: a NOT NULL violation is a bug
// and must not read as "a verification is already pending".
func TestConstraintIsNotConflict(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "db"))
	defer closeStore(t, s)
	v := ca.Verification{CodeMAC: nil, Created: now, Expires: now.Add(time.Hour)}
	err := s.CreateVerification(t.Context(), v)
	if err == nil || errors.Is(err, directory.ErrConflict) {
		t.Errorf("NULL code_mac: %v, want a non-conflict error", err)
	}
}
