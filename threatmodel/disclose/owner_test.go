package disclose_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"blindex.dev/blindex/server/demo"
	"blindex.dev/blindex/threatmodel/disclose"
)

var (
	now    = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	future = now.Add(24 * time.Hour)
	// Fictional numbers, distinct from the demo's.
	ann = "+14155550101"
	ben = "+14155550102"
	cid = "+14155550103"
)

func rec(vis string, allow, deny []string) disclose.PublishedRecord {
	return disclose.PublishedRecord{Visibility: vis, Allow: allow, Deny: deny, Expires: future}
}

func TestAudience(t *testing.T) {
	for _, c := range []struct {
		name string
		r    disclose.PublishedRecord
		want disclose.Audience
	}{
		{"public", rec("public", nil, nil), disclose.Audience{Everyone: true}},
		{"public with denylist", rec("public", nil, []string{ann}), disclose.Audience{Everyone: true, Numbers: []string{ann}}},
		{"allowlist", rec("allowlist", []string{ann, ben}, nil), disclose.Audience{Numbers: []string{ann, ben}}},
		{"deny wins over allow", rec("allowlist", []string{ann, ben}, []string{ben}), disclose.Audience{Numbers: []string{ann}}},
		{"nobody", rec("nobody", nil, []string{ann}), disclose.Audience{}},
		{"expired", disclose.PublishedRecord{Visibility: "public", Expires: now}, disclose.Audience{}},
		{"no expiry known", disclose.PublishedRecord{Visibility: "public"}, disclose.Audience{Everyone: true}},
	} {
		if got := disclose.AudienceOf(c.r, now); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestOwnerViewNotes(t *testing.T) {
	p := &disclose.Published{Records: map[string]disclose.PublishedRecord{
		"b.app": rec("allowlist", []string{ann, ben}, []string{ben}),
		"a.app": rec("public", []string{cid}, nil),
		"c.app": {Visibility: "public", Expires: now.Add(-time.Second)},
		"d.app": rec("nobody", nil, []string{ann}),
	}}
	v := disclose.OwnerView(p, now)
	var apps []string
	for _, o := range v {
		apps = append(apps, o.App)
	}
	if !slices.Equal(apps, []string{"a.app", "b.app", "c.app", "d.app"}) {
		t.Fatalf("apps %v", apps)
	}
	for i, want := range []string{"no effect with visibility public", "on both lists: the denylist wins", "expired", "the denylist has no effect"} {
		if !strings.Contains(strings.Join(v[i].Notes, ";"), want) {
			t.Errorf("%s: notes %q lack %q", v[i].App, v[i].Notes, want)
		}
	}
	if !v[2].Expired || v[2].Audience.Everyone {
		t.Errorf("expired record: %+v", v[2])
	}
}

func TestDiffACLs(t *testing.T) {
	old := &disclose.Published{Records: map[string]disclose.PublishedRecord{
		"to-public":     rec("allowlist", []string{ann, ben}, nil),
		"to-allowlist":  rec("public", nil, []string{ann, cid}),
		"deny-changes":  rec("public", nil, []string{ann}),
		"allow-changes": rec("allowlist", []string{ann, ben}, nil),
		"to-nobody":     rec("allowlist", []string{ann}, nil),
		"removed":       rec("public", nil, nil),
		"unchanged":     rec("allowlist", []string{ann}, nil),
		"expiry":        rec("allowlist", []string{ann}, nil),
	}}
	newer := &disclose.Published{Records: map[string]disclose.PublishedRecord{
		"to-public":     rec("public", nil, []string{ben, cid}),
		"to-allowlist":  rec("allowlist", []string{ann, ben}, nil),
		"deny-changes":  rec("public", nil, []string{ben}),
		"allow-changes": rec("allowlist", []string{ben, cid}, nil),
		"to-nobody":     rec("nobody", nil, nil),
		"added":         rec("allowlist", []string{cid}, nil),
		"unchanged":     rec("allowlist", []string{ann}, nil),
		"expiry":        {Visibility: "allowlist", Allow: []string{ann}, Expires: future.Add(time.Hour)},
	}}
	got := map[string]disclose.ACLChange{}
	for _, c := range disclose.DiffACLs(old, newer, now) {
		got[c.App] = c
	}
	type want struct {
		gain, lose              []string
		gainEveryone, loseEvery bool
		gainExcept, loseExcept  []string
		changed, expiresChanged bool
	}
	for app, w := range map[string]want{
		// ann keeps it; ben, now denied, loses it; everyone else but the
		// denied gains it.
		"to-public": {lose: []string{ben}, gainEveryone: true, gainExcept: []string{ben, cid}, changed: true},
		// ann was denied and is now listed: she gains it; everyone else
		// but the listed loses it.
		"to-allowlist":  {gain: []string{ann}, loseEvery: true, loseExcept: []string{ann, ben}, changed: true},
		"deny-changes":  {gain: []string{ann}, lose: []string{ben}, changed: true},
		"allow-changes": {gain: []string{cid}, lose: []string{ann}, changed: true},
		"to-nobody":     {lose: []string{ann}, changed: true},
		"removed":       {loseEvery: true, changed: true},
		"added":         {gain: []string{cid}, changed: true},
		"unchanged":     {},
		"expiry":        {expiresChanged: true},
	} {
		c, ok := got[app]
		if !ok {
			t.Errorf("%s: missing", app)
			continue
		}
		if !slices.Equal(c.Gain, w.gain) || !slices.Equal(c.Lose, w.lose) || c.GainEveryone != w.gainEveryone || c.LoseEveryone != w.loseEvery ||
			!slices.Equal(c.GainExcept, w.gainExcept) || !slices.Equal(c.LoseExcept, w.loseExcept) || c.Changed() != w.changed || c.ExpiresChanged != w.expiresChanged {
			t.Errorf("%s: %+v, want %+v", app, c, w)
		}
	}
	if len(got) != 9 {
		t.Errorf("%d changes", len(got))
	}
}

func TestParsePublished(t *testing.T) {
	good := `{"records":{"org.example.chat":{"visibility":"public","deny":["+1 (415) 555-0102"],"expires":"2026-12-27T00:00:00Z","future":1}}}`
	p, err := disclose.ParsePublished([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Records["org.example.chat"].Deny; !slices.Equal(got, []string{ben}) {
		t.Errorf("deny normalized to %v", got)
	}
	for _, bad := range []string{
		``, `{`, `[]`, `{"records":[]}`,
		`{"records":{"a":{"visibility":"friends"}}}`,
		`{"records":{"a":{"visibility":"Public"}}}`,
		`{"records":{"":{"visibility":"public"}}}`,
		`{"records":{"a":{"visibility":"allowlist","allow":["+1415555"]}}}`,
		`{"records":{"a":{"visibility":"allowlist","allow":["4155550101"]}}}`,
		`{"records":{"a":{"visibility":"public","deny":["+1 415 555 0101 ext 2"]}}}`,
		`{"records":{"a":{"visibility":"public","expires":"yesterday"}}}`,
	} {
		if _, err := disclose.ParsePublished([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", bad)
		} else if strings.Contains(err.Error(), "415") {
			t.Errorf("%s: the error quotes the number: %v", bad, err)
		}
	}
	big := filepath.Join(t.TempDir(), "big.json")
	if err := os.WriteFile(big, []byte(`{"records":{}, "pad":"`+strings.Repeat("x", 33<<20)+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := disclose.LoadPublished(big); err == nil || !strings.Contains(err.Error(), "larger") {
		t.Errorf("a 33 MiB file: %v", err)
	}
}

func FuzzParsePublished(f *testing.F) {
	f.Add([]byte(`{"records":{"org.example.chat":{"visibility":"public","deny":["+14155550102"],"expires":"2026-12-27T00:00:00Z"}}}`))
	f.Add([]byte(`{"records":{"a":{"visibility":"allowlist","allow":["+14155550101","+1 415 555 0103"]},"b":{"visibility":"nobody"}}}`))
	f.Add([]byte(`{"records":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := disclose.ParsePublished(b)
		if err != nil {
			return
		}
		// Round trip: what parses, re-encoded, parses to the same thing.
		again, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		q, err := disclose.ParsePublished(again)
		if err != nil {
			t.Fatalf("re-encoded file does not parse: %v", err)
		}
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("round trip changed %+v into %+v", p, q)
		}
		v := disclose.OwnerView(p, now)
		if len(v) != len(p.Records) {
			t.Fatalf("owner view has %d rows for %d records", len(v), len(p.Records))
		}
		disclose.DiffACLs(p, &disclose.Published{}, now)
	})
}

// The owner sections may hold the owner's own numbers, and only they: the
// rest of the report stays clean, with and without the owner files.
func TestOwnerSectionsOnlyHoldNumbers(t *testing.T) {
	dir := fixture{owners: 50}.build(t)
	state := t.TempDir()
	pub := `{"records":{"org.example.chat":{"visibility":"public","deny":["` + demo.Alice + `"]},` +
		`"org.example.video":{"visibility":"allowlist","allow":["` + demo.Carol + `","` + demo.Dave + `"]}}}`
	if err := os.WriteFile(filepath.Join(state, disclose.PublishedFile), []byte(pub), 0o600); err != nil {
		t.Fatal(err)
	}
	newer := filepath.Join(t.TempDir(), "new.json")
	if err := os.WriteFile(newer, []byte(`{"records":{"org.example.chat":{"visibility":"allowlist","allow":["`+demo.Bob+`"]}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := disclose.Gather(t.Context(), disclose.Config{DataDir: dir, Samples: quick, OwnerState: state,
		ACLOld: filepath.Join(state, disclose.PublishedFile), ACLNew: newer})
	if err != nil {
		t.Fatal(err)
	}
	scanReport(t, r, demoNumbers, true)
	md := render(t, r, (*disclose.Report).WriteMarkdown)
	_, owner := cut(t, md, disclose.MarkdownOwnerBegin, disclose.MarkdownOwnerEnd)
	for _, want := range []string{
		"**everyone with a credential** except 1 denied: " + demo.Alice,
		"**only 2 numbers**: " + demo.Dave + ", " + demo.Carol, // sorted
		// Bob could see it before (not denied) and still can: no one gains.
		"| `org.example.chat` | public → allowlist | no one | **everyone with a credential who could see it**, except " + demo.Bob + " |",
		"| `org.example.video` | allowlist → (no record) | no one | " + demo.Dave + ", " + demo.Carol + " |",
	} {
		if !strings.Contains(owner, want) {
			t.Errorf("owner sections lack %q:\n%s", want, owner)
		}
	}
}
