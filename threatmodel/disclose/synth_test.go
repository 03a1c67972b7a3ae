package disclose_test

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"blindex.dev/blindex/directory/datadir"
	"blindex.dev/blindex/directory/synth"
	"blindex.dev/blindex/internal/bucket"
	"blindex.dev/blindex/threatmodel/disclose"
)

var (
	synthOwners = flag.Int("synth-owners", 2000, "owners in the directory/synth directory TestSynthDirectory builds (1000000 for the timing in docs)")
	synthDir    = flag.String("synth-dir", "", "build the synthetic directory here and keep it, or reuse it if it holds a database")
)

// TestSynthDirectory reads a directory built by directory/synth, with real
// OPRF outputs and sealed records, and checks the report against the
// builder's own statistics and numbers. With -synth-owners 1000000 it is
// the timing recorded in the package's documentation.
func TestSynthDirectory(t *testing.T) {
	const seed = 5
	dir := *synthDir
	if dir == "" {
		dir = filepath.Join(t.TempDir(), "data")
	}
	var st *synth.Stats
	if _, err := os.Stat(filepath.Join(dir, datadir.DBFile)); err != nil {
		s, err := synth.Build(t.Context(), dir, synth.Config{Owners: *synthOwners, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		st = &s
		t.Logf("synth: %d owners, %d rows in %v", s.Owners, s.Rows(), s.Total.Round(time.Second))
	}
	samples := quick
	if *synthDir != "" {
		samples = disclose.DefaultSamples // time what the command does
	}
	start := time.Now()
	r, err := disclose.Gather(t.Context(), disclose.Config{DataDir: dir, Samples: samples})
	if err != nil {
		t.Fatal(err)
	}
	gather := time.Since(start)
	t.Logf("disclose over %d owners: %v (%d samples per length)", r.Owners, gather.Round(time.Millisecond), samples)
	if st != nil {
		for _, c := range []struct {
			name      string
			got, want int
		}{
			{"owners", r.Owners, st.Owners},
			{"holders", r.Holders, st.Holders},
			{"verified numbers", r.Verified, st.Holders}, // one holder per synthetic owner
			{"holders on notice", r.OnNotice, 0},
			{"public", r.Public, st.Public},
			{"allowlist", r.Allowlist, st.Allowlist},
			{"nobody", r.Nobody, st.Nobody},
			{"acl entries", r.AllowEdges + r.DenyEntries, st.ACLEntries},
			{"buckets", int(r.Anonymity.Buckets), int(bucket.CountFor(st.Owners, 16, bucket.MaxCount))},
		} {
			if c.got != c.want {
				t.Errorf("%s = %d, synth wrote %d", c.name, c.got, c.want)
			}
		}
	}
	if r.AllowOwners == 0 || r.DenyEntries == 0 {
		t.Errorf("allowlisting owners %d, deny entries %d", r.AllowOwners, r.DenyEntries)
	}
	var sample []string
	for i := range min(r.Owners, 200) {
		sample = append(sample, synth.Number(seed, i))
	}
	scanReport(t, r, sample, false)
}
