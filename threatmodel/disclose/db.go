package disclose

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "github.com/mattn/go-sqlite3" // the SQLite driver the server uses

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/directory/datadir"
)

// How the database was opened.
const (
	// OpenedLive: a server had the database open (its -wal and -shm files
	// exist), so it was read as one more WAL reader (mode=ro), which SQLite
	// makes safe against a concurrent writer.
	OpenedLive = "live"
	// OpenedQuiescent: no server had it open, so it was read with
	// immutable=1, which creates no -wal or -shm file beside it. Had a server
	// started meanwhile, the read is repeated as a WAL reader.
	OpenedQuiescent = "quiescent"
)

// dbFacts is everything the report takes from the database, read in one
// snapshot.
type dbFacts struct {
	Opened        string
	SchemaVersion int
	Tables        []tableRows

	Owners         int      // distinct indexes with an unexpired record
	OwnerBuckets   []uint32 // each owner's 32-bit bucket, one entry per owner
	PublicOwners   int      // owners with at least one unexpired public record
	Records        [3]int   // unexpired records by visibility (acl.Nobody, Public, Allowlist)
	OtherVis       int      // unexpired records with an unknown visibility code
	Expired        int      // records past their expiry, awaiting housekeeping
	SizeClasses    []sizeClass
	AllowEdges     int // allow entries on unexpired records
	AllowCallers   int // distinct pseudonyms in those allowlists
	AllowOwners    int // owners with at least one allow entry
	DenyEntries    int // deny entries on unexpired records
	OPRFPublicKey  []byte
	HasCARootMeta  bool
	MetaKeys       []string
	OldestUpdate   time.Time // of an unexpired record; zero if none
	NewestUpdate   time.Time
	Verifications  int // pending verifications
	Verified       int // distinct indexes in holders: verified numbers
	Holders        int // holders rows: a number has one per key that proved it
	OnNotice       int // holders on notice (notice_until set)
	PendingHolders int // verified numbers with no unexpired record
	LinkedBudgets  int // allowlisted pseudonyms with a budget row
}

type tableRows struct {
	Name string
	Rows int64
}

type sizeClass struct {
	Bytes   int
	Records int
}

// readDB reads the facts from the data directory's database without writing
// to the directory: see OpenedLive and OpenedQuiescent.
func readDB(ctx context.Context, dir string, now time.Time) (*dbFacts, error) {
	path, err := filepath.Abs(filepath.Join(dir, datadir.DBFile))
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s does not exist (is --data a blindex data directory?)", ErrNoDatabase, path)
	} else if err != nil {
		return nil, err
	}
	for range 3 {
		wal, shm := exists(path+"-wal"), exists(path+"-shm")
		mode := OpenedQuiescent
		switch {
		case wal && shm:
			mode = OpenedLive
		case wal:
			return nil, ErrWALWithoutSHM
		}
		f, err := readDBOnce(ctx, path, mode, now)
		if err != nil {
			return nil, err
		}
		// A server that started while we read with immutable=1 may have
		// written what we did not see: read again as a WAL reader.
		if mode == OpenedQuiescent && exists(path+"-wal") {
			continue
		}
		return f, nil
	}
	return nil, errors.New("disclose: the database kept changing mode while being read; retry")
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func readDBOnce(ctx context.Context, path, mode string, now time.Time) (*dbFacts, error) {
	u := url.URL{Scheme: "file", Path: path}
	q := "mode=ro&_busy_timeout=10000"
	if mode == OpenedQuiescent {
		// immutable=1 takes no locks and creates no -wal or -shm file: the
		// data directory is left exactly as it was.
		q += "&immutable=1"
	}
	// url.URL writes "file:///abs/path"; SQLite accepts that form.
	db, err := sql.Open("sqlite3", u.String()+"?"+q)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	// One transaction: every figure comes from the same snapshot, even while
	// the server writes.
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("disclose: opening %s read-only: %w", path, err)
	}
	defer tx.Rollback()
	f := &dbFacts{Opened: mode}
	if err := f.read(ctx, tx, now); err != nil {
		return nil, fmt.Errorf("disclose: reading %s: %w", path, err)
	}
	return f, nil
}

