package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/oprf"
	"blindex.dev/blindex/record"
)

// An ownerEval is the owner's own OPRF output and an access list's
// pseudonyms, evaluated in one blinded batch under one epoch.
type ownerEval struct {
	cred     *identity
	y        []byte // the owner's own output: its index and record key
	acl      acl.List
	epoch    int
	previous *int
}

// evalOwner loads the credential and evaluates, in one blinded batch, the
// owner's own number (for its index and record key) and the numbers of a
// (for its pseudonyms), under epoch (nil: the current one). a may be nil.
func (c *Client) evalOwner(ctx context.Context, a *Access, epoch *int) (*ownerEval, error) {
	cred, err := c.credential()
	if err != nil {
		return nil, err
	}
	inputs := [][]byte{[]byte(cred.number)}
	var allow, deny [][]byte
	if a != nil {
		if allow, err = c.normalizeAll(a.Allow); err != nil {
			return nil, fmt.Errorf("allowlist: %w", err)
		}
		if deny, err = c.normalizeAll(a.Deny); err != nil {
			return nil, fmt.Errorf("denylist: %w", err)
		}
		inputs = append(append(inputs, allow...), deny...)
	}
	ev, err := c.evaluateAt(ctx, cred, inputs, epoch)
	if err != nil {
		return nil, err
	}
	o := &ownerEval{cred: cred, y: ev.ys[0], epoch: ev.epoch, previous: ev.previous}
	if a != nil {
		o.acl.Visibility = a.Visibility
		for i, y := range ev.ys[1:] {
			p := acl.Pseudonym(oprf.Pseudonym(y))
			if i < len(allow) {
				o.acl.Allow = append(o.acl.Allow, p)
			} else {
				o.acl.Deny = append(o.acl.Deny, p)
			}
		}
		if err := o.acl.Validate(); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// Publish seals r and publishes it under the credential's number with the
// given access. Publishing again for the same app replaces the record.
// Records published under an older lookup epoch move to the current one.
func (c *Client) Publish(ctx context.Context, r record.Record, a Access) error {
	o, err := c.evalOwner(ctx, &a, nil)
	if err != nil {
		return err
	}
	if err := c.publishAt(ctx, o, r, a); err != nil {
		return err
	}
	if err := c.alsoPrevious(ctx, o, &a, func(old *ownerEval) error { return c.publishAt(ctx, old, r, a) }); err != nil {
		return err
	}
	return c.migrate(ctx, o.epoch, o.previous)
}

// alsoPrevious repeats a write in the previous epoch during an overlap:
// callers look up there until it retires (Lookup). A previous epoch that
// retired meanwhile is skipped.
func (c *Client) alsoPrevious(ctx context.Context, o *ownerEval, a *Access, write func(old *ownerEval) error) error {
	if o.previous == nil {
		return nil
	}
	old, err := c.evalOwner(ctx, a, o.previous)
	if err == nil {
		err = write(old)
	}
	if asStatus(err, http.StatusGone) != nil {
		return nil
	}
	return err
}

// publishAt publishes r under the owner's index in o's epoch, checks the
// log's State entry, and notes the record locally.
func (c *Client) publishAt(ctx context.Context, o *ownerEval, r record.Record, a Access) error {
	proof, err := c.publisherProof(ctx, o.cred)
	if err != nil {
		return err
	}
	// A whole second, no later than now: callers refuse a signing time
	// outside the credential's validity.
	proof.Signed = c.cfg.Now().Truncate(time.Second).UTC()
	ct, err := record.SealProved(oprf.RecordKey(o.y), r, proof, o.cred.key)
	if err != nil {
		return err
	}
	idx, rid := oprf.Index(o.y), oprf.RecordID(o.y, r.App)
	rec := r
	want := &expect{App: r.App, Epoch: o.epoch, RecordID: rid[:],
		Ciphertext: sha256.Sum256(ct), Expires: r.Expires, Visibility: o.acl.Visibility, Allow: o.acl.Allow, Deny: o.acl.Deny,
		Record: &rec}
	pub, err := c.publishedEntry(&a, r.Expires)
	if err != nil {
		return err
	}
	if err := c.begin(ctx, o.cred, pendingWrite{App: r.App, Epoch: o.epoch, Record: want, Published: pub}); err != nil {
		return err
	}
	var resp api.WriteResponse
	err = c.do(ctx, "PUT", api.PathRecords, api.PublishRequest{
		Index: idx[:], RecordID: rid[:], Ciphertext: ct, ACL: &o.acl, Expires: r.Expires, Epoch: &o.epoch,
	}, &resp, o.cred)
	if err != nil {
		return c.unanswered(ctx, o.cred, err)
	}
	if err := c.setPublished(r.App, pub); err != nil {
		return err
	}
	return c.stateLogged(ctx, o.cred, resp.Log, r.App, o.epoch, want)
}

// SetACL replaces the access list of the record published for app.
func (c *Client) SetACL(ctx context.Context, app string, a Access) error {
	o, err := c.evalOwner(ctx, &a, nil)
	if err != nil {
		return err
	}
	// The record must be in the current epoch before its ACL can change.
	if err := c.migrate(ctx, o.epoch, o.previous); err != nil {
		return err
	}
	if err := c.setACLAt(ctx, o, app, a); err != nil {
		return err
	}
	return c.alsoPrevious(ctx, o, &a, func(old *ownerEval) error {
		if !c.hasRecord(app, old.epoch) {
			return nil // published after the overlap began: only in the current epoch
		}
		return c.setACLAt(ctx, old, app, a)
	})
}

func (c *Client) hasRecord(app string, epoch int) bool {
	s, err := c.loadLog()
	return err == nil && slices.ContainsFunc(s.Records, func(r expect) bool { return r.App == app && r.Epoch == epoch })
}

func (c *Client) setACLAt(ctx context.Context, o *ownerEval, app string, a Access) error {
	idx, rid := oprf.Index(o.y), oprf.RecordID(o.y, app)
	// Settled first: the record whose ACL changes may be one a lost
	// answer left pending.
	if err := c.resync(ctx, o.cred); err != nil {
		return err
	}
	s, err := c.loadLog()
	if err != nil {
		return err
	}
	var rec *expect
	for _, r := range s.Records {
		if r.App == app && r.Epoch == o.epoch {
			r.Visibility, r.Allow, r.Deny = o.acl.Visibility, o.acl.Allow, o.acl.Deny
			rec = &r
		}
	}
	pub, err := c.publishedEntry(&a, time.Time{})
	if err != nil {
		return err
	}
	if rec != nil {
		if err := c.begin(ctx, o.cred, pendingWrite{App: app, Epoch: o.epoch, Record: rec, Published: pub}); err != nil {
			return err
		}
	}
	var resp api.WriteResponse
	err = c.do(ctx, "PUT", api.PathRecordACL, api.SetACLRequest{Index: idx[:], RecordID: rid[:], ACL: &o.acl, Epoch: &o.epoch}, &resp, o.cred)
	if err != nil {
		return c.unanswered(ctx, o.cred, err)
	}
	if err := c.setPublished(app, pub); err != nil {
		return err
	}
	if rec == nil {
		return fmt.Errorf("%w: no local record of app %q in %s", ErrLogEntry, app, fileLog)
	}
	return c.stateLogged(ctx, o.cred, resp.Log, app, o.epoch, rec)
}

// Delete removes the record published for app, in every epoch it is in.
func (c *Client) Delete(ctx context.Context, app string) error {
	o, err := c.evalOwner(ctx, nil, nil)
	if err != nil {
		return err
	}
	// Settled first: the epochs to delete from are those of the records the
	// directory holds.
	if err := c.resync(ctx, o.cred); err != nil {
		return err
	}
	s, err := c.loadLog()
	if err != nil {
		return err
	}
	epochs := map[int]bool{}
	for _, r := range s.Records {
		if r.App == app {
			epochs[r.Epoch] = true
		}
	}
	if len(epochs) == 0 {
		epochs[o.epoch] = true // not in the local state: try the current epoch
	}
	for e := range epochs {
		switch {
		case e == o.epoch:
			err = c.deleteAt(ctx, o, app)
		case o.previous != nil && e == *o.previous:
			var old *ownerEval
			if old, err = c.evalOwner(ctx, nil, o.previous); err == nil {
				err = c.deleteAt(ctx, old, app)
			}
		default:
			err = c.forget(app, e) // retired: the directory deleted it
		}
		if err != nil {
			return err
		}
	}
	if err := c.notePublished(app, nil, time.Time{}); err != nil {
		return err
	}
	return c.migrate(ctx, o.epoch, o.previous)
}

func (c *Client) deleteAt(ctx context.Context, o *ownerEval, app string) error {
	rid := oprf.RecordID(o.y, app)
	path := strings.Replace(api.PathRecord, "{record_id}", hex.EncodeToString(rid[:]), 1) + "?epoch=" + strconv.Itoa(o.epoch)
	if err := c.begin(ctx, o.cred, pendingWrite{App: app, Epoch: o.epoch}); err != nil {
		return err
	}
	var resp api.WriteResponse
	if err := c.do(ctx, "DELETE", path, nil, &resp, o.cred); err != nil {
		return c.unanswered(ctx, o.cred, err)
	}
	return c.stateLogged(ctx, o.cred, resp.Log, app, o.epoch, nil)
}

// ErrNoPlaintext means a record must move to a new lookup epoch but was
// published by a client that kept no copy of it.
var ErrNoPlaintext = errors.New("client: no local copy of the record to move to the new epoch: publish it again")

// migrate moves the records this client published under an epoch older
// than current: it publishes each again under current (sealed under the
// new record key, with the access list's pseudonyms evaluated anew). The
// old copy stays while its epoch is answered, since callers look up there
// until it retires; a retired epoch's copies are forgotten (the directory
// deleted them).
func (c *Client) migrate(ctx context.Context, current int, previous *int) error {
	s, err := c.loadLog()
	if err != nil {
		return err
	}
	pub, err := c.Published()
	if err != nil {
		return err
	}
	inCurrent := map[string]bool{}
	for _, r := range s.Records {
		inCurrent[r.App] = inCurrent[r.App] || r.Epoch == current
	}
	for _, r := range s.Records {
		if r.Epoch >= current {
			continue
		}
		if !inCurrent[r.App] {
			if r.Record == nil {
				return fmt.Errorf("%w (app %q)", ErrNoPlaintext, r.App)
			}
			p, ok := pub.Records[r.App]
			if !ok {
				return fmt.Errorf("client: app %q is in %s but not in %s", r.App, fileLog, filePublished)
			}
			vis, err := acl.ParseVisibility(p.Visibility)
			if err != nil {
				return err
			}
			a := Access{Visibility: vis, Allow: p.Allow, Deny: p.Deny}
			o, err := c.evalOwner(ctx, &a, &current)
			if err != nil {
				return err
			}
			if err := c.publishAt(ctx, o, *r.Record, a); err != nil {
				return err
			}
			inCurrent[r.App] = true
		}
		if previous == nil || *previous != r.Epoch {
			if err := c.forget(r.App, r.Epoch); err != nil {
				return err
			}
		}
	}
	return nil
}

// Migrate moves this owner's records to the directory's current lookup
// epoch, if an operator started a new one. Publish, SetACL, Delete and
// Lookup do it on their own.
func (c *Client) Migrate(ctx context.Context) error {
	o, err := c.evalOwner(ctx, nil, nil)
	if err != nil {
		return err
	}
	return c.migrate(ctx, o.epoch, o.previous)
}
