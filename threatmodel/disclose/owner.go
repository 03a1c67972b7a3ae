package disclose

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"time"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/oprf"
)

// PublishedFile is the name of the file in which the client keeps, in its
// state directory, what the owner published.
const PublishedFile = "published.json"

// Published is an owner's local record of its published records and their
// access, by app id: the client's published.json. The numbers in it are the
// owner's own contacts; they never leave the owner's machine.
type Published struct {
	Records map[string]PublishedRecord `json:"records"`
}

// PublishedRecord is one record's access as the owner set it.
type PublishedRecord struct {
	Visibility string    `json:"visibility"` // "public", "allowlist" or "nobody"
	Allow      []string  `json:"allow"`      // E.164
	Deny       []string  `json:"deny"`       // E.164
	Expires    time.Time `json:"expires"`    // zero if unknown
}

// maxPublishedSize bounds a published.json: two lists of acl.MaxEntries
// numbers per record, for the 32 records an owner may hold, fit well inside.
const maxPublishedSize = 32 << 20

// LoadPublished reads and checks a file in the published.json shape: every
// visibility must be known and every number valid (it is normalized to
// E.164). Unknown fields are ignored, so a newer client's file still reads.
func LoadPublished(path string) (*Published, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPublishedSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxPublishedSize {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrPublished, path, maxPublishedSize)
	}
	return ParsePublished(b)
}

// ParsePublished parses and checks the published.json shape (see LoadPublished).
func ParsePublished(b []byte) (*Published, error) {
	var p Published
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPublished, err)
	}
	if p.Records == nil {
		p.Records = map[string]PublishedRecord{}
	}
	for app, r := range p.Records {
		if app == "" {
			return nil, fmt.Errorf("%w: a record has an empty app id", ErrPublished)
		}
		if _, err := acl.ParseVisibility(r.Visibility); err != nil {
			return nil, fmt.Errorf("%w: app %q: visibility must be public, allowlist or nobody", ErrPublished, app)
		}
		var err error
		if r.Allow, err = normalizeAll(r.Allow); err != nil {
			return nil, fmt.Errorf("%w: app %q: allow: %v", ErrPublished, app, err)
		}
		if r.Deny, err = normalizeAll(r.Deny); err != nil {
			return nil, fmt.Errorf("%w: app %q: deny: %v", ErrPublished, app, err)
		}
		p.Records[app] = r
	}
	return &p, nil
}

