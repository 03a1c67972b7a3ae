package disclose_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/client"
	"blindex.dev/blindex/directory/datadir"
	"blindex.dev/blindex/internal/keyfile"
	"blindex.dev/blindex/internal/sms"
	"blindex.dev/blindex/record"
	"blindex.dev/blindex/server"
	"blindex.dev/blindex/threatmodel/disclose"
)

// liveServer is a real directory on a loopback port.
type liveServer struct {
	t      *testing.T
	dir    string
	srv    *server.Running
	phones *sms.Inbox
}

func startServer(t *testing.T, dir string) *liveServer {
	t.Helper()
	ph := sms.NewInbox()
	srv, err := server.Start(t.Context(), server.Config{DataDir: dir, Addr: "127.0.0.1:0", SMS: ph})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return &liveServer{t: t, dir: dir, srv: srv, phones: ph}
}

// owner verifies number and publishes one record for app with access a.
func (s *liveServer) owner(number, app string, a client.Access) *client.Client {
	s.t.Helper()
	ctx := s.t.Context()
	c, err := client.New(client.Config{Server: s.srv.URL(), StateDir: s.t.TempDir()})
	if err != nil {
		s.t.Fatal(err)
	}
	if _, err := c.Verify(ctx, number); err != nil {
		s.t.Fatal(err)
	}
	if err := c.Confirm(ctx, s.phones.Code(number)); err != nil {
		s.t.Fatal(err)
	}
	r := record.Record{App: app, Endpoint: "https://" + app + "/u/x", Expires: time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)}
	if err := c.Publish(ctx, r, a); err != nil {
		s.t.Fatal(err)
	}
	return c
}

