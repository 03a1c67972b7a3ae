package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"blindex.dev/blindex/ca"
	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/internal/witness"
	"blindex.dev/blindex/server"
	"blindex.dev/blindex/server/demo"
	"blindex.dev/blindex/translog"
)

// serverFlags are the flags blindex serve and blindex ca share.
type serverFlags struct {
	data, identity, addr, logFormat *string
	db                              *string
	tlsCert, tlsKey                 *string
	sms                             smsFlags
	validity                        *time.Duration
	forwardedFor                    *bool
	limits                          ca.Limits
}

func addServerFlags(fs *flag.FlagSet, defaultData, defaultAddr string) *serverFlags {
	f := &serverFlags{
		data:     fs.String("data", defaultData, "data `directory`: database and key files"),
		identity: fs.String("identity", "", "age identity `file` that decrypts the key files (default <data>/identity.age-key)"),
		addr:     fs.String("addr", defaultAddr, "listen `address`"),
		db: fs.String("db", "", "PostgreSQL `URL` (postgres://...) to use instead of the SQLite database in the data directory;\n"+
			"keys stay in the data directory. Put the password in PGPASSWORD or ~/.pgpass, not here"),
		tlsCert:   fs.String("tls-cert", "", "PEM certificate `file` (chain): serve HTTPS (with --tls-key)"),
		tlsKey:    fs.String("tls-key", "", "PEM private key `file` for --tls-cert"),
		logFormat: fs.String("log-format", "text", "log format: text or json"),
		sms:       addSMSFlags(fs),
		validity:  fs.Duration("credential-validity", ca.DefaultCredentialValidity, "lifetime of issued credentials"),
		forwardedFor: fs.Bool("trust-forwarded-for", false,
			"take the client address for verification limits from the last X-Forwarded-For entry (only behind a reverse proxy that sets it)"),
	}
	// Verification limits (docs/operations.md explains the defaults).
	l, d := &f.limits, ca.DefaultLimits
	fs.IntVar(&l.NetworkPerHour, "limit-network-per-hour", d.NetworkPerHour, "verification starts per client network (IPv4 address, IPv6 /64) per hour")
	fs.IntVar(&l.NumberPerHour, "limit-number-per-hour", d.NumberPerHour, "verification starts per number per hour")
	fs.IntVar(&l.NumberPerDay, "limit-number-per-day", d.NumberPerDay, "verification starts per number per day")
	fs.IntVar(&l.GlobalPerMinute, "limit-global-per-minute", d.GlobalPerMinute, "verification starts per minute, all clients")
	fs.IntVar(&l.GlobalPerDay, "limit-global-per-day", d.GlobalPerDay, "verification starts per day, all clients (the daily SMS cap)")
	fs.IntVar(&l.FailuresPerNumber, "limit-failures-per-number", d.FailuresPerNumber, "codes checked per number per hour, across its verifications; more than the tries per code")
	fs.IntVar(&l.RenewalsPerDay, "limit-renewals-per-day", d.RenewalsPerDay, "renewals per credential key per day")
	return f
}

// config validates the shared flags and returns the base server config.
func (f *serverFlags) config(stderr io.Writer) (server.Config, error) {
	var h slog.Handler
	switch *f.logFormat {
	case "text":
		h = slog.NewTextHandler(stderr, nil)
	case "json":
		h = slog.NewJSONHandler(stderr, nil)
	default:
		return server.Config{}, fmt.Errorf("--log-format must be text or json, not %q", *f.logFormat)
	}
	if *f.validity < time.Hour {
		return server.Config{}, fmt.Errorf("--credential-validity must be at least 1h")
	}
	logger := slog.New(h)
	sender, err := f.sms.sender(logger)
	if err != nil {
		return server.Config{}, err
	}
	cfg := server.Config{DataDir: *f.data, IdentityPath: *f.identity, DB: *f.db, Addr: *f.addr, SMS: sender, Logger: logger,
		TLSCert: *f.tlsCert, TLSKey: *f.tlsKey}
	cfg.CA.CredentialValidity = *f.validity
	cfg.CA.ForwardedFor = *f.forwardedFor
	for _, v := range []int{f.limits.NetworkPerHour, f.limits.NumberPerHour, f.limits.NumberPerDay, f.limits.GlobalPerMinute,
		f.limits.GlobalPerDay, f.limits.FailuresPerNumber, f.limits.RenewalsPerDay} {
		if v < 1 {
			return server.Config{}, fmt.Errorf("--limit-* values must be at least 1")
		}
	}
	cfg.CA.Limits = f.limits
	return cfg, nil
}

