package directory

import (
	"context"
	"sync"
	"time"

	"blindex.dev/blindex/internal/bucket"
)

// ownerCount caches the bucket count, bucket.CountFor(owners,
// MinBucketOwners), so that an average bucket holds at least
// MinBucketOwners owners, and at most 9/8 of them. Counting owners scans an index (seconds at 10 M
// owners), so the value is cached and recounted in the background, one
// count at a time, while requests use the previous value; only before the
// first count has ended do they wait for it. It is recounted after 10
// seconds, or after a write, but never sooner after the last count than 20
// times what that count took: counting never takes more than a twentieth
// of a core, however fast owners publish. Safe for concurrent use.
//
// Owners who may have left (a record deleted, a holder retired, records
// expired) are subtracted from the count at once, not at the next count: a
// bucket count the remaining owners no longer fill is refused (409) from the
// next request on, and the answer the client then fetches already has the
// smaller one. New owners wait for the count: a stale smaller count only
// widens buckets.
type ownerCount struct {
	count        func(context.Context, time.Time) (int, error) // Store.CountOwners
	now          func() time.Time
	minPerBucket int
	maxBits      int
	failed       func(error) // a count failed (not for a stop)

	// Counts run in the background under ctx; stop cancels and waits for
	// them.
	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	owners   int           // at the last count
	lost     uint64        // owners who may have left since New, ever growing
	lostThen uint64        // lost when the last count began: already in owners
	valid    time.Time     // owners is fresh until then
	soon     time.Time     // a write may not bring the next count before this
	known    bool          // owners has been counted once
	counting chan struct{} // closed when the running count ends; nil if none runs
	err      error         // the last count's failure
}

func newOwnerCount(store Store, minPerBucket, maxBits int, now func() time.Time, failed func(error)) *ownerCount {
	o := &ownerCount{count: store.CountOwners, now: now, minPerBucket: minPerBucket, maxBits: maxBits, failed: failed}
	o.ctx, o.cancel = context.WithCancel(context.Background())
	return o
}

// buckets returns the current bucket count.
func (o *ownerCount) buckets(ctx context.Context) (uint64, error) {
	_, n, err := o.current(ctx)
	return n, err
}

// current returns the owners counted, less those who may have left since,
// and the bucket count for them: the count is what the log key signs
// for callers (docs/protocol.md §10.2).
func (o *ownerCount) current(ctx context.Context) (owners int, buckets uint64, err error) {
	o.mu.Lock()
	if !o.now().Before(o.valid) {
		o.start(o.now())
	}
	known, n, done, err := o.known, o.ownersLocked(), o.counting, o.err
	o.mu.Unlock()
	if known {
		return n, o.countFor(n), nil
	}
	if done == nil { // the first count failed, and the next waits its turn
		return 0, 0, err
	}
	select {
	case <-done:
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.known {
		return 0, 0, o.err
	}
	n = o.ownersLocked()
	return n, o.countFor(n), nil
}

// ownersLocked is the owners counted less those who may have left since.
// o.mu must be held.
func (o *ownerCount) ownersLocked() int {
	// Conservative: one who left and was counted anyway (the count read
	// after the removal) is subtracted too, until the next count.
	return max(o.owners-int(o.lost-o.lostThen), 0)
}

func (o *ownerCount) countFor(owners int) uint64 {
	return bucket.CountFor(owners, o.minPerBucket, 1<<o.maxBits)
}

// refresh starts a count now unless one runs, so that the first requests
// need not wait for it.
func (o *ownerCount) refresh() {
	o.mu.Lock()
	o.start(o.now())
	o.mu.Unlock()
}

// start starts a count in the background unless one runs. o.mu must be
// held.
func (o *ownerCount) start(now time.Time) {
	if o.counting != nil {
		return
	}
	done := make(chan struct{})
	o.counting = done
	lostBefore := o.lost // taken before the count reads, so no removal is missed
	o.wg.Go(func() {
		ctx, cancel := context.WithTimeout(o.ctx, time.Minute)
		start := time.Now() // the real clock: this measures the count's cost
		n, err := o.count(ctx, now)
		spacing := 20 * time.Since(start)
		cancel()
		if err != nil && o.ctx.Err() == nil {
			o.failed(err)
		}

		o.mu.Lock()
		defer o.mu.Unlock()
		defer close(done)
		o.counting = nil
		o.err = err
		o.soon = now.Add(spacing)
		if err != nil {
			o.valid = o.soon // try again once the spacing has passed
			return
		}
		o.owners, o.lostThen = n, lostBefore
		o.known = true
		o.valid = now.Add(max(10*time.Second, spacing))
	})
}

// changed says that owners may have come: the next request after the
// spacing recounts.
func (o *ownerCount) changed() { o.left(0) }

// left says that up to n owners may have left (n records removed), after
// the store has committed the removal: they no longer count from now on,
// and the next request after the spacing recounts.
func (o *ownerCount) left(n int) {
	o.mu.Lock()
	o.lost += uint64(n)
	o.valid = o.soon
	o.mu.Unlock()
}

// stop cancels a running count and waits for it.
func (o *ownerCount) stop() {
	o.cancel()
	o.wg.Wait()
}
