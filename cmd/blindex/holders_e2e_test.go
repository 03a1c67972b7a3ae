package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestSeveralAppsThroughCLI is issue 16's scenario, run with the binary as
// a new user would against "blindex serve --reproof-window 6s", each app
// and caller with its own state: two apps hold one number side by side, a
// later proof puts the others on notice, a re-proof clears it, a new key
// cures a stolen one, and a new owner's proof retires everyone who does not
// prove the number again within the window.
func TestSeveralAppsThroughCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out a 6 s re-proof window")
	}
	const window = 6 * time.Second
	// Six SMS proofs of one number in a minute: more than the default limit.
	s := startServer(t, filepath.Join(t.TempDir(), "data"), "--reproof-window", window.String(),
		"--limit-number-per-hour", "20", "--limit-number-per-day", "40")
	verify := func(user string, extra ...string) {
		t.Helper()
		cli(t, s, user, append(append([]string{"verify", "start"}, extra...), bob)...)
		cli(t, s, user, "verify", "confirm", s.lastCode(t))
	}
	publish := func(user, app string) (string, error) {
		return cliErr(t, s, user, "publish", "--app", app, "--endpoint", "https://"+app+"/u/"+user, "--visibility", "public")
	}
	seen := func(want ...string) {
		t.Helper()
		got := lookupApps(t, s, "carol", bob)[bob]
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("carol sees %q, want %q", got, want)
		}
	}
	// Proofs compare in whole seconds: each later one is a second later.
	tick := func() { time.Sleep(1100 * time.Millisecond) }

	// 1. Carol verifies her number.
	cli(t, s, "carol", "verify", "start", carol)
	cli(t, s, "carol", "verify", "confirm", s.lastCode(t))
	// 2. chat verifies Bob's number and publishes.
	verify("chat")
	if out, err := publish("chat", "org.example.chat"); err != nil {
		t.Fatalf("chat publishes: %v\n%s", err, out)
	}
	seen("org.example.chat")
	// 3. video verifies the same number and publishes: accepted.
	tick()
	verify("video")
	if out, err := publish("video", "org.example.video"); err != nil {
		t.Fatalf("video publishes: %v\n%s", err, out)
	}
	// 4. chat is on notice: Carol no longer sees its record.
	seen("org.example.video")
	out, err := cliErr(t, s, "chat", "monitor")
	if code := exitCode(t, err); code != 3 || !strings.Contains(out, "NOTICE") || !strings.Contains(out, "prove the number again by") {
		t.Errorf("chat's monitor: exit %d\n%s\nwant 3, with its notice", code, out)
	}
	var holders struct {
		Holders []struct {
			KeyHash     string     `json:"key_hash"`
			NoticeUntil *time.Time `json:"notice_until"`
			You         bool       `json:"you"`
		} `json:"holders"`
	}
	if err := json.Unmarshal([]byte(cli(t, s, "chat", "holders", "--json")), &holders); err != nil || len(holders.Holders) != 2 {
		t.Fatalf("chat's holders --json: %v, %+v", err, holders)
	}
	for _, h := range holders.Holders {
		if h.You != (h.NoticeUntil != nil) {
			t.Errorf("holder %+v: want chat's own key (you) on notice, video's not", h)
		}
	}
	// 5. chat verifies again with its key: Carol sees both.
	tick()
	verify("chat")
	seen("org.example.chat", "org.example.video")
	// 6. A copy of video's state is taken: the stolen key.
	copyState(t, filepath.Join(statesDir(t), "video"), filepath.Join(statesDir(t), "stolen"))
	// 7. video verifies with a new key, and chat proves again; the copy
	// only renews, which is never a proof.
	tick()
	verify("video", "--new-key")
	tick()
	verify("chat")
	cli(t, s, "stolen", "renew")
	seen("org.example.chat", "org.example.video") // video's record, published again under its new key
	if out := cli(t, s, "chat", "holders"); strings.Count(out, "ON NOTICE") != 1 || strings.Count(out, "(you)") != 1 || strings.Count(out, "records\n") != 3 {
		t.Errorf("chat's holders after video's new key: want three, chat's marked, one (the stolen key) on notice:\n%s", out)
	}
	// 8. A new owner verifies the number and publishes; nobody else
	// proves it again.
	tick()
	verify("owner")
	if out, err := publish("owner", "org.example.owner"); err != nil {
		t.Fatalf("the new owner publishes: %v\n%s", err, out)
	}
	// 9. After the window Carol sees only the new owner's record, and
	// neither the renewed stolen copy nor chat can publish.
	time.Sleep(window + time.Second)
	seen("org.example.owner")
	for _, user := range []string{"stolen", "chat"} {
		out, err := publish(user, "org.example."+user)
		if err == nil || !strings.Contains(out, "revoked or retired") {
			t.Errorf("%s publishes after the window: %v\n%s\nwant refused as retired", user, err, out)
		}
	}
	if out, err := cliErr(t, s, "chat", "monitor"); exitCode(t, err) != 3 || !strings.Contains(out, "ALARM holder") || !strings.Contains(out, "your key was retired") {
		t.Errorf("chat's monitor after its retirement: %v\n%s\nwant the holder alarm of its retirement", err, out)
	}
}

// copyState copies a state directory, as a thief with the device's files
// would.
func copyState(t *testing.T, from, to string) {
	t.Helper()
	if err := os.CopyFS(to, os.DirFS(from)); err != nil {
		t.Fatal(err)
	}
}
