package client_test

import (
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/client"
	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/internal/sms"
	"blindex.dev/blindex/record"
)

// typeRecorder records the Content-Type of every bucket answer, and strips
// the request's Accept header if json is set, as a client that knows only
// JSON would send it.
type typeRecorder struct {
	json  bool
	mu    sync.Mutex
	types []string
}

func (t *typeRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.json {
		r = r.Clone(r.Context())
		r.Header.Del("Accept")
	}
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && r.URL.Path == api.PathBuckets {
		t.mu.Lock()
		t.types = append(t.types, resp.Header.Get("Content-Type"))
		t.mu.Unlock()
	}
	return resp, err
}

// TestLookupBinaryAndJSON looks up a batch large enough to be evaluated in
// several parts, once through the binary bucket answer and once through
// JSON, and checks that both find exactly the same records.
func TestLookupBinaryAndJSON(t *testing.T) {
	inbox := sms.NewInbox()
	srv := startServer(t, inbox, directory.Config{MinBucketOwners: 1})
	owners := []string{"+14155550100", "+14155552671", "+12025550173"}
	for i, n := range owners {
		c := register(t, srv, inbox, t.TempDir(), n, 0)
		access := client.Access{Visibility: acl.Public}
		if i == 2 {
			access = client.Access{Visibility: acl.Nobody}
		}
		err := c.Publish(t.Context(), record.Record{App: "org.example.chat", Endpoint: "sip:" + n + "@example.com",
			Expires: time.Now().Add(time.Hour).UTC().Truncate(time.Second)}, access)
		if err != nil {
			t.Fatal(err)
		}
	}
	// 1,100 distinct numbers: more than one evaluate request and more than
	// one part, with the owners among them.
	numbers := slices.Clone(owners)
	for i := 0; len(numbers) < 1100; i++ {
		numbers = append(numbers, fmt.Sprintf("+1201555%04d", i))
	}

	lookup := func(json bool, caller string) ([]client.Result, []string) {
		rec := &typeRecorder{json: json}
		c, err := client.New(client.Config{Server: srv.URL(), StateDir: t.TempDir(), HTTPClient: &http.Client{Transport: rec}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Verify(t.Context(), caller); err != nil {
			t.Fatal(err)
		}
		if err := c.Confirm(t.Context(), inbox.Code(caller)); err != nil {
			t.Fatal(err)
		}
		res, err := c.Lookup(t.Context(), numbers...)
		if err != nil {
			t.Fatal(err)
		}
		return res, rec.types
	}
	bin, binTypes := lookup(false, "+12015559998")
	js, jsonTypes := lookup(true, "+12015559999")
	if len(binTypes) == 0 || slices.ContainsFunc(binTypes, func(s string) bool { return s != api.MediaTypeBuckets }) {
		t.Errorf("bucket answers to a client that asks for the binary encoding: %q", binTypes)
	}
	if len(jsonTypes) == 0 || slices.ContainsFunc(jsonTypes, func(s string) bool { return s != "application/json" }) {
		t.Errorf("bucket answers to a client that does not ask for it: %q", jsonTypes)
	}
	for i := range numbers {
		want := 0
		if i < 2 {
			want = 1
		}
		if len(bin[i].Records) != want || len(js[i].Records) != want {
			t.Errorf("%s: %d records through the binary answer, %d through JSON, want %d", numbers[i], len(bin[i].Records), len(js[i].Records), want)
		}
		if want == 1 && (bin[i].Records[0].Endpoint != "sip:"+numbers[i]+"@example.com" || !reflect.DeepEqual(js[i].Records, bin[i].Records)) {
			t.Errorf("%s: %+v through the binary answer, %+v through JSON", numbers[i], bin[i].Records, js[i].Records)
		}
	}
}
