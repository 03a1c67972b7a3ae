package disclose_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/directory/datadir"
	"blindex.dev/blindex/directory/sqlite"
)

// A fixture describes a synthetic directory, written straight into the
// server's SQLite schema (version 6: holder sets, a row per access list
// member): the figures a report must find are known exactly.
type fixture struct {
	owners int
	// prefix, if set, gives owner i's bucket; otherwise buckets are random.
	prefix func(i int) uint32
	// records per owner: the first public, the second allowlist, the
	// third nobody (owners have 1 to 3 records, by i % 3).
	allowPerRecord int // allow entries on each allowlist record
	denyPerPublic  int // deny entries on each public record
	expired        int // extra owners whose only record has expired
	holdersOnly    int // verified numbers that published nothing
	// joined owners (the first ones) have a second holder, a newcomer
	// that put the first on notice. Where the owner has an allowlist
	// record, the newcomer stores one of the same app, with its own list.
	joined     int
	budgetRows int // allowlisted callers with an evaluation budget row
}

// counts are what a report should say about a fixture.
type counts struct {
	public, allowlist, nobody, allowEdges, denies, allowCallers int
	allowOwners, holders, onNotice                              int
}

func (f fixture) counts() counts {
	var c counts
	for i := range f.owners {
		n := i%3 + 1
		c.public++
		c.denies += f.denyPerPublic
		if n >= 2 {
			c.allowlist++
			c.allowEdges += f.allowPerRecord
			if f.allowPerRecord > 0 {
				c.allowOwners++
			}
		}
		if n >= 3 {
			c.nobody++
		}
		if i < f.joined {
			c.onNotice++
			if n >= 2 {
				c.allowlist++
				c.allowEdges += f.allowPerRecord
			}
		}
	}
	c.holders = f.owners + f.expired + f.holdersOnly + min(f.joined, f.owners)
	c.allowCallers = min(c.allowEdges, callerPool)
	return c
}

// callerPool is how many distinct caller pseudonyms allowlists draw from.
const callerPool = 500

func callerPseudonym(i int) []byte {
	p := sha256.Sum256(binary.BigEndian.AppendUint32([]byte("fixture caller"), uint32(i)))
	return p[:]
}

// budgetKey is directory's derivation (sha256 of purpose and pseudonym).
func budgetKey(purpose string, pseudonym []byte) []byte {
	h := sha256.New()
	h.Write([]byte("blindex budget\x00" + purpose + "\x00"))
	h.Write(pseudonym)
	return h.Sum(nil)
}

// build writes the fixture into a new data directory and returns it. The
// schema comes from the real store; rows go in through SQL in one
// transaction, so large fixtures are quick.
func (f fixture) build(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, datadir.DBFile)
	st, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.InitMeta(context.Background(), "oprf_public_key", make([]byte, 32)); err != nil {
		t.Fatal(err)
	}
	st.Close()
	db, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=WAL")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	insRec, _ := tx.Prepare(`INSERT INTO records (idx, record_id, holder, ciphertext, visibility, expires_at, updated_at, epoch)
		VALUES (?, ?, ?, zeroblob(?), ?, ?, ?, 0)`)
	insMember, _ := tx.Prepare(`INSERT INTO acl_members (idx, holder, record_id, kind, pseudonym) VALUES (?, ?, ?, ?, ?)`)
	insHolder, _ := tx.Prepare(`INSERT INTO holders (idx, key_hash, epoch, first_proof, last_proof, notice_proof, notice_until, label)
		VALUES (?, ?, 0, ?, ?, ?, ?, NULL)`)
	rng := rand.New(rand.NewPCG(1, 2))
	now := time.Now()
	future, past := now.Add(30*24*time.Hour).Unix(), now.Add(-time.Hour).Unix()
	caller := 0
	must := func(_ sql.Result, err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	owner := func(i int, expired bool) {
		var idx [32]byte
		for j := range 4 {
			binary.LittleEndian.PutUint64(idx[j*8:], rng.Uint64())
		}
		if f.prefix != nil && !expired {
			binary.BigEndian.PutUint32(idx[:4], f.prefix(i))
		}
		n := i%3 + 1
		exp := future
		if expired {
			n, exp = 1, past
		}
		joined := !expired && i < f.joined
		holder := idx // the owner's key hash
		newcomer := sha256.Sum256(append([]byte("fixture newcomer"), idx[:]...))
		if joined {
			// The newcomer's proof put the owner on notice.
			must(insHolder.Exec(idx[:], holder[:], now.Unix()-86400, now.Unix()-86400, now.Unix(), now.Unix()+72*3600))
			must(insHolder.Exec(idx[:], newcomer[:], now.Unix(), now.Unix(), 0, 0))
		} else {
			must(insHolder.Exec(idx[:], holder[:], now.Unix(), now.Unix(), 0, 0))
		}
		put := func(holder [32]byte, r int) {
			rid := sha256.Sum256(append(idx[:], byte(r)))
			vis := [...]int{1, 2, 0}[r] // public, allowlist, nobody
			must(insRec.Exec(idx[:], rid[:], holder[:], 699+512*r, vis, exp, now.Unix()))
			var l acl.List
			switch vis {
			case 1:
				for d := range f.denyPerPublic {
					l.Deny = append(l.Deny, acl.Pseudonym(callerPseudonym(callerPool+d)))
				}
			case 2:
				for range f.allowPerRecord {
					l.Allow = append(l.Allow, acl.Pseudonym(callerPseudonym(caller%callerPool)))
					caller++
				}
			}
			for kind, list := range [][]acl.Pseudonym{1: l.Allow, 2: l.Deny} {
				for _, p := range list {
					must(insMember.Exec(idx[:], holder[:], rid[:], kind, p[:]))
				}
			}
		}
		for r := range n {
			put(holder, r)
		}
		if joined && n >= 2 {
			// The same app's record id: each holder's list is its own.
			put(newcomer, 1)
		}
	}
	for i := range f.owners {
		owner(i, false)
	}
	for i := range f.expired {
		owner(i, true)
	}
	for i := range f.holdersOnly {
		k := sha256.Sum256(binary.BigEndian.AppendUint32([]byte("holder only"), uint32(i)))
		must(insHolder.Exec(k[:], k[:], now.Unix(), now.Unix(), 0, 0))
	}
	for i := range f.budgetRows {
		must(tx.Exec(`INSERT INTO token_buckets (key, tokens, updated_ms) VALUES (?, 4000, ?)`, budgetKey("evaluate", callerPseudonym(i)), now.UnixMilli()))
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return dir
}
