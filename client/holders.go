package client

import (
	"context"
	"crypto/sha256"
	"fmt"
	"time"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/internal/api"
)

// A Holder is one key that holds the client's number at the directory
// (docs/protocol.md §9.7): every key that proved the number by SMS.
type Holder struct {
	KeyHash     [32]byte  // SHA-256 of the key's SubjectPublicKeyInfo
	FirstProof  time.Time // when it joined
	LastProof   time.Time // its latest SMS proof
	NoticeUntil time.Time // zero unless on notice: when it is retired unless it proves the number again
	Records     int       // its records under the number
	You         bool      // this client's key
}

// OnNotice reports whether h is on notice: its records are not served.
func (h Holder) OnNotice() bool { return !h.NoticeUntil.IsZero() }

// Holders returns the holders of this client's number as the directory
// sees them, in the current lookup epoch.
func (c *Client) Holders(ctx context.Context) ([]Holder, error) {
	cred, err := c.credential()
	if err != nil {
		return nil, err
	}
	var resp api.HoldersResponse
	if err := c.do(ctx, "POST", api.PathHolders, struct{}{}, &resp, cred); err != nil {
		return nil, err
	}
	own := sha256.Sum256(cred.cert.RawSubjectPublicKeyInfo)
	var out []Holder
	for _, h := range resp.Holders {
		if len(h.KeyHash) != 32 {
			return nil, fmt.Errorf("client: the directory named a holder by a %d-byte key hash", len(h.KeyHash))
		}
		k := [32]byte(h.KeyHash)
		if h.You != (k == own) {
			return nil, fmt.Errorf("client: the directory marked the wrong holder as this device's key")
		}
		hd := Holder{KeyHash: k, FirstProof: h.FirstProof, LastProof: h.LastProof, Records: h.Records, You: h.You}
		if h.NoticeUntil != nil {
			hd.NoticeUntil = *h.NoticeUntil
		}
		out = append(out, hd)
	}
	return out, nil
}

// Evict retires another holder of this client's number at once, with its
// records, and returns how many records it lost. The directory allows it
// only within minutes of this key's own SMS proof (verify again first),
// and not while this key is on notice.
func (c *Client) Evict(ctx context.Context, keyHash [32]byte) (int, error) {
	cred, err := c.credential()
	if err != nil {
		return 0, err
	}
	if keyHash == sha256.Sum256(cred.cert.RawSubjectPublicKeyInfo) {
		return 0, fmt.Errorf("client: that is this device's own key: to end it, use revoke")
	}
	var resp api.EvictResponse
	if err := c.do(ctx, "POST", api.PathHoldersEvict, api.EvictRequest{KeyHash: keyHash[:]}, &resp, cred); err != nil {
		return 0, err
	}
	return resp.Retired, nil
}

// adopt publishes this owner's records again under a new key. The old
// key's records stay with the old key at the directory, on notice, until
// it is retired; the new key starts with none, and its own State entries.
func (c *Client) adopt(ctx context.Context) error {
	s, err := c.loadLog()
	if err != nil {
		return err
	}
	records := s.Records
	s.Records, s.StateIndex, s.Pending = nil, -1, nil
	if err := c.saveLog(s); err != nil {
		return err
	}
	return c.republish(ctx, records, "under the new key")
}

// republish publishes the newest epoch's copy of each of records again,
// under the ACL that published.json keeps: so that a new key (adopt) or a
// renewed credential (Renew) signs them, with its attestation and log
// promise in their proofs.
func (c *Client) republish(ctx context.Context, records []expect, why string) error {
	pub, err := c.Published()
	if err != nil {
		return err
	}
	latest := map[string]expect{} // by app: the copy of the newest epoch
	var order []string
	for _, r := range records {
		old, seen := latest[r.App]
		if !seen {
			order = append(order, r.App)
		}
		if !seen || r.Epoch > old.Epoch {
			latest[r.App] = r
		}
	}
	for _, app := range order {
		r := latest[app]
		p, ok := pub.Records[app]
		if r.Record == nil || !ok {
			c.notePublished(app, nil, time.Time{})
			return fmt.Errorf("%w (app %q): publish it again %s", ErrNoPlaintext, app, why)
		}
		vis, err := acl.ParseVisibility(p.Visibility)
		if err != nil {
			return err
		}
		if err := c.Publish(ctx, *r.Record, Access{Visibility: vis, Allow: p.Allow, Deny: p.Deny}); err != nil {
			return fmt.Errorf("client: publishing %q again %s: %w", app, why, err)
		}
	}
	return nil
}
