package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/translog"
)

// A pendingWrite is a write this client sent and whose answer it has not
// seen. It is kept in log.json from before the request goes out until the
// answer is checked, so that after a lost answer (the server killed or
// failing after its commit, or this process killed) the client knows the
// two states the directory may hold for it: the one it had, and the one
// this write makes. resync finds out which.
type pendingWrite struct {
	App    string  `json:"app"`
	Epoch  int     `json:"epoch"`
	Record *expect `json:"record,omitempty"` // app's record in Epoch after the write; nil: deleted
	// Published is app's published.json entry after the write; nil leaves
	// it (a delete removes it once app is in no epoch).
	Published *PublishedRecord `json:"published,omitempty"`
	// Since is the size of the latest checkpoint the client knew before
	// sending: the write's State entry, if any, is at or after it.
	Since int64 `json:"since"`
}

var (
	// ErrStateNotCaused means the directory holds, for the owner's records,
	// a state that is neither the one this client had nor the one its last
	// write would make: a change the owner did not cause.
	ErrStateNotCaused = errors.New("client: the directory holds a state for your records that neither you had nor your last change made")
	// errNotCovered means the log's checkpoint does not yet cover the
	// entries the directory holds.
	errNotCovered = errors.New("client: the log's checkpoint does not yet cover the directory's latest entries: try again in a few seconds")
)

// begin records w as pending before it is sent, after settling a write
// still pending from before: each write's expectation builds on the state
// the previous one left.
func (c *Client) begin(ctx context.Context, cred *identity, w pendingWrite) error {
	if err := c.resync(ctx, cred); err != nil {
		return err
	}
	s, err := c.loadLog()
	if err != nil {
		return err
	}
	if logKey, err := c.logKey(ctx); err == nil {
		w.Since = checkpointSize(s, logKey)
	}
	s.Pending = &w
	return c.saveLog(s)
}

// unanswered handles a write that returned err. An answer below 500 is a
// refusal: the write was not made. Anything else (no answer, a 5xx, an
// answer that did not decode) leaves its outcome unknown: the client
// resynchronises now if it can, and otherwise before its next write or
// monitor run. err is returned either way.
func (c *Client) unanswered(ctx context.Context, cred *identity, err error) error {
	var e *Error
	if errors.As(err, &e) && e.Status < 500 {
		s, lerr := c.loadLog()
		if lerr == nil && s.Pending != nil {
			s.Pending = nil
			lerr = c.saveLog(s)
		}
		return errors.Join(err, lerr)
	}
	if ctx.Err() == nil {
		c.resync(ctx, cred) // best effort: the directory may be down
	}
	return err
}

// Resync settles a write whose answer was lost: it reads the state the
// directory holds for this owner (and, for a write to an epoch other than
// the current one, the log) and adopts the write into log.json and
// published.json if it was made, or drops it if it was not. A state that
// is neither is ErrStateNotCaused. Publish, SetACL, Delete and Monitor do
// it on their own.
func (c *Client) Resync(ctx context.Context) error {
	cred, err := c.credential()
	if err != nil {
		return err
	}
	return c.resync(ctx, cred)
}

func (c *Client) resync(ctx context.Context, cred *identity) error {
	s, err := c.loadLog()
	if err != nil || s.Pending == nil {
		return err
	}
	w := *s.Pending
	after := replaced(s.Records, w.App, w.Epoch, w.Record)
	made, err := c.outcome(ctx, s, cred, w, after)
	if err != nil {
		return err
	}
	if made {
		// published.json first: a crash before log.json is saved leaves the
		// write pending, and settling it again sets the same entry.
		switch {
		case w.Published != nil:
			err = c.setPublished(w.App, w.Published)
		case w.Record == nil && !slices.ContainsFunc(after, func(r expect) bool { return r.App == w.App }):
			err = c.setPublished(w.App, nil)
		}
		if err != nil {
			return err
		}
		s.Records = after
	}
	s.Pending = nil
	return c.saveLog(s)
}

// outcome reports whether w was made: whether the directory holds after,
// the records with w applied, or s.Records, those from before it.
func (c *Client) outcome(ctx context.Context, s *logState, cred *identity, w pendingWrite, after []expect) (bool, error) {
	label, err := c.label(ctx, s, cred)
	if err != nil {
		return false, err
	}
	var st api.StateResponse
	if err := c.do(ctx, "POST", api.PathLogState, struct{}{}, &st, cred); err != nil {
		return false, err
	}
	e, err := translog.Parse(st.Entry)
	if err != nil || e.Kind != translog.State || e.Label != label {
		return false, fmt.Errorf("client: malformed state answer: %v", err)
	}
	if !fresh(e.At, c.cfg.Now()) {
		return false, fmt.Errorf("client: the state answer is dated %s, not now", e.At.Format(time.RFC3339))
	}
	if st.Epoch == w.Epoch {
		// after first: a write that changed nothing is made either way.
		switch e.Commitment {
		case commitmentAt(after, w.Epoch, e.At):
			return true, nil
		case commitmentAt(s.Records, w.Epoch, e.At):
			return false, nil
		}
		return false, fmt.Errorf("%w (%d records stored)", ErrStateNotCaused, e.Records)
	}
	return c.loggedSince(ctx, s, label, w, after)
}

