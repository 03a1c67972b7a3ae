package client

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"golang.org/x/mod/sumdb/note"

	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/internal/witness"
	"blindex.dev/blindex/translog"
)

// An Alarm is something the monitor found that the owner did not do.
type Alarm struct {
	Kind    AlarmKind `json:"kind"`
	Index   int64     `json:"index,omitempty"` // log index of the entry, if Kind.HasEntry
	Message string    `json:"message"`
	// Evidence is the entry, or for a fork both signed checkpoints.
	Evidence []string `json:"evidence,omitempty"`
}

// An AlarmKind says what an Alarm is about. Its string is the report's
// "kind" (docs/protocol.md).
type AlarmKind string

const (
	// AlarmCredential is a credential for the owner's number issued to
	// another key: an SMS hijack, or a misissuing CA.
	AlarmCredential AlarmKind = "credential"
	// AlarmHolder is another key joining the number's holders at the
	// directory, or the owner's own key retired or evicted there.
	AlarmHolder AlarmKind = "holder"
	// AlarmState is a State entry that commits to other records than the
	// owner published.
	AlarmState AlarmKind = "state"
	// AlarmStoredState is the directory storing, now, other records than
	// the owner published.
	AlarmStoredState AlarmKind = "stored-state"
	// AlarmRetired is the directory refusing the owner's credential.
	AlarmRetired AlarmKind = "retired"
	// AlarmFork is a checkpoint inconsistent with one seen before: a
	// forked or rolled-back log. Its evidence is both checkpoints.
	AlarmFork AlarmKind = "fork"
)

// HasEntry reports whether alarms of kind k cite a log entry (Alarm.Index):
// credential, holder and state alarms do; the others are about the
// directory's answers or its checkpoints.
func (k AlarmKind) HasEntry() bool {
	return k == AlarmCredential || k == AlarmHolder || k == AlarmState
}

// aboutState reports whether the alarm says the directory does not hold
// what the owner published (Report.StateOK).
func (k AlarmKind) aboutState() bool {
	return k == AlarmState || k == AlarmStoredState || k == AlarmRetired
}

// A Report is the outcome of one monitor run.
type Report struct {
	Origin    string    `json:"origin"`
	Size      int64     `json:"size"`     // the checkpoint's tree size
	Scanned   int64     `json:"scanned"`  // entries read in this run
	Mine      int       `json:"mine"`     // of which under this owner's label
	Label     string    `json:"label"`    // this owner's log label, base64
	StateOK   bool      `json:"state_ok"` // the stored and logged state match what was published
	Alarms    []Alarm   `json:"alarms"`
	CheckedAt time.Time `json:"checked_at"`
	// Behind is how many entries the directory held, when the run began,
	// past the checkpoint it read (at least; 0: none): the directory had not
	// published a checkpoint covering them within the monitor's wait, so
	// they were not checked. The next run reads them.
	Behind int64 `json:"behind,omitempty"`
	// NoticeUntil is set if the owner's key is on notice at the directory
	// now: another key proved the number later, the owner's records are
	// not served, and the key is retired at NoticeUntil unless the owner
	// proves the number again by SMS (blindex verify) before then.
	NoticeUntil *time.Time `json:"notice_until,omitempty"`
}

// retireSlack is how far from the moment this client found an epoch
// retired the directory's emptying of the old index may be logged.
const retireSlack = 24 * time.Hour

// MonitorConfig sets what the monitor requires of checkpoints.
type MonitorConfig struct {
	// Witnesses are the witness keys (cosignature/v1, see
	// witness.ParseVerifier) the owner trusts, each listed once, and Quorum
	// how many of them must have cosigned the checkpoint.
	Witnesses []note.Verifier
	Quorum    int
}

