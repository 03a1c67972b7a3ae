package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"blindex.dev/blindex/directory/postgres"
	"blindex.dev/blindex/directory/sqlite"
)

// TestVersionHelp pins "blindex version -h" (and its alias "--version -h")
// like TestHelp does the other commands' (run with -update to rewrite it).
func TestVersionHelp(t *testing.T) {
	golden := filepath.Join("testdata", "help", "version.txt")
	for _, cmd := range []string{"version", "--version"} {
		c := exec.Command(binary, cmd, "-h")
		c.Env = append(os.Environ(), "HOME=/home/user", "XDG_CONFIG_HOME=")
		out, err := c.CombinedOutput()
		if err != nil {
			t.Errorf("blindex %s -h: %v (asking for help is not an error)", cmd, err)
		}
		if *update {
			if err := os.WriteFile(golden, out, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%v (run go test -run TestVersionHelp -update)", err)
		}
		if !bytes.Equal(out, want) {
			t.Errorf("blindex %s -h: help changed:\n%s", cmd, out)
		}
	}
	out, err := exec.Command(binary, "version", "extra").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "Usage: blindex version") {
		t.Errorf("version with an argument: %v %s", err, out)
	}
}

// versionJSON is what "blindex version --json" prints; decoding rejects
// any other member.
type versionJSON struct {
	Version  string         `json:"version"`
	Revision string         `json:"revision"`
	Time     *time.Time     `json:"time"`
	Modified *bool          `json:"modified"`
	Go       string         `json:"go"`
	Protocol int            `json:"protocol"`
	Schema   map[string]int `json:"schema"`
}

