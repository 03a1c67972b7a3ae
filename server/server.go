// Package server runs blindex servers over a data directory: a directory
// (with its built-in CA, by default) or a standalone CA. It opens the store
// and keys (directory/datadir), builds the services, listens, runs
// housekeeping, and shuts down gracefully. cmd/blindex and the demo use it,
// and tests start real servers on loopback with it.
package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"blindex.dev/blindex/ca"
	"blindex.dev/blindex/credential"
	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/directory/datadir"
	"blindex.dev/blindex/internal/httpapi"
	"blindex.dev/blindex/internal/sms"
)

// Config configures a running server.
type Config struct {
	// DataDir holds the database and keys. Required.
	DataDir string
	// IdentityPath is the age identity that decrypts the key files.
	// Default: <DataDir>/identity.age-key.
	IdentityPath string
	// DB is the database: "" for SQLite in DataDir, or a postgres:// URL
	// (its password may come from PGPASSWORD or ~/.pgpass instead).
	DB string
	// TLSCert and TLSKey are PEM files; with both set the server speaks
	// HTTPS only. Both empty: plain HTTP (behind a TLS-terminating proxy).
	TLSCert, TLSKey string
	// Addr is the listen address. Default "127.0.0.1:8390"; port 0 picks one.
	Addr string
	// SMS delivers verification codes. Default: the log sender, which writes
	// codes to Logger (development only).
	SMS sms.Sender
	// CA holds the CA settings (validity, code limits, abuse limits); its
	// Store, CA, SMS and Logger are filled in.
	CA ca.Config
	// NoBuiltinCA serves a directory without the built-in CA: credentials
	// then come only from the CAs in Directory.Roots.
	NoBuiltinCA bool
	// Directory holds the directory settings; its Store, OPRFKey, LogKey,
	// CA and Logger are filled in. Directory.Roots adds trusted CA roots.
	Directory directory.Config
	// Logger receives the server's logs. Default: discard.
	Logger *slog.Logger
	// WrapStore, if set, wraps the store the directory uses (for
	// instrumentation in tests).
	WrapStore func(directory.Store) directory.Store
}

// Running is a started server.
type Running struct {
	Addr string         // the address it listens on
	CA   *credential.CA // the CA key of the data directory
	Node *datadir.Node

	housekeep func(context.Context)
	tls       bool
	http      *http.Server
	cancel    context.CancelFunc
	done      chan error
	ran       chan struct{} // closed when housekeeping and log publishing have stopped
}

func (c *Config) defaults() error {
	if c.DataDir == "" {
		return errors.New("serve: a data directory is required")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("serve: give both a TLS certificate and its key, or neither")
	}
	if c.TLSCert != "" {
		if _, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey); err != nil {
			return fmt.Errorf("serve: TLS certificate and key: %w", err)
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8390"
	}
	if c.SMS == nil {
		c.SMS = sms.Log{Logger: c.Logger}
	}
	return nil
}

// Start opens the data directory and starts a directory server.
func Start(ctx context.Context, cfg Config) (*Running, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	// Refused before the data directory is opened, or created with keys.
	if err := cfg.Directory.Validate(); err != nil {
		return nil, err
	}
	// Bound first: a taken port must fail before keys are made.
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	node, err := datadir.OpenDB(ctx, cfg.DataDir, cfg.IdentityPath, cfg.DB, datadir.Directory)
	if err != nil {
		ln.Close()
		return nil, err
	}
	if node.Created {
		cfg.Logger.Info("generated new keys", "data", cfg.DataDir)
	}
	var store directory.Store = node.Store
	if cfg.WrapStore != nil {
		store = cfg.WrapStore(store)
	}
	dc := cfg.Directory
	dc.Store, dc.OPRFKey, dc.LogKey, dc.Logger = store, node.OPRFKey, node.LogKey, cfg.Logger
	dc.LogCheckpointFile = filepath.Join(cfg.DataDir, datadir.LogCheckpointFile)
	if !cfg.NoBuiltinCA {
		cc := cfg.CA
		cc.Store, cc.CA, cc.SMS, cc.Logger = store, node.CA, cfg.SMS, cfg.Logger
		cc.Revoked = store.KeyRevoked // the built-in CA never renews a key its directory refuses
		if cc.Now == nil {
			cc.Now = dc.Now
		}
		if dc.CA, err = ca.New(cc); err != nil {
			ln.Close()
			node.Store.Close()
			return nil, err
		}
	}
	srv, err := directory.New(ctx, dc)
	if err != nil {
		ln.Close()
		node.Store.Close()
		return nil, err
	}
	return serve(cfg, ln, node, srv.Handler(), srv.Run, srv.Housekeep)
}

