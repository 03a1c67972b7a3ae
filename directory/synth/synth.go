// Package synth builds synthetic directories: it fills a data directory's
// SQLite store with N owners, their sealed records, their access lists and
// their holders, for benchmarks and for disclosure experiments.
//
// The data are real where it matters. Each owner has a valid E.164 number
// (Number), its OPRF output is computed under the data directory's own OPRF
// key, and its records are sealed with record.SealProved under the key derived
// from that output, with a publisher proof from the data directory's own CA
// and log key (proof.go), so a client looking the number up through a server
// over the same directory finds, opens and accepts them. Access lists mix public, allowlist and
// nobody, with allowlist and denylist entries that are the pseudonyms of other
// synthetic owners.
//
// Build writes straight to the database file with database/sql and the
// SQLite driver, in large transactions, in index order, with synchronous=OFF:
// the server must not be running while it does. A crash of the machine during
// a build can leave the database damaged; build it again. The file holds no
// phone number: only indexes, record ids, ciphertexts and pseudonyms, as a
// directory filled by real clients would.
package synth

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/mattn/go-sqlite3" // the same driver as directory/sqlite

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/directory/datadir"
	"blindex.dev/blindex/directory/sqlite"
	"blindex.dev/blindex/oprf"
	"blindex.dev/blindex/record"
)

// Config says what to build. Zero values take the defaults given.
type Config struct {
	// Owners is the number of synthetic owners to add: at least 1, at most
	// MaxOwners. Required.
	Owners int
	// Seed selects the numbers (Number(Seed, i) for i < Owners) and every
	// other choice. The same seed, owners and key give the same directory,
	// up to the random salts and nonces in the ciphertexts.
	Seed uint64
	// IdentityPath is the age identity that decrypts the key files.
	// Default: <dir>/identity.age-key, as for the server.
	IdentityPath string
	// Info is the POPRF info of lookups; it must be the server's
	// directory.Config.Info. Default "blindex lookup v1", the server's
	// default.
	Info string
	// Friends are E.164 numbers added to the allowlist of every allowlist
	// record, so that callers with these numbers see them. Default none.
	Friends []string
	// Now is the records' update time; they expire TTL later. Default
	// time.Now().
	Now time.Time
	// TTL is the records' lifetime. Default 180 days; the server refuses
	// nothing already stored, but lookups skip expired records.
	TTL time.Duration
	// Workers is the number of goroutines that evaluate and seal. Default
	// runtime.GOMAXPROCS(0).
	Workers int
	// TxOwners is the number of owners written per transaction. Default
	// 20,000.
	TxOwners int
	// Progress, if set, is called from time to time with the phase
	// ("evaluate", "sort" or "write") and the owners done in it so far.
	// It must be safe for concurrent use.
	Progress func(phase string, done, total int)
}

// MaxOwners bounds Config.Owners: a build holds about 80 bytes per owner
// in memory (its OPRF output and sort keys) before writing.
const MaxOwners = 50_000_000

// The default lookup info: directory.Config's default Info.
const defaultInfo = "blindex lookup v1"

// Apps are the app ids of synthetic records. Every owner has a record for
// the first; one owner in eight has one for the second as well.
var Apps = []string{"org.example.chat", "org.example.voice"}

// Stats describes a finished build.
type Stats struct {
	Owners     int           // owners added
	Skipped    int           // records already present (same index and app, any holder), left as they were
	Records    int           // record rows written
	ACLLists   int           // records with allow or deny entries
	ACLEntries int           // allow and deny entries in them: acl_members rows written
	Holders    int           // holders rows written: one per owner whose number had no synthetic holder
	Public     int           // records by visibility
	Allowlist  int           //
	Nobody     int           //
	DBBytes    int64         // size of the database file after the build (WAL checkpointed)
	Evaluate   time.Duration // computing the OPRF outputs
	Sort       time.Duration // ordering owners by index
	Write      time.Duration // sealing records and writing rows
	Total      time.Duration // the whole build, including opening the keys
}

// Rows is the number of rows written.
func (s Stats) Rows() int { return s.Records + s.ACLEntries + s.Holders }

// Errors.
var (
	ErrOwners = fmt.Errorf("synth: owners must be between 1 and %d", MaxOwners)
	ErrNumber = errors.New("synth: a generated number is not valid under the pinned numbering metadata")
)

