package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"blindex.dev/blindex/internal/storeerr"
)

func init() { storeerr.Register(classify) }

// classify recognises the PostgreSQL failures that mean the database cannot
// serve now, or is damaged; see storeerr. A context canceled by the caller
// is not one: the database did nothing wrong.
func classify(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "XX001", pe.Code == "XX002": // data_corrupted, index_corrupted
			return storeerr.ErrCorrupt
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			strings.HasPrefix(pe.Code, "53"),                           // insufficient resources: disk full (53100), memory, connections
			pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03", // admin or crash shutdown, cannot connect now
			pe.Code == "25006", // read_only_sql_transaction: a standby, or default_transaction_read_only
			pe.Code == "58030": // io_error
			return storeerr.ErrUnavailable
		}
		return nil
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	switch {
	case errors.As(err, &ce), errors.As(err, &ne),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		// A connection that broke before the query was sent.
		pgconn.SafeToRetry(err):
		return storeerr.ErrUnavailable
	}
	return nil
}

// Ready reports whether the database can be read and written now: it
// commits a write to the meta table that it deletes in the same
// transaction. A database that is down, read-only (a standby) or refusing
// writes for lack of space fails it; /readyz calls it.
func (s *Store) Ready(ctx context.Context) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO meta (key, value) VALUES ('readyz-probe', '\x00'::bytea)
			ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM meta WHERE key = 'readyz-probe'`)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: %w", storeerr.Wrap(err))
	}
	return nil
}

// corrupt is the error for a row that cannot be what was written: it is
// storeerr.ErrCorrupt, never read as an answer.
func corrupt(what string) error {
	return fmt.Errorf("postgres: corrupt %s: %w", what, storeerr.ErrCorrupt)
}
