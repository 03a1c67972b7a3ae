package sqlite_test

// Store benchmarks, each with a baseline on the same database file in the
// same run, interleaved with it:
//
//   - BenchmarkPutRecord: a publish's transaction (record and four ACL
//     entries, synchronous=FULL) against a bare durable one-row commit, the
//     fsync floor of any write;
//   - BenchmarkBuckets: a 1,024-bucket fetch at the prefix length the
//     server would use, against the same records rows read without their
//     access lists;
//   - BenchmarkCountOwners: the owner count the server redoes every 10
//     seconds and after every publish, against a plain row count.
//
// The read benchmarks run on a synthetic directory of BLINDEX_BENCH_OWNERS
// owners (default 10,000), or on BLINDEX_BENCH_DATA if set.

import (
	"bytes"
	"database/sql"
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/directory/datadir"
	"blindex.dev/blindex/directory/sqlite"
	"blindex.dev/blindex/directory/synth"
)

// openRaw opens path as the store does for writing (WAL, synchronous=FULL,
// immediate transactions), for baselines.
func openRaw(b *testing.B, path string) *sql.DB {
	b.Helper()
	params := url.Values{}
	params.Set("_journal_mode", "WAL")
	params.Set("_synchronous", "FULL")
	params.Set("_busy_timeout", "10000")
	params.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite3", "file:"+path+"?"+params.Encode())
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	b.Cleanup(func() { db.Close() })
	return db
}

func BenchmarkPutRecord(b *testing.B) {
	path := filepath.Join(b.TempDir(), "db")
	s, err := sqlite.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	raw := openRaw(b, path)
	if _, err := raw.Exec(`CREATE TABLE bench_commit (k INTEGER PRIMARY KEY, v BLOB)`); err != nil {
		b.Fatal(err)
	}
	l := acl.List{Visibility: acl.Allowlist}
	for i := range 4 {
		l.Allow = append(l.Allow, pseudonym(byte(i)))
	}
	ct := make([]byte, 699) // a sealed record in the smallest size class
	r := directory.Record{Ciphertext: ct, ACL: l, Expires: now.Add(time.Hour), Updated: now}
	var put, commit time.Duration
	i := 0
	for b.Loop() {
		i++
		// A new owner each time: a record and four ACL rows.
		r.Index[0], r.Index[1], r.Index[2] = byte(i>>16), byte(i>>8), byte(i)
		r.Holder = testHolder
		hold(b, s, r.Index, r.Holder) // a join is a request of its own
		t := time.Now()
		if _, err := s.PutRecord(b.Context(), r, 32); err != nil {
			b.Fatal(err)
		}
		put += time.Since(t)
		t = time.Now()
		if _, err := raw.Exec(`INSERT INTO bench_commit (k, v) VALUES (?, ?)`, i, ct[:32]); err != nil {
			b.Fatal(err)
		}
		commit += time.Since(t)
	}
	b.ReportMetric(float64(b.N)/put.Seconds(), "put-rec/s")
	b.ReportMetric(float64(b.N)/commit.Seconds(), "commit/s")
	b.ReportMetric(put.Seconds()/commit.Seconds(), "put/commit")
}

// benchStore opens a synthetic directory's store.
func benchStore(b *testing.B) (*sqlite.Store, string, int) {
	b.Helper()
	owners := 10_000
	if v := os.Getenv("BLINDEX_BENCH_OWNERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("BLINDEX_BENCH_OWNERS=%q: want a positive integer", v)
		}
		owners = n
	}
	dir := os.Getenv("BLINDEX_BENCH_DATA")
	if dir == "" {
		dir = filepath.Join(b.TempDir(), "data")
	}
	path := filepath.Join(dir, datadir.DBFile)
	if _, err := os.Stat(path); err != nil {
		if _, err := synth.Build(b.Context(), dir, synth.Config{Owners: owners, Seed: 1}); err != nil {
			b.Fatal(err)
		}
	}
	s, err := sqlite.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s, path, owners
}

