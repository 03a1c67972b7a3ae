package translog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"blindex.dev/blindex/internal/atomicfile"
	"filippo.io/torchwood"
	"github.com/gorilla/mux"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"blindex.dev/blindex/internal/storeerr"
)

// Storage holds the log. Stores append entries inside the transactions of
// the changes they record (so a crash never leaves a change unlogged), and
// sequence appends through the database, so several servers on one
// database keep one linear history. All methods are safe for concurrent use.
type Storage interface {
	// AppendLog appends entries, in order, in one transaction, and returns
	// the index of the first. On return they are durable.
	AppendLog(ctx context.Context, entries ...[]byte) (int64, error)
	// LogTree returns the current size and root hash; an empty log has
	// size 0 and the zero hash.
	LogTree(ctx context.Context) (tlog.Tree, error)
	// ReadLogHashes returns the stored hashes at the given stored-hash
	// indexes (tlog.StoredHashIndex), each of which must exist.
	ReadLogHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error)
	// ReadLogEntries returns the entries with indexes in [start, end), which
	// must exist.
	ReadLogEntries(ctx context.Context, start, end int64) ([][]byte, error)
	// LatestCheckpoint returns the newest checkpoint saved, or nil if none.
	LatestCheckpoint(ctx context.Context) ([]byte, error)
	// SaveCheckpoint saves signed, the checkpoint of a tree of size, as the
	// newest unless one of a larger size is saved.
	SaveCheckpoint(ctx context.Context, size int64, signed []byte) error
}

// AppendHashes returns the hashes to store for entry, the n-th entry of a
// log whose stored hashes read answers. Stores call it inside their append
// transaction; it is tlog.StoredHashes with a function as the reader.
func AppendHashes(n int64, entry []byte, read func(indexes []int64) ([]tlog.Hash, error)) ([]tlog.Hash, error) {
	if len(entry) > MaxEntrySize {
		return nil, ErrTooLarge
	}
	return tlog.StoredHashes(n, entry, tlog.HashReaderFunc(read))
}

// A Cosigner is a witness that cosigns checkpoints (C2SP tlog-witness).
type Cosigner interface {
	// AddCheckpoint submits a checkpoint with a consistency proof from the
	// tree of size oldSize that the witness last cosigned, and returns the
	// cosignature lines to append to the note.
	AddCheckpoint(ctx context.Context, oldSize int64, proof []tlog.Hash, signed []byte) ([]byte, error)
}

// Config configures a Log.
type Config struct {
	Storage Storage // required
	// Key is the log's note signer key (note.GenerateKey, Ed25519);
	// required. Its name is the log's origin.
	Key string
	// Witnesses cosign the checkpoints the log publishes.
	Witnesses []Cosigner
	// Interval is how often a new checkpoint is published. Default 1 s.
	Interval time.Duration
	// CheckpointFile, if set, is where each published checkpoint is also
	// written, outside the database, so that a database restored from an
	// older backup is noticed (CheckHistory) before the log forks.
	CheckpointFile string
	Logger         *slog.Logger
	// OnError, if set, is told of each failed publication (for metrics).
	OnError func(error)
}

// Log serves a transparency log kept in a Storage. It is safe for
// concurrent use.
type Log struct {
	cfg      Config
	log      *slog.Logger
	signer   note.Signer
	verifier note.Verifier
	vkey     string // verifier's key in note's text form

	mu      sync.Mutex
	witness map[int]int64 // the size each witness last cosigned
}