// Monitor reads the log from where the last run stopped and checks it for
// this owner:
//   - every checkpoint is consistent with the last one seen (a fork or
//     rollback is an alarm with both checkpoints as evidence);
//   - no credential or holder entry under the owner's label has a key
//     other than the owner's (an SMS hijack, or a misissuing CA);
//   - every State entry logged after the owner's last change, and the
//     state the directory stores now, commit to what the owner published.
//
// An error means the check could not be made; alarms mean it was made and
// failed.
func (c *Client) Monitor(ctx context.Context, mc MonitorConfig) (*Report, error) {
	cred, err := c.credential()
	if err != nil {
		return nil, err
	}
	logKey, err := c.logKey(ctx)
	if err != nil {
		return nil, err
	}
	if err := c.migrateToMonitor(ctx); err != nil {
		return nil, err
	}
	// A write whose answer was lost is settled first, so that its entry and
	// the state it left are not taken for someone else's. One that cannot
	// be settled stays pending (its state counts as the owner's); a state
	// the owner did not cause is an alarm below.
	if err := c.resync(ctx, cred); err != nil && !errors.Is(err, ErrStateNotCaused) &&
		!errors.Is(err, errNotCovered) && asStatus(err, http.StatusUnauthorized) == nil {
		return nil, err
	}
	s, err := c.loadLog()
	if err != nil {
		return nil, err
	}
	label, err := c.label(ctx, s, cred)
	if err != nil {
		return nil, err
	}
	rep := &Report{Origin: logKey.Name(), Label: base64.StdEncoding.EncodeToString(label[:]), Alarms: []Alarm{}, CheckedAt: c.cfg.Now().UTC()}
	cp, behind, fork, err := c.checkFork(ctx, s, logKey, mc)
	if err != nil {
		return nil, err
	}
	rep.Size, rep.Behind = cp.N, behind
	if fork != nil {
		rep.Alarms = append(rep.Alarms, *fork)
		return rep, nil // nothing read from a forked log can be trusted
	}
	if err := c.scanEntries(ctx, s, cp, label, certHash(cred.cert), rep); err != nil {
		return nil, err
	}
	s.Scanned = cp.N
	stored, err := c.checkStored(ctx, s, cred, label)
	if err != nil {
		return nil, err
	}
	if stored != nil {
		rep.Alarms = append(rep.Alarms, *stored)
	} else if hs, err := c.Holders(ctx); err == nil {
		for _, h := range hs {
			if h.You && h.OnNotice() {
				until := h.NoticeUntil.UTC()
				rep.NoticeUntil = &until
			}
		}
	} else if asStatus(err, http.StatusUnauthorized) == nil {
		return nil, err
	}
	rep.StateOK = !slices.ContainsFunc(rep.Alarms, func(a Alarm) bool { return a.Kind.aboutState() })
	return rep, c.saveLog(s)
}

// migrateToMonitor first moves records to a new lookup epoch, and forgets
// those of a retired one, so the monitor's expectations match the
// directory's epochs. A refused credential is an alarm (checkStored), not
// a reason to stop here.
func (c *Client) migrateToMonitor(ctx context.Context) error {
	if err := c.Migrate(ctx); err != nil && asStatus(err, http.StatusUnauthorized) == nil {
		return err
	}
	return nil
}

// checkFork fetches the log's checkpoint and checks it is consistent with
// the latest this client has seen. It returns the checkpoint to read up
// to: the larger of the two, now proven consistent with each other. A
// fork or rollback is an alarm, returned with the fetched checkpoint.
//
// A checkpoint is published a second or so after the entries it covers:
// if the directory already holds entries past the one fetched, it waits a
// few seconds (coverWait) for one that covers them, so that a run right
// after a write (a hijacker's verification, say) reads it. behind is how
// many it still left out.
func (c *Client) checkFork(ctx context.Context, s *logState, logKey note.Verifier, mc MonitorConfig) (cp translog.Checkpoint, behind int64, fork *Alarm, err error) {
	cp, behind, err = c.coveringCheckpoint(ctx, logKey, mc, checkpointSize(s, logKey), coverWait)
	if err != nil {
		return cp, 0, nil, err
	}
	var fe *translog.ForkError
	if err := c.advance(ctx, s, cp, logKey); errors.As(err, &fe) {
		return cp, 0, &Alarm{Kind: AlarmFork, Message: fe.Error(),
			Evidence: []string{string(fe.Old.Note), string(fe.New.Note)}}, nil
	} else if err != nil {
		return cp, 0, nil, err
	}
	// The larger may be the one kept from this client's own writes.
	kept, err := translog.OpenCheckpoint(s.Checkpoint, logKey)
	return kept, max(0, behind-(kept.N-cp.N)), nil, err
}

