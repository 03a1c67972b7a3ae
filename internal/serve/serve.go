// Package serve runs a directory server over a data directory: it opens the
// store and keys (internal/datadir), builds the directory.Server, listens,
// runs housekeeping, and shuts down gracefully. cmd/blindex and the demo use
// it, and tests start real servers on loopback with it.
package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"blindex.dev/blindex/credential"
	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/internal/datadir"
	"blindex.dev/blindex/internal/sms"
)

// Config configures a running server.
type Config struct {
	// DataDir holds the database and keys. Required.
	DataDir string
	// IdentityPath is the age identity that decrypts the key files.
	// Default: <DataDir>/identity.age-key.
	IdentityPath string
	// Addr is the listen address. Default "127.0.0.1:8390"; port 0 picks one.
	Addr string
	// SMS names the code sender: "log" (development: codes go to the log).
	// Default "log". Ignored when Sender is set.
	SMS string
	// Sender, if set, delivers codes instead of the named SMS sender.
	Sender sms.Sender
	// Directory holds the directory settings; its Store, OPRFKey, CA, SMS
	// and Logger are filled in from the data directory and the fields above.
	Directory directory.Config
	// Logger receives the server's logs. Default: discard.
	Logger *slog.Logger
	// WrapStore, if set, wraps the store the directory uses (for
	// instrumentation in tests).
	WrapStore func(directory.Store) directory.Store
}

// Running is a started server.
type Running struct {
	Addr string // the address it listens on
	CA   *credential.CA
	Node *datadir.Node

	srv    *directory.Server
	http   *http.Server
	cancel context.CancelFunc
	done   chan error
}

// Start opens the data directory and starts serving.
func Start(ctx context.Context, cfg Config) (*Running, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("serve: a data directory is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:8390"
	}
	sender := cfg.Sender
	if sender == nil {
		switch cfg.SMS {
		case "", "log":
			sender = sms.Log{Logger: cfg.Logger}
		default:
			return nil, fmt.Errorf("serve: unknown SMS sender %q (available: log)", cfg.SMS)
		}
	}
	node, err := datadir.Open(ctx, cfg.DataDir, cfg.IdentityPath)
	if err != nil {
		return nil, err
	}
	if node.Created {
		cfg.Logger.Info("generated new keys", "data", cfg.DataDir)
	}
	dc := cfg.Directory
	dc.Store, dc.OPRFKey, dc.CA, dc.SMS, dc.Logger = node.Store, node.OPRFKey, node.CA, sender, cfg.Logger
	if cfg.WrapStore != nil {
		dc.Store = cfg.WrapStore(dc.Store)
	}
	srv, err := directory.New(ctx, dc)
	if err != nil {
		node.Store.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		node.Store.Close()
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	r := &Running{
		Addr:   ln.Addr().String(),
		CA:     node.CA,
		Node:   node,
		srv:    srv,
		http:   directory.NewHTTPServer(srv.Handler(), cfg.Logger),
		cancel: cancel,
		done:   make(chan error, 1),
	}
	go srv.Run(runCtx)
	go func() {
		err := r.http.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		r.done <- err
	}()
	cfg.Logger.Info("listening", "addr", r.Addr)
	return r, nil
}

// Housekeep runs one round of housekeeping now (tests use it).
func (r *Running) Housekeep(ctx context.Context) { r.srv.Housekeep(ctx) }

// URL is the server's base URL.
func (r *Running) URL() string { return "http://" + r.Addr }

// Wait blocks until the server stops serving on its own (an error).
func (r *Running) Wait() <-chan error { return r.done }

// Close stops accepting requests, lets in-flight ones finish (up to 30
// seconds), and closes the store.
func (r *Running) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := r.http.Shutdown(ctx)
	r.cancel()
	return errors.Join(err, r.Node.Store.Close())
}
