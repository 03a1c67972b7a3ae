package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"

	"blindex.dev/blindex/directory/backup"
	"blindex.dev/blindex/directory/datadir"
	"blindex.dev/blindex/internal/keyfile"
)

func cmdBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("backup", "backup [--data DIR | --db URL] --recipient AGE-RECIPIENT --out FILE", `
Writes a consistent snapshot of a directory's database, encrypted with age to
the given recipients, while the servers run: the SQLite database in --data,
or with --db the PostgreSQL database, through pg_dump (its custom format, so
pg_restore can read the decrypted file too). The key files are not in it:
back up <data>/keys and the identity separately.`, stderr)
	data := fs.String("data", "blindex-data", "data `directory` of the server")
	db := fs.String("db", "", "PostgreSQL `URL` to back up instead (needs pg_dump; put the password in PGPASSWORD or ~/.pgpass)")
	recipients := fs.String("recipient", "", "comma-separated post-quantum age `recipients` (age1pq1...) to encrypt to: the server identity's (age-keygen -y IDENTITY) or one from age-keygen -pq")
	out := fs.String("out", "", "`file` to write (refuses to overwrite)")
	asJSON := fs.Bool("json", false, "print the snapshot's file and size as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() != 0:
		fs.Usage()
		return errUsage
	case *recipients == "":
		return errors.New("--recipient is required: the age recipient to encrypt to, such as the server identity's " +
			"(age-keygen -y IDENTITY-FILE prints it) or a new one from age-keygen -pq")
	case *out == "":
		return errors.New("--out is required: the snapshot file to write")
	}
	to, err := parseBackupRecipients(*recipients)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if *db != "" {
		err = backup.BackupPostgres(ctx, *db, to, f)
	} else {
		err = backup.Backup(ctx, filepath.Join(*data, datadir.DBFile), to, f)
	}
	if err != nil {
		f.Close()
		os.Remove(*out)
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, struct {
			Out   string `json:"out"`
			Bytes int64  `json:"bytes"`
		}{*out, fi.Size()})
	}
	fmt.Fprintf(stdout, "Wrote an encrypted snapshot to %s.\n", *out)
	return nil
}

// parseBackupRecipients parses --recipient. Only post-quantum (ML-KEM-768 +
// X25519) recipients are taken: restore, like the key files, opens only
// hybrid identities, so a snapshot for a classic X25519 key could not be
// restored by blindex, and a database copy must not be open to a future
// quantum attacker who recorded it.
func parseBackupRecipients(list string) ([]age.Recipient, error) {
	to, err := age.ParseRecipients(strings.NewReader(strings.ReplaceAll(list, ",", "\n")))
	if err != nil {
		return nil, fmt.Errorf("--recipient: %w", err)
	}
	for i, r := range to {
		if _, ok := r.(*age.HybridRecipient); !ok {
			return nil, fmt.Errorf("--recipient: recipient %d is not a post-quantum age recipient (age1pq1...): "+
				"blindex restores only with hybrid identities; make one with age-keygen -pq", i+1)
		}
	}
	return to, nil
}

func cmdRestore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("restore", "restore [--data DIR | --db URL] --identity FILE --in FILE", `
Restores a snapshot made by "blindex backup" into a data directory that has
no database yet, after checking its integrity and schema version; or, with
--db, a PostgreSQL snapshot into an empty PostgreSQL database (through
pg_restore, in one transaction). Put the key files back in <data>/keys (and
the identity) before starting the server: it refuses keys that do not match
the database, and a log older than keys/log.checkpoint.`, stderr)
	data := fs.String("data", "blindex-data", "data `directory` to restore into")
	db := fs.String("db", "", "empty PostgreSQL database `URL` to restore into instead (needs pg_restore)")
	identity := fs.String("identity", "", "age identity `file` that decrypts the snapshot")
	in := fs.String("in", "", "snapshot `file`")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *identity == "" || *in == "" || fs.NArg() != 0 {
		fs.Usage()
		return errUsage
	}
	id, _, err := keyfile.LoadIdentity(*identity)
	if err != nil {
		return err
	}
	f, err := os.Open(*in)
	if err != nil {
		return err
	}
	defer f.Close()
	if *db != "" {
		if err := backup.RestorePostgres(ctx, f, []age.Identity{id}, *db); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "Restored the database into PostgreSQL.")
		return nil
	}
	err = backup.Restore(ctx, f, []age.Identity{id}, filepath.Join(*data, datadir.DBFile))
	if errors.Is(err, backup.ErrExists) {
		return fmt.Errorf("%s already has a database: restore into an empty data directory", *data)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Restored the database into %s.\n", *data)
	return nil
}