// snapshot is every file of a directory: its mode, size, time and content.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		sum := ""
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum = fmt.Sprintf("%x", sha256.Sum256(b))
		}
		out[p] = fi.Mode().String() + "|" + fi.ModTime().String() + "|" + sum
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestLiveServer reads a directory while its server runs and writes, and
// then after it stopped, and checks that disclose never changes a file.
func TestLiveServer(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := startServer(t, dir)
	s.owner(ann, "org.example.chat", client.Access{Visibility: acl.Public})
	s.owner(ben, "org.example.chat", client.Access{Visibility: acl.Allowlist, Allow: []string{ann}})
	s.owner(cid, "org.example.chat", client.Access{Visibility: acl.Nobody})

	r, err := disclose.Gather(t.Context(), disclose.Config{DataDir: dir, Samples: quick})
	if err != nil {
		t.Fatal(err)
	}
	if r.Opened != disclose.OpenedLive {
		t.Errorf("opened %q while the server runs", r.Opened)
	}
	if r.Owners != 3 || r.Public != 1 || r.Allowlist != 1 || r.Nobody != 1 || r.AllowEdges != 1 || r.Holders != 3 || r.Verified != 3 || r.OnNotice != 0 {
		t.Errorf("live figures: owners %d, public %d, allowlist %d, nobody %d, edges %d, holders %d, verified %d, on notice %d",
			r.Owners, r.Public, r.Allowlist, r.Nobody, r.AllowEdges, r.Holders, r.Verified, r.OnNotice)
	}

	// Reports and writes at the same time: neither side fails, and every
	// report sees a consistent count.
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	wg.Go(func() {
		for ctx.Err() == nil {
			r, err := disclose.Gather(ctx, disclose.Config{DataDir: dir, Samples: 100})
			if err != nil {
				if ctx.Err() == nil {
					errs <- err
				}
				return
			}
			if r.Owners < 3 || r.Owners > 5 {
				errs <- fmt.Errorf("%d owners", r.Owners)
				return
			}
		}
	})
	s.owner(ann2, "org.example.chat", client.Access{Visibility: acl.Public})
	s.owner(ben2, "org.example.video", client.Access{Visibility: acl.Public, Deny: []string{ann}})
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("report during writes: %v", err)
	}
	r, err = disclose.Gather(t.Context(), disclose.Config{DataDir: dir, Samples: quick})
	if err != nil {
		t.Fatal(err)
	}
	if r.Owners != 5 || r.DenyEntries != 1 {
		t.Errorf("after more writes: owners %d, denies %d", r.Owners, r.DenyEntries)
	}

	// A second app proves ben's number with its own key and publishes:
	// one more holder, not one more number, and ben's first app is on
	// notice. Both of ben's allowlists name ann: one allowlisting owner.
	// Proofs count in whole seconds, and one in the same second as ben's
	// first puts nobody on notice: start the second in a later second.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
	s.owner(ben, "org.example.video", client.Access{Visibility: acl.Allowlist, Allow: []string{ann}})
	r, err = disclose.Gather(t.Context(), disclose.Config{DataDir: dir, Samples: quick})
	if err != nil {
		t.Fatal(err)
	}
	if r.Owners != 5 || r.Verified != 5 || r.Holders != 6 || r.OnNotice != 1 || r.PendingHolders != 0 ||
		r.AllowEdges != 2 || r.AllowCallers != 1 || r.AllowOwners != 1 {
		t.Errorf("after a second app: owners %d, verified %d, holders %d, on notice %d, pending %d, edges %d, callers %d, allowlisting owners %d",
			r.Owners, r.Verified, r.Holders, r.OnNotice, r.PendingHolders, r.AllowEdges, r.AllowCallers, r.AllowOwners)
	}

	// Stopped: the read takes no lock and creates no file.
	if err := s.srv.Close(); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)
	if _, ok := before[filepath.Join(dir, datadir.DBFile+"-wal")]; ok {
		t.Fatal("the stopped server left its WAL: this test needs a clean stop")
	}
	r, err = disclose.Gather(t.Context(), disclose.Config{DataDir: dir, Samples: quick, WithKeys: true})
	if err != nil {
		t.Fatal(err)
	}
	if r.Opened != disclose.OpenedQuiescent || r.Owners != 5 {
		t.Errorf("stopped: opened %q, %d owners", r.Opened, r.Owners)
	}
	if after := snapshot(t, dir); !maps.Equal(before, after) {
		t.Errorf("disclose changed the data directory:\nbefore %v\nafter  %v", before, after)
	}
	k := r.Database.Keys
	if k == nil || k.Err != "" || !k.OPRFMatches || !k.CAKeyOK || k.PerEval <= 0 || k.Evaluations == 0 {
		t.Errorf("with keys: %+v", k)
	}
	scanReport(t, r, []string{ann, ben, cid, ann2, ben2}, false)
	// Every file the server itself wrote is named for what it is.
	for _, f := range r.Database.Files {
		if f.Present && strings.Contains(f.What, "not part of") {
			t.Errorf("the server's own %s is reported as foreign", f.Path)
		}
	}

	// Another identity opens nothing.
	other := filepath.Join(t.TempDir(), "other.age-key")
	if _, err := keyfile.GenerateIdentity(other); err != nil {
		t.Fatal(err)
	}
	r, err = disclose.Gather(t.Context(), disclose.Config{DataDir: dir, Samples: quick, WithKeys: true, IdentityPath: other})
	if err != nil {
		t.Fatal(err)
	}
	if k := r.Database.Keys; k == nil || k.Err == "" || k.OPRFMatches || k.PerEval != 0 {
		t.Errorf("with the wrong identity: %+v", k)
	}
	md := render(t, r, (*disclose.Report).WriteMarkdown)
	if !strings.Contains(md, "--with-keys: the OPRF key file does not open with this identity") {
		t.Error("the report does not say the keys did not open")
	}
}

const (
	ann2 = "+14155550104"
	ben2 = "+14155550105"
)

func TestWALWithoutSHM(t *testing.T) {
	dir := fixture{owners: 3}.build(t)
	if err := os.WriteFile(filepath.Join(dir, datadir.DBFile+"-wal"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := disclose.Gather(t.Context(), disclose.Config{DataDir: dir, Samples: quick}); !errors.Is(err, disclose.ErrWALWithoutSHM) {
		t.Errorf("a WAL without its -shm file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, datadir.DBFile+"-shm")); err == nil {
		t.Error("disclose created the -shm file")
	}
}