// StartCA opens a CA-only data directory and starts a standalone CA.
func StartCA(ctx context.Context, cfg Config) (*Running, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	node, err := datadir.OpenDB(ctx, cfg.DataDir, cfg.IdentityPath, cfg.DB, datadir.CAOnly)
	if err != nil {
		ln.Close()
		return nil, err
	}
	if node.Created {
		cfg.Logger.Info("generated new CA key", "data", cfg.DataDir)
	}
	cc := cfg.CA
	cc.Store, cc.CA, cc.SMS, cc.Logger = node.Store, node.CA, cfg.SMS, cfg.Logger
	svc, err := ca.New(cc)
	if err != nil {
		ln.Close()
		node.Store.Close()
		return nil, err
	}
	run := func(ctx context.Context) {
		t := time.NewTicker(15 * time.Second)
		defer t.Stop()
		for {
			svc.Housekeep(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}
	return serve(cfg, ln, node, svc.Handler(), run, svc.Housekeep)
}

// serve serves h on ln, and runs run until the server is closed.
func serve(cfg Config, ln net.Listener, node *datadir.Node, h http.Handler, run, housekeep func(context.Context)) (*Running, error) {
	runCtx, cancel := context.WithCancel(context.Background())
	r := &Running{
		Addr:      ln.Addr().String(),
		CA:        node.CA,
		Node:      node,
		housekeep: housekeep,
		tls:       cfg.TLSCert != "",
		http:      httpapi.NewServer(h, cfg.Logger),
		cancel:    cancel,
		done:      make(chan error, 1),
		ran:       make(chan struct{}),
	}
	go func() {
		defer close(r.ran)
		run(runCtx)
	}()
	go func() {
		var err error
		if cfg.TLSCert != "" {
			err = r.http.ServeTLS(ln, cfg.TLSCert, cfg.TLSKey)
		} else {
			err = r.http.Serve(ln)
		}
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		r.done <- err
	}()
	cfg.Logger.Info("listening", "addr", r.Addr)
	return r, nil
}

// LoadRoots parses PEM files of CA root certificates.
func LoadRoots(pems ...[]byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for i, b := range pems {
		certs, err := parsePEMCerts(b)
		if err != nil || len(certs) == 0 {
			return nil, fmt.Errorf("serve: CA root file %d: no PEM certificate", i+1)
		}
		out = append(out, certs...)
	}
	return out, nil
}

// Housekeep runs one round of housekeeping now (tests use it).
func (r *Running) Housekeep(ctx context.Context) { r.housekeep(ctx) }

// URL is the server's base URL.
func (r *Running) URL() string {
	if r.tls {
		return "https://" + r.Addr
	}
	return "http://" + r.Addr
}

// Wait returns a channel that receives the serving error (nil after Close)
// once the server stops serving.
func (r *Running) Wait() <-chan error { return r.done }

// Close stops accepting requests, lets in-flight ones finish (up to 30
// seconds), and closes the store.
func (r *Running) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := r.http.Shutdown(ctx)
	r.cancel()
	<-r.ran // the store is closed only after its last use
	return errors.Join(err, r.Node.Store.Close())
}
