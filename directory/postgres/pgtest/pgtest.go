// Package pgtest gives tests a PostgreSQL server: the one named by
// BLINDEX_TEST_POSTGRES (scripts/test.sh starts a throwaway cluster and sets
// it), and fresh empty schemas on it.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// ServerDSN returns the DSN of the PostgreSQL server the tests use. Without
// one the tests fail, so that a run that was meant to cover PostgreSQL
// cannot pass without it; BLINDEX_SKIP_POSTGRES=1 skips them instead.
func ServerDSN(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv("BLINDEX_TEST_POSTGRES")
	if dsn != "" {
		return dsn
	}
	if os.Getenv("BLINDEX_SKIP_POSTGRES") == "1" {
		t.Skip("SKIPPING the PostgreSQL store tests (BLINDEX_SKIP_POSTGRES=1): this run does NOT test " +
			"the PostgreSQL store. Run scripts/test.sh to test it against a throwaway server.")
	}
	t.Fatal("BLINDEX_TEST_POSTGRES is unset: run scripts/test.sh, which starts a throwaway PostgreSQL " +
		"and sets it, or set it to the DSN of a server where the user may create schemas " +
		"(BLINDEX_SKIP_POSTGRES=1 skips these tests)")
	return ""
}

// Admin runs sql on the test server outside any store.
func Admin(t *testing.T, dsn, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connecting to the test server: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// FreshDSN creates an empty schema, dropped when the test ends, and returns
// a DSN whose search_path is that schema: a new, empty database as far as a
// store can tell, much cheaper than CREATE DATABASE.
func FreshDSN(t *testing.T) string {
	t.Helper()
	dsn := ServerDSN(t)
	b := make([]byte, 8)
	rand.Read(b)
	schema := "blindex_test_" + hex.EncodeToString(b)
	Admin(t, dsn, "CREATE SCHEMA "+schema)
	t.Cleanup(func() { Admin(t, dsn, "DROP SCHEMA "+schema+" CASCADE") })
	return WithParam(t, dsn, "search_path", schema)
}

// WithParam sets a connection parameter in a URL or key=value DSN.
func WithParam(t *testing.T, dsn, key, value string) string {
	t.Helper()
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("BLINDEX_TEST_POSTGRES is not a valid URL: %v", err)
		}
		q := u.Query()
		q.Set(key, value)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " " + key + "=" + value
}

// FreshDatabase creates an empty database, dropped when the test ends, and
// returns its DSN: for tests of whole-database tools such as pg_dump, which
// a schema of a shared database would not isolate.
func FreshDatabase(t *testing.T) string {
	t.Helper()
	dsn := ServerDSN(t)
	b := make([]byte, 8)
	rand.Read(b)
	name := "blindex_test_" + hex.EncodeToString(b)
	Admin(t, dsn, "CREATE DATABASE "+name)
	t.Cleanup(func() { Admin(t, dsn, "DROP DATABASE "+name+" WITH (FORCE)") })
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("BLINDEX_TEST_POSTGRES is not a valid URL: %v", err)
		}
		u.Path = "/" + name
		return u.String()
	}
	return dsn + " dbname=" + name
}
