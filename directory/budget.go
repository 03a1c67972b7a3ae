package directory

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"math"
	"net/http"
	"time"

	"blindex.dev/blindex/internal/httpapi"
)

// Budget bounds how many numbers a caller can evaluate, the defence against
// enumeration: the E.164 space is small, so anyone who may ask for
// evaluations without limit can walk it. Zero fields take DefaultBudget's;
// the reasoning is in docs/operations.md.
type Budget struct {
	// Burst is how many evaluations a caller may make at once: room for a
	// first address-book sync. At least oprf.MaxBatch (1,024).
	Burst int
	// PerDay is how many evaluations a caller regains per day. At least 1.
	PerDay int
	// GlobalPerSecond is the ceiling on evaluations per second across all
	// callers, per server process. At least oprf.MaxBatch (1,024).
	GlobalPerSecond int
}

// DefaultBudget is the budget of a Config that sets none, and the default of
// the serve flags and of the disclosure analysis.
var DefaultBudget = Budget{Burst: 5_000, PerDay: 1_000, GlobalPerSecond: 50_000}

// Each evaluated element buys one bucket fetch, so bucket fetches cannot
// scrape ciphertexts wholesale; unspent fetches are capped at this many
// times Burst.
const bucketCreditFactor = 2

var (
	ErrBudget       = httpapi.New(http.StatusTooManyRequests, "directory: evaluation budget exhausted", "evaluation budget exhausted: retry later")
	ErrCeiling      = httpapi.New(http.StatusTooManyRequests, "directory: global evaluation ceiling reached", "server busy: retry shortly")
	ErrBucketCredit = httpapi.New(http.StatusTooManyRequests, "directory: bucket fetches exceed evaluations bought", "bucket fetches exceed the evaluations bought: evaluate first")
)

// budgetKey names a caller's budget row. It is an HMAC under a secret of
// the server's, not a plain hash of the pseudonym: a copy of the database
// alone must not link budget rows (when a caller last looked up, how much)
// to the pseudonyms in owners' allowlists.
//
// It is keyed by the caller's number, not its pseudonym: the pseudonym
// changes with the lookup epoch, and a new epoch must neither refill every
// caller's budget nor strand the bucket credit bought just before it.
func (s *Server) budgetKey(purpose string, c *caller) [32]byte {
	m := hmac.New(sha256.New, s.budgetSecret)
	m.Write([]byte(purpose + "\x00"))
	m.Write([]byte(c.number))
	var k [32]byte
	m.Sum(k[:0])
	return k
}

// spendEvaluations charges n evaluations to the caller and checks that the
// global ceiling has room for them, or refuses with Retry-After. The
// caller's own budget comes first, so a caller who has none left cannot
// drain the shared ceiling. The ceiling itself is charged only once the
// batch has been evaluated (chargeCeiling): a batch refused for a bad
// element gives the caller its budget back (refundEvaluations), and if it
// had cost the ceiling, one credential could drain the ceiling for
// everyone with batches that cost it nothing.
func (s *Server) spendEvaluations(ctx context.Context, c *caller, n int) error {
	now := s.cfg.Now()
	b := s.cfg.Budget
	rate := float64(b.PerDay) / 86400
	level, err := s.cfg.Store.Tokens(ctx, s.budgetKey("evaluate", c),
		TokenBucket{Start: float64(b.Burst), Capacity: float64(b.Burst), RefillPerSecond: rate}, -float64(n), now)
	if errors.Is(err, ErrExhausted) {
		s.metrics.refusals.WithLabelValues("caller").Inc()
		wait := time.Duration(math.Ceil((float64(n)-level)/rate)) * time.Second
		return httpapi.Retry(ErrBudget, wait)
	}
	if err != nil {
		return err
	}
	if s.ceiling.TokensAt(now) < float64(n) {
		s.metrics.refusals.WithLabelValues("global").Inc()
		if err := s.refundEvaluations(ctx, c, n); err != nil {
			s.log.Error("refunding evaluations", "err", err)
		}
		return httpapi.Retry(ErrCeiling, time.Second)
	}
	return nil
}

// chargeCeiling charges n evaluations, made, to the global ceiling. Batches
// admitted at once may take it below zero; later ones are then refused
// until it has refilled, so over time it still bounds the rate.
func (s *Server) chargeCeiling(n int) {
	s.ceiling.ReserveN(s.cfg.Now(), n) // n <= MaxBatch <= the burst (New), so always granted
}

// refundEvaluations returns n evaluations to a caller whose batch was
// refused before anything was evaluated.
func (s *Server) refundEvaluations(ctx context.Context, c *caller, n int) error {
	b := s.cfg.Budget
	_, err := s.cfg.Store.Tokens(ctx, s.budgetKey("evaluate", c),
		TokenBucket{Start: float64(b.Burst), Capacity: float64(b.Burst), RefillPerSecond: float64(b.PerDay) / 86400},
		float64(n), s.cfg.Now())
	return err
}

// grantBuckets lets the caller fetch n more buckets.
func (s *Server) grantBuckets(ctx context.Context, c *caller, n int) error {
	capacity := float64(bucketCreditFactor * s.cfg.Budget.Burst)
	_, err := s.cfg.Store.Tokens(ctx, s.budgetKey("buckets", c), TokenBucket{Capacity: capacity}, float64(n), s.cfg.Now())
	return err
}

// spendBuckets charges n bucket fetches against the evaluations bought.
func (s *Server) spendBuckets(ctx context.Context, c *caller, n int) error {
	// A caller that never evaluated has no credit: the bucket starts empty.
	capacity := float64(bucketCreditFactor * s.cfg.Budget.Burst)
	_, err := s.cfg.Store.Tokens(ctx, s.budgetKey("buckets", c), TokenBucket{Capacity: capacity}, -float64(n), s.cfg.Now())
	if errors.Is(err, ErrExhausted) {
		s.metrics.refusals.WithLabelValues("buckets").Inc()
		// No Retry-After: waiting buys no credit, only evaluating does.
		return ErrBucketCredit
	}
	return err
}