// New returns a Log.
func New(cfg Config) (*Log, error) {
	if cfg.Storage == nil || cfg.Key == "" {
		return nil, errors.New("translog: Storage and Key are required")
	}
	signer, err := note.NewSigner(cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("translog: log key: %w", err)
	}
	verifier, err := torchwood.NewVerifierFromSigner(cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("translog: log key: %w", err)
	}
	if cfg.Interval == 0 {
		cfg.Interval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Log{cfg: cfg, log: cfg.Logger, signer: signer, verifier: verifier, vkey: VerifierKey(cfg.Key), witness: map[int]int64{}}, nil
}

// Origin is the log's name: the origin line of its checkpoints.
func (l *Log) Origin() string { return l.signer.Name() }

// Verifier returns the log's public key, for clients.
func (l *Log) Verifier() note.Verifier { return l.verifier }

// VerifierKey returns the log's public key in note's text form.
func (l *Log) VerifierKey() string { return l.vkey }

// AppendEntry appends one entry on its own and returns its index.
func (l *Log) AppendEntry(ctx context.Context, entry []byte) (int64, error) {
	return l.cfg.Storage.AppendLog(ctx, entry)
}

// A Proof shows that Entry is at Index in the tree of Checkpoint.
type Proof struct {
	Checkpoint []byte   `json:"checkpoint"` // a signed note
	Index      int64    `json:"index"`
	Entry      []byte   `json:"entry"`
	Inclusion  [][]byte `json:"inclusion"` // tlog.RecordProof hashes
}

// Prove returns a freshly signed checkpoint of the current tree and the
// inclusion proof of the entry at index.
func (l *Log) Prove(ctx context.Context, index int64) (*Proof, error) {
	tree, err := l.cfg.Storage.LogTree(ctx)
	if err != nil {
		return nil, err
	}
	if index < 0 || index >= tree.N {
		return nil, fmt.Errorf("translog: entry %d not in the tree of size %d", index, tree.N)
	}
	signed, err := SignCheckpoint(l.Origin(), tree, l.signer)
	if err != nil {
		return nil, err
	}
	p, err := tlog.ProveRecord(tree.N, index, l.hashReader(ctx))
	if err != nil {
		return nil, err
	}
	entries, err := l.cfg.Storage.ReadLogEntries(ctx, index, index+1)
	if err != nil {
		return nil, err
	}
	return &Proof{Checkpoint: signed, Index: index, Entry: entries[0], Inclusion: hashesOut(p)}, nil
}

// Verify checks p against the log key and returns its checkpoint and entry.
func (p *Proof) Verify(logKey note.Verifier) (Checkpoint, *Entry, error) {
	c, err := OpenCheckpoint(p.Checkpoint, logKey)
	if err != nil {
		return Checkpoint{}, nil, err
	}
	hs, err := hashesIn(p.Inclusion)
	if err != nil {
		return Checkpoint{}, nil, err
	}
	if err := CheckInclusion(c, p.Index, p.Entry, hs); err != nil {
		return Checkpoint{}, nil, err
	}
	e, err := Parse(p.Entry)
	if err != nil {
		return Checkpoint{}, nil, err
	}
	return c, e, nil
}

func hashesOut(hs []tlog.Hash) [][]byte {
	out := make([][]byte, len(hs))
	for i, h := range hs {
		out[i] = bytes.Clone(h[:])
	}
	return out
}

func hashesIn(bs [][]byte) ([]tlog.Hash, error) {
	if len(bs) > 128 {
		return nil, errors.New("translog: proof too long")
	}
	out := make([]tlog.Hash, len(bs))
	for i, b := range bs {
		if len(b) != tlog.HashSize {
			return nil, errors.New("translog: malformed proof hash")
		}
		copy(out[i][:], b)
	}
	return out, nil
}

func (l *Log) hashReader(ctx context.Context) tlog.HashReader {
	return tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		return l.cfg.Storage.ReadLogHashes(ctx, idx)
	})
}

// Sign returns a freshly signed checkpoint of the current tree.
func (l *Log) Sign(ctx context.Context) ([]byte, tlog.Tree, error) {
	tree, err := l.cfg.Storage.LogTree(ctx)
	if err != nil {
		return nil, tlog.Tree{}, err
	}
	signed, err := SignCheckpoint(l.Origin(), tree, l.signer)
	return signed, tree, err
}

// Errors of Consistency.
var (
	ErrAhead    = errors.New("translog: tree size ahead of the log")
	ErrBadRange = errors.New("translog: bad tree sizes")
)

// Consistency proves that the tree of size from is a prefix of the tree of
// size to; both must be at most the current size.
func (l *Log) Consistency(ctx context.Context, from, to int64) (tlog.TreeProof, error) {
	tree, err := l.cfg.Storage.LogTree(ctx)
	if err != nil {
		return nil, err
	}
	if from < 0 || from > to {
		return nil, ErrBadRange
	}
	if to > tree.N {
		return nil, ErrAhead
	}
	if from == 0 || from == to {
		return tlog.TreeProof{}, nil
	}
	return tlog.ProveTree(to, from, l.hashReader(ctx))
}

