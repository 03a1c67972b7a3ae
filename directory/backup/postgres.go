package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"

	"filippo.io/age"
)

// A PostgreSQL snapshot is pg_dump's custom format (pg_restore reads it),
// age-encrypted like a SQLite one. pg_dump reads one transaction snapshot,
// so it is consistent while servers write.

// pgDumpMagic starts pg_dump's custom format.
var pgDumpMagic = []byte("PGDMP")

// ErrNotEmpty means a restore's target database already has tables.
var ErrNotEmpty = errors.New("backup: the target database is not empty: restore into a new database")

// BackupPostgres writes an age-encrypted pg_dump of the database at dsn to
// w. It needs pg_dump (Debian: postgresql-client) of the server's major
// version or newer.
func BackupPostgres(ctx context.Context, dsn string, to []age.Recipient, w io.Writer) error {
	if len(to) == 0 {
		return errors.New("backup: no recipient")
	}
	enc, err := age.Encrypt(w, to...)
	if err != nil {
		return err
	}
	dsn, env := libpqDSN(dsn)
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "pg_dump", "--format=custom", "--no-owner", "--no-privileges", "--dbname", dsn)
	cmd.Stdout, cmd.Stderr, cmd.Env = enc, &stderr, env
	if err := cmd.Run(); err != nil {
		// pg_dump's messages name tables, not data; the DSN's password is
		// never in them.
		return fmt.Errorf("backup: pg_dump: %w: %s", err, firstLine(stderr.String()))
	}
	return enc.Close()
}

// RestorePostgres decrypts a snapshot from BackupPostgres and restores it
// into the empty database at dsn in one transaction: a damaged or
// truncated snapshot restores nothing.
func RestorePostgres(ctx context.Context, r io.Reader, ids []age.Identity, dsn string) error {
	dec, err := age.Decrypt(r, ids...)
	if err != nil {
		return ErrDecrypt
	}
	head := make([]byte, len(pgDumpMagic))
	if _, err := io.ReadFull(dec, head); err != nil {
		return ErrDecrypt
	}
	if !bytes.Equal(head, pgDumpMagic) {
		return fmt.Errorf("%w: not a PostgreSQL snapshot (a SQLite one restores into a data directory)", ErrInvalid)
	}
	dsn, env := libpqDSN(dsn)
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "pg_restore", "--no-owner", "--no-privileges", "--single-transaction",
		"--exit-on-error", "--dbname", dsn)
	cmd.Stdin, cmd.Stderr, cmd.Env = io.MultiReader(bytes.NewReader(head), dec), &stderr, env
	if err := cmd.Run(); err != nil {
		msg := stderr.String()
		if strings.Contains(msg, "already exists") {
			return ErrNotEmpty
		}
		return fmt.Errorf("backup: pg_restore: %w: %s", err, firstLine(msg))
	}
	return nil
}

// libpqParams are the URI query parameters libpq itself understands. pgx
// also takes server settings there (search_path=...), which pg_dump and
// pg_restore refuse: those move to PGOPTIONS.
var libpqParams = map[string]bool{
	"host": true, "hostaddr": true, "port": true, "dbname": true, "user": true, "password": true,
	"passfile": true, "connect_timeout": true, "client_encoding": true, "options": true,
	"application_name": true, "sslmode": true, "sslcert": true, "sslkey": true, "sslrootcert": true,
	"sslcrl": true, "sslpassword": true, "target_session_attrs": true, "gssencmode": true,
}

// libpqDSN returns dsn for the libpq tools, and their environment: the
// password moves to PGPASSWORD, off a command line that other local users
// can read, and pgx-only parameters move to PGOPTIONS.
func libpqDSN(dsn string) (string, []string) {
	env := os.Environ()
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		// keyword=value form: only the password is taken out.
		if m := conninfoPassword.FindStringSubmatchIndex(dsn); m != nil {
			pw := dsn[m[2]:m[3]]
			if strings.HasPrefix(pw, "'") {
				pw = conninfoUnquote.Replace(pw[1 : len(pw)-1])
			}
			env = append(env, "PGPASSWORD="+pw)
			dsn = strings.TrimSpace(dsn[:m[0]] + dsn[m[1]:])
		}
		return dsn, env
	}
	q := u.Query()
	var opts []string
	for k, vs := range q {
		if !libpqParams[k] {
			for _, v := range vs {
				// Spaces separate options in PGOPTIONS unless escaped.
				opts = append(opts, "-c "+k+"="+pgoptionsEscape.Replace(v))
			}
			q.Del(k)
		}
	}
	if len(opts) > 0 {
		env = append(env, "PGOPTIONS="+strings.Join(opts, " "))
	}
	if pw := q.Get("password"); pw != "" {
		env = append(env, "PGPASSWORD="+pw)
		q.Del("password")
	}
	u.RawQuery = q.Encode()
	if pw, ok := u.User.Password(); ok {
		env = append(env, "PGPASSWORD="+pw)
		u.User = url.User(u.User.Username())
	}
	return u.String(), env
}

var (
	// conninfoPassword finds password=VALUE in a keyword=value DSN, the
	// value bare or single-quoted with backslash escapes (libpq's rules).
	conninfoPassword = regexp.MustCompile(`(?:^|\s)password\s*=\s*('(?:[^'\\]|\\.)*'|[^\s']\S*)`)
	conninfoUnquote  = strings.NewReplacer(`\'`, `'`, `\\`, `\`)
	pgoptionsEscape  = strings.NewReplacer(`\`, `\\`, " ", `\ `)
)

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
