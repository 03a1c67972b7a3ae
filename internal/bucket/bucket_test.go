package bucket

import (
	"math/rand/v2"
	"testing"
)

// TestPowerOfTwoIsPrefix: with 2^k buckets, bucket b is the k-bit prefix b,
// so a request by prefix and one by count name the same records.
func TestPowerOfTwoIsPrefix(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for k := range 33 {
		for range 100 {
			x := r.Uint32()
			want := uint32(0)
			if k > 0 {
				want = x >> (32 - k)
			}
			if got := OfValue(x, 1<<k); got != want {
				t.Fatalf("OfValue(%#x, 2^%d) = %d, want prefix %d", x, k, got, want)
			}
		}
	}
}

// TestRangesPartition: the ranges of any count are contiguous, cover every
// 32-bit value once, and hold exactly the values Of maps to them.
func TestRangesPartition(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	counts := []uint64{1, 2, 3, 5, 7, 96, 100, 6250, 1 << 20, 1<<32 - 1, 1 << 32}
	for range 20 {
		counts = append(counts, 1+r.Uint64N(1<<32))
	}
	for _, n := range counts {
		bs := []uint32{0, uint32(n - 1), uint32(n / 2)}
		for range 50 {
			bs = append(bs, uint32(r.Uint64N(n)))
		}
		for _, b := range bs {
			lo, hi := Range(b, n)
			if lo > hi {
				t.Fatalf("count %d bucket %d: empty range [%d, %d]", n, b, lo, hi)
			}
			if OfValue(lo, n) != b || OfValue(hi, n) != b {
				t.Fatalf("count %d bucket %d: range [%d, %d] maps to %d..%d", n, b, lo, hi, OfValue(lo, n), OfValue(hi, n))
			}
			if b > 0 && OfValue(lo-1, n) != b-1 {
				t.Fatalf("count %d bucket %d: value below the range is in %d", n, b, OfValue(lo-1, n))
			}
			if uint64(b) < n-1 && OfValue(hi+1, n) != b+1 {
				t.Fatalf("count %d bucket %d: value above the range is in %d", n, b, OfValue(hi+1, n))
			}
			if b == 0 && lo != 0 || uint64(b) == n-1 && hi != 1<<32-1 {
				t.Fatalf("count %d bucket %d: [%d, %d] leaves the ends uncovered", n, b, lo, hi)
			}
		}
	}
}

// TestSpans: a wider bucket costs every server bucket it overlaps, and at
// least the ratio of the counts.
func TestSpans(t *testing.T) {
	for _, c := range []struct {
		b          uint32
		req, count uint64
		want       uint64
	}{
		{0, 96, 96, 1},
		{0, 40, 96, 3},
		{11, 12, 96, 8},
		{0, 1, 16, 16},
		{3, 4, 64, 16},
	} {
		if got := Spans(c.b, c.req, c.count); got != c.want {
			t.Errorf("Spans(%d, %d, %d) = %d, want %d", c.b, c.req, c.count, got, c.want)
		}
	}
	r := rand.New(rand.NewPCG(5, 6))
	for range 1000 {
		count := 1 + r.Uint64N(1<<24)
		req := 1 + r.Uint64N(count)
		b := uint32(r.Uint64N(req))
		if s := Spans(b, req, count); s*req < count-req || s > count/req+2 {
			t.Fatalf("Spans(%d, %d, %d) = %d: outside [count/req - 1, count/req + 2]", b, req, count, s)
		}
	}
}

// TestCountFor: the mean crowd owners/count is at least minPerBucket and
// below 9/8 of it (once owners/minPerBucket reaches 16), and the count
// only grows with owners, in steps of at most an eighth.
func TestCountFor(t *testing.T) {
	for _, m := range []int{1, 16, 50} {
		prev := uint64(0)
		for owners := 0; owners <= 200000; owners += 1 + owners/500 {
			n := CountFor(owners, m, MaxCount)
			if n < 1 {
				t.Fatalf("CountFor(%d, %d) = 0", owners, m)
			}
			if owners >= m && float64(owners)/float64(n) < float64(m) {
				t.Fatalf("CountFor(%d, %d) = %d: mean %.2f below %d", owners, m, n, float64(owners)/float64(n), m)
			}
			if q := owners / m; q >= 16 && float64(owners)/float64(n) >= 9.0/8*float64(m+1) {
				t.Fatalf("CountFor(%d, %d) = %d: mean %.2f not below 9/8·%d", owners, m, n, float64(owners)/float64(n), m)
			}
			if n < prev {
				t.Fatalf("count fell from %d to %d as owners grew to %d", prev, n, owners)
			}
			if n != prev {
				if prev >= 16 && float64(n)/float64(prev) > 9.0/8+1e-9 {
					t.Fatalf("count stepped from %d to %d", prev, n)
				}
			}
			prev = n
		}
	}
	if n := CountFor(1<<40, 1, 1<<20); n != 1<<20 {
		t.Errorf("capped count = %d, want 2^20", n)
	}
	if CountFor(100000, 16, MaxCount) != 6144 || CountFor(1000000, 16, MaxCount) != 61440 {
		t.Errorf("CountFor(100k) = %d, CountFor(1M) = %d", CountFor(100000, 16, MaxCount), CountFor(1000000, 16, MaxCount))
	}
	if PrefixBits(96) != 6 || PrefixBits(64) != 6 || PrefixBits(1) != 0 || PrefixBits(MaxCount) != 32 {
		t.Error("PrefixBits")
	}
}
