package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"blindex.dev/blindex/client"
	"blindex.dev/blindex/internal/witness"
	"blindex.dev/blindex/translog"
)

// errAlarm means a check ran and found something wrong: exit status 3, so
// a cron job can tell "your number may be hijacked" from "could not check".
var errAlarm = errors.New("alarm")

func cmdMonitor(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("monitor", "monitor [--json]", `
Checks the directory's transparency log for your number. It reads what was
logged since its last run and raises an alarm when:

  - a credential for your number was issued to a key that is not yours
    (someone verified your number by SMS: another app or device of yours,
    a hijack, or a misbehaving CA);
  - another key joined your number's holders at the directory, or your key
    was retired or evicted there (see blindex holders);
  - the state the directory logged, or stores now, for your records and
    access lists differs from what you published;
  - the log forked or was rolled back (both signed checkpoints are shown:
    they prove the directory misbehaved).

It also says when your key is on notice (another key proved the number
later): prove the number again by the deadline it prints (blindex verify),
or the directory retires your key and deletes its records.

Run it from cron. Exit status: 0 all is well, 3 an alarm was raised or your
key is on notice, 1 the check could not be made (for example the directory
was unreachable), 2 bad usage.`, stderr)
	c, mc, asJSON, err := logCommand(fs, args, stderr)
	if err != nil {
		return err
	}
	rep, err := c.Monitor(ctx, mc)
	if err != nil {
		return err
	}
	if asJSON {
		if err := printJSON(stdout, rep); err != nil {
			return err
		}
	} else {
		printMonitor(stdout, rep)
	}
	if len(rep.Alarms) > 0 || rep.NoticeUntil != nil {
		return errAlarm
	}
	return nil
}

// printMonitor prints a monitor report as text.
func printMonitor(w io.Writer, rep *client.Report) {
	fmt.Fprintf(w, "log %s: %d entries, %d new, %d under your label\n", rep.Origin, rep.Size, rep.Scanned, rep.Mine)
	for _, a := range rep.Alarms {
		where := ""
		if a.Kind.HasEntry() { // retired, stored-state and fork alarms cite no entry
			where = fmt.Sprintf(" (entry %d)", a.Index)
		}
		fmt.Fprintf(w, "ALARM %s%s: %s\n", a.Kind, where, a.Message)
		for _, ev := range a.Evidence {
			printEvidence(w, ev)
		}
	}
	if rep.NoticeUntil != nil {
		fmt.Fprintf(w, "NOTICE: another key proved your number later, and your records are hidden: prove the number again by %s (blindex verify start), or this key is retired\n",
			rep.NoticeUntil.Local().Format(time.DateTime))
	}
	if rep.Behind > 0 {
		fmt.Fprintf(w, "behind: the directory holds at least %d entries past its latest checkpoint; the next run checks them\n", rep.Behind)
	}
	if len(rep.Alarms) == 0 && rep.NoticeUntil == nil {
		fmt.Fprintln(w, "OK: no credential but yours, and the directory holds what you published")
	}
}

