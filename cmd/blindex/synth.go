package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"blindex.dev/blindex/directory/synth"
)

func cmdSynth(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("synth", "synth --data DIR --owners N [--seed S] [--json]", fmt.Sprintf(`
Fills a directory server's data directory with N synthetic owners, for
benchmarks ("blindex bench --op lookup", go test -bench) and disclosure
experiments. It creates the directory and its keys if they do not exist,
as "blindex serve" would.

Each owner has a valid US number (the same ones for the same --seed), a record
sealed under the key derived from the number's OPRF output under this
directory's key, so lookups through a server really find it, and one owner in
eight a second record. Access is public for 70%% of owners (one in twenty of
them denies another owner), allowlist for 20%% (1 to 8 other owners, and the
--friend numbers) and nobody for 10%%. No number is written to disk.

Stop the server first: synth writes to the database directly, in large
transactions without fsync, and a server would see half-built states. Each
owner is one holder of its number, proved at the build's time and not on
notice. Records already present (same number and app, whichever holder
published them) are left as they are. At most %d
owners; a build holds about 80 bytes per owner in memory.`, synth.MaxOwners), stderr)
	data := fs.String("data", "blindex-data", "data `directory` to fill")
	identity := fs.String("identity", "", "age identity `file` that decrypts the key files (default <data>/identity.age-key)")
	owners := fs.Int("owners", 0, "`N`, the number of synthetic owners to add (required)")
	seed := fs.Uint64("seed", 1, "seed of the numbers and every other choice")
	friends := fs.String("friend", "", "comma-separated `numbers` added to every allowlist")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 || *owners == 0 {
		fs.Usage()
		return errUsage
	}
	if *owners < 1 || *owners > synth.MaxOwners {
		return fmt.Errorf("--owners must be between 1 and %d", synth.MaxOwners)
	}
	var friendList []string
	for _, f := range strings.Split(*friends, ",") {
		if f = strings.TrimSpace(f); f != "" {
			friendList = append(friendList, f)
		}
	}
	cfg := synth.Config{Owners: *owners, Seed: *seed, IdentityPath: *identity, Friends: friendList}
	var bar *phaseBar
	if isTerminal(stdout) {
		bar = &phaseBar{w: stdout}
		cfg.Progress = bar.update
	}
	st, err := synth.Build(ctx, *data, cfg)
	bar.clear()
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, synthReport(st, *seed))
	}
	fmt.Fprintf(stdout, "Added %d owners to %s (seed %d) in %s.\n", st.Owners, *data, *seed, st.Total.Round(10*time.Millisecond))
	fmt.Fprintf(stdout, "  records     %d (%d public, %d allowlist, %d nobody), %d already present\n",
		st.Records, st.Public, st.Allowlist, st.Nobody, st.Skipped)
	fmt.Fprintf(stdout, "  rows        %d records, %d access lists (%d entries), %d holders\n", st.Records, st.ACLLists, st.ACLEntries, st.Holders)
	fmt.Fprintf(stdout, "  evaluate    %s (%.0f owners/s)\n", st.Evaluate.Round(10*time.Millisecond), perSecond(st.Owners, st.Evaluate))
	fmt.Fprintf(stdout, "  sort        %s\n", st.Sort.Round(10*time.Millisecond))
	fmt.Fprintf(stdout, "  seal+write  %s (%.0f rows/s)\n", st.Write.Round(10*time.Millisecond), perSecond(st.Rows(), st.Write))
	fmt.Fprintf(stdout, "  total       %.0f rows/s, %.0f owners/s\n", perSecond(st.Rows(), st.Total), perSecond(st.Owners, st.Total))
	if st.Records > 0 {
		fmt.Fprintf(stdout, "  database    %.1f MiB, %.0f bytes per record\n", float64(st.DBBytes)/(1<<20), float64(st.DBBytes)/float64(st.Records))
	}
	return nil
}

func perSecond(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// synthReport is the JSON form of synth.Stats; the field names are stable.
func synthReport(st synth.Stats, seed uint64) any {
	return struct {
		Seed            uint64  `json:"seed"`
		Owners          int     `json:"owners"`
		Skipped         int     `json:"skipped"`
		Records         int     `json:"records"`
		Public          int     `json:"public"`
		Allowlist       int     `json:"allowlist"`
		Nobody          int     `json:"nobody"`
		ACLLists        int     `json:"acl_lists"`
		ACLEntries      int     `json:"acl_entries"`
		Holders         int     `json:"holders"`
		DBBytes         int64   `json:"db_bytes"`
		EvaluateSeconds float64 `json:"evaluate_seconds"`
		SortSeconds     float64 `json:"sort_seconds"`
		WriteSeconds    float64 `json:"write_seconds"`
		TotalSeconds    float64 `json:"total_seconds"`
		WriteRowsPerSec float64 `json:"write_rows_per_second"`
		RowsPerSec      float64 `json:"rows_per_second"`
	}{seed, st.Owners, st.Skipped, st.Records, st.Public, st.Allowlist, st.Nobody, st.ACLLists, st.ACLEntries, st.Holders,
		st.DBBytes, st.Evaluate.Seconds(), st.Sort.Seconds(), st.Write.Seconds(), st.Total.Seconds(),
		perSecond(st.Rows(), st.Write), perSecond(st.Rows(), st.Total)}
}

// phaseBar shows a build's phase and progress on a terminal, at most ten
// times a second. A nil *phaseBar draws nothing.
type phaseBar struct {
	w    io.Writer
	mu   sync.Mutex
	last time.Time
}

func (p *phaseBar) update(phase string, done, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.last) < 100*time.Millisecond && done < total {
		return
	}
	p.last = time.Now()
	const width = 30
	n := width * done / max(total, 1)
	fmt.Fprintf(p.w, "\r%-8s [%s%s] %d/%d", phase, strings.Repeat("=", n), strings.Repeat(" ", width-n), done, total)
}

func (p *phaseBar) clear() {
	if p != nil {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
