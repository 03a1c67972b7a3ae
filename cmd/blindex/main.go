// Command blindex is the privacy-preserving phone-number directory: its
// server, its client, and a demo. Run "blindex help" for the commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
)

const usage = `blindex is a phone-number directory that never sees the numbers it looks up.

Usage:
  blindex demo [--keep]            play the whole story on a throwaway local server
  blindex serve [flags]            run a directory server (SQLite, keys made on first start)
  blindex ca [flags]               run a standalone CA that directories can trust
  blindex disclose [flags]         report what a directory's data reveals (Markdown + HTML)
  blindex backup [flags]           write an age-encrypted snapshot of a live server's database
  blindex restore [flags]          restore such a snapshot into an empty data directory
  blindex rotate [--overlap D]     start the next lookup epoch (indexes and pseudonyms change)
  blindex synth --owners N         fill a data directory with N synthetic owners (for benchmarks)
  blindex bench [flags]            measure a live server's lookup throughput and latency
  blindex verify start NUMBER      ask the directory to text a code to NUMBER (--new-key: a new key)
  blindex verify confirm CODE      finish verification; stores your credential
  blindex holders [--evict KEY]    list the keys that hold your number; evict one
  blindex publish [flags]          publish or replace your record for one app
  blindex acl [flags]              change who may see your record for one app
  blindex unpublish --app APP      delete your record for one app
  blindex lookup NUMBER...         look numbers up without revealing them
  blindex invite sign DEST         prove your number to the person you call
  blindex invite verify TOKEN      check a caller's proof
  blindex whoami                   show your stored credential
  blindex renew                    renew your credential before it expires (no SMS)
  blindex revoke                   revoke your credential (after losing a device)
  blindex monitor [--json]         check the transparency log for credentials and changes you did not make
  blindex log verify               audit the whole transparency log (no credential needed)
  blindex map SUBCOMMAND [flags]   make (keygen, build, sign) and check (verify, show) a federation map
  blindex version [--json]         show this build: version, VCS revision, protocol and schema versions

Client commands talk to --server (env BLINDEX_SERVER, default
http://127.0.0.1:8390) and keep your credential and the directory's pinned key
in --state (env BLINDEX_STATE, default ~/.config/blindex). verify and renew
talk to --ca (env BLINDEX_CA), by default the directory's built-in CA.
With a federation map (--map FILE --map-key KEY, env BLINDEX_MAP and
BLINDEX_MAP_KEY) they use no --server: lookup sends each number to the
directory that holds its prefix, verify to the number's own directory, and
the other commands to the directory of your credential's number.

Numbers are E.164 ("+14155550100"), or national with --region (env
BLINDEX_REGION), such as --region US "(415) 555-0100".

Run "blindex COMMAND -h" for a command's flags.
`

var (
	// errUsage means the command line was wrong; the message has been printed.
	errUsage = errors.New("usage")
	// errHelp means -h or --help asked for the usage, which has been printed.
	errHelp = errors.New("help")
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil, errors.Is(err, errHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	case errors.Is(err, errAlarm):
		os.Exit(3)
	default:
		fmt.Fprintln(os.Stderr, "blindex:", explain(err))
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, usage)
		return nil
	case "demo":
		return cmdDemo(ctx, rest, stdout, stderr)
	case "version", "--version", "-version":
		return cmdVersion(ctx, rest, stdout, stderr)
	case "serve":
		return cmdServe(ctx, rest, stdout, stderr)
	case "ca":
		return cmdCA(ctx, rest, stdout, stderr)
	case "disclose":
		return cmdDisclose(ctx, rest, stdout, stderr)
	case "backup":
		return cmdBackup(ctx, rest, stdout, stderr)
	case "restore":
		return cmdRestore(ctx, rest, stdout, stderr)
	case "rotate":
		return cmdRotate(ctx, rest, stdout, stderr)
	case "synth":
		return cmdSynth(ctx, rest, stdout, stderr)
	case "bench":
		return cmdBench(ctx, rest, stdout, stderr)
	case "renew":
		return cmdRenew(ctx, rest, stdout, stderr)
	case "revoke":
		return cmdRevoke(ctx, rest, stdout, stderr)
	case "verify":
		return cmdVerify(ctx, rest, stdout, stderr)
	case "publish":
		return cmdPublish(ctx, rest, stdout, stderr)
	case "acl":
		return cmdACL(ctx, rest, stdout, stderr)
	case "unpublish":
		return cmdUnpublish(ctx, rest, stdout, stderr)
	case "lookup":
		return cmdLookup(ctx, rest, stdout, stderr)
	case "invite":
		return cmdInvite(ctx, rest, stdout, stderr)
	case "whoami":
		return cmdWhoami(ctx, rest, stdout, stderr)
	case "holders":
		return cmdHolders(ctx, rest, stdout, stderr)
	case "monitor":
		return cmdMonitor(ctx, rest, stdout, stderr)
	case "log":
		return cmdLog(ctx, rest, stdout, stderr)
	case "map":
		return cmdMap(ctx, rest, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "blindex: unknown command %q\n\n%s", cmd, usage)
		return errUsage
	}
}