// scanEntries reads the entries the last run did not, up to cp, and adds
// to rep an alarm for each under label that the owner did not cause: a
// credential or holder entry with a key other than own, or a State entry
// after the owner's last change that commits to other records.
func (c *Client) scanEntries(ctx context.Context, s *logState, cp translog.Checkpoint, label, own [32]byte, rep *Report) error {
	matches := c.stateMatcher(ctx, s)
	return c.replayFrom(ctx, cp.Tree, s.Scanned, func(i int64, data []byte) error {
		rep.Scanned++
		e, err := translog.Parse(data)
		if err != nil {
			return fmt.Errorf("client: log entry %d: %w", i, err)
		}
		if (e.Kind != translog.Credential && e.Kind != translog.Holder && e.Kind != translog.State) || e.Label != label {
			return nil
		}
		rep.Mine++
		if a := entryAlarm(e, own, i > s.StateIndex, matches); a != nil {
			a.Index, a.Evidence = i, []string{string(data)}
			rep.Alarms = append(rep.Alarms, *a)
		}
		return nil
	})
}

// entryAlarm returns the alarm an entry under the owner's label raises for
// the owner of key own, or nil. afterOwn says whether the entry comes after
// the owner's last change (only those State entries are checked), and
// matches whether a State entry commits to what the owner published.
func entryAlarm(e *translog.Entry, own [32]byte, afterOwn bool, matches func(*translog.Entry) bool) *Alarm {
	switch {
	case e.Kind == translog.Credential && e.Key != own:
		return &Alarm{Kind: AlarmCredential,
			Message: fmt.Sprintf("a credential for your number was issued to another key (valid %s to %s): if you did not verify the number again, nor another app or device of yours, it was hijacked",
				e.NotBefore.Format(time.RFC3339), e.NotAfter.Format(time.RFC3339))}
	case e.Kind == translog.Holder:
		return holderAlarm(e, own)
	case e.Kind == translog.State && e.Key != own && e.Key != ([32]byte{}):
		// Another holder's records (another app's, say): not the owner's
		// to check. A zero key is a State entry from before holders were a
		// set: the number's only holder's, so the owner's.
	case e.Kind == translog.State && afterOwn && !matches(e):
		return &Alarm{Kind: AlarmState,
			Message: "the directory logged a state for your records that differs from what you published"}
	}
	return nil
}

// holderAlarm returns the alarm a Holder entry raises for the owner of
// key own, or nil: another key joining the number (its proof put the
// owner on notice, or will when it is later), or the owner's own key
// retired or evicted. Notices, re-proofs and other holders' retirements
// are the directory applying the rules, not alarms; the owner's own
// notice is reported from the directory's answer (Report.NoticeUntil).
func holderAlarm(e *translog.Entry, own [32]byte) *Alarm {
	key := hex.EncodeToString(e.Key[:])
	switch {
	case e.Event == "" && e.Key != own: // from before holders were a set
		return &Alarm{Kind: AlarmHolder,
			Message: fmt.Sprintf("another key took over your number at the directory; %d of your records were retired", e.Retired)}
	case e.Event == translog.Join && e.Key != own:
		return &Alarm{Kind: AlarmHolder,
			Message: fmt.Sprintf("key %s proved your number by SMS at %s and joined its holders at the directory: if it is not another app or device of yours, your SMS was intercepted. Prove the number again (blindex verify start NUMBER), then evict it (blindex holders --evict %s)",
				key, e.Proof.Format(time.RFC3339), key)}
	case e.Event == translog.Retire && e.Key == own:
		return &Alarm{Kind: AlarmHolder,
			Message: fmt.Sprintf("your key was retired: it did not prove the number again in time, and its %d records were deleted. Verify with a new key (blindex verify start --new-key NUMBER)", e.Retired)}
	case e.Event == translog.Evict && e.Key == own:
		return &Alarm{Kind: AlarmHolder,
			Message: fmt.Sprintf("your key was evicted by key %s, which joined the number before yours, and its %d records were deleted: if you still hold the number, verify with a new key (blindex verify start --new-key NUMBER)",
				hex.EncodeToString(e.By[:]), e.Retired)}
	}
	return nil
}

