package directory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/internal/httpapi"
	"blindex.dev/blindex/oprf"
)

// Lookup epochs rotate the lookup PRF without a new key: epoch n evaluates
// under the POPRF info EpochInfo(Info, n), so every index, record key and
// caller pseudonym changes with the epoch while the committed public key
// stays the same. An operator starts epoch n+1 (StartEpoch) with an
// overlap: until it ends the server answers both epochs, and clients move
// their owners' records to the new one; then the old epoch retires and its
// records are deleted. Each epoch's info is logged.

// EpochInfo is the POPRF info of lookup epoch n (api.EpochInfo).
func EpochInfo(base string, n int) string { return api.EpochInfo(base, n) }

// epochRecord is what the store's meta holds for each started epoch n > 0,
// under "epoch_<n>".
type epochRecord struct {
	Started       time.Time `json:"started"`
	PreviousUntil time.Time `json:"previous_until"` // when epoch n-1 retires
}

func epochKey(n int) string { return "epoch_" + strconv.Itoa(n) }

// ErrEpoch answers a request for an epoch the server no longer (or not
// yet) answers.
var ErrEpoch = httpapi.New(http.StatusGone, "directory: epoch not active", "epoch not active: fetch /v1/config for the current epochs")

// Epochs is the state of the lookup epochs at one moment.
type Epochs struct {
	Current       int
	Previous      int       // Current-1 while it is still answered, else -1
	PreviousUntil time.Time // when Previous retires (or retired)
	// Retiring: PreviousUntil has passed, but for the server's grace
	// (Config.EpochGrace) it still answers bucket fetches in Previous, so a
	// lookup that evaluated there just before finishes there: falling back
	// to the current epoch would hand the server a second set of prefixes.
	Retiring bool
}

// Active reports whether the server answers epoch n: evaluations and
// writes, or with fetch set, bucket fetches.
func (e Epochs) Active(n int, fetch bool) bool {
	return n == e.Current || (n == e.Previous && n >= 0 && (fetch || !e.Retiring))
}

// announced is the previous epoch as clients are told of it: none while
// it is retiring.
func (e Epochs) announced() int {
	if e.Retiring {
		return -1
	}
	return e.Previous
}

// ReadEpochs reads the epochs from the store.
func ReadEpochs(ctx context.Context, store Store, now time.Time) (Epochs, error) {
	e := Epochs{Previous: -1}
	var last epochRecord
	for n := 1; ; n++ {
		b, err := store.Meta(ctx, epochKey(n))
		if errors.Is(err, ErrNotFound) {
			break
		}
		if err != nil {
			return e, err
		}
		if err := json.Unmarshal(b, &last); err != nil {
			return e, fmt.Errorf("directory: epoch %d record: %w", n, err)
		}
		e.Current = n
	}
	e.PreviousUntil = last.PreviousUntil
	if e.Current > 0 && now.Before(last.PreviousUntil) {
		e.Previous = e.Current - 1
	}
	return e, nil
}

// StartEpoch starts the next lookup epoch in store, answered alongside the
// current one for overlap, and returns the new state. Servers on the store
// pick it up within epochRefresh. It is for "blindex rotate".
func StartEpoch(ctx context.Context, store Store, overlap time.Duration, now time.Time) (Epochs, error) {
	e, err := ReadEpochs(ctx, store, now)
	if err != nil {
		return e, err
	}
	if e.Previous >= 0 {
		return e, fmt.Errorf("directory: epoch %d is still answered until %s: let it retire before starting another", e.Previous, e.PreviousUntil.Format(time.RFC3339))
	}
	b, _ := json.Marshal(epochRecord{Started: now.UTC(), PreviousUntil: now.Add(overlap).UTC()})
	if err := store.InitMeta(ctx, epochKey(e.Current+1), b); err != nil {
		return e, fmt.Errorf("directory: starting epoch %d: %w", e.Current+1, err)
	}
	return ReadEpochs(ctx, store, now)
}

// epochs returns the current epochs (epochCache); a newly started epoch's
// keys and info are logged when first seen.
func (s *Server) epochs(ctx context.Context) (Epochs, error) { return s.epochCache.get(ctx) }

// epochOf resolves a request's epoch: the current one if absent, else one
// the server still answers (for a bucket fetch if fetch is set).
func (s *Server) epochOf(ctx context.Context, requested *int, fetch bool) (int, Epochs, error) {
	e, err := s.epochs(ctx)
	if err != nil {
		return 0, e, err
	}
	if requested == nil {
		return e.Current, e, nil
	}
	if !e.Active(*requested, fetch) {
		return 0, e, ErrEpoch
	}
	return *requested, e, nil
}

// at returns the caller's pseudonym and index in epoch n, derived at most
// once per request for an epoch other than the current. Not for concurrent
// use on one caller.
func (s *Server) at(c *caller, n int) (acl.Pseudonym, [32]byte, error) {
	if n == c.epoch {
		return c.pseudonym, c.index, nil
	}
	if c.other.ok && c.other.epoch == n {
		return c.other.pseudonym, c.other.index, nil
	}
	y, err := s.eval.FullEvaluate([]byte(EpochInfo(s.cfg.Info, n)), []byte(c.number))
	if err != nil {
		return acl.Pseudonym{}, [32]byte{}, err
	}
	c.other.epoch, c.other.pseudonym, c.other.index, c.other.ok = n, oprf.Pseudonym(y), oprf.Index(y), true
	return c.other.pseudonym, c.other.index, nil
}

func apiEpochs(e Epochs, base string) []api.Epoch {
	out := []api.Epoch{{Epoch: e.Current, Info: EpochInfo(base, e.Current)}}
	if e.announced() >= 0 {
		until := e.PreviousUntil.UTC()
		out = append(out, api.Epoch{Epoch: e.Previous, Info: EpochInfo(base, e.Previous), Until: &until})
	}
	return out
}