// explain turns a failure to reach a server into what failed and what to
// check, instead of Go's raw "Post ...: dial tcp ..." text.
func explain(err error) string {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err.Error()
	}
	u, perr := url.Parse(ue.URL)
	if perr != nil {
		return err.Error()
	}
	server := u.Scheme + "://" + u.Host
	var dns *net.DNSError
	var op *net.OpError
	switch {
	case ue.Timeout():
		return fmt.Sprintf("%s did not answer in time: is the server up and reachable? (%v)", server, ue.Err)
	case errors.As(err, &dns):
		return fmt.Sprintf("cannot resolve %s: check the server URL (--server, BLINDEX_SERVER; --ca for verify) (%v)", u.Host, dns)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("nothing is listening at %s: start the server (blindex serve), or give its URL with --server "+
			"(BLINDEX_SERVER; --ca for verify and renew)", server)
	case errors.As(err, &op):
		return fmt.Sprintf("cannot reach %s: %v: check the network and the server URL (--server, BLINDEX_SERVER)", server, op.Err)
	}
	return fmt.Sprintf("talking to %s: %v", server, ue.Err)
}

// newFlags makes a flag set whose -h prints synopsis, description and flags.
func newFlags(name, synopsis, description string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: blindex %s\n\n%s\n", synopsis, strings.TrimSpace(description))
		example := "" // a flag this command has, the likeliest to be set in the environment
		fs.VisitAll(func(f *flag.Flag) {
			if example == "" {
				example = f.Name
			}
		})
		for _, name := range []string{"data", "server", "state"} {
			if fs.Lookup(name) != nil {
				example = name
			}
		}
		if example != "" {
			fmt.Fprintf(stderr, "\nFlags (each also read from BLINDEX_<NAME>, e.g. --%s from %s, then from\nthe config file named by BLINDEX_CONFIG; see docs/operations.md):\n",
				example, envName(example))
			fs.PrintDefaults()
		}
	}
	return fs
}

// parse parses args, then fills every flag not given from its environment
// variable: --min-bucket-owners from BLINDEX_MIN_BUCKET_OWNERS.
//
// Flags may come before, between or after the arguments
// ("verify start --ca URL +1..."), unless separated by "--".
func parse(fs *flag.FlagSet, args []string) error {
	var positional []string
	for {
		if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
			return errHelp
		} else if err != nil {
			return errUsage // the flag package has printed why, and the usage
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if len(rest) < len(args) && args[len(args)-len(rest)-1] == "--" {
			positional = append(positional, rest...) // everything after "--"
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	fs.Parse(append([]string{"--"}, positional...))
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		env := envName(f.Name)
		if v, ok := os.LookupEnv(env); ok {
			given[f.Name] = true
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s: %w", env, e)
			}
		}
	})
	if err != nil {
		return err
	}
	if path := os.Getenv("BLINDEX_CONFIG"); path != "" {
		return applyConfig(fs, path, given)
	}
	return nil
}

// envName is the environment variable a flag is also read from.
func envName(flag string) string {
	return "BLINDEX_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// applyConfig sets, from the config file at path, every flag of fs that
// neither the command line nor the environment set. The file holds
// "name = value" lines, with the flags' names (see docs/operations.md):
// lines before any section apply to every command that has the flag, and
// lines after "[serve]" (a command's name) to that command only, which must
// have the flag; "[map]" to every "map ..." command that has it ("[log]"
// likewise to "log verify"). Blank lines and lines starting with # are ignored. Lists
// (witness, trust-ca) are comma-separated.
func applyConfig(fs *flag.FlagSet, path string, given map[string]bool) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("BLINDEX_CONFIG: %w", err)
	}
	section := ""
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = strings.TrimSpace(line[1 : len(line)-1])
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || name == "" {
			return fmt.Errorf("%s:%d: want name = value", path, i+1)
		}
		// "[map]" applies to every "map ..." subcommand that has the flag,
		// as lines before any section do; "[map build]" to that one only.
		group := section != "" && strings.HasPrefix(fs.Name(), section+" ")
		switch {
		case section != "" && section != fs.Name() && !group:
			continue
		case fs.Lookup(name) == nil && section != "" && !group:
			return fmt.Errorf("%s:%d: blindex %s has no flag --%s", path, i+1, section, name)
		case fs.Lookup(name) == nil || given[name]:
			continue
		}
		values := []string{value}
		if name == "witness" {
			// Repeatable on the command line: comma-separated here.
			// (trust-ca is one comma-separated flag already.)
			values = strings.Split(value, ",")
		}
		for _, v := range values {
			if err := fs.Set(name, strings.TrimSpace(v)); err != nil {
				return fmt.Errorf("%s:%d: %s: %w", path, i+1, name, err)
			}
		}
	}
	return nil
}

func defaultStateDir() string {
	if d, err := os.UserConfigDir(); err == nil {
		return filepath.Join(d, "blindex")
	}
	return ".blindex"
}