// Publish signs the current tree if it grew since the last saved
// checkpoint, gathers the witnesses' cosignatures, and saves the result as
// the checkpoint readers get. A witness that fails is logged and left out.
func (l *Log) Publish(ctx context.Context) error {
	signed, tree, err := l.Sign(ctx)
	if err != nil {
		return err
	}
	if last, err := l.cfg.Storage.LatestCheckpoint(ctx); err != nil {
		return err
	} else if last != nil {
		// Done unless the tree grew, or a witness missed the last round
		// (fewer cosignatures than witnesses): then that tree is offered
		// again, so a quiet log does not keep an uncosigned checkpoint.
		if n, err := note.Open(last, note.VerifierList(l.verifier)); err == nil {
			if c, err := torchwood.ParseCheckpoint(n.Text); err == nil && c.N >= tree.N && len(n.UnverifiedSigs) >= len(l.cfg.Witnesses) {
				return nil
			}
		}
	}
	for i, w := range l.cfg.Witnesses {
		sigs, err := l.cosign(ctx, i, w, tree, signed)
		if err != nil {
			l.log.Warn("witness did not cosign", "witness", i, "size", tree.N, "err", err)
			continue
		}
		signed = append(signed, sigs...)
	}
	if err := l.cfg.Storage.SaveCheckpoint(ctx, tree.N, signed); err != nil {
		return err
	}
	if l.cfg.CheckpointFile != "" {
		return atomicfile.Write(l.cfg.CheckpointFile, signed, 0o600)
	}
	return nil
}

// A RollbackError means the database's log does not contain the checkpoint
// this server published last (CheckpointFile): the database was restored
// from an older backup, or replaced. Publishing from it would fork the log.
type RollbackError struct {
	File      string
	Published Checkpoint // from the file
	Tree      tlog.Tree  // the database's log
	Forked    bool       // the database's log is long enough but differs
}

func (e *RollbackError) Error() string {
	if e.Forked {
		return fmt.Sprintf("translog: the database's log differs from the checkpoint of %d entries this server published (%s): it would fork the log", e.Published.N, e.File)
	}
	return fmt.Sprintf("translog: the database's log has %d entries, but this server already published a checkpoint of %d (%s): the database was restored from an older backup, and going on would fork the log", e.Tree.N, e.Published.N, e.File)
}

// CheckHistory checks that the database's log contains the checkpoint in
// CheckpointFile (if there is one): a *RollbackError if not.
func (l *Log) CheckHistory(ctx context.Context) error {
	if l.cfg.CheckpointFile == "" {
		return nil
	}
	b, err := os.ReadFile(l.cfg.CheckpointFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	published, err := OpenCheckpoint(b, l.verifier)
	if err != nil {
		return fmt.Errorf("translog: %s: %w", l.cfg.CheckpointFile, err)
	}
	tree, err := l.cfg.Storage.LogTree(ctx)
	if err != nil {
		return err
	}
	if tree.N < published.N {
		return &RollbackError{File: l.cfg.CheckpointFile, Published: published, Tree: tree}
	}
	if published.N == 0 {
		return nil
	}
	h, err := tlog.TreeHash(published.N, l.hashReader(ctx))
	if err != nil {
		return err
	}
	if h != published.Hash {
		return &RollbackError{File: l.cfg.CheckpointFile, Published: published, Tree: tree, Forked: true}
	}
	return nil
}

func (l *Log) cosign(ctx context.Context, i int, w Cosigner, tree tlog.Tree, signed []byte) ([]byte, error) {
	l.mu.Lock()
	old := l.witness[i]
	l.mu.Unlock()
	for attempt := 0; ; attempt++ {
		proof, err := l.Consistency(ctx, old, tree.N)
		if err != nil {
			return nil, err
		}
		sigs, err := w.AddCheckpoint(ctx, old, proof, signed)
		var sized interface{ WitnessTreeSize() int64 }
		if attempt == 0 && errors.As(err, &sized) {
			// The witness has cosigned another size (another server of this
			// log, or a restart): prove consistency from there.
			// A size at or past this checkpoint's means the witness holds
			// another tree of that size: a fork; retrying cannot help.
			if n := sized.WitnessTreeSize(); n < tree.N {
				old = n
				continue
			}
		}
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		l.witness[i] = tree.N
		l.mu.Unlock()
		return sigs, nil
	}
}

// Run publishes a checkpoint every Interval until ctx is done.
func (l *Log) Run(ctx context.Context) {
	t := time.NewTicker(l.cfg.Interval)
	defer t.Stop()
	for {
		if err := l.Publish(ctx); err != nil && ctx.Err() == nil {
			l.log.Error("publishing checkpoint", "err", err)
			if l.cfg.OnError != nil {
				l.cfg.OnError(err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Routes serves the log for readers under prefix (for example "/log"):
// C2SP tlog-checkpoint at prefix/checkpoint (the latest published,
// witnessed checkpoint), C2SP tlog-tiles at prefix/tile/..., and
// consistency proofs at prefix/consistency?from=N&to=M.
func (l *Log) Routes(r *mux.Router, prefix string) {
	r.HandleFunc(prefix+"/checkpoint", l.serveCheckpoint).Methods("GET")
	r.PathPrefix(prefix + "/tile/").Handler(http.StripPrefix(prefix+"/", http.HandlerFunc(l.serveTile))).Methods("GET")
	r.HandleFunc(prefix+"/consistency", l.serveConsistency).Methods("GET")
}

func (l *Log) serveConsistency(w http.ResponseWriter, r *http.Request) {
	from, err1 := strconv.ParseInt(r.URL.Query().Get("from"), 10, 64)
	to, err2 := strconv.ParseInt(r.URL.Query().Get("to"), 10, 64)
	if err1 != nil || err2 != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "from and to must be tree sizes"})
		return
	}
	p, err := l.Consistency(r.Context(), from, to)
	switch {
	case errors.Is(err, ErrAhead):
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "tree size ahead of the log"})
	case errors.Is(err, ErrBadRange):
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "from must be between 0 and to"})
	case err != nil:
		l.log.Error("proving consistency", "err", err)
		if storeDown(w, err) {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "storage unavailable: retry later"})
			return
		}
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error"})
	default:
		writeJSON(w, http.StatusOK, ConsistencyProof{Hashes: hashesOut(p)})
	}
}