func normalizeAll(numbers []string) ([]string, error) {
	if len(numbers) > acl.MaxEntries {
		return nil, fmt.Errorf("more than %d entries", acl.MaxEntries)
	}
	out := make([]string, 0, len(numbers))
	for i, n := range numbers {
		e, err := oprf.NormalizeNumber(n, "")
		if err != nil {
			// The entry itself is not quoted: errors may end up in logs.
			return nil, fmt.Errorf("entry %d is not a valid E.164 number", i+1)
		}
		out = append(out, e)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// An Audience is who can see a record: with Everyone, every caller with a
// credential except the numbers in Numbers; otherwise exactly Numbers.
type Audience struct {
	Everyone bool
	Numbers  []string // sorted E.164
}

// AudienceOf returns who can see r at time now. The denylist wins over the
// visibility and the allowlist, as acl.Decide does; an expired record is
// seen by no one.
func AudienceOf(r PublishedRecord, now time.Time) Audience {
	if !r.Expires.IsZero() && !r.Expires.After(now) {
		return Audience{}
	}
	v, _ := acl.ParseVisibility(r.Visibility)
	switch v {
	case acl.Public:
		return Audience{Everyone: true, Numbers: r.Deny}
	case acl.Allowlist:
		return Audience{Numbers: minus(r.Allow, r.Deny)}
	default:
		return Audience{}
	}
}

// An OwnerRecord is one row of the owner view.
type OwnerRecord struct {
	App        string
	Visibility string
	Expires    time.Time
	Expired    bool
	Audience   Audience
	Notes      []string
}

// OwnerView lists, for each of the owner's records, who can see it.
func OwnerView(p *Published, now time.Time) []OwnerRecord {
	var out []OwnerRecord
	for _, app := range sortedKeys(p.Records) {
		r := p.Records[app]
		o := OwnerRecord{App: app, Visibility: r.Visibility, Expires: r.Expires, Audience: AudienceOf(r, now)}
		o.Expired = !r.Expires.IsZero() && !r.Expires.After(now)
		if o.Expired {
			o.Notes = append(o.Notes, "expired: the directory no longer serves it")
		}
		if both := intersect(r.Allow, r.Deny); len(both) > 0 {
			o.Notes = append(o.Notes, fmt.Sprintf("%d number(s) on both lists: the denylist wins", len(both)))
		}
		if r.Visibility != acl.Allowlist.String() && len(r.Allow) > 0 {
			o.Notes = append(o.Notes, fmt.Sprintf("the allowlist (%d numbers) has no effect with visibility %s", len(r.Allow), r.Visibility))
		}
		if r.Visibility == acl.Nobody.String() && len(r.Deny) > 0 {
			o.Notes = append(o.Notes, "the denylist has no effect: no one sees the record")
		}
		out = append(out, o)
	}
	return out
}

// An ACLChange is how one app's audience changed between two files.
type ACLChange struct {
	App            string
	Old, New       string // visibility, or "" when the record is absent
	Gain, Lose     []string
	GainEveryone   bool     // every caller with a credential who could not see it before...
	GainExcept     []string // ...except these
	LoseEveryone   bool     // every caller with a credential who could see it before...
	LoseExcept     []string // ...except these
	ExpiresChanged bool
	OldExpires     time.Time
	NewExpires     time.Time
}

// Changed reports whether anyone gains or loses visibility.
func (c ACLChange) Changed() bool {
	return len(c.Gain) > 0 || len(c.Lose) > 0 || c.GainEveryone || c.LoseEveryone
}

// DiffACLs compares two published files app by app: which callers gain and
// which lose visibility of each record, at time now.
func DiffACLs(old, new *Published, now time.Time) []ACLChange {
	apps := map[string]bool{}
	for a := range old.Records {
		apps[a] = true
	}
	for a := range new.Records {
		apps[a] = true
	}
	var out []ACLChange
	for _, app := range sortedKeys(apps) {
		o, inOld := old.Records[app]
		n, inNew := new.Records[app]
		c := ACLChange{App: app}
		var oa, na Audience
		if inOld {
			c.Old, c.OldExpires, oa = o.Visibility, o.Expires, AudienceOf(o, now)
		}
		if inNew {
			c.New, c.NewExpires, na = n.Visibility, n.Expires, AudienceOf(n, now)
		}
		c.ExpiresChanged = inOld && inNew && !o.Expires.Equal(n.Expires)
		switch {
		case !oa.Everyone && !na.Everyone:
			c.Gain, c.Lose = minus(na.Numbers, oa.Numbers), minus(oa.Numbers, na.Numbers)
		case oa.Everyone && na.Everyone:
			// The audiences are complements: the excluded swap roles.
			c.Gain, c.Lose = minus(oa.Numbers, na.Numbers), minus(na.Numbers, oa.Numbers)
		case !oa.Everyone && na.Everyone:
			c.GainEveryone, c.GainExcept = true, na.Numbers
			c.Lose = intersect(oa.Numbers, na.Numbers)
		default: // everyone before, a list now
			c.LoseEveryone, c.LoseExcept = true, na.Numbers
			c.Gain = intersect(na.Numbers, oa.Numbers)
		}
		out = append(out, c)
	}
	return out
}

// minus returns the sorted a without the members of b (both sorted).
func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if _, ok := slices.BinarySearch(b, x); !ok {
			out = append(out, x)
		}
	}
	return out
}

func intersect(a, b []string) []string {
	var out []string
	for _, x := range a {
		if _, ok := slices.BinarySearch(b, x); ok {
			out = append(out, x)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