// runServer starts a server with start (saying what to do if its log was
// rolled back), then waits for ctx to end, and closes it, or for the server
// to fail.
func runServer(ctx context.Context, start func(context.Context, server.Config) (*server.Running, error), cfg server.Config) error {
	r, err := start(ctx, cfg)
	var rollback *translog.RollbackError
	if errors.As(err, &rollback) {
		return fmt.Errorf("%w\nRestore a newer backup (with keys/log.checkpoint), or start with --accept-log-rollback to go on anyway: clients that saw the newer checkpoint will then report a fork", err)
	}
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		cfg.Logger.Info("shutting down")
		return r.Close()
	case err := <-r.Wait():
		r.Close()
		return err
	}
}

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", "serve [flags]", `
Runs a directory server. With no flags it keeps a SQLite database and its keys
under ./blindex-data, generating the keys on first start, listens on
127.0.0.1:8390, and runs the built-in CA with the "log" SMS sender, which
writes verification codes to this output for development (never use it in
production).

The key files are age-encrypted to an identity file, by default inside the
data directory. For production, keep the identity elsewhere (--identity) so a
copy of the data directory alone does not reveal the keys.

Credentials from other CAs (see "blindex ca") are accepted when their roots
are given with --trust-ca.

Each key that proves a number by SMS holds it, with its own records: several
apps (and devices) share a number. A key that proves the number later puts the
other holders on notice: their records are hidden until they prove it again,
and after --reproof-window they are retired.

