// Package buildinfo says which build of blindex is running: the module
// version and the VCS revision it was built from (runtime/debug.ReadBuildInfo),
// the protocol version it speaks, and the store schema versions it knows.
// The command prints it ("blindex version") and the directory names it in
// /v1/config, so that a bug report can say which build answered.
//
// It imports no store: callers that know the schema versions pass them in.
package buildinfo

import (
	"runtime/debug"
	"strings"
	"sync"
	"time"
)

// Protocol is the major version of the blindex protocol this binary speaks
// (docs/protocol.md §15): the "v1" in every API path.
const Protocol = 1

// Info describes a build.
type Info struct {
	// Version is the main module's version: a release tag (v1.2.0), a
	// pseudo-version derived from the VCS commit
	// (v0.0.0-20261207054435-d9a7f9a2388f, with +dirty for a modified
	// tree), or "(devel)" when the build recorded none (go run, or
	// -buildvcs=false).
	Version string `json:"version"`
	// Revision is the VCS commit the binary was built from, or "" if the
	// build did not record one.
	Revision string `json:"revision,omitempty"`
	// Time is the commit time of Revision (UTC), zero if unknown.
	Time time.Time `json:"time,omitzero"`
	// Modified reports whether the work tree had uncommitted changes; nil
	// if the build did not record it (then Revision is "" too).
	Modified *bool `json:"modified,omitempty"`
	// Go is the toolchain that built the binary ("go1.26.8").
	Go string `json:"go"`
	// Protocol is the protocol version (the constant Protocol).
	Protocol int `json:"protocol"`
	// Schema maps each store engine to the newest schema version this
	// binary knows (and migrates to), as the caller gave them.
	Schema map[string]int `json:"schema,omitempty"`
}

// Read returns the running binary's build information, with schema (store
// engine to schema version; nil for none) as the caller knows it.
func Read(schema map[string]int) Info {
	i := read()
	i.Schema = schema
	return i
}

// read parses the build information once: it does not change while the
// process runs.
var read = sync.OnceValue(func() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		// A binary built without module support; not one of ours.
		return Info{Version: "unknown", Protocol: Protocol}
	}
	return parse(bi)
})

// parse reads the main module's version and the vcs.* settings of bi.
func parse(bi *debug.BuildInfo) Info {
	i := Info{Version: bi.Main.Version, Go: bi.GoVersion, Protocol: Protocol}
	if i.Version == "" {
		i.Version = "(devel)"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			i.Revision = s.Value
		case "vcs.time":
			if t, err := time.Parse(time.RFC3339, s.Value); err == nil {
				i.Time = t.UTC()
			}
		case "vcs.modified":
			m := s.Value == "true"
			i.Modified = &m
		}
	}
	return i
}

// String is the build on one line, as /v1/config names it: the version,
// then the revision, its time and "modified" when known, then the
// toolchain. For example
// "v1.2.0 d9a7f9a2388f900aa1e872c034a50126f9357b33 2026-12-07T05:44:35Z go1.26.8".
func (i Info) String() string {
	parts := []string{i.Version}
	if i.Revision != "" {
		parts = append(parts, i.Revision)
	}
	if !i.Time.IsZero() {
		parts = append(parts, i.Time.Format(time.RFC3339))
	}
	if i.Modified != nil && *i.Modified {
		parts = append(parts, "modified")
	}
	if i.Go != "" {
		parts = append(parts, i.Go)
	}
	return strings.Join(parts, " ")
}