// storeDown reports whether err is the store being unavailable (or
// damaged), and if so sets Retry-After: such a failure is answered 503, as
// on every endpoint (docs/protocol.md §8.1), not 500.
func storeDown(w http.ResponseWriter, err error) bool {
	if storeerr.Classify(err) == nil {
		return false
	}
	w.Header().Set("Retry-After", "30")
	return true
}

// serverError answers a failed read in plain text: 503 if the store is
// down, 500 otherwise.
func serverError(w http.ResponseWriter, err error) {
	if storeDown(w, err) {
		http.Error(w, "storage unavailable: retry later", http.StatusServiceUnavailable)
		return
	}
	http.Error(w, "internal error", http.StatusInternalServerError)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// ConsistencyProof is the answer to a consistency request.
type ConsistencyProof struct {
	Hashes [][]byte `json:"hashes"`
}

// Proof returns the proof's hashes, checked for length.
func (p ConsistencyProof) Proof() (tlog.TreeProof, error) { return hashesIn(p.Hashes) }

func (l *Log) serveCheckpoint(w http.ResponseWriter, r *http.Request) {
	signed, err := l.cfg.Storage.LatestCheckpoint(r.Context())
	if err == nil && signed == nil {
		signed, _, err = l.Sign(r.Context()) // nothing published yet
	}
	if err != nil {
		l.log.Error("serving checkpoint", "err", err)
		serverError(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(signed)
}

// serveTile serves hash tiles and entry bundles computed from the stored
// hashes and entries. Any width the current tree covers is served, so
// readers of an older tree find their partial tiles.
func (l *Log) serveTile(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	t, err := torchwood.ParseTilePath(r.URL.Path)
	if err != nil {
		http.Error(w, "malformed tile path", http.StatusBadRequest)
		return
	}
	tree, err := l.cfg.Storage.LogTree(ctx)
	if err != nil {
		l.log.Error("serving tile", "err", err)
		serverError(w, err)
		return
	}
	level := max(t.L, 0) * t.H
	end := t.N<<t.H + int64(t.W) // hashes (or entries) at that level the tile needs
	if t.N > tree.N>>t.H || end > tree.N>>level {
		http.Error(w, "tile not in the tree", http.StatusNotFound)
		return
	}
	var data []byte
	if t.L == -1 {
		entries, err := l.cfg.Storage.ReadLogEntries(ctx, t.N<<t.H, end)
		if err == nil {
			for _, e := range entries {
				if data, err = torchwood.AppendTileEntry(data, e); err != nil {
					break
				}
			}
		}
		if err != nil {
			l.log.Error("serving entries", "err", err)
			serverError(w, err)
			return
		}
	} else if data, err = tlog.ReadTileData(t, l.hashReader(ctx)); err != nil {
		l.log.Error("serving tile", "err", err)
		serverError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	if t.W == 1<<t.H {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	}
	w.Write(data)
}