func (f *dbFacts) read(ctx context.Context, tx *sql.Tx, now time.Time) error {
	if err := tx.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&f.SchemaVersion); err != nil {
		return err
	}
	names, err := queryStrings(ctx, tx, `SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`)
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, n := range names {
		var rows int64
		// The name comes from the database itself; quote it as an identifier.
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM "`+strings.ReplaceAll(n, `"`, `""`)+`"`).Scan(&rows); err != nil {
			return err
		}
		f.Tables = append(f.Tables, tableRows{n, rows})
		have[n] = true
	}
	for _, t := range []string{"records", "acl_members", "meta", "holders"} {
		if !have[t] {
			return fmt.Errorf("no %s table: not a blindex database, or an unknown schema version (%d)", t, f.SchemaVersion)
		}
	}
	if err := f.readRecords(ctx, tx, now); err != nil {
		return err
	}
	if err := f.readACLs(ctx, tx, now); err != nil {
		return err
	}
	if f.MetaKeys, err = queryStrings(ctx, tx, `SELECT key FROM meta ORDER BY key`); err != nil {
		return err
	}
	err = tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, directory.MetaOPRFPublicKey).Scan(&f.OPRFPublicKey)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	if err := f.readHolders(ctx, tx, now); err != nil {
		return err
	}
	if have["token_buckets"] {
		if f.LinkedBudgets, err = linkedBudgets(ctx, tx, now); err != nil {
			return err
		}
	}
	if have["verifications"] {
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM verifications WHERE expires_at > ?`, now.Unix()).Scan(&f.Verifications); err != nil {
			return err
		}
	}
	return nil
}

// readHolders counts verified numbers (indexes with a holder), holders
// (a number has one per key that proved it: each app or device, and a
// newcomer), those on notice, and the verified numbers with no unexpired
// record, under any holder.
func (f *dbFacts) readHolders(ctx context.Context, tx *sql.Tx, now time.Time) error {
	// holders' primary key is (idx, key_hash): a number's holders are
	// adjacent, so grouping by idx is one scan in key order, with no
	// temporary B-tree (COUNT(DISTINCT idx) would build one).
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(n), 0), COALESCE(SUM(noticed), 0)
		FROM (SELECT COUNT(*) AS n, COUNT(*) FILTER (WHERE notice_until != 0) AS noticed FROM holders GROUP BY idx)`).Scan(&f.Verified, &f.Holders, &f.OnNotice); err != nil {
		return err
	}
	return tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT DISTINCT idx FROM holders) h
		WHERE NOT EXISTS (SELECT 1 FROM records r WHERE r.idx = h.idx AND r.expires_at > ?)`, now.Unix()).Scan(&f.PendingHolders)
}

// readACLs reads the access lists of unexpired records, as the owners
// figure, whichever holder published them (a holder on notice still has its
// lists on disk). acl_members is a row per member (kind 1 allow, 2 deny).
// The distinct allowlisted callers go into a temporary table
// (temp.allowed_callers, used by linkedBudgets too), filled and counted by
// SQLite, so that 10 M owners' lists are counted on disk rather than in
// memory.
func (f *dbFacts) readACLs(ctx context.Context, tx *sql.Tx, now time.Time) error {
	if _, err := tx.ExecContext(ctx, `CREATE TEMP TABLE allowed_callers (pseudonym BLOB PRIMARY KEY) WITHOUT ROWID`); err != nil {
		return err
	}
	const live = `FROM acl_members a JOIN records r
		ON r.idx = a.idx AND r.record_id = a.record_id AND r.holder = a.holder
		WHERE r.expires_at > ?`
	var bad int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FILTER (WHERE a.kind = 1), COUNT(*) FILTER (WHERE a.kind = 2),
		COUNT(DISTINCT a.idx) FILTER (WHERE a.kind = 1),
		COUNT(*) FILTER (WHERE a.kind NOT IN (1, 2) OR length(a.pseudonym) != ?) `+live,
		acl.PseudonymSize, now.Unix()).Scan(&f.AllowEdges, &f.DenyEntries, &f.AllowOwners, &bad); err != nil {
		return err
	}
	if bad > 0 {
		return errors.New("an access list member of an unknown kind or not 32 bytes: not a blindex database")
	}
	if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO temp.allowed_callers (pseudonym)
		SELECT a.pseudonym `+live+` AND a.kind = 1`, now.Unix()); err != nil {
		return err
	}
	return tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM temp.allowed_callers`).Scan(&f.AllowCallers)
}