// stateMatcher returns whether a State entry commits to what the owner
// expects. A State entry does not name its epoch: it must match the
// owner's records in one of the epochs it has records in (or the current
// one), or be the emptying of a retired epoch's index.
func (c *Client) stateMatcher(ctx context.Context, s *logState) func(e *translog.Entry) bool {
	epochs := map[int]bool{}
	if p, err := c.pinnedCtx(ctx); err == nil {
		epochs[p.Epoch] = true
	}
	for _, r := range s.Records {
		epochs[r.Epoch] = true
	}
	empty := translog.Commitment(nil)
	sets := ownStates(s)
	return func(e *translog.Entry) bool {
		for ep := range epochs {
			for _, recs := range sets {
				if e.Commitment == commitmentAt(recs, ep, e.At) {
					return true
				}
			}
		}
		// A retired epoch's index is emptied when it retires.
		for _, at := range s.Retired {
			if e.Commitment == empty && e.At.After(at.Add(-retireSlack)) && e.At.Before(at.Add(retireSlack)) {
				return true
			}
		}
		return false
	}
}

// ownStates returns the record sets the owner's own doing may have left:
// what it published, and that with a write still pending (resync) applied.
func ownStates(s *logState) [][]expect {
	sets := [][]expect{s.Records}
	if w := s.Pending; w != nil {
		sets = append(sets, replaced(s.Records, w.App, w.Epoch, w.Record))
	}
	return sets
}

// checkStored asks the directory for the state it stores for the owner
// now, and returns an alarm if that differs from what the owner published
// in the directory's current epoch, or if the directory refuses the
// credential.
func (c *Client) checkStored(ctx context.Context, s *logState, cred *identity, label [32]byte) (*Alarm, error) {
	var st api.StateResponse
	err := c.do(ctx, "POST", api.PathLogState, struct{}{}, &st, cred)
	if e := asStatus(err, http.StatusUnauthorized); e != nil {
		return &Alarm{Kind: AlarmRetired, Message: "the directory refuses your credential: " + e.Message}, nil
	}
	if err != nil {
		return nil, err
	}
	e, err := translog.Parse(st.Entry)
	if err != nil || e.Kind != translog.State || e.Label != label || (e.Key != certHash(cred.cert) && e.Key != ([32]byte{})) {
		return nil, fmt.Errorf("client: malformed state answer: %v", err)
	}
	if !fresh(e.At, c.cfg.Now()) {
		return nil, fmt.Errorf("client: the state answer is dated %s, not now", e.At.Format(time.RFC3339))
	}
	if !slices.ContainsFunc(ownStates(s), func(recs []expect) bool { return e.Commitment == commitmentAt(recs, st.Epoch, e.At) }) {
		return &Alarm{Kind: AlarmStoredState, Evidence: []string{string(st.Entry)},
			Message: fmt.Sprintf("the directory now stores %d records or access lists for your number that differ from what you published", e.Records)}, nil
	}
	return nil, nil
}

// fetchCheckpoint gets the log's published checkpoint and checks the log's
// signature and the witness quorum.
func (c *Client) fetchCheckpoint(ctx context.Context, logKey note.Verifier, mc MonitorConfig) (translog.Checkpoint, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", c.cfg.Server+api.PathLog+"/checkpoint", nil)
	if err != nil {
		return translog.Checkpoint{}, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return translog.Checkpoint{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return translog.Checkpoint{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return translog.Checkpoint{}, fmt.Errorf("client: fetching the checkpoint: HTTP %d", resp.StatusCode)
	}
	cp, err := translog.OpenCheckpoint(body, logKey)
	if err != nil {
		return translog.Checkpoint{}, err
	}
	if mc.Quorum > 0 {
		if _, err := witness.RequireCosignatures(body, logKey, mc.Witnesses, mc.Quorum); err != nil {
			return translog.Checkpoint{}, err
		}
	}
	return cp, nil
}