Every credential the built-in CA issues, every change of a number's holders,
and every owner's state after a write go into a transparency log (its key is
keys/log.key.age). Readers find it under /log/ (C2SP tlog-checkpoint and
tlog-tiles); "blindex log verify" audits it and "blindex monitor" watches it
for one number. Each --witness cosigns the checkpoints the log publishes.`, stderr)
	sf := addServerFlags(fs, "blindex-data", "127.0.0.1:8390")
	minBucket := fs.Int("min-bucket-owners", directory.DefaultMinBucketOwners, "owners the server aims to keep in each lookup bucket on average (sets the bucket count)")
	trust := fs.String("trust-ca", "", "comma-separated PEM `files` of further CA roots whose credentials are accepted")
	noBuiltin := fs.Bool("no-builtin-ca", false, "do not run the built-in CA: accept only the roots in --trust-ca")
	burst := fs.Int("budget-burst", directory.DefaultBudget.Burst, "evaluations a caller may make at once (a first address-book sync)")
	perDay := fs.Int("budget-per-day", directory.DefaultBudget.PerDay, "evaluations a caller regains per day: one credential's enumeration rate")
	global := fs.Int("budget-global-per-second", directory.DefaultBudget.GlobalPerSecond, "evaluations per second across all callers, per process")
	reproof := fs.Duration("reproof-window", directory.DefaultReproofWindow, "how long a holder of a number has to prove it again by SMS once another key proved it later; then the holder is retired (records deleted, key revoked). The default, 72h, is a weekend away from the phone plus a working day, and bounds how long one intercepted SMS hides the owner's records")
	witnesses := &stringList{}
	fs.Var(witnesses, "witness", "a witness that cosigns the log's checkpoints, as `URL=vkey` (C2SP tlog-witness; its key is cosignature/v1); repeat for several")
	logInterval := fs.Duration("log-interval", time.Second, "how often the log publishes a checkpoint (and asks the witnesses to cosign it)")
	acceptRollback := fs.Bool("accept-log-rollback", false, "start even though the database's log lacks the last checkpoint this server published (keys/log.checkpoint), as after restoring an older backup: the log forks, and clients that saw the newer checkpoint will report it. Prefer restoring a newer backup")
	transcript := fs.String("transcript", "", "append what the server observes for each request (caller pseudonym, endpoint, counts, buckets) to this JSON-lines `file`, for review")
	fed := addServeFederationFlags(fs) // federation.go
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return errUsage
	}
	cfg, err := sf.config(stderr)
	if err != nil {
		return err
	}
	roots, err := loadRootFiles(*trust)
	if err != nil {
		return err
	}
	if *noBuiltin && len(roots) == 0 {
		return fmt.Errorf("--no-builtin-ca needs at least one --trust-ca root")
	}
	cfg.NoBuiltinCA = *noBuiltin
	// directory.Config takes a zero field as its default; a flag given 0 is
	// refused instead. The rest is directory.Config.Validate's to check.
	for _, f := range []struct {
		name string
		v    int
	}{{"--min-bucket-owners", *minBucket}, {"--budget-burst", *burst}, {"--budget-per-day", *perDay}, {"--budget-global-per-second", *global}} {
		if f.v == 0 {
			return fmt.Errorf("%s must not be 0", f.name)
		}
	}
	if *reproof < time.Second {
		return fmt.Errorf("--reproof-window must be at least 1s")
	}
	cfg.Directory = directory.Config{MinBucketOwners: *minBucket, Roots: roots, ReproofWindow: *reproof,
		Budget: directory.Budget{Burst: *burst, PerDay: *perDay, GlobalPerSecond: *global}}
	if err := cfg.Directory.Validate(); err != nil {
		return directoryFlagError(err)
	}
	if *logInterval < 100*time.Millisecond {
		return fmt.Errorf("--log-interval must be at least 100ms")
	}
	cfg.Directory.LogInterval = *logInterval
	cfg.Directory.AcceptLogRollback = *acceptRollback
	for _, spec := range *witnesses {
		u, vkey, ok := strings.Cut(spec, "=")
		if !ok {
			return fmt.Errorf("--witness %q: want URL=vkey", spec)
		}
		w, err := witness.New(u, vkey)
		if err != nil {
			return fmt.Errorf("--witness %q: %w", spec, err)
		}
		cfg.Directory.Witnesses = append(cfg.Directory.Witnesses, w)
	}
	if *transcript != "" {
		f, err := os.OpenFile(*transcript, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("--transcript: %w", err)
		}
		defer f.Close()
		cfg.Directory.Observe = directory.NewTranscript(f)
	}
	if err := fed.apply(ctx, &cfg); err != nil {
		return err
	}
	return runServer(ctx, server.Start, cfg)
}

// directoryFlags names the serve flag that sets each directory.Config field.
var directoryFlags = map[string]string{
	"MinBucketOwners":        "--min-bucket-owners",
	"Budget.Burst":           "--budget-burst",
	"Budget.PerDay":          "--budget-per-day",
	"Budget.GlobalPerSecond": "--budget-global-per-second",
	"ReproofWindow":          "--reproof-window",
}

// directoryFlagError names, in an error of directory.Config.Validate, the
// flag to change rather than the field.
func directoryFlagError(err error) error {
	var ce *directory.ConfigError
	if !errors.As(err, &ce) {
		return err
	}
	if f, ok := directoryFlags[ce.Field]; ok {
		return fmt.Errorf("%s %s", f, ce.Reason)
	}
	return err
}

func loadRootFiles(list string) ([]*x509.Certificate, error) {
	var pems [][]byte
	for _, f := range strings.Split(list, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("--trust-ca: %w", err)
		}
		pems = append(pems, b)
	}
	if len(pems) == 0 {
		return nil, nil
	}
	roots, err := server.LoadRoots(pems...)
	if err != nil {
		return nil, fmt.Errorf("--trust-ca: %w", err)
	}
	return roots, nil
}

func cmdCA(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("ca", "ca [flags]", `
Runs a standalone CA: it texts verification codes and issues number
credentials, with its own key, database and port, so that no single operator
holds everything. Directories accept its credentials when started with
--trust-ca <data>/keys/ca.pem. Apps verify with it through
"blindex verify --ca URL".

With no flags it keeps its database and age-encrypted key under
./blindex-ca-data and listens on 127.0.0.1:8391.`, stderr)
	sf := addServerFlags(fs, "blindex-ca-data", "127.0.0.1:8391")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return errUsage
	}
	cfg, err := sf.config(stderr)
	if err != nil {
		return err
	}
	return runServer(ctx, server.StartCA, cfg)
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