// loggedSince looks in the log for w's State entry. The directory's state
// answer covers its current epoch only, so a write to another one (the
// previous, during an overlap) is found by its entry, read up to a
// checkpoint that covers the directory's tree.
func (c *Client) loggedSince(ctx context.Context, s *logState, label [32]byte, w pendingWrite, after []expect) (bool, error) {
	logKey, err := c.logKey(ctx)
	if err != nil {
		return false, err
	}
	cp, behind, err := c.coveringCheckpoint(ctx, logKey, MonitorConfig{}, checkpointSize(s, logKey), coverWait)
	if err != nil {
		return false, err
	}
	if err := c.advance(ctx, s, cp, logKey); err != nil {
		return false, err
	}
	found := false
	err = c.replayFrom(ctx, cp.Tree, min(w.Since, cp.N), func(i int64, data []byte) error {
		e, err := translog.Parse(data)
		if err != nil {
			return fmt.Errorf("client: log entry %d: %w", i, err)
		}
		if e.Kind == translog.State && e.Label == label && e.Commitment == commitmentAt(after, w.Epoch, e.At) {
			found = true
		}
		return nil
	})
	switch {
	case err != nil:
		return false, err
	case found:
		return true, nil
	case behind > 0:
		return false, errNotCovered
	}
	return false, nil
}

// checkpointSize is the size of the checkpoint s keeps, 0 if none.
func checkpointSize(s *logState, logKey note.Verifier) int64 {
	if s.Checkpoint == nil {
		return 0
	}
	cp, err := translog.OpenCheckpoint(s.Checkpoint, logKey)
	if err != nil {
		return 0
	}
	return cp.N
}

func commitmentAt(recs []expect, epoch int, at time.Time) [32]byte {
	return translog.Commitment(translog.Live(expectedState(recs, epoch), at))
}

// coverWait bounds how long a reader waits for a checkpoint that covers the
// entries the directory already holds. The directory publishes one a
// second by default (docs/protocol.md).
var coverWait = 5 * time.Second

// coveringCheckpoint fetches the log's checkpoint and, if the directory
// already holds entries past it, waits up to wait for one that covers
// them: a reader right after a write (its own or another party's) would
// otherwise read a log up to a second old. have is the size of a
// checkpoint the client already holds (from its own write), which covers
// as much. It returns how many entries the last checkpoint fetched leaves
// out as far as it knows (0: none).
func (c *Client) coveringCheckpoint(ctx context.Context, logKey note.Verifier, mc MonitorConfig, have int64, wait time.Duration) (translog.Checkpoint, int64, error) {
	cp, err := c.fetchCheckpoint(ctx, logKey, mc)
	if err != nil {
		return cp, 0, err
	}
	next := max(cp.N, have)
	if !c.entryExists(ctx, next) {
		return cp, 0, nil
	}
	// The tree held entry next before this call: a checkpoint past it
	// covers all the directory held then.
	want := next + 1
	deadline := time.Now().Add(wait)
	for cp.N < want {
		if !time.Now().Before(deadline) {
			return cp, want - cp.N, nil
		}
		select {
		case <-ctx.Done():
			return cp, 0, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if cp, err = c.fetchCheckpoint(ctx, logKey, mc); err != nil {
			return cp, 0, err
		}
	}
	return cp, 0, nil
}

// entryExists reports whether the directory serves the entry at index i:
// its tiles serve the current tree, past the latest checkpoint
// (docs/protocol.md). An error, or a log that serves only checkpointed
// tiles, reads as no.
func (c *Client) entryExists(ctx context.Context, i int64) bool {
	t := tlog.Tile{H: torchwood.TileHeight, L: -1, N: i >> torchwood.TileHeight, W: int(i%(1<<torchwood.TileHeight)) + 1}
	req, err := http.NewRequestWithContext(ctx, "GET", c.cfg.Server+api.PathLog+"/"+torchwood.TilePath(t), nil)
	if err != nil {
		return false
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close() // only the status matters
	return resp.StatusCode == http.StatusOK
}
