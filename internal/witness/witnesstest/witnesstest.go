// Package witnesstest runs a real litewitness (filippo.io/torchwood, the
// reference c2sp.org/tlog-witness implementation) on a loopback port for
// tests, so that blindex's witness client is checked against an independent
// implementation rather than against itself.
//
// The litewitness binary is built once per machine with "go install" (through
// the module proxy) into the user cache directory, keyed by version and
// platform. Its Ed25519 key lives in an in-process ssh-agent, so neither
// ssh-agent nor any other tool needs to be installed. Logs are added by
// writing litewitness's SQLite database, as its witnessctl tool does.
package witnesstest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"filippo.io/torchwood"
	_ "github.com/mattn/go-sqlite3" // to add logs to litewitness's database
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/mod/sumdb/note"
)

// Version is the torchwood release whose litewitness is run. AddLog writes
// that release's database schema, so both change together.
const Version = "v0.6.1"

const litewitnessPkg = "filippo.io/torchwood/cmd/litewitness"

// Witness is a running litewitness.
type Witness struct {
	// URL is the submission prefix, such as http://127.0.0.1:41234.
	URL string
	// Name is the witness name in its cosignature lines.
	Name string
	// VerifierKey is the witness's cosignature/v1 verifier key (type 0x04).
	VerifierKey string

	db string
}

