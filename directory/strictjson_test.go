package directory_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/oprf"
)

// TestStrictJSONEveryEndpoint sends, to every endpoint that takes a JSON
// body (directory and CA alike, each table row of protocol §8.1 with POST
// or PUT), a body with a member name in another case and one with a member
// named twice, signed where the endpoint needs it. Each is refused with 400
// `bad request` before it has any effect, where encoding/json alone would
// have folded the case or kept the last member. The unmodified body is
// accepted where sending it has no lasting effect, so the 400s are the
// mutations'.
func TestStrictJSONEveryEndpoint(t *testing.T) {
	f := newFixture(t)
	e := f.e
	owner, caller := &f.owner, &f.caller
	idx, rid := oprf.Index(f.y), oprf.RecordID(f.y, "org.example.chat")
	confirm := jsonBody(api.VerifyConfirmRequest{VerificationID: strings.Repeat("ab", 16), Number: dave, Code: "123456", PublicKey: publicKeyDER(t)})
	setACL := jsonBody(api.SetACLRequest{Index: idx[:], RecordID: rid[:], ACL: &acl.List{Visibility: acl.Public}})
	noMembers := []byte(`{}`)

	type route struct {
		method, path string
		body         []byte
		as           *signer
		// Variants besides the first member's: members deeper in.
		nested map[string][]byte
		// valid: the unmodified body may be sent (it changes nothing
		// that a later case reads).
		valid bool
	}
	publish := jsonBody(f.publishBody())
	routes := []route{
		{method: "POST", path: api.PathVerifyStart, body: []byte(`{"number":"` + dave + `"}`)},
		{method: "POST", path: api.PathVerifyConfirm, body: confirm},
		{method: "POST", path: api.PathEvaluate, body: evaluateBody(1), as: caller, valid: true},
		{method: "POST", path: api.PathBuckets, body: []byte(`{"prefix_bits":0,"prefixes":[0]}`), as: caller, valid: true},
		{method: "PUT", path: api.PathRecords, body: publish, as: owner, nested: map[string][]byte{
			"acl_case":      bytes.Replace(publish, []byte(`{"visibility"`), []byte(`{"Visibility"`), 1),
			"acl_duplicate": bytes.Replace(publish, []byte(`{"visibility":"public"`), []byte(`{"visibility":"nobody","visibility":"public"`), 1),
		}},
		{method: "PUT", path: api.PathRecordACL, body: setACL, as: owner, nested: map[string][]byte{
			"acl_case":      bytes.Replace(setACL, []byte(`{"visibility"`), []byte(`{"VISIBILITY"`), 1),
			"acl_duplicate": bytes.Replace(setACL, []byte(`{"visibility":"public"`), []byte(`{"visibility":"public","visibility":"public"`), 1),
		}},
		{method: "POST", path: api.PathLogLabel, body: evaluateBody(1), as: owner, valid: true},
		// No members: any member is unknown, in any case.
		{method: "POST", path: api.PathLogState, body: noMembers, as: owner, valid: true},
		{method: "POST", path: api.PathLogPromise, body: noMembers, as: owner, valid: true},
		{method: "POST", path: api.PathHolders, body: noMembers, as: owner, valid: true},
		// Not valid: sent unmodified it evicts (or, for this key hash, answers 404).
		{method: "POST", path: api.PathHoldersEvict, body: jsonBody(api.EvictRequest{KeyHash: make([]byte, 32)}), as: owner},
		{method: "POST", path: api.PathRevoke, body: noMembers, as: owner},
		{method: "POST", path: api.PathRenew, body: noMembers, as: owner},
	}

	// Every POST and PUT of protocol §8.1 is in the table.
	doc, err := os.ReadFile(filepath.Join("..", "docs", "protocol.md"))
	if err != nil {
		t.Fatal(err)
	}
	var documented, tested []string
	for _, m := range regexp.MustCompile("(?m)^\\| `((?:POST|PUT) /[^`]*)` \\|").FindAllSubmatch(doc, -1) {
		documented = append(documented, string(m[1]))
	}
	for _, r := range routes {
		tested = append(tested, r.method+" "+r.path)
	}
	slices.Sort(documented)
	slices.Sort(tested)
	if len(documented) == 0 || !slices.Equal(documented, tested) {
		t.Fatalf("protocol §8.1 lists %q, the test covers %q", documented, tested)
	}

	for _, r := range routes {
		variants := map[string][]byte{}
		if bytes.Equal(r.body, noMembers) {
			variants["case"] = []byte(`{"X":1}`)
			variants["duplicate"] = []byte(`{"x":1,"x":1}`)
		} else {
			variants["case"] = foldFirstMember(t, r.body)
			variants["duplicate"] = doubleFirstMember(t, r.body)
			// The same member spelled with an escape is the same name.
			variants["duplicate_escaped"] = doubleFirstMemberEscaped(t, r.body)
		}
		for name, b := range r.nested {
			if bytes.Equal(b, r.body) {
				t.Fatalf("%s %s: variant %s unchanged", r.method, r.path, name)
			}
			variants[name] = b
		}
		for _, name := range slices.Sorted(maps.Keys(variants)) {
			body := variants[name]
			t.Run(strings.TrimPrefix(r.path, "/")+"/"+name, func(t *testing.T) {
				e.phones.mu.Lock()
				delete(e.phones.inbox, dave)
				e.phones.mu.Unlock()
				before := snapshot(t, e)
				resp := f.send(t, badCase{method: r.method, path: r.path, body: body, as: r.as})
				if resp.status != 400 || resp.message() != msgBadRequest {
					t.Errorf("%s: %d %s, want 400 %q", body, resp.status, resp.body, msgBadRequest)
				}
				if got := before.changed(snapshot(t, e)); len(got) != 0 {
					t.Errorf("tables changed: %q", got)
				}
				if e.phones.code(dave) != "" {
					t.Errorf("a refused request sent an SMS")
				}
			})
		}
		if r.valid {
			if resp := f.send(t, badCase{method: r.method, path: r.path, body: r.body, as: r.as}); resp.status != 200 {
				t.Errorf("%s %s, unmodified: %d %s", r.method, r.path, resp.status, resp.body)
			}
		}
	}
	f.checkRecords(t)
}