func cmdLog(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	// Named like "map build", so that a config file's "[log verify]" section
	// reaches it, as docs/operations.md says; "[log]" still does too.
	fs := newFlags("log verify", "log verify [--json]", `
Audits the directory's transparency log: fetches the checkpoint, replays
every entry from the tiles (each one hashed into the signed tree, so a single
changed bit fails), checks that every entry is well formed, and checks that
the log is consistent with the checkpoint kept in --state from the previous
audit. Needs no credential.

It also holds the log to what it signed for your lookups, which are kept in
--state: every log promise for a credential behind a record you accepted must
be honoured by an entry, its entry's log label must be the proved label of
the number you looked up (lookups leave that check to the audit), and the
largest owner count you relied on for the bucket size must be accounted for
by logged credentials. Reading every entry, it reveals nothing about which
ones it looks for. A broken promise, a wrong label or an overstated count is
printed with the signed note as evidence.

Exit status: 0 the log checks out, 3 it is inconsistent (forked or rolled
back; both signed checkpoints are printed as evidence), broke a promise,
promised an entry under a wrong label, or overstated its owners, 1 the audit
could not be completed or an entry failed to verify, 2 bad usage.`, stderr)
	c, mc, asJSON, err := logCommand(fs, args, stderr, "verify")
	if err != nil {
		return err
	}
	rep, err := c.Audit(ctx, mc)
	if err != nil {
		return err
	}
	if rep.Fork != nil {
		fmt.Fprintf(stdout, "ALARM fork: %s\n", rep.Fork.Error())
		for _, n := range [][]byte{rep.Fork.Old.Note, rep.Fork.New.Note} {
			printEvidence(stdout, string(n))
		}
		return errAlarm
	}
	broken := len(rep.Unhonoured) > 0 || len(rep.Mislabelled) > 0 || rep.Overstated != nil
	if asJSON {
		if err := printJSON(stdout, rep); err != nil {
			return err
		}
		if broken {
			return errAlarm
		}
		return nil
	}
	for _, p := range rep.Unhonoured {
		fmt.Fprintf(stdout, "ALARM promise: the log promised at %s to hold a credential entry it does not hold: a record you accepted may have been forged for you\n",
			p.Time.Local().Format(time.DateTime))
		printEvidence(stdout, p.Evidence)
		fmt.Fprintf(stdout, "  the promised entry (base64): %s\n", base64.StdEncoding.EncodeToString(p.Entry))
	}
	for _, p := range rep.Mislabelled {
		fmt.Fprintf(stdout, "ALARM label: the log promised at %s a credential entry under a label that is not the number's: its owner's monitor would never see it, and a record you accepted may have been forged for you\n",
			p.Time.Local().Format(time.DateTime))
		printEvidence(stdout, p.Evidence)
		fmt.Fprintf(stdout, "  the promised entry (base64): %s\n", base64.StdEncoding.EncodeToString(p.Entry))
	}
	if o := rep.Overstated; o != nil {
		fmt.Fprintf(stdout, "ALARM owners: the log key signed %d owners at %s, but the log holds only %d credentials that could vouch for a record then: your lookups' buckets may have been smaller than you asked\n",
			o.Owners, o.Time.Local().Format(time.DateTime), o.Credentials)
		printEvidence(stdout, o.Evidence)
	}
	fmt.Fprintf(stdout, "log %s: %d entries verified against the signed checkpoint", rep.Origin, rep.Size)
	if rep.Previous > 0 {
		fmt.Fprintf(stdout, ", consistent with the %d-entry checkpoint seen before", rep.Previous)
	}
	fmt.Fprintln(stdout)
	kinds := make([]string, 0, len(rep.Kinds))
	for k := range rep.Kinds {
		kinds = append(kinds, string(k))
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		fmt.Fprintf(stdout, "  %-11s %d\n", k, rep.Kinds[translog.Kind(k)])
	}
	if broken {
		return errAlarm
	}
	return nil
}

// logCommand parses the flags the log commands share (the client's, the
// witnesses' and --json) and checks that the arguments are exactly want.
func logCommand(fs *flag.FlagSet, args []string, stderr io.Writer, want ...string) (*client.Client, client.MonitorConfig, bool, error) {
	cf := addClientFlags(fs)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	wf := addWitnessFlags(fs)
	if err := parse(fs, args); err != nil {
		return nil, client.MonitorConfig{}, false, err
	}
	if !slices.Equal(fs.Args(), want) {
		fs.Usage()
		return nil, client.MonitorConfig{}, false, errUsage
	}
	mc, err := wf.config(stderr)
	if err != nil {
		return nil, client.MonitorConfig{}, false, err
	}
	c, err := cf.client()
	return c, mc, *asJSON, err
}

// printEvidence prints a signed entry or checkpoint, indented.
func printEvidence(w io.Writer, text string) {
	fmt.Fprintf(w, "  | %s\n", strings.ReplaceAll(strings.TrimRight(text, "\n"), "\n", "\n  | "))
}

// witnessFlags choose the witnesses whose cosignatures a checkpoint needs.
type witnessFlags struct {
	keys   *stringList
	quorum *int
}

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func addWitnessFlags(fs *flag.FlagSet) witnessFlags {
	w := witnessFlags{keys: &stringList{}}
	fs.Var(w.keys, "witness", "a trusted witness's `vkey` (cosignature/v1); repeat for several")
	w.quorum = fs.Int("quorum", 0, "how many of the --witness keys must have cosigned the checkpoint (default: none required)")
	return w
}

// config checks the flags; a mistake is a usage error (exit status 2).
func (w witnessFlags) config(stderr io.Writer) (client.MonitorConfig, error) {
	var mc client.MonitorConfig
	for _, k := range *w.keys {
		v, err := witness.ParseVerifier(k)
		if err != nil {
			fmt.Fprintf(stderr, "blindex: --witness %q: %v\n", k, err)
			return mc, errUsage
		}
		mc.Witnesses = append(mc.Witnesses, v)
	}
	if *w.quorum < 0 || *w.quorum > len(mc.Witnesses) {
		fmt.Fprintf(stderr, "blindex: --quorum %d: give between 0 and the number of --witness keys (%d)\n", *w.quorum, len(mc.Witnesses))
		return mc, errUsage
	}
	mc.Quorum = *w.quorum
	return mc, nil
}
