package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/directory/datadir"
)

func cmdRotate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("rotate", "rotate [--overlap DURATION] [--status]", `
Starts the next lookup epoch. The OPRF key stays; each epoch evaluates under
its own POPRF info, so every index, record key and caller pseudonym changes,
and what a copy of the database or a log of old lookups holds stops matching
new ones. Each epoch's info is published in the transparency log.

For --overlap the directory answers both epochs: callers keep looking up in
the previous one only (two epochs' prefixes for one number would narrow its
bucket), and owners' clients copy their records into the new epoch on their
next publish, lookup or monitor run. Then the old epoch retires and its records
are deleted. Give owners' apps time to run within the overlap; a record not
moved by then disappears until its owner publishes again.

Run it against the data directory (and --db) of a running server: every
server on the database picks the new epoch up within seconds.`, stderr)
	data := fs.String("data", "blindex-data", "data `directory`: database and key files")
	identity := fs.String("identity", "", "age identity `file` that decrypts the key files (default <data>/identity.age-key)")
	db := fs.String("db", "", "PostgreSQL `URL`, if the server uses one")
	overlap := fs.Duration("overlap", 7*24*time.Hour, "how long the previous epoch is still answered")
	status := fs.Bool("status", false, "only show the epochs")
	asJSON := fs.Bool("json", false, "print the epochs as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 || *overlap < time.Minute && !*status {
		if fs.NArg() == 0 {
			fmt.Fprintln(stderr, "blindex: --overlap must be at least 1m: owners need time to move their records")
		}
		fs.Usage()
		return errUsage
	}
	node, err := datadir.OpenDB(ctx, *data, *identity, *db, datadir.Directory)
	if err != nil {
		return err
	}
	defer node.Store.Close()
	var e directory.Epochs
	if *status {
		e, err = directory.ReadEpochs(ctx, node.Store, time.Now())
	} else {
		e, err = directory.StartEpoch(ctx, node.Store, *overlap, time.Now())
	}
	if err != nil {
		return err
	}
	if *asJSON {
		type jsonEpochs struct {
			Started       bool       `json:"started"` // this run started Current
			Current       int        `json:"current"`
			Previous      *int       `json:"previous,omitempty"`
			PreviousUntil *time.Time `json:"previous_until,omitempty"`
		}
		out := jsonEpochs{Started: !*status, Current: e.Current}
		if e.Previous >= 0 {
			out.Previous, out.PreviousUntil = &e.Previous, &e.PreviousUntil
		}
		return printJSON(stdout, out)
	}
	if !*status {
		fmt.Fprintf(stdout, "Started lookup epoch %d.\n", e.Current)
	}
	fmt.Fprintf(stdout, "Current epoch: %d.\n", e.Current)
	if e.Previous >= 0 {
		fmt.Fprintf(stdout, "Epoch %d is still answered until %s; then its records are deleted.\n", e.Previous, e.PreviousUntil.Local().Format(time.DateTime))
	}
	return nil
}
