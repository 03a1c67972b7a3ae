package buildinfo

import (
	"encoding/json"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"blindex.dev/blindex/internal/api"
)

func TestParse(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "blindex.dev/blindex", Version: "v0.0.0-20261207054435-d9a7f9a2388f+dirty"},
		Settings: []debug.BuildSetting{
			{Key: "-buildmode", Value: "exe"},
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "d9a7f9a2388f900aa1e872c034a50126f9357b33"},
			{Key: "vcs.time", Value: "2026-12-07T06:44:35+01:00"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	got := parse(bi)
	yes := true
	want := Info{
		Version:  "v0.0.0-20261207054435-d9a7f9a2388f+dirty",
		Revision: "d9a7f9a2388f900aa1e872c034a50126f9357b33",
		Time:     time.Date(2026, 12, 7, 5, 44, 35, 0, time.UTC),
		Modified: &yes,
		Go:       "go1.26.8",
		Protocol: Protocol,
	}
	if got.Version != want.Version || got.Revision != want.Revision || !got.Time.Equal(want.Time) ||
		got.Time.Location() != time.UTC || got.Modified == nil || !*got.Modified || got.Go != want.Go || got.Protocol != want.Protocol {
		t.Errorf("parse = %+v, want %+v", got, want)
	}
	if s, w := got.String(), "v0.0.0-20261207054435-d9a7f9a2388f+dirty d9a7f9a2388f900aa1e872c034a50126f9357b33 2026-12-07T05:44:35Z modified go1.26.8"; s != w {
		t.Errorf("String = %q, want %q", s, w)
	}

	// A build that recorded no VCS information (go run, -buildvcs=false).
	bare := parse(&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "blindex.dev/blindex", Version: "(devel)"},
		Settings: []debug.BuildSetting{{Key: "vcs.modified", Value: "false"}}})
	if bare.Revision != "" || !bare.Time.IsZero() || bare.Modified == nil || *bare.Modified || bare.String() != "(devel) go1.26.8" {
		t.Errorf("no VCS: %+v, %q", bare, bare.String())
	}
	if none := parse(&debug.BuildInfo{}); none.Version != "(devel)" || none.Modified != nil {
		t.Errorf("no settings, no version: %+v", none)
	}
	// A malformed time is left out, not guessed.
	if bad := parse(&debug.BuildInfo{Settings: []debug.BuildSetting{{Key: "vcs.time", Value: "yesterday"}}}); !bad.Time.IsZero() {
		t.Errorf("malformed vcs.time read as %v", bad.Time)
	}
}

func TestJSON(t *testing.T) {
	i := Info{Version: "v1.2.0", Revision: "d9a7f9a2388f900aa1e872c034a50126f9357b33",
		Time: time.Date(2026, 12, 7, 5, 44, 35, 0, time.UTC), Modified: new(bool), Go: "go1.26.8", Protocol: 1,
		Schema: map[string]int{"sqlite": 4, "postgres": 3}}
	b, err := json.Marshal(i)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"version":"v1.2.0","revision":"d9a7f9a2388f900aa1e872c034a50126f9357b33","time":"2026-12-07T05:44:35Z","modified":false,"go":"go1.26.8","protocol":1,"schema":{"postgres":3,"sqlite":4}}`
	if string(b) != want {
		t.Errorf("JSON\n got %s\nwant %s", b, want)
	}
	// Unknown parts are left out rather than given as empty strings or
	// the zero time.
	b, err = json.Marshal(Info{Version: "(devel)", Go: "go1.26.8", Protocol: 1})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"version":"(devel)","go":"go1.26.8","protocol":1}`; string(b) != want {
		t.Errorf("JSON without VCS\n got %s\nwant %s", b, want)
	}
}

func TestRead(t *testing.T) {
	schema := map[string]int{"sqlite": 4}
	i := Read(schema)
	if i.Go != runtime.Version() {
		t.Errorf("Go = %q, want %q", i.Go, runtime.Version())
	}
	if i.Protocol != Protocol || i.Version == "" || i.Schema["sqlite"] != 4 || len(i.Schema) != 1 {
		t.Errorf("Read = %+v", i)
	}
	if Read(nil).Schema != nil {
		t.Error("the schema given to one Read leaked into the next")
	}
}

// TestProtocolInPaths ties Protocol to the version the API paths carry.
func TestProtocolInPaths(t *testing.T) {
	prefix := "/v" + strconv.Itoa(Protocol) + "/"
	for _, p := range []string{api.PathConfig, api.PathVerifyStart, api.PathVerifyConfirm, api.PathRenew, api.PathRevoke,
		api.PathCARoot, api.PathEvaluate, api.PathBuckets, api.PathRecords, api.PathRecordACL, api.PathRecord,
		api.PathLogLabel, api.PathLogState} {
		if !strings.HasPrefix(p, prefix) {
			t.Errorf("path %s does not carry protocol version %d", p, Protocol)
		}
	}
}