// Build adds cfg.Owners synthetic owners to the data directory dir,
// creating it and its keys (as the server would, through directory/datadir)
// if it does not exist. The server must not be running on dir.
//
// Each owner is one holder of its number, proved at cfg.Now and not on
// notice; its records are that holder's, in epoch 0. Records whose index
// and app are already present, whoever holds them, are left alone and
// counted in Stats.Skipped, so two seeds can share a directory even where
// their numbers overlap.
func Build(ctx context.Context, dir string, cfg Config) (Stats, error) {
	start := time.Now()
	if cfg.Owners < 1 || cfg.Owners > MaxOwners {
		return Stats{}, ErrOwners
	}
	setDefault(&cfg.Info, defaultInfo)
	setDefault(&cfg.TTL, 180*24*time.Hour)
	setDefault(&cfg.Workers, runtime.GOMAXPROCS(0))
	setDefault(&cfg.TxOwners, 20_000)
	if cfg.Now.IsZero() {
		cfg.Now = time.Now()
	}
	if cfg.Progress == nil {
		cfg.Progress = func(string, int, int) {}
	}

	if err := ctx.Err(); err != nil {
		return Stats{}, err
	}
	// datadir creates the directory, keys and schema on first use, and
	// refuses a key that does not match the database.
	node, err := datadir.Open(ctx, dir, cfg.IdentityPath, datadir.Directory)
	if err != nil {
		return Stats{}, err
	}
	key := node.OPRFKey
	if err := node.Store.Close(); err != nil {
		return Stats{}, err
	}
	ev := oprf.NewEvaluator(key)
	pub, err := newPublisher(node.CA, node.LogKey, ev, cfg.Now, max(cfg.TTL, credentialValidity))
	if err != nil {
		return Stats{}, err
	}
	info := []byte(cfg.Info)

	friends := make([]acl.Pseudonym, 0, len(cfg.Friends))
	for _, f := range cfg.Friends {
		n, err := oprf.NormalizeNumber(f, "")
		if err != nil {
			return Stats{}, fmt.Errorf("synth: friend: %w", err)
		}
		y, err := ev.FullEvaluate(info, []byte(n))
		if err != nil {
			return Stats{}, err
		}
		friends = append(friends, acl.Pseudonym(oprf.Pseudonym(y)))
	}

	b := &builder{cfg: cfg, ev: ev, info: info, friends: friends, pub: pub}
	var st Stats
	t := time.Now()
	if err := b.evaluate(ctx); err != nil {
		return Stats{}, err
	}
	st.Evaluate = time.Since(t)

	t = time.Now()
	cfg.Progress("sort", 0, cfg.Owners)
	order := b.sortByIndex()
	cfg.Progress("sort", cfg.Owners, cfg.Owners)
	st.Sort = time.Since(t)

	t = time.Now()
	path := filepath.Join(dir, datadir.DBFile)
	if err := b.write(ctx, path, order, &st); err != nil {
		return Stats{}, err
	}
	st.Write = time.Since(t)
	if fi, err := os.Stat(path); err == nil {
		st.DBBytes = fi.Size()
	}
	st.Total = time.Since(start)
	return st, nil
}

func setDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

type builder struct {
	cfg     Config
	ev      *oprf.Evaluator
	info    []byte
	friends []acl.Pseudonym
	pub     *publisher

	ys   []byte   // OutputSize bytes per owner
	keys []uint64 // first 8 bytes of each owner's index, big-endian
}

// credentialValidity is the synthetic credentials' lifetime, the built-in
// CA's default (ca.DefaultCredentialValidity), or the records' TTL if longer.
const credentialValidity = 30 * 24 * time.Hour

// expires is every record's expiry: UTC, whole seconds, as record.Seal wants.
func (b *builder) expires() time.Time { return b.cfg.Now.Add(b.cfg.TTL).UTC().Truncate(time.Second) }

func (b *builder) y(i int) []byte { return b.ys[i*oprf.OutputSize : (i+1)*oprf.OutputSize] }

