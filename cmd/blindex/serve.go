package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/internal/demo"
	"blindex.dev/blindex/internal/serve"
)

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", "serve [flags]", `
Runs a directory server. With no flags it keeps a SQLite database and its keys
under ./blindex-data, generating the keys on first start, listens on
127.0.0.1:8390, and uses the "log" SMS sender, which writes verification codes
to this output for development (never use it in production).

The key files are age-encrypted to an identity file, by default inside the
data directory. For production, keep the identity elsewhere (--identity) so a
copy of the data directory alone does not reveal the keys.`, stderr)
	data := fs.String("data", "blindex-data", "data `directory`: database and key files")
	identity := fs.String("identity", "", "age identity `file` that decrypts the key files (default <data>/identity.age-key)")
	addr := fs.String("addr", "127.0.0.1:8390", "listen `address`")
	smsName := fs.String("sms", "log", "SMS sender: log (development only; codes go to the server log)")
	validity := fs.Duration("credential-validity", 30*24*time.Hour, "lifetime of issued credentials")
	minBucket := fs.Int("min-bucket-owners", 16, "owners the server aims to keep in each lookup bucket (sets the prefix length)")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return errUsage
	}
	var h slog.Handler
	switch *logFormat {
	case "text":
		h = slog.NewTextHandler(stderr, nil)
	case "json":
		h = slog.NewJSONHandler(stderr, nil)
	default:
		return fmt.Errorf("--log-format must be text or json, not %q", *logFormat)
	}
	if *validity < time.Hour {
		return fmt.Errorf("--credential-validity must be at least 1h")
	}
	if *minBucket < 1 {
		return fmt.Errorf("--min-bucket-owners must be at least 1")
	}
	logger := slog.New(h)
	if *smsName == "log" {
		logger.Warn("using the log SMS sender: verification codes are written to this log (development only)")
	}
	r, err := serve.Start(ctx, serve.Config{
		DataDir:      *data,
		IdentityPath: *identity,
		Addr:         *addr,
		SMS:          *smsName,
		Logger:       logger,
		Directory: directory.Config{
			CredentialValidity: *validity,
			MinBucketOwners:    *minBucket,
		},
	})
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
		return r.Close()
	case err := <-r.Wait():
		r.Close()
		return err
	}
}

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demo", "demo [--keep]", `
Starts a real directory server on a loopback port over a temporary SQLite
directory and plays the story: Bob publishes a public record and one
allowlisted to Carol; Carol sees both, Alice only the public one; and a number
that was never registered looks exactly like Bob does to a caller he did not
allow. It prints who saw what, and what the server observed.`, stderr)
	keep := fs.Bool("keep", false, "keep the data directory (for blindex disclose or inspection)")
	if err := parse(fs, args); err != nil {
		return err
	}
	_, err := demo.Run(ctx, stdout, *keep)
	return err
}
