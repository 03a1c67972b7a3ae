package sqlite_test

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/directory"
)

// TestHiddenListTiming measures issue 19 item 6 the way the red team did:
// many interleaved samples of a bucket fetch in each state, the median of
// each, and the z-score of the difference of the medians (its standard
// error by bootstrap). The states are two buckets alike but for one
// hidden record (its holder on notice): with a 10,000-entry allowlist in
// one, a 1-entry allowlist in the other. A third bucket, alike to the
// second, calibrates: 1 entry against 1 entry.
//
// It is a measurement, not a check: it runs only with
// BLINDEX_TIMING_SAMPLES set (samples per state, e.g. 2000), and logs what
// it finds.
func TestHiddenListTiming(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("BLINDEX_TIMING_SAMPLES"))
	if n <= 0 {
		t.Skip("set BLINDEX_TIMING_SAMPLES (samples per state) to measure")
	}
	s := open(t, filepath.Join(t.TempDir(), "db"))
	defer closeStore(t, s)
	ctx := t.Context()
	long := acl.List{Visibility: acl.Allowlist}
	for i := range 10_000 {
		var p acl.Pseudonym
		p[0], p[1], p[2] = 'L', byte(i>>8), byte(i)
		long.Allow = append(long.Allow, p)
	}
	short := acl.List{Visibility: acl.Allowlist, Allow: long.Allow[:1]}
	// Each bucket: 16 public records of 16 owners and the hidden one, as
	// a bucket holds at the server's prefix length (16 owners or more).
	fill := func(bucket byte, hidden acl.List) directory.BucketRange {
		for i := range 17 {
			var idx, rid [32]byte
			idx[0], idx[4], rid[0] = bucket, byte(i), 1
			hold(t, s, idx, testHolder)
			l := acl.List{Visibility: acl.Public}
			if i == 16 {
				l = hidden
				_, err := s.ChangeHolders(ctx, 0, idx, func(hs []directory.Holder) (directory.HolderChange, error) {
					h := hs[0]
					h.NoticeProof, h.NoticeUntil = now, now.Add(time.Hour)
					return directory.HolderChange{Put: []directory.Holder{h}}, nil
				}, now)
				if err != nil {
					t.Fatal(err)
				}
			}
			r := directory.Record{Index: idx, Holder: testHolder, RecordID: rid, Ciphertext: make([]byte, 699),
				ACL: l, Expires: now.Add(time.Hour), Updated: now}
			if _, err := s.PutRecord(ctx, r, 10); err != nil {
				t.Fatal(err)
			}
		}
		return directory.BucketRange{Lo: uint32(bucket) << 24, Hi: uint32(bucket)<<24 | 0xffffff}
	}
	bLong, bShort, bControl := fill(0x20, long), fill(0x30, short), fill(0x40, short)
	var caller acl.Pseudonym // in no list
	caller[0] = 'c'
	fetch := func(br directory.BucketRange) func() {
		return func() {
			got, err := s.Buckets(ctx, 0, []directory.BucketRange{br}, caller, now)
			if err != nil || len(got[0]) != 17 || !got[0][16].Hidden {
				t.Fatalf("Buckets: %d candidates, %v", len(got[0]), err)
			}
		}
	}
	for _, c := range []struct {
		name string
		a, b func()
	}{
		{"10,000-entry vs 1-entry allowlist", fetch(bLong), fetch(bShort)},
		{"1-entry vs 1-entry (control)", fetch(bControl), fetch(bShort)},
	} {
		ma, mb, z := compareMedians(n, c.a, c.b)
		t.Logf("%s: %d samples each, medians %.1f µs and %.1f µs, difference %+.1f µs, z = %.2f",
			c.name, n, ma, mb, ma-mb, z)
	}
}

// compareMedians takes n samples of each of a and b, interleaved in a
// random order per pair after a warm-up, and returns their medians (µs)
// and the z-score of the difference of the medians, whose standard error
// is estimated by bootstrap.
func compareMedians(n int, a, b func()) (medA, medB, z float64) {
	for range 100 {
		a()
		b()
	}
	rng := rand.New(rand.NewPCG(1, 2))
	xs, ys := make([]float64, 0, n), make([]float64, 0, n)
	sample := func(f func()) float64 {
		t := time.Now()
		f()
		return float64(time.Since(t).Nanoseconds()) / 1e3
	}
	for range n {
		if rng.IntN(2) == 0 {
			xs = append(xs, sample(a))
			ys = append(ys, sample(b))
		} else {
			ys = append(ys, sample(b))
			xs = append(xs, sample(a))
		}
	}
	medA, medB = median(xs), median(ys)
	const reps = 1000
	diffs := make([]float64, reps)
	rx, ry := make([]float64, n), make([]float64, n)
	for i := range diffs {
		for j := range n {
			rx[j], ry[j] = xs[rng.IntN(n)], ys[rng.IntN(n)]
		}
		diffs[i] = median(rx) - median(ry)
	}
	var mean, sq float64
	for _, d := range diffs {
		mean += d / reps
	}
	for _, d := range diffs {
		sq += (d - mean) * (d - mean) / (reps - 1)
	}
	return medA, medB, (medA - medB) / math.Sqrt(sq)
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
