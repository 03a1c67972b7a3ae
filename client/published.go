package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// filePublished keeps what the owner published: its own local record of
// each app's access, in numbers, so the owner (and blindex disclose) can
// see who may see what. It never leaves this machine.
const filePublished = "published.json"

// Published is the owner's local view of its records.
type Published struct {
	Records map[string]PublishedRecord `json:"records"` // by app id
}

// PublishedRecord is one record's access as the owner set it.
type PublishedRecord struct {
	Visibility string    `json:"visibility"`
	Allow      []string  `json:"allow,omitempty"` // E.164
	Deny       []string  `json:"deny,omitempty"`  // E.164
	Expires    time.Time `json:"expires,omitzero"`
}

// LoadPublished reads a published.json file.
func LoadPublished(path string) (*Published, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Published{Records: map[string]PublishedRecord{}}, nil
	}
	if err != nil {
		return nil, err
	}
	var p Published
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("client: %s is corrupt: %w", filepath.Base(path), err)
	}
	if p.Records == nil {
		p.Records = map[string]PublishedRecord{}
	}
	return &p, nil
}

// Published returns the owner's local record of what it published.
func (c *Client) Published() (*Published, error) {
	return LoadPublished(filepath.Join(c.cfg.StateDir, filePublished))
}

// notePublished updates published.json after the directory acknowledged a
// change: set (with expires, zero to keep the old one) or remove.
func (c *Client) notePublished(app string, a *Access, expires time.Time) error {
	var r *PublishedRecord
	if a != nil {
		var err error
		if r, err = c.publishedEntry(a, expires); err != nil {
			return err
		}
	}
	return c.setPublished(app, r)
}

// publishedEntry is a's entry in published.json, expires zero keeping the
// entry's old expiry (setPublished).
func (c *Client) publishedEntry(a *Access, expires time.Time) (*PublishedRecord, error) {
	allow, err := c.normalizeAll(a.Allow)
	if err != nil {
		return nil, err
	}
	deny, err := c.normalizeAll(a.Deny)
	if err != nil {
		return nil, err
	}
	return &PublishedRecord{Visibility: a.Visibility.String(), Allow: bytesToStrings(allow), Deny: bytesToStrings(deny), Expires: expires}, nil
}

// setPublished sets app's entry in published.json to r (nil removes it).
func (c *Client) setPublished(app string, r *PublishedRecord) error {
	p, err := c.Published()
	if err != nil {
		return err
	}
	if r == nil {
		delete(p.Records, app)
	} else {
		e := *r
		if e.Expires.IsZero() {
			e.Expires = p.Records[app].Expires
		}
		p.Records[app] = e
	}
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	return writeFile(filepath.Join(c.cfg.StateDir, filePublished), b, 0o600)
}

func bytesToStrings(bs [][]byte) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = string(b)
	}
	return out
}