// prefixBits is the server's prefix length for owners (MinBucketOwners 16).
func prefixBits(owners int) int {
	q := owners / 16
	if q < 2 {
		return 0
	}
	return bits.Len(uint(q)) - 1
}

func BenchmarkBuckets(b *testing.B) {
	s, path, owners := benchStore(b)
	raw := openRaw(b, path)
	pb := prefixBits(owners)
	r := rand.New(rand.NewPCG(1, 2))
	var buckets, plain time.Duration
	rows, size := 0, 0
	for b.Loop() {
		// Distinct prefixes, as a client sends them: all of them if there
		// are no more than 1,024.
		n := min(1024, 1<<pb)
		seen := map[uint64]bool{}
		ranges := make([]directory.BucketRange, 0, n)
		for len(ranges) < n {
			p := uint64(r.Uint32()) >> (32 - pb)
			if seen[p] {
				continue
			}
			seen[p] = true
			lo := p << (32 - pb)
			ranges = append(ranges, directory.BucketRange{Lo: uint32(lo), Hi: uint32(lo + 1<<(32-pb) - 1)})
		}
		t := time.Now()
		found, err := s.Buckets(b.Context(), 0, ranges, pseudonym(7), now)
		if err != nil {
			b.Fatal(err)
		}
		buckets += time.Since(t)
		for _, f := range found {
			rows += len(f)
			for _, c := range f {
				size += len(c.Ciphertext)
			}
		}
		t = time.Now()
		tx, err := raw.Begin()
		if err != nil {
			b.Fatal(err)
		}
		for _, br := range ranges {
			lo, hi := make([]byte, 32), bytes.Repeat([]byte{0xff}, 32)
			binary.BigEndian.PutUint32(lo, br.Lo)
			binary.BigEndian.PutUint32(hi, br.Hi)
			q, err := tx.Query(`SELECT idx, record_id, ciphertext, visibility FROM records
				WHERE idx BETWEEN ? AND ? AND +expires_at > ? ORDER BY idx, record_id`, lo, hi, now.Unix())
			if err != nil {
				b.Fatal(err)
			}
			for q.Next() {
				var idx, rid, ct []byte
				var vis int
				if err := q.Scan(&idx, &rid, &ct, &vis); err != nil {
					b.Fatal(err)
				}
			}
			q.Close()
		}
		tx.Rollback()
		plain += time.Since(t)
	}
	b.ReportMetric(float64(rows)/float64(b.N), "rows/fetch")
	b.ReportMetric(float64(size)/float64(b.N)/(1<<20), "MiB/fetch")
	b.ReportMetric(buckets.Seconds()*1000/float64(b.N), "buckets-ms")
	b.ReportMetric(plain.Seconds()*1000/float64(b.N), "plain-ms")
	b.ReportMetric(buckets.Seconds()/plain.Seconds(), "buckets/plain")
	b.ReportMetric(float64(pb), "prefix-bits")
}

func BenchmarkCountOwners(b *testing.B) {
	s, path, _ := benchStore(b)
	raw := openRaw(b, path)
	var count, plain time.Duration
	for b.Loop() {
		t := time.Now()
		if _, err := s.CountOwners(b.Context(), now); err != nil {
			b.Fatal(err)
		}
		count += time.Since(t)
		t = time.Now()
		var n int
		if err := raw.QueryRow(`SELECT COUNT(*) FROM holders`).Scan(&n); err != nil {
			b.Fatal(err)
		}
		plain += time.Since(t)
	}
	b.ReportMetric(count.Seconds()*1000/float64(b.N), "count-owners-ms")
	b.ReportMetric(plain.Seconds()*1000/float64(b.N), "count-holders-ms")
	b.ReportMetric(count.Seconds()/plain.Seconds(), "owners/holders")
}
