// Package bucket maps lookup indexes to buckets (docs/protocol.md §8.6).
//
// A directory with n buckets cuts the space of the index's first 32 bits
// (big-endian) into n contiguous ranges of equal width, and an index lies in
// bucket floor(x·n / 2^32). Any n from 1 to 2^32 works, so a directory picks
// n from its owner count alone and needs no table that a caller must fetch:
// buckets hold between m and 9/8·m owners on average, where power-of-two
// prefixes held between m and 2m. For n = 2^k, bucket b is exactly the k-bit
// prefix b, the older form of the same request.
package bucket

import "math/bits"

// MaxCount is the most buckets a directory has: one per 32-bit value.
const MaxCount = 1 << 32

// Of is the bucket of index among count buckets (1 ≤ count ≤ MaxCount).
func Of(index [32]byte, count uint64) uint32 {
	return OfValue(uint32(index[0])<<24|uint32(index[1])<<16|uint32(index[2])<<8|uint32(index[3]), count)
}

// OfValue is the bucket of an index's first 32 bits.
func OfValue(x uint32, count uint64) uint32 {
	return uint32(uint64(x) * count >> 32)
}

// Range is the inclusive range of 32-bit values in bucket b of count:
// [ceil(b·2^32/count), ceil((b+1)·2^32/count) − 1].
func Range(b uint32, count uint64) (lo, hi uint32) {
	lo = uint32((uint64(b)<<32 + count - 1) / count)
	if uint64(b)+1 >= count {
		return lo, 1<<32 - 1
	}
	return lo, uint32(((uint64(b)+1)<<32+count-1)/count - 1)
}

// Spans is how many of a directory's count buckets bucket b of a coarser
// request's reqCount buckets overlaps: what fetching it costs.
func Spans(b uint32, reqCount, count uint64) uint64 {
	lo, hi := Range(b, reqCount)
	return uint64(OfValue(hi, count)) - uint64(OfValue(lo, count)) + 1
}

// CountFor is the bucket count for owners with at least minPerBucket owners
// per bucket on average, capped at maxCount: the largest value of the form
// k·2^j (8 ≤ k < 16) at most owners/minPerBucket, or that quotient itself
// below 16. The coarse steps keep the count, and so every caller's bucket
// numbers, stable while owners come and go by up to an eighth, and the mean
// crowd below 9/8 of minPerBucket.
func CountFor(owners, minPerBucket int, maxCount uint64) uint64 {
	q := uint64(max(owners/max(minPerBucket, 1), 1))
	if q >= 16 {
		j := bits.Len64(q) - 4
		q = q >> j << j
	}
	return max(min(q, maxCount), 1)
}

// PrefixBits is the longest prefix whose buckets are no smaller than
// count's: the prefix length a client that speaks only prefixes uses.
func PrefixBits(count uint64) int {
	return bits.Len64(count) - 1
}
