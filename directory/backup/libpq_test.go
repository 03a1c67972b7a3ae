package backup

import (
	"slices"
	"strings"
	"testing"
)

// The password never stays in the DSN that goes on pg_dump's command line,
// whichever form it takes, and pgx-only settings move to PGOPTIONS.
func TestLibpqDSN(t *testing.T) {
	t.Setenv("PGPASSWORD", "") // what the caller's environment holds is not the point
	t.Setenv("PGOPTIONS", "")
	for _, c := range []struct {
		dsn, want, password, options string
	}{
		{"postgres://u:s3cret@h:5432/db?sslmode=disable", "postgres://u@h:5432/db?sslmode=disable", "s3cret", ""},
		{"postgres://u@h/db?password=s3cret&sslmode=disable", "postgres://u@h/db?sslmode=disable", "s3cret", ""},
		{"postgres://u@h/db?search_path=a,%20b", "postgres://u@h/db", "", `-c search_path=a,\ b`},
		{"host=h user=u password=s3cret dbname=db", "host=h user=u dbname=db", "s3cret", ""},
		{"host=h password='a \\'b\\' c' dbname=db", "host=h dbname=db", "a 'b' c", ""},
		{"password=s3cret host=h", "host=h", "s3cret", ""},
		{"host=h dbname=db", "host=h dbname=db", "", ""},
	} {
		got, env := libpqDSN(c.dsn)
		if got != c.want {
			t.Errorf("libpqDSN(%q) = %q, want %q", c.dsn, got, c.want)
		}
		if strings.Contains(got, "s3cret") || (c.password != "" && strings.Contains(got, c.password)) {
			t.Errorf("libpqDSN(%q) kept the password on the command line: %q", c.dsn, got)
		}
		pw := envValue(env, "PGPASSWORD")
		if pw != c.password {
			t.Errorf("libpqDSN(%q): PGPASSWORD %q, want %q", c.dsn, pw, c.password)
		}
		if opts := envValue(env, "PGOPTIONS"); opts != c.options {
			t.Errorf("libpqDSN(%q): PGOPTIONS %q, want %q", c.dsn, opts, c.options)
		}
	}
}

// envValue returns the last value env gives name, as exec does.
func envValue(env []string, name string) string {
	for _, kv := range slices.Backward(env) {
		if k, val, ok := strings.Cut(kv, "="); ok && k == name {
			return val
		}
	}
	return ""
}
