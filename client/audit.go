package client

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/tlog"

	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/translog"
)

// An AuditReport is the outcome of replaying a whole log.
type AuditReport struct {
	Origin     string                `json:"origin"`
	Size       int64                 `json:"size"`
	Kinds      map[translog.Kind]int `json:"kinds"`
	Consistent bool                  `json:"consistent_with_previous"` // with the checkpoint kept from the last audit
	Fork       *translog.ForkError   `json:"-"`
	OPRFKeys   []translog.Entry      `json:"-"`
	Previous   int64                 `json:"previous_size"`
	// Unhonoured are the log promises accepted in looked-up records
	// whose entries the log does not hold.
	Unhonoured []UnhonouredPromise `json:"unhonoured_promises"`
	// Mislabelled are the log promises accepted in looked-up records
	// whose entry's label is not the proved label of the number looked
	// up: the owner's monitor would never see the credential.
	Mislabelled []UnhonouredPromise `json:"mislabelled_promises,omitempty"`
	// Overstated is the largest signed owner count a lookup relied on,
	// if the log cannot account for it (kanon.go).
	Overstated *OverstatedCount `json:"overstated_owner_count,omitempty"`
}

// Audit replays the whole log from its tiles: every entry is read and
// hashed into the checkpoint's tree (a changed bit anywhere fails), every
// entry must parse in its one canonical form, the checkpoint must carry the
// log's signature (and the witness quorum, if mc asks), and it must be
// consistent with the checkpoint this state directory kept from the last
// audit or write. It needs no credential.
func (c *Client) Audit(ctx context.Context, mc MonitorConfig) (*AuditReport, error) {
	logKey, err := c.logKey(ctx)
	if err != nil {
		return nil, err
	}
	s, err := c.loadLog()
	if err != nil {
		return nil, err
	}
	fetched := c.cfg.Now()
	cp, err := c.fetchCheckpoint(ctx, logKey, mc)
	if err != nil {
		return nil, err
	}
	rep := &AuditReport{Origin: cp.Origin, Size: cp.N, Kinds: map[translog.Kind]int{}}
	if s.Checkpoint != nil {
		if old, err := translog.OpenCheckpoint(s.Checkpoint, logKey); err == nil {
			rep.Previous = old.N
		}
	}
	var fork *translog.ForkError
	if err := c.advance(ctx, s, cp, logKey); errors.As(err, &fork) {
		rep.Fork = fork
		return rep, nil
	} else if err != nil {
		return nil, err
	}
	rep.Consistent = true
	// The kept promises' entries, marked as the replay finds them: a set
	// of the promises' size, not the log's.
	logged, err := c.promisedEntries()
	if err != nil {
		return nil, err
	}
	tally, err := c.newOwnersTally()
	if err != nil {
		return nil, err
	}
	if err := c.replay(ctx, cp.Tree, func(i int64, data []byte) error {
		if h := sha256.Sum256(data); len(logged) > 0 {
			if _, ok := logged[h]; ok {
				logged[h] = true
			}
		}
		e, err := translog.Parse(data)
		if err != nil {
			return fmt.Errorf("client: log entry %d: %w", i, err)
		}
		rep.Kinds[e.Kind]++
		tally.add(e)
		if e.Kind == translog.OPRFKey {
			rep.OPRFKeys = append(rep.OPRFKeys, *e)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	_, pk, err := c.pinnedKey(ctx)
	if err != nil {
		return nil, err
	}
	if rep.Mislabelled, err = c.checkLabels(pk, logKey); err != nil {
		return nil, err
	}
	if rep.Unhonoured, err = c.checkPromises(logKey, logged, fetched); err != nil {
		return nil, err
	}
	rep.Overstated = tally.overstated(logKey)
	return rep, c.saveLog(s)
}

// replay reads every entry of tree from the log's tiles, authenticating
// each against the tree hash.
func (c *Client) replay(ctx context.Context, tree tlog.Tree, f func(i int64, data []byte) error) error {
	return c.replayFrom(ctx, tree, 0, f)
}

func (c *Client) replayFrom(ctx context.Context, tree tlog.Tree, start int64, f func(i int64, data []byte) error) error {
	tiles, err := torchwood.NewTileFetcher(c.cfg.Server+api.PathLog+"/", torchwood.WithHTTPClient(c.http))
	if err != nil {
		return err
	}
	tc, err := torchwood.NewClient(tiles)
	if err != nil {
		return err
	}
	for start < tree.N {
		next := start
		for i, data := range tc.Entries(ctx, tree, start) {
			next = i + 1
			if err := f(i, data); err != nil {
				return err
			}
		}
		if err := tc.Err(); err != nil {
			return fmt.Errorf("client: reading the log: %w", err)
		}
		if next == start {
			return errors.New("client: reading the log: no progress")
		}
		start = next
	}
	return nil
}
