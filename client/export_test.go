package client

// SetBucketPartSize sets how many prefixes one buckets request carries, so
// that tests can make a small lookup send several, and returns the old size.
func SetBucketPartSize(n int) int {
	old := bucketPartSize
	bucketPartSize = n
	return old
}
