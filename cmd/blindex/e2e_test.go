package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"blindex.dev/blindex/threatmodel/privacyscan"
)

var binary string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "blindex-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "blindex")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building blindex: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// process is a running "blindex serve" (or "blindex ca") process.
type process struct {
	cmd  *exec.Cmd
	url  string
	done chan struct{}

	mu      sync.Mutex
	logs    bytes.Buffer
	codes   []string      // codes the log SMS sender wrote, in order
	taken   int           // codes handed out by lastCode
	newCode chan struct{} // closed (and replaced) when a code arrives
}

func startServer(t *testing.T, data string, extra ...string) *process {
	t.Helper()
	return startProcess(t, append([]string{"serve", "--data", data}, extra...)...)
}

// startProcess starts "blindex args... --addr 127.0.0.1:0 --log-format json"
// and waits until it listens.
func startProcess(t *testing.T, args ...string) *process {
	t.Helper()
	return startProcessAt(t, "127.0.0.1:0", args...)
}

// startProcessAt is startProcess listening on addr.
func startProcessAt(t *testing.T, listen string, args ...string) *process {
	t.Helper()
	s := &process{done: make(chan struct{}), newCode: make(chan struct{})}
	s.cmd = exec.Command(binary, append(args, "--addr", listen, "--log-format", "json")...)
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			var m struct{ Msg, Addr, Code string }
			json.Unmarshal([]byte(line), &m)
			s.mu.Lock()
			s.logs.WriteString(line + "\n")
			if strings.HasPrefix(m.Msg, "sms (log sender") {
				s.codes = append(s.codes, m.Code)
				close(s.newCode)
				s.newCode = make(chan struct{})
			}
			s.mu.Unlock()
			if m.Msg == "listening" {
				addr <- m.Addr
			}
		}
	}()
	select {
	case a := <-addr:
		s.url = "http://" + a
	case <-s.done:
		t.Fatalf("server exited: %s", s.log())
	case <-time.After(30 * time.Second):
		t.Fatalf("server did not start: %s", s.log())
	}
	t.Cleanup(func() { s.stop(t) })
	return s
}

func (s *process) log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs.String()
}

// stop sends SIGTERM and waits for a clean exit.
func (s *process) stop(t *testing.T) {
	if s.cmd.ProcessState != nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	<-s.done
	if err := s.cmd.Wait(); err != nil {
		t.Errorf("server exit: %v\n%s", err, s.log())
	}
}

// lastCode is the newest code the log SMS sender wrote since the last call.
// The server logs the code before it answers "verify start", but this
// process reads the log through a pipe, so lastCode waits for the line to
// arrive rather than reading whatever has arrived so far.
func (s *process) lastCode(t *testing.T) string {
	t.Helper()
	for {
		s.mu.Lock()
		n, wait := len(s.codes), s.newCode
		if n > s.taken {
			s.taken = n
			code := s.codes[n-1]
			s.mu.Unlock()
			if len(code) != 6 {
				t.Fatalf("malformed code %q in server log", code)
			}
			return code
		}
		s.mu.Unlock()
		select {
		case <-wait:
		case <-s.done:
			t.Fatalf("server exited before it sent a code: %s", s.log())
		case <-time.After(2 * time.Minute): // only so that a broken server fails rather than hangs
			t.Fatalf("no code in server log")
		}
	}
}

