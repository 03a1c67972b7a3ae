package main

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"

	"blindex.dev/blindex/record"
)

// TestBenchLookupBytes runs "blindex bench --op lookup" against a synthetic
// directory served by the binary and checks the download it reports: every
// found record's ciphertext, and the rest of each bucket, was received, so
// the bytes per lookup are at least the found records' share and no more
// than the whole directory's.
func TestBenchLookupBytes(t *testing.T) {
	const owners = 2000
	data := filepath.Join(t.TempDir(), "data")
	if out, err := exec.Command(binary, "synth", "--data", data, "--owners", "2000", "--seed", "1").CombinedOutput(); err != nil {
		t.Fatalf("synth: %v\n%s", err, out)
	}
	s := startServer(t, data, "--budget-burst", "100000", "--budget-per-day", "100000", "--budget-global-per-second", "100000")
	cli(t, s, "caller", "verify", "start", "+12025550199")
	cli(t, s, "caller", "verify", "confirm", s.lastCode(t))
	out := cli(t, s, "caller", "bench", "--op", "lookup", "--owners", "2000", "--seed", "1",
		"--requests", "3", "--batch", "100", "--concurrency", "1", "--calibrate", "200ms", "--json")
	var rep struct {
		Requests       int     `json:"requests"`
		RecordsFound   int     `json:"records_found"`
		BytesPerLookup float64 `json:"bytes_per_lookup"`
		BytesPerNumber float64 `json:"bytes_per_number"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("bench output: %v\n%s", err, out)
	}
	if rep.Requests != 3 || rep.RecordsFound < 3*50 {
		t.Fatalf("bench: %d lookups found %d records, want 3 finding most of 100 numbers each\n%s", rep.Requests, rep.RecordsFound, out)
	}
	const minRecord = 256 // no sealed record is smaller
	found := float64(rep.RecordsFound) / 3
	// At most two records per synthetic owner, each at most
	// record.MaxCiphertext plus its framing.
	whole := float64(owners * 2 * (record.MaxCiphertext + 64))
	if rep.BytesPerLookup < found*minRecord || rep.BytesPerLookup > whole {
		t.Errorf("bytes_per_lookup %.0f for %.0f records found per lookup", rep.BytesPerLookup, found)
	}
	if rep.BytesPerNumber != rep.BytesPerLookup/100 {
		t.Errorf("bytes_per_number %.1f, want bytes_per_lookup / 100", rep.BytesPerNumber)
	}
}