// firstMember returns the bounds of body's first member, in a JSON object
// whose first name has no escapes: body[i:j] is `"name"`, and body[i:end]
// the whole member, value included.
func firstMember(t *testing.T, body []byte) (i, j, end int) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') || !bytes.HasPrefix(body, []byte(`{"`)) {
		t.Fatalf("not an object: %s", body)
	}
	if _, err := dec.Token(); err != nil {
		t.Fatalf("no member in %s", body)
	}
	i, j = 1, int(dec.InputOffset())
	var v json.RawMessage
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return i, j, int(dec.InputOffset())
}

// foldFirstMember writes the first member's name in upper case.
func foldFirstMember(t *testing.T, body []byte) []byte {
	i, j, _ := firstMember(t, body)
	return slices.Concat(body[:i], bytes.ToUpper(body[i:j]), body[j:])
}

// doubleFirstMember repeats the first member, value and all.
func doubleFirstMember(t *testing.T, body []byte) []byte {
	i, _, end := firstMember(t, body)
	return slices.Concat(body[:i], body[i:end], []byte(","), body[i:])
}

// doubleFirstMemberEscaped repeats the first member with the first letter
// of its name written as a \u escape: the same name.
func doubleFirstMemberEscaped(t *testing.T, body []byte) []byte {
	i, _, end := firstMember(t, body)
	escaped := slices.Concat([]byte(fmt.Sprintf(`"\u%04x`, body[i+1])), body[i+2:end])
	return slices.Concat(body[:i], escaped, []byte(","), body[i:])
}
