package directory

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"

	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/internal/httpapi"
	"blindex.dev/blindex/oprf"
	"blindex.dev/blindex/translog"
)

// LogLabelInfo is the POPRF info under which log labels are evaluated. It
// differs from the lookup info, so a label says nothing about lookups and
// lookups say nothing about labels.
const LogLabelInfo = api.LogLabelInfo

// Log-label evaluations a number's credentials may make: a monitor needs its label
// once; more would turn the public log into a registration oracle (an
// evaluated label that appears in the log is a registered number).
const (
	LabelBurst  = 3
	LabelPerDay = 3
)

var ErrLabelBudget = httpapi.New(http.StatusTooManyRequests, "directory: log label budget exhausted", "log label budget exhausted: keep the label you have; retry tomorrow")

// Label returns the log label of number: the name the log gives it.
func (s *Server) Label(number string) ([32]byte, error) {
	y, err := s.eval.FullEvaluate([]byte(LogLabelInfo), []byte(number))
	if err != nil {
		return [32]byte{}, err
	}
	return oprf.LogLabel(y), nil
}

// Log returns the directory's transparency log.
func (s *Server) Log() *translog.Log { return s.tlog }

// logLabel evaluates one blinded element under the log-label info, for an
// owner's monitor: the proof lets it check the label against the OPRF key
// it pinned, so the server cannot hide entries behind a wrong label. The
// server cannot tell which number was blinded; the budget below, per
// caller number, bounds what a caller learns from the log this way.
func (s *Server) logLabel(ctx context.Context, c *caller, req api.EvaluateRequest) (api.EvaluateResponse, error) {
	if len(req.Elements) != 1 {
		return api.EvaluateResponse{}, fmt.Errorf("%w: exactly one element", httpapi.ErrBadRequest)
	}
	key := s.budgetKey("log label", c) // per number: a new key for it gets no fresh budget
	rate := float64(LabelPerDay) / 86400
	level, err := s.cfg.Store.Tokens(ctx, key, TokenBucket{Start: LabelBurst, Capacity: LabelBurst, RefillPerSecond: rate}, -1, s.cfg.Now())
	if errors.Is(err, ErrExhausted) {
		s.metrics.refusals.WithLabelValues("log_label").Inc()
		return api.EvaluateResponse{}, httpapi.Retry(ErrLabelBudget, time.Duration(math.Ceil((1-level)/rate))*time.Second)
	}
	if err != nil {
		return api.EvaluateResponse{}, err
	}
	evaluated, proof, err := s.eval.Evaluate([]byte(LogLabelInfo), req.Elements)
	if err != nil {
		return api.EvaluateResponse{}, fmt.Errorf("evaluate: %w", err)
	}
	o := s.observation(c, "log_label")
	o.Count = 1
	s.observe(o)
	return api.EvaluateResponse{Evaluated: evaluated, Proof: proof}, nil
}

// logState answers an owner's monitor with the State entry of its records
// as the database holds them now, so that a change made behind the
// server's write path (straight into the database) shows up as a mismatch
// with what the owner published, even though no log entry recorded it.
func (s *Server) logState(ctx context.Context, c *caller, _ struct{}) (api.StateResponse, error) {
	recs, err := s.cfg.Store.OwnerState(ctx, c.index, c.keyHash)
	if err != nil {
		return api.StateResponse{}, err
	}
	e, err := translog.StateEntry(c.proof.Label, c.keyHash, recs, s.cfg.Now())
	return api.StateResponse{Entry: e, Epoch: c.epoch}, err
}

// logKeys makes sure the log holds the OPRF public key and the current CA
// roots, appending an entry for each that it does not yet hold (recorded in
// the store's meta under the entry's hash), so clients and auditors can
// check the keys they are given against the log.
func (s *Server) logKeys(ctx context.Context, epochs Epochs) error {
	// One at a time: requests that find a new epoch together would
	// otherwise all see an entry unlogged and append it.
	s.logKeysMu.Lock()
	defer s.logKeysMu.Unlock()
	pub := s.cfg.OPRFKey.Public().Bytes()
	entries := []translog.Entry{{Kind: translog.OPRFKey, Info: EpochInfo(s.cfg.Info, epochs.Current), PublicKey: pub}}
	if epochs.Previous >= 0 {
		entries = append(entries, translog.Entry{Kind: translog.OPRFKey, Info: EpochInfo(s.cfg.Info, epochs.Previous), PublicKey: pub})
	}
	entries = append(entries,
		translog.Entry{Kind: translog.OPRFKey, Info: LogLabelInfo, PublicKey: pub},
		translog.Entry{Kind: translog.CARoots, Roots: s.rootsDER})
	if s.cfg.MapEntry != nil {
		entries = append(entries, *s.cfg.MapEntry)
	}
	for _, e := range entries {
		b, err := e.Marshal()
		if err != nil {
			return err
		}
		key := loggedKey(b)
		if _, err := s.cfg.Store.Meta(ctx, key); err == nil {
			continue
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		// Appended before it is marked: a crash in between logs it twice,
		// never not at all.
		if _, err := s.cfg.Store.AppendLog(ctx, b); err != nil {
			return err
		}
		if err := s.cfg.Store.InitMeta(ctx, key, []byte{1}); err != nil {
			return err
		}
	}
	return nil
}