// cli runs the binary as user (a state directory) against the server.
func cli(t *testing.T, s *process, user string, args ...string) string {
	t.Helper()
	out, err := cliErr(t, s, user, args...)
	if err != nil {
		t.Fatalf("blindex %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func cliErr(t *testing.T, s *process, user string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "BLINDEX_SERVER="+s.url, "BLINDEX_STATE="+filepath.Join(statesDir(t), user), "BLINDEX_CA=")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

var stateDirs sync.Map

func statesDir(t *testing.T) string {
	d, _ := stateDirs.LoadOrStore(t.Name(), t.TempDir())
	return d.(string)
}

type lookupResult struct {
	Number  string
	Records []struct{ App, Endpoint string }
	Error   string
}

func lookupApps(t *testing.T, s *process, user string, numbers ...string) map[string][]string {
	t.Helper()
	var res []lookupResult
	out := cli(t, s, user, append([]string{"lookup", "--json"}, numbers...)...)
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("lookup output: %v\n%s", err, out)
	}
	m := map[string][]string{}
	for _, r := range res {
		m[r.Number] = []string{}
		for _, rec := range r.Records {
			m[r.Number] = append(m[r.Number], rec.App)
		}
	}
	return m
}

const (
	bob   = "+14155550100"
	carol = "+14155552671"
	alice = "+12025550173"
	dave  = "+12015550123"
)

// TestStoryThroughCLI plays the demo story with the real binary: a server
// process and one CLI process per step, as a user would by hand.
func TestStoryThroughCLI(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	s := startServer(t, data)

	for user, number := range map[string]string{"bob": bob, "carol": carol, "alice": alice} {
		out := cli(t, s, user, "verify", "start", number)
		if !strings.Contains(out, "Next: blindex verify confirm CODE") {
			t.Errorf("verify start output: %s", out)
		}
		out = cli(t, s, user, "verify", "confirm", s.lastCode(t))
		if !strings.Contains(out, "Verified.") {
			t.Errorf("verify confirm output: %s", out)
		}
		if out := cli(t, s, user, "whoami"); !strings.HasPrefix(out, number+",") {
			t.Errorf("whoami = %q", out)
		}
	}

	contacts := filepath.Join(t.TempDir(), "carol.vcf")
	os.WriteFile(contacts, []byte("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Carol\r\nTEL;TYPE=cell:+1 415-555-2671\r\nEND:VCARD\r\n"), 0o600)
	cli(t, s, "bob", "publish", "--app", "org.example.chat", "--endpoint", "https://chat.example.org/u/bob", "--visibility", "public")
	cli(t, s, "bob", "publish", "--app", "org.example.video", "--endpoint", "sip:bob@video.example.org",
		"--visibility", "allowlist", "--allow-file", contacts)

	if got := lookupApps(t, s, "carol", bob, dave); !slices.Equal(got[bob], []string{"org.example.chat", "org.example.video"}) || len(got[dave]) != 0 {
		t.Errorf("carol sees %v", got)
	}
	if got := lookupApps(t, s, "alice", bob, dave); !slices.Equal(got[bob], []string{"org.example.chat"}) || len(got[dave]) != 0 {
		t.Errorf("alice sees %v", got)
	}
	out := cli(t, s, "alice", "lookup", bob, dave, "+1 800 FLOWERS")
	for _, want := range []string{"org.example.chat", dave + ": nothing (not registered, or not shared with you)", "letters are not allowed"} {
		if !strings.Contains(out, want) {
			t.Errorf("lookup output lacks %q:\n%s", want, out)
		}
	}

	// Only invalid numbers: nothing was looked up, so the command fails,
	// with each number's reason and without the number's digits echoed to stdout.
	invalid := exec.Command(binary, "lookup", "+1 800 FLOWERS", "4155550100")
	invalid.Env = append(os.Environ(), "BLINDEX_SERVER="+s.url, "BLINDEX_STATE="+filepath.Join(statesDir(t), "alice"), "BLINDEX_CA=")
	var stdout, stderr bytes.Buffer
	invalid.Stdout, invalid.Stderr = &stdout, &stderr
	if err := invalid.Run(); err == nil || stdout.Len() != 0 ||
		!strings.Contains(stderr.String(), "no valid number to look up") || !strings.Contains(stderr.String(), "country code are missing") {
		t.Errorf("lookup of invalid numbers only: err %v, stdout %q, stderr %q", err, stdout.String(), stderr.String())
	}

	// Bob narrows the chat record: now Alice sees nothing, as for Dave.
	cli(t, s, "bob", "acl", "--app", "org.example.chat", "--visibility", "allowlist", "--allow", "(415) 555-2671", "--region", "US")
	if got := lookupApps(t, s, "alice", bob); len(got[bob]) != 0 {
		t.Errorf("alice sees %v after the acl change", got)
	}
	if got := lookupApps(t, s, "carol", bob); len(got[bob]) != 2 {
		t.Errorf("carol sees %v after the acl change", got)
	}
	// A repeated --allow adds to the list: both numbers are admitted.
	cli(t, s, "bob", "acl", "--app", "org.example.chat", "--visibility", "allowlist", "--allow", carol, "--allow", alice)
	if got := lookupApps(t, s, "alice", bob); !slices.Equal(got[bob], []string{"org.example.chat"}) {
		t.Errorf("alice sees %v after a repeated --allow", got)
	}
	if got := lookupApps(t, s, "carol", bob); len(got[bob]) != 2 {
		t.Errorf("carol sees %v after a repeated --allow", got)
	}
	cli(t, s, "bob", "unpublish", "--app", "org.example.video")
	if got := lookupApps(t, s, "carol", bob); !slices.Equal(got[bob], []string{"org.example.chat"}) {
		t.Errorf("carol sees %v after unpublish", got)
	}

	// Errors a user can make get clear messages and a failing status.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"publish", "--app", "org.example.x", "--endpoint", "https://x"}, "--visibility is required"},
		{[]string{"verify", "start", "+1 415 555 0100 ext 7"}, "extensions are not allowed"},
		{[]string{"verify", "confirm", "123456"}, "no verification in progress"},
		{[]string{"lookup", bob}, "no credential: verify a number first"},
	} {
		out, err := cliErr(t, s, "nobody", c.args...)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("blindex %v: err %v, output %q, want %q", c.args, err, out, c.want)
		}
	}

	// The metrics are part of what the server discloses.
	resp, err := http.Get(s.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(metrics, []byte("blindex_evaluations_total")) || !bytes.Contains(metrics, []byte("\nblindex_log_entries ")) {
		t.Fatalf("metrics output lacks blindex metrics")
	}

	entries := logBytes(t, s)
	// A restart keeps keys and records.
	s.stop(t)
	s2 := startServer(t, data)
	if got := lookupApps(t, s2, "carol", bob); !slices.Equal(got[bob], []string{"org.example.chat"}) {
		t.Errorf("after restart carol sees %v", got)
	}
	s2.stop(t)

	scanForNumbers(t, data, s.log()+s2.log()+string(metrics)+string(entries), bob, carol, alice, dave)

	// A lost key file is an error, not a new key.
	os.Remove(filepath.Join(data, "keys", "oprf.key.age"))
	cmd := exec.Command(binary, "serve", "--data", data, "--addr", "127.0.0.1:0")
	out2, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out2), "key files missing") {
		t.Errorf("serve with a missing key file: %v\n%s", err, out2)
	}
}

