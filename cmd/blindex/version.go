package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"blindex.dev/blindex/directory/postgres"
	"blindex.dev/blindex/directory/sqlite"
	"blindex.dev/blindex/internal/buildinfo"
)

func cmdVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("version", "version [--json]", `
Shows which build this binary is: the module version, the VCS revision it was
built from with that commit's time and whether the work tree had uncommitted
changes, the Go toolchain, the protocol version it speaks, and the newest
schema version of each store, which "blindex serve" migrates a database to.
Give it in bug reports. A running directory names its build in /v1/config
(build). "blindex --version" is the same command.`, stderr)
	asJSON := fs.Bool("json", false, "print the same as one JSON object")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return errUsage
	}
	i := buildinfo.Read(map[string]int{"sqlite": sqlite.SchemaVersion, "postgres": postgres.SchemaVersion})
	if *asJSON {
		return printJSON(stdout, i)
	}
	revision, when, modified := "unknown (the build recorded no VCS information)", "unknown", "unknown"
	if i.Revision != "" {
		revision = i.Revision
	}
	if !i.Time.IsZero() {
		when = i.Time.Format(time.RFC3339)
	}
	if i.Modified != nil {
		modified = strconv.FormatBool(*i.Modified)
	}
	var schema []string
	for _, engine := range slices.Sorted(maps.Keys(i.Schema)) {
		schema = append(schema, fmt.Sprintf("%s %d", engine, i.Schema[engine]))
	}
	fmt.Fprintf(stdout, "version   %s\nrevision  %s\ntime      %s\nmodified  %s\ngo        %s\nprotocol  %d\nschema    %s\n",
		i.Version, revision, when, modified, i.Go, i.Protocol, strings.Join(schema, ", "))
	return nil
}
