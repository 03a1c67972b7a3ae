package client_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"blindex.dev/blindex/client"
	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/internal/sms"
	"blindex.dev/blindex/server"
	"blindex.dev/blindex/translog"
)

// kanonFrontEnd is a front end for srv that passes evaluate answers
// through edit.
func kanonFrontEnd(t *testing.T, srv *server.Running, edit func(*api.EvaluateResponse)) string {
	t.Helper()
	target, err := url.Parse(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(r *http.Response) error {
		if r.Request.URL.Path != api.PathEvaluate || r.StatusCode != 200 {
			return nil
		}
		var resp api.EvaluateResponse
		if err := json.NewDecoder(r.Body).Decode(&resp); err != nil {
			return err
		}
		r.Body.Close()
		edit(&resp)
		b, err := json.Marshal(resp)
		if err != nil {
			return err
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
		r.ContentLength = int64(len(b))
		r.Header.Set("Content-Length", strconv.Itoa(len(b)))
		return nil
	}
	fe := httptest.NewServer(proxy)
	t.Cleanup(fe.Close)
	return fe.URL
}

// kanonEnv is a directory whose operator set a bucket target of one
// owner, the red team's setting, with eight public owners.
func kanonEnv(t *testing.T) (*server.Running, *sms.Inbox, *[]uint64) {
	t.Helper()
	inbox := sms.NewInbox()
	var mu sync.Mutex
	sent := new([]uint64)
	srv := startServer(t, inbox, directory.Config{MinBucketOwners: 1, Observe: func(o directory.Observation) {
		if o.Endpoint == "buckets" {
			mu.Lock()
			*sent = append(*sent, o.Buckets())
			mu.Unlock()
		}
	}})
	for i := range 8 {
		n := "+1415555010" + strconv.Itoa(i)
		publishPublic(t, register(t, srv, inbox, t.TempDir(), n, 0), "https://x.example/"+n[1:])
	}
	return srv, inbox, sent
}

// caller registers a client of url (a front end, or the server) with the
// default MinBucketOwners.
func kanonCaller(t *testing.T, srv *server.Running, inbox *sms.Inbox, url, number string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{Server: url, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	// Verified at the server itself: the front end only rewrites lookups.
	if _, err := c.Verify(t.Context(), number); err != nil {
		t.Fatal(err)
	}
	if err := c.Confirm(t.Context(), inbox.Code(number)); err != nil {
		t.Fatal(err)
	}
	return c
}

// The client bounds the bucket count by the signed owner count and its own
// crowd floor, not by the directory's bucket target: eight owners are
// fewer than two crowds of 16, so it fetches the whole (eight-owner)
// directory as one bucket, where the directory has 8 buckets.
func TestForgePrefixOwnFloor(t *testing.T) {
	srv, inbox, sent := kanonEnv(t)
	c := kanonCaller(t, srv, inbox, srv.URL(), "+12015550123")
	*sent = nil
	res, err := c.Lookup(t.Context(), "+14155550100")
	if err != nil || len(res[0].Records) != 1 {
		t.Fatalf("lookup: %+v, %v", res, err)
	}
	if len(*sent) != 1 || (*sent)[0] != 1 {
		t.Errorf("bucket counts sent = %v, want [1] (8 owners, crowds of 16)", *sent)
	}
}

// A front end that asks for a prefix far longer than the signed count
// allows, or overstates the count without the log key, is refused.
func TestForgePrefixRefused(t *testing.T) {
	srv, inbox, _ := kanonEnv(t)
	for _, c := range []struct {
		name string
		edit func(*api.EvaluateResponse)
		want string
	}{
		{"2^24 buckets", func(r *api.EvaluateResponse) { r.BucketCount = 1 << 24 }, "asks for 16777216 buckets"},
		{"count without signature", func(r *api.EvaluateResponse) { r.OwnersSignature = nil }, "no signed owner count"},
		{"count overstated", func(r *api.EvaluateResponse) {
			n := int64(1 << 30)
			r.Owners, r.BucketCount = &n, 1<<24
		}, "does not verify under the pinned log key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			url := kanonFrontEnd(t, srv, c.edit)
			cl := kanonCaller(t, srv, inbox, url, "+12015550123")
			_, err := cl.Lookup(t.Context(), "+14155550100")
			if !errors.Is(err, client.ErrSmallCrowd) || !bytes.Contains([]byte(err.Error()), []byte(c.want)) {
				t.Errorf("lookup: %v, want ErrSmallCrowd saying %q", err, c.want)
			}
		})
	}
}

// An operator with the log key can sign an overstated count, and a caller
// then accepts more buckets; but the caller keeps the count, and its
// audit reports it with the signed evidence.
func TestForgePrefixAuditCatchesSignedLie(t *testing.T) {
	srv, inbox, _ := kanonEnv(t)
	signer, err := note.NewSigner(srv.Node.LogKey)
	if err != nil {
		t.Fatal(err)
	}
	const lie = 1 << 20
	url := kanonFrontEnd(t, srv, func(r *api.EvaluateResponse) {
		oc, err := translog.SignOwners(signer, lie, time.Now())
		if err != nil {
			t.Error(err)
			return
		}
		n := oc.Owners
		r.Owners, r.OwnersTime, r.OwnersSignature, r.BucketCount = &n, oc.Time.Unix(), oc.Signature[:], 1<<16
	})
	c := kanonCaller(t, srv, inbox, url, "+12015550123")
	if _, err := c.Lookup(t.Context(), "+14155550100"); err != nil {
		t.Fatalf("lookup under a signed lie: %v", err)
	}
	// 10 credentials: the eight owners, this caller and the one below;
	// wait for a checkpoint that covers them.
	rep := kanonAudit(t, c, 9)
	o := rep.Overstated
	if o == nil || o.Owners != lie || o.Credentials < 9 || o.Credentials >= lie {
		t.Fatalf("audit: overstated = %+v (kinds %v), want the signed %d against the log's credentials", o, rep.Kinds, lie)
	}
	if _, err := note.Open([]byte(o.Evidence), note.VerifierList(kanonLogKey(t, srv))); err != nil {
		t.Errorf("evidence does not open under the log key: %v\n%s", err, o.Evidence)
	}

	// An honest count is not reported.
	honest := kanonCaller(t, srv, inbox, srv.URL(), "+12015550124")
	if _, err := honest.Lookup(t.Context(), "+14155550100"); err != nil {
		t.Fatal(err)
	}
	if rep := kanonAudit(t, honest, 10); rep.Overstated != nil {
		t.Errorf("audit after honest lookups: %+v", rep.Overstated)
	}
}

// kanonLogKey is the directory's published log key.
func kanonLogKey(t *testing.T, srv *server.Running) note.Verifier {
	t.Helper()
	resp, err := http.Get(srv.URL() + api.PathConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var cfg api.Config
	if err := json.NewDecoder(resp.Body).Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(cfg.LogKey)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// kanonAudit audits until the checkpoint covers n credential entries.
func kanonAudit(t *testing.T, c *client.Client, n int) *client.AuditReport {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		rep, err := c.Audit(t.Context(), client.MonitorConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Kinds[translog.Credential] >= n || time.Now().After(deadline) {
			return rep
		}
	}
}