// scanForNumbers fails if any spelling of any number appears in any file
// under dir or in the logs.
func scanForNumbers(t *testing.T, dir, logs string, numbers ...string) {
	t.Helper()
	sc, err := privacyscan.New(numbers...)
	if err != nil {
		t.Fatal(err)
	}
	found, files, err := sc.Dir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if files < 4 { // the database and three key files at least
		t.Fatalf("scanned only %d files under %s", files, dir)
	}
	if !strings.Contains(logs, "credential issued") {
		t.Fatalf("server log is not the one from the story")
	}
	for _, f := range append(found, sc.Bytes("server log", []byte(logs))...) {
		t.Error(f)
	}
}

var update = flag.Bool("update", false, "rewrite the golden help files")

// TestHelp pins the help text: it is the user's manual at each step.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"serve", "-h"}, {"verify", "-h"}, {"publish", "-h"}, {"acl", "-h"},
		{"unpublish", "-h"}, {"lookup", "-h"}, {"whoami", "-h"}, {"holders", "-h"}, {"demo", "-h"},
		{"ca", "-h"}, {"renew", "-h"}, {"revoke", "-h"}, {"invite", "-h"}, {"disclose", "-h"},
		{"synth", "-h"}, {"bench", "-h"}, {"backup", "-h"}, {"restore", "-h"}, {"monitor", "-h"}, {"log", "-h"}, {"rotate", "-h"},
		{"map", "-h"}} {
		cmd := exec.Command(binary, args...)
		cmd.Env = append(os.Environ(), "HOME=/home/user", "XDG_CONFIG_HOME=")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("blindex %s: %v (asking for help is not an error)", strings.Join(args, " "), err)
		}
		golden := filepath.Join("testdata", "help", args[0]+".txt")
		if *update {
			os.MkdirAll(filepath.Dir(golden), 0o755)
			os.WriteFile(golden, out, 0o644)
			continue
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%v (run go test -run TestHelp -update)", err)
		}
		if !bytes.Equal(out, want) {
			t.Errorf("blindex %s: help changed:\n%s", strings.Join(args, " "), out)
		}
	}
	out, err := exec.Command(binary, "frobnicate").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), `unknown command "frobnicate"`) {
		t.Errorf("unknown command: %v %s", err, out)
	}
}