// TestVersionJSON checks "blindex version --json" against what the Go
// toolchain itself reads from the binary ("go version -m"), for the test
// binary (built as the other tests build it) and for one built with VCS
// stamping, whose revision must be a commit of this repository with that
// commit's time. Each binary, run as a directory, names the same build in
// /v1/config.
func TestVersionJSON(t *testing.T) {
	stamped := filepath.Join(t.TempDir(), "blindex")
	// -buildvcs=auto on the command line overrides a GOFLAGS=-buildvcs=false.
	if out, err := exec.Command("go", "build", "-buildvcs=auto", "-o", stamped, ".").CombinedOutput(); err != nil {
		t.Fatalf("building with VCS stamping: %v\n%s", err, out)
	}
	sawRevision := false
	for _, bin := range []string{binary, stamped} {
		want := goVersionM(t, bin)
		for _, args := range [][]string{{"version", "--json"}, {"--version", "--json"}} {
			out, err := exec.Command(bin, args...).Output()
			if err != nil {
				t.Fatalf("blindex %s: %v", strings.Join(args, " "), err)
			}
			dec := json.NewDecoder(bytes.NewReader(out))
			dec.DisallowUnknownFields()
			var got versionJSON
			if err := dec.Decode(&got); err != nil {
				t.Fatalf("blindex %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			if dec.More() {
				t.Errorf("blindex %s printed more than one JSON value:\n%s", strings.Join(args, " "), out)
			}
			if got.Version != want["mod"] || got.Go != want["go"] {
				t.Errorf("%s: version %q go %q, go version -m says %q and %q", bin, got.Version, got.Go, want["mod"], want["go"])
			}
			if got.Go != runtime.Version() {
				t.Errorf("%s: go %q, the test runs %s", bin, got.Go, runtime.Version())
			}
			if got.Revision != want["vcs.revision"] {
				t.Errorf("%s: revision %q, go version -m says %q", bin, got.Revision, want["vcs.revision"])
			}
			switch m, ok := want["vcs.modified"]; {
			case !ok && got.Modified != nil:
				t.Errorf("%s: modified %v, but the build recorded none", bin, *got.Modified)
			case ok && (got.Modified == nil || strconv.FormatBool(*got.Modified) != m):
				t.Errorf("%s: modified %v, go version -m says %s", bin, got.Modified, m)
			}
			switch ts, ok := want["vcs.time"]; {
			case !ok && got.Time != nil:
				t.Errorf("%s: time %v, but the build recorded none", bin, got.Time)
			case ok && (got.Time == nil || got.Time.Format(time.RFC3339) != ts):
				t.Errorf("%s: time %v, go version -m says %s", bin, got.Time, ts)
			}
			if got.Protocol != 1 {
				t.Errorf("%s: protocol %d, want 1", bin, got.Protocol)
			}
			if len(got.Schema) != 2 || got.Schema["sqlite"] != sqlite.SchemaVersion || got.Schema["postgres"] != postgres.SchemaVersion {
				t.Errorf("%s: schema %v, want sqlite %d and postgres %d", bin, got.Schema, sqlite.SchemaVersion, postgres.SchemaVersion)
			}
			if got.Revision != "" {
				sawRevision = true
				// The commit exists here and has the time the binary gives.
				ct, err := exec.Command("git", "show", "-s", "--format=%ct", got.Revision+"^{commit}").Output()
				if err != nil {
					t.Fatalf("revision %s is not a commit of this repository: %v", got.Revision, err)
				}
				sec, _ := strconv.ParseInt(strings.TrimSpace(string(ct)), 10, 64)
				if got.Time == nil || !got.Time.Equal(time.Unix(sec, 0)) {
					t.Errorf("revision %s was committed at %v, the binary says %v", got.Revision, time.Unix(sec, 0).UTC(), got.Time)
				}
			}
			checkVersionText(t, bin, got)
		}
		checkConfigBuild(t, bin)
	}
	if !sawRevision {
		// Each binary's revision was compared with what the toolchain
		// recorded; here it recorded none (not a git checkout, or one it
		// does not stamp, such as a git worktree), so no revision could be
		// checked against the repository.
		t.Log("the toolchain recorded no VCS revision here: only builds without one were checked")
	}
}

// checkConfigBuild starts bin as a directory and checks that /v1/config
// names the build that "bin version --json" describes.
func checkConfigBuild(t *testing.T, bin string) {
	t.Helper()
	out, err := exec.Command(bin, "version", "--json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var v versionJSON
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	want := []string{v.Version}
	if v.Revision != "" {
		want = append(want, v.Revision)
	}
	if v.Time != nil {
		want = append(want, v.Time.Format(time.RFC3339))
	}
	if v.Modified != nil && *v.Modified {
		want = append(want, "modified")
	}
	want = append(want, v.Go)

	// startServer runs the package's binary; run bin instead.
	saved := binary
	binary = bin
	s := startServer(t, t.TempDir())
	binary = saved
	resp, err := http.Get(s.url + "/v1/config")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var cfg struct{ Build *string }
	if err := json.NewDecoder(resp.Body).Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Build == nil {
		t.Errorf("%s: /v1/config has no build", bin)
	} else if *cfg.Build != strings.Join(want, " ") {
		t.Errorf("%s: /v1/config build %q, want %q", bin, *cfg.Build, strings.Join(want, " "))
	}
	s.stop(t)
}

// checkVersionText checks that "blindex version" prints the same as its
// --json.
func checkVersionText(t *testing.T, bin string, j versionJSON) {
	t.Helper()
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("blindex version: %v", err)
	}
	revision, when, modified := "unknown (the build recorded no VCS information)", "unknown", "unknown"
	if j.Revision != "" {
		revision = j.Revision
	}
	if j.Time != nil {
		when = j.Time.Format(time.RFC3339)
	}
	if j.Modified != nil {
		modified = strconv.FormatBool(*j.Modified)
	}
	want := "version   " + j.Version + "\n" +
		"revision  " + revision + "\n" +
		"time      " + when + "\n" +
		"modified  " + modified + "\n" +
		"go        " + j.Go + "\n" +
		"protocol  1\n" +
		"schema    postgres " + strconv.Itoa(postgres.SchemaVersion) + ", sqlite " + strconv.Itoa(sqlite.SchemaVersion) + "\n"
	if string(out) != want {
		t.Errorf("%s version:\n%s\nwant\n%s", bin, out, want)
	}
}

// goVersionM reads bin's build information with "go version -m": "go" is
// the toolchain, "mod" the main module's version, and the build settings
// by their keys (vcs.revision, ...).
func goVersionM(t *testing.T, bin string) map[string]string {
	t.Helper()
	out, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		t.Fatalf("go version -m: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	_, gover, _ := strings.Cut(lines[0], ": ")
	m := map[string]string{"go": gover}
	for _, l := range lines[1:] {
		f := strings.Split(strings.TrimSpace(l), "\t")
		switch {
		case len(f) >= 3 && f[0] == "mod":
			m["mod"] = f[2]
		case len(f) >= 2 && f[0] == "build":
			if k, v, ok := strings.Cut(f[1], "="); ok {
				m[k] = v
			}
		}
	}
	if m["mod"] == "" {
		t.Fatalf("go version -m gave no module version:\n%s", out)
	}
	return m
}
