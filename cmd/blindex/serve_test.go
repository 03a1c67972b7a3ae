package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeFlagLimits checks that a budget or bucket flag out of range is
// refused with the flag to change, as directory.Config.Validate says it
// (the one place that knows the limits), before the data directory is made.
func TestServeFlagLimits(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--budget-burst", "1023"}, "--budget-burst must be at least 1024, a full batch"},
		{[]string{"--budget-global-per-second", "10"}, "--budget-global-per-second must be at least 1024, a full batch"},
		{[]string{"--budget-per-day", "-1"}, "--budget-per-day must be at least 1"},
		{[]string{"--min-bucket-owners", "-2"}, "--min-bucket-owners must be at least 1"},
		// 0 would take the directory's default.
		{[]string{"--budget-per-day", "0"}, "--budget-per-day must not be 0"},
		{[]string{"--min-bucket-owners", "0"}, "--min-bucket-owners must not be 0"},
	} {
		data := filepath.Join(t.TempDir(), "data")
		var stdout, stderr bytes.Buffer
		err := cmdServe(t.Context(), append([]string{"--data", data, "--addr", "127.0.0.1:0"}, c.args...), &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.args, err, c.want)
		}
		if _, err := os.Stat(data); !os.IsNotExist(err) {
			t.Errorf("%q: the data directory was made (%v)", c.args, err)
		}
	}
}