// Start builds litewitness if needed, starts it on 127.0.0.1 with a fresh
// database and key, and stops it when the test ends. Its output is logged
// only if the test fails. Start skips the test in -short mode, since the
// first build downloads and compiles litewitness.
func Start(t testing.TB) *Witness {
	t.Helper()
	if testing.Short() {
		t.Skip("witnesstest: skipping litewitness in -short mode")
	}
	bin := litewitnessBinary(t)

	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sock, fingerprint := serveAgent(t, priv)

	const name = "witnesstest.example/litewitness"
	signer, err := torchwood.NewCosignatureSigner(name, priv)
	if err != nil {
		t.Fatal(err)
	}
	w := &Witness{
		Name:        name,
		VerifierKey: signer.Verifier().String(),
		db:          filepath.Join(t.TempDir(), "litewitness.db"),
	}

	// The free port is found by binding and releasing it, so another process
	// can take it in between; litewitness then fails to listen and is
	// restarted on another port.
	var out bytes.Buffer
	for attempt := 1; ; attempt++ {
		addr := freeLoopbackAddr(t)
		fmt.Fprintf(&out, "--- litewitness attempt %d on %s\n", attempt, addr)
		cmd := exec.Command(bin,
			"-db="+w.db,
			"-name="+name,
			"-key="+fingerprint,
			"-ssh-agent="+sock,
			"-listen="+addr)
		var attemptOut bytes.Buffer
		cmd.Stdout = &attemptOut
		cmd.Stderr = &attemptOut
		if err := cmd.Start(); err != nil {
			t.Fatalf("witnesstest: starting litewitness: %v", err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()

		w.URL = "http://" + addr
		if waitReady(w.URL, w.VerifierKey, exited) {
			t.Cleanup(func() {
				cmd.Process.Signal(os.Interrupt)
				select {
				case <-exited:
				case <-time.After(5 * time.Second):
					cmd.Process.Kill()
					<-exited
				}
				out.Write(attemptOut.Bytes())
				if t.Failed() {
					t.Logf("litewitness output:\n%s", out.Bytes())
				}
			})
			return w
		}
		cmd.Process.Kill()
		<-exited
		out.Write(attemptOut.Bytes())
		if attempt == 3 {
			t.Fatalf("witnesstest: litewitness did not start:\n%s", out.Bytes())
		}
	}
}

// AddLog makes the witness follow the log origin, whose checkpoints are
// signed by the note verifier key logVKey, starting from size zero, as
// "witnessctl add-log" and "witnessctl add-key" would.
func (w *Witness) AddLog(t testing.TB, origin, logVKey string) {
	t.Helper()
	if _, err := note.NewVerifier(logVKey); err != nil {
		t.Fatalf("witnesstest: log verifier key: %v", err)
	}
	db, err := sql.Open("sqlite3", "file:"+w.db+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	// The initial root is never checked, since the first checkpoint has no
	// consistency proof; witnessctl stores SHA-256("") like Sigsum's empty tree.
	const emptyRoot = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
	if _, err := tx.Exec("INSERT INTO log (origin, tree_size, tree_hash) VALUES (?, 0, ?)", origin, emptyRoot); err != nil {
		t.Fatalf("witnesstest: adding log (litewitness %s schema): %v", Version, err)
	}
	if _, err := tx.Exec("INSERT INTO key (origin, key) VALUES (?, ?)", origin, logVKey); err != nil {
		t.Fatalf("witnesstest: adding log key (litewitness %s schema): %v", Version, err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// serveAgent serves an ssh-agent holding priv on a unix socket until the
// test ends, and returns the socket path and the key's SHA256 fingerprint.
func serveAgent(t testing.TB, priv ed25519.PrivateKey) (sock, fingerprint string) {
	t.Helper()
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: priv}); err != nil {
		t.Fatal(err)
	}
	pub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	// Not t.TempDir: unix socket paths are limited to about 104 bytes, and
	// t.TempDir embeds the test name.
	dir, err := os.MkdirTemp("", "wt")
	if err != nil {
		t.Fatal(err)
	}
	sock = filepath.Join(dir, "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				agent.ServeAgent(keyring, c)
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
		os.RemoveAll(dir)
	})
	return sock, ssh.FingerprintSHA256(pub)
}

// waitReady polls the witness's index page until it shows vkey, which also
// proves that the port is served by this litewitness and not another
// process. It gives up when the process exits or after ten seconds.
func waitReady(baseURL, vkey string, exited <-chan struct{}) bool {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		resp, err := client.Get(baseURL + "/")
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && bytes.Contains(b, []byte(vkey)) {
				return true
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func freeLoopbackAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

var build struct {
	once sync.Once
	path string
	took time.Duration // zero if the binary was already cached
	err  error
}

// litewitnessBinary returns the path of the litewitness binary, building it
// on first use on this machine.
func litewitnessBinary(t testing.TB) string {
	t.Helper()
	first := false
	build.once.Do(func() {
		first = true
		build.path, build.took, build.err = buildLitewitness()
	})
	if build.err != nil {
		t.Fatalf("witnesstest: %v", build.err)
	}
	if first && build.took > 0 {
		t.Logf("witnesstest: built litewitness %s in %v", Version, build.took.Round(100*time.Millisecond))
	}
	return build.path
}

// buildLitewitness installs litewitness into a per-version cache directory.
// Concurrent test processes may build at once: each builds into its own
// temporary directory and renames the binary into place, which is atomic.
func buildLitewitness() (string, time.Duration, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "blindex-witnesstest",
		"torchwood@"+Version+"-"+runtime.GOOS+"-"+runtime.GOARCH)
	path := filepath.Join(dir, "litewitness")
	if runtime.GOOS == "windows" {
		path += ".exe"
	}
	if _, err := os.Stat(path); err == nil {
		return path, 0, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", 0, err
	}
	tmp, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return "", 0, err
	}
	defer os.RemoveAll(tmp)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// "go test" puts its own toolchain first on PATH. The install runs
	// outside this module, with the caller's GOFLAGS and workspace cleared.
	cmd := exec.CommandContext(ctx, "go", "install", litewitnessPkg+"@"+Version)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(),
		"GOBIN="+tmp, "GOFLAGS=", "GOWORK=off",
		"GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH)
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", 0, fmt.Errorf("go install %s@%s: %v\n%s", litewitnessPkg, Version, err, out)
	}
	if err := os.Rename(filepath.Join(tmp, filepath.Base(path)), path); err != nil {
		return "", 0, err
	}
	return path, time.Since(start), nil
}