// evaluate computes every owner's OPRF output on all workers. This is the
// bulk of a build: one scalar multiplication (and circl's per-call info
// tweak) per owner.
func (b *builder) evaluate(ctx context.Context) error {
	n := b.cfg.Owners
	b.ys = make([]byte, n*oprf.OutputSize)
	b.keys = make([]uint64, n)
	const chunk = 1024
	var next, done atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, b.cfg.Workers)
	for w := range b.cfg.Workers {
		wg.Go(func() {
			for {
				lo := int(next.Add(chunk)) - chunk
				if lo >= n || ctx.Err() != nil {
					return
				}
				hi := min(lo+chunk, n)
				for i := lo; i < hi; i++ {
					num := Number(b.cfg.Seed, i)
					// Every number must be one a client would send: check
					// it the way the client normalizes.
					if e, err := oprf.NormalizeNumber(num, ""); err != nil || e != num {
						errs[w] = fmt.Errorf("%w (owner %d)", ErrNumber, i)
						return
					}
					y, err := b.ev.FullEvaluate(b.info, []byte(num))
					if err != nil {
						errs[w] = err
						return
					}
					copy(b.y(i), y)
					idx := oprf.Index(y)
					b.keys[i] = binary.BigEndian.Uint64(idx[:8])
				}
				b.cfg.Progress("evaluate", int(done.Add(int64(hi-lo))), n)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return ctx.Err()
}

// sortByIndex returns the owners in index order, so rows are appended to
// each B-tree (records, acl_members, holders, the expiry index) instead of
// landing on random pages.
func (b *builder) sortByIndex() []uint32 {
	order := make([]uint32, b.cfg.Owners)
	for i := range order {
		order[i] = uint32(i)
	}
	slices.SortFunc(order, func(x, y uint32) int {
		if c := cmp.Compare(b.keys[x], b.keys[y]); c != 0 {
			return c
		}
		ix, iy := oprf.Index(b.y(int(x))), oprf.Index(b.y(int(y)))
		return bytes.Compare(ix[:], iy[:])
	})
	return order
}

// An owner is the rows of one synthetic owner, ready to insert.
type owner struct {
	index  [32]byte
	holder [32]byte
	recs   []ownerRecord // by record id
}

type ownerRecord struct {
	id   [32]byte
	ct   []byte
	list acl.List // Allow and Deny sorted, as the primary key orders them
}

// rng is a small deterministic generator for one owner's choices.
type rng struct{ s uint64 }

func (r *rng) next() uint64 { r.s += 0x9e3779b97f4a7c15; return splitmix(r.s) }

// intn returns a number in [0, n), n > 0; the bias is negligible for the
// small n used here.
func (r *rng) intn(n int) int { return int(r.next() % uint64(n)) }

// Visibility mix: 70% public (one in twenty of them with a denied caller),
// 20% allowlist (1 to 8 allowed callers), 10% nobody.
func (b *builder) makeOwner(i int) (owner, error) {
	y := b.y(i)
	r := rng{s: splitmix(b.cfg.Seed ^ uint64(i)*0xd1342543de82ef95)}
	o := owner{index: oprf.Index(y)}
	// The holder's key hash depends on the index alone, so two seeds that
	// draw the same number make one synthetic holder of it, not two
	// holders whose records of one app would compete.
	h := sha256.New()
	h.Write([]byte("blindex synth holder\x00"))
	h.Write(o.index[:])
	h.Sum(o.holder[:0])

	var l acl.List
	switch v := r.intn(100); {
	case v < 70:
		l.Visibility = acl.Public
		if r.intn(20) == 0 {
			l.Deny = b.others(&r, i, 1)
		}
	case v < 90:
		l.Visibility = acl.Allowlist
		l.Allow = append(b.others(&r, i, 1+r.intn(8)), b.friends...)
	default:
		l.Visibility = acl.Nobody
	}
	l.Allow = sortUnique(l.Allow)
	l.Deny = sortUnique(l.Deny)
	apps := Apps[:1]
	if r.intn(8) == 0 {
		apps = Apps[:2]
	}
	expires := b.expires()
	rk := oprf.RecordKey(y)
	proof, err := b.pub.proof(Number(b.cfg.Seed, i))
	if err != nil {
		return owner{}, fmt.Errorf("synth: publisher proof: %w", err)
	}
	for k, app := range apps {
		rec := record.Record{App: app, Priority: k, Expires: expires,
			Endpoint: endpoint(app, b.cfg.Seed, i)}
		ct, err := record.SealProved(rk, rec, proof, b.pub.key)
		if err != nil {
			return owner{}, err
		}
		o.recs = append(o.recs, ownerRecord{id: oprf.RecordID(y, app), ct: ct, list: l})
	}
	slices.SortFunc(o.recs, func(a, b ownerRecord) int { return bytes.Compare(a.id[:], b.id[:]) })
	return o, nil
}

// endpoint is a per-owner URI that says nothing about the number.
func endpoint(app string, seed uint64, i int) string {
	h := sha256.Sum256(fmt.Appendf(nil, "blindex synth endpoint\x00%d\x00%d", seed, i))
	u := hex.EncodeToString(h[:8])
	if app == Apps[1] {
		return "sip:" + u + "@voice.example.org"
	}
	return "https://chat.example.org/u/" + url.PathEscape(u)
}

// others returns the pseudonyms of n owners other than i.
func (b *builder) others(r *rng, i, n int) []acl.Pseudonym {
	if b.cfg.Owners < 2 {
		return nil
	}
	out := make([]acl.Pseudonym, 0, n)
	for range n {
		j := r.intn(b.cfg.Owners - 1)
		if j >= i {
			j++
		}
		out = append(out, acl.Pseudonym(oprf.Pseudonym(b.y(j))))
	}
	return out
}

func sortUnique(ps []acl.Pseudonym) []acl.Pseudonym {
	slices.SortFunc(ps, func(a, b acl.Pseudonym) int { return bytes.Compare(a[:], b[:]) })
	return slices.Compact(ps)
}

// write seals the owners' records on all workers and inserts them, in
// index order, from one connection.
func (b *builder) write(ctx context.Context, path string, order []uint32, st *Stats) error {
	db, err := openDB(path)
	if err != nil {
		return err
	}
	defer db.Close()

	// Workers fill chunks of owners; the writer takes the chunks in order.
	const chunk = 512
	type job struct {
		lo, hi int
		out    chan []owner
		err    error
	}
	jobs := make(chan *job, 4*b.cfg.Workers)
	ordered := make(chan *job, 4*b.cfg.Workers)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		defer close(jobs)
		defer close(ordered)
		for lo := 0; lo < len(order); lo += chunk {
			j := &job{lo: lo, hi: min(lo+chunk, len(order)), out: make(chan []owner, 1)}
			select {
			case ordered <- j:
			case <-ctx.Done():
				return
			}
			select {
			case jobs <- j:
			case <-ctx.Done():
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for range b.cfg.Workers {
		wg.Go(func() {
			for j := range jobs {
				owners := make([]owner, 0, j.hi-j.lo)
				for _, i := range order[j.lo:j.hi] {
					o, err := b.makeOwner(int(i))
					if err != nil {
						j.err = err
						break
					}
					owners = append(owners, o)
				}
				j.out <- owners
			}
		})
	}
	defer wg.Wait()

	w, err := newWriter(ctx, db, b.cfg.Now, b.expires())
	if err != nil {
		return err
	}
	defer w.rollback()
	inTx, done := 0, 0
	for j := range ordered {
		owners := <-j.out
		if j.err != nil {
			return j.err
		}
		for _, o := range owners {
			if err := w.put(ctx, o, st); err != nil {
				return err
			}
		}
		inTx += len(owners)
		done += len(owners)
		if inTx >= b.cfg.TxOwners {
			if err := w.commit(ctx, true); err != nil {
				return err
			}
			inTx = 0
		}
		b.cfg.Progress("write", done, len(order))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := w.commit(ctx, false); err != nil {
		return err
	}
	st.Owners = len(order)
	// Move everything into the main file, as the server's housekeeping
	// would, so the file size is the directory's size.
	if _, err := db.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		return fmt.Errorf("synth: checkpoint: %w", err)
	}
	return nil
}

// openDB opens the store's database file for bulk loading. The file was
// created, with its schema, by directory/datadir.
func openDB(path string) (*sql.DB, error) {
	params := url.Values{}
	params.Set("_busy_timeout", "10000")
	params.Set("_txlock", "immediate")
	params.Set("mode", "rw") // never create: datadir made the file
	db, err := sql.Open("sqlite3", "file:"+path+"?"+params.Encode())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxIdleTime(0)
	var version int
	if err := db.QueryRow("PRAGMA user_version").Scan(&version); err != nil {
		db.Close()
		return nil, fmt.Errorf("synth: opening %s: %w", path, err)
	}
	// Version 2 added the transparency log, 3 lookup epochs (synthetic
	// records are in epoch 0), 6 holder sets and access lists as one row
	// per member.
	// Synthetic owners are written without log labels, so their rows make
	// no log entries: a synthetic directory's log holds only its keys.
	if version != sqlite.SchemaVersion {
		db.Close()
		return nil, fmt.Errorf("synth: %s has schema version %d, this builder writes version %d", path, version, sqlite.SchemaVersion)
	}
	// A bulk load: no fsync per transaction (the builder can be rerun), a
	// large page cache, and checkpoints in large steps.
	for _, p := range []string{
		"PRAGMA synchronous = OFF",
		"PRAGMA cache_size = -262144", // KiB: 256 MiB
		"PRAGMA wal_autocheckpoint = 16384",
	} {
		if _, err := db.Exec(p); err != nil {
			db.Close()
			return nil, fmt.Errorf("synth: %s: %w", p, err)
		}
	}
	return db, nil
}

// writer inserts owners in one transaction at a time, with prepared
// statements.
type writer struct {
	db               *sql.DB
	tx               *sql.Tx
	rec, list, owner *sql.Stmt
	now, expires     int64 // Unix seconds
}

func newWriter(ctx context.Context, db *sql.DB, now, expires time.Time) (*writer, error) {
	w := &writer{db: db, now: now.Unix(), expires: expires.Unix()}
	return w, w.begin(ctx)
}

func (w *writer) begin(ctx context.Context) error {
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	w.tx = tx
	// The rows directory/sqlite's ChangeHolders and PutRecord write,
	// without their per-call reads and log entries. A record of an app the
	// number already has, under any holder, is left alone: schema 6 would
	// store both, and the core would serve only the winner's.
	if w.rec, err = tx.PrepareContext(ctx, `INSERT INTO records
		(idx, record_id, holder, ciphertext, visibility, expires_at, updated_at, epoch)
		SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, 0
		WHERE NOT EXISTS (SELECT 1 FROM records WHERE idx = ?1 AND record_id = ?2)`); err != nil {
		return err
	}
	if w.list, err = tx.PrepareContext(ctx, `INSERT INTO acl_members (idx, holder, record_id, kind, pseudonym)
		VALUES (?, ?, ?, ?, ?)`); err != nil {
		return err
	}
	// One holder per synthetic owner, proved now, not on notice, without
	// a log label (so no log entry is owed for it). Epoch 0, as its
	// records: the index is the OPRF output under the base info, which is
	// epoch 0's.
	w.owner, err = tx.PrepareContext(ctx, `INSERT INTO holders
		(idx, key_hash, epoch, first_proof, last_proof, notice_proof, notice_until, label)
		VALUES (?, ?, 0, ?, ?, 0, 0, NULL) ON CONFLICT DO NOTHING`)
	return err
}

func (w *writer) put(ctx context.Context, o owner, st *Stats) error {
	// Variables are bound by copy, so the arrays may be reused.
	res, err := w.owner.ExecContext(ctx, o.index[:], o.holder[:], w.now, w.now)
	if err != nil {
		return fmt.Errorf("synth: inserting holder: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		st.Holders++
	}
	for _, r := range o.recs {
		res, err := w.rec.ExecContext(ctx, o.index[:], r.id[:], o.holder[:], r.ct, int(r.list.Visibility),
			w.expires, w.now)
		if err != nil {
			return fmt.Errorf("synth: inserting record: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			// Present already (another seed drew the same number, or
			// another holder published the app): its access list is its
			// own, so leave it whole.
			st.Skipped++
			continue
		}
		st.Records++
		switch r.list.Visibility {
		case acl.Public:
			st.Public++
		case acl.Allowlist:
			st.Allowlist++
		default:
			st.Nobody++
		}
		if n := len(r.list.Allow) + len(r.list.Deny); n > 0 {
			// acl_members' kinds: 1 allow, 2 deny.
			for kind, list := range [][]acl.Pseudonym{1: r.list.Allow, 2: r.list.Deny} {
				for _, p := range list {
					if _, err := w.list.ExecContext(ctx, o.index[:], o.holder[:], r.id[:], kind, p[:]); err != nil {
						return fmt.Errorf("synth: inserting access list: %w", err)
					}
				}
			}
			st.ACLLists++
			st.ACLEntries += n
		}
	}
	return nil
}

// commit commits the open transaction and, if more is to come, begins
// the next.
func (w *writer) commit(ctx context.Context, more bool) error {
	for _, s := range []*sql.Stmt{w.rec, w.list, w.owner} {
		s.Close()
	}
	err := w.tx.Commit()
	w.tx = nil
	if err != nil {
		return fmt.Errorf("synth: commit: %w", err)
	}
	if !more {
		return nil
	}
	return w.begin(ctx)
}

// rollback abandons the open transaction, if any.
func (w *writer) rollback() {
	if w.tx != nil {
		w.tx.Rollback()
	}
}