// readRecords scans the records table once, in index order, so that each
// owner's records come together and no owner map is needed at 1 M owners.
func (f *dbFacts) readRecords(ctx context.Context, tx *sql.Tx, now time.Time) error {
	rows, err := tx.QueryContext(ctx, `SELECT idx, visibility, expires_at, updated_at, length(ciphertext) FROM records ORDER BY idx`)
	if err != nil {
		return err
	}
	defer rows.Close()
	sizes := map[int]int{}
	var (
		last       []byte
		lastPublic bool
		idx        []byte
		vis        int
		exp, upd   int64
		size       int
	)
	nowUnix := now.Unix()
	for rows.Next() {
		if err := rows.Scan(&idx, &vis, &exp, &upd, &size); err != nil {
			return err
		}
		if exp <= nowUnix {
			f.Expired++
			continue
		}
		if len(idx) != 32 {
			return errors.New("a records row with an index that is not 32 bytes: not a blindex database")
		}
		if last == nil || !bytes.Equal(idx, last) {
			f.Owners++
			f.OwnerBuckets = append(f.OwnerBuckets, binary.BigEndian.Uint32(idx[:4]))
			last = bytes.Clone(idx)
			lastPublic = false
		}
		switch acl.Visibility(vis) {
		case acl.Nobody, acl.Public, acl.Allowlist:
			f.Records[vis]++
		default:
			f.OtherVis++
		}
		if acl.Visibility(vis) == acl.Public && !lastPublic {
			f.PublicOwners++
			lastPublic = true
		}
		sizes[size]++
		t := time.Unix(upd, 0).UTC()
		if f.OldestUpdate.IsZero() || t.Before(f.OldestUpdate) {
			f.OldestUpdate = t
		}
		if t.After(f.NewestUpdate) {
			f.NewestUpdate = t
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for b, n := range sizes {
		f.SizeClasses = append(f.SizeClasses, sizeClass{b, n})
	}
	sortBy(f.SizeClasses, func(s sizeClass) int { return s.Bytes })
	return nil
}

func queryStrings(ctx context.Context, tx *sql.Tx, q string, args ...any) ([]string, error) {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// linkedBudgets counts the caller pseudonyms in allowlists whose evaluation
// budget row the database holds: a copy of the database links what those
// callers looked up (how much, and when last) to the owners who list them.
func linkedBudgets(ctx context.Context, tx *sql.Tx, now time.Time) (int, error) {
	keys := map[[32]byte]bool{}
	rows, err := tx.QueryContext(ctx, `SELECT key FROM token_buckets`)
	if err != nil {
		return 0, err
	}
	for rows.Next() {
		var k []byte
		if err := rows.Scan(&k); err != nil {
			rows.Close()
			return 0, err
		}
		if len(k) == 32 {
			keys[[32]byte(k)] = true
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(keys) == 0 {
		return 0, err
	}
	rows, err = tx.QueryContext(ctx, `SELECT pseudonym FROM temp.allowed_callers`)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var p []byte
		if err := rows.Scan(&p); err != nil {
			return 0, err
		}
		if keys[budgetKey("evaluate", p)] {
			n++
		}
	}
	return n, rows.Err()
}
