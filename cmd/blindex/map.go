package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"blindex.dev/blindex/federation"
	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/oprf"
)

// mapOverview is "blindex map -h": what a map is, and each subcommand in
// one example. Each subcommand's -h gives its own flags.
const mapOverview = `
Makes and checks a federation map: a signed note (C2SP signed-note) that says
which directory holds which E.164 prefixes, with the keys clients must hold
each directory to (its OPRF key and epoch, its log key, the CA roots it
accepts). Clients take it with --map and route each number by its longest
prefix; "+" alone holds every number no longer prefix holds.

  blindex map keygen --key signer.key NAME
      make the map signer's key, named NAME, the federation's name (kept
      in the file, mode 0600: keep it offline); prints its verifier key,
      which clients pass first in --map-key
  blindex map build --name NAME --version N --expires 720h \
      --directory +1=https://us.example.org --directory +44=https://uk.example.org \
      --directory +=https://intl.example.org --out map.txt
      fetch each directory's /v1/config and write the map's text; check the
      keys it shows against what each operator tells you out of band
  blindex map sign --key signer.key --out map.signed map.txt
      sign a map's text, or add a cosignature to a signed map
  blindex map verify --map-key VKEY map.signed
      check the signatures, the format and the expiry
  blindex map show [--map-key VKEY] map.signed
      print the routes and keys (the signatures are checked with --map-key)

Each directory logs the version and hash of the map it is started with
(blindex serve --map) in its transparency log.

Run "blindex map COMMAND -h" for the flags of each command.`

// cmdMap runs one map subcommand, each with its own flags (as torchwood's
// witnessctl does): the subcommand comes first.
func cmdMap(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	overview := newFlags("map", "map keygen|build|sign|verify|show [flags] [ARG]", mapOverview, stderr)
	if len(args) == 0 {
		overview.Usage()
		return errUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "-h", "--help", "-help", "help":
		overview.Usage()
		return errHelp
	case "keygen":
		return cmdMapKeygen(rest, stdout, stderr)
	case "build":
		return cmdMapBuild(ctx, rest, stdout, stderr)
	case "sign":
		return cmdMapSign(ctx, rest, stdout, stderr)
	case "verify":
		return cmdMapVerify(ctx, rest, stdout, stderr)
	case "show":
		return cmdMapShow(ctx, rest, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "blindex: unknown map command %q\n\n", cmd)
		overview.Usage()
		return errUsage
	}
}

func cmdMapKeygen(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("map keygen", "map keygen --key FILE NAME", `
Makes the map signer's key, named NAME, the federation's name, and keeps it
in FILE (mode 0600: keep it offline). Prints its verifier key, which
clients pass first in --map-key.`, stderr)
	keyFile := fs.String("key", "", "write the map signer's key to this `file`, which must not exist")
	name, err := oneArg(fs, args)
	if err != nil {
		return err
	}
	if *keyFile == "" {
		return errors.New("map keygen needs --key FILE")
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		return fmt.Errorf("key name %q: %w", name, err)
	}
	f, err := os.OpenFile(*keyFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(skey + "\n"); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintln(stdout, vkey)
	return nil
}

func cmdMapBuild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("map build", "map build --name NAME --version N [--expires D] --directory PREFIXES=URL... [--out FILE]", `
Fetches each directory's /v1/config and writes the map's text, to be
signed with blindex map sign. Check the keys it shows against what each
operator tells you out of band.

  blindex map build --name NAME --version N --expires 720h \
      --directory +1=https://us.example.org --directory +44=https://uk.example.org \
      --directory +=https://intl.example.org --out map.txt`, stderr)
	name := fs.String("name", "", "the federation's `name`, the name of its signer key")
	version := fs.Int64("version", 0, "the map's `version`, higher than every earlier map's")
	expires := fs.Duration("expires", 30*24*time.Hour, "how long from now clients accept the map")
	dirs := &stringList{}
	fs.Var(dirs, "directory", "a directory as `PREFIXES=URL`, prefixes comma-separated; repeat for each")
	write := addOutFlag(fs, stdout)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 || *name == "" || *version < 1 || len(*dirs) == 0 {
		return errors.New("map build needs --name, --version (1 or more) and at least one --directory PREFIXES=URL")
	}
	var ds []federation.Directory
	for _, spec := range *dirs {
		prefixes, u, ok := strings.Cut(spec, "=")
		if !ok {
			return fmt.Errorf("--directory %q: want PREFIXES=URL", spec)
		}
		d, err := fetchDirectory(ctx, strings.TrimRight(u, "/"))
		if err != nil {
			return err
		}
		for _, p := range strings.Split(prefixes, ",") {
			d.Prefixes = append(d.Prefixes, strings.TrimSpace(p))
		}
		ds = append(ds, d)
	}
	m, err := federation.Build(*name, *version, time.Now().Add(*expires), ds)
	if err != nil {
		return err
	}
	text, err := m.Marshal()
	if err != nil {
		return err
	}
	return write(text)
}

func cmdMapSign(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("map sign", "map sign --key FILE [--out FILE] MAP", `
Signs a map's text (blindex map build), or adds a cosignature to a signed
map. MAP is a file or an http(s) URL.

  blindex map sign --key signer.key --out map.signed map.txt`, stderr)
	keyFile := fs.String("key", "", "the map signer's key `file` (blindex map keygen)")
	write := addOutFlag(fs, stdout)
	src, err := oneArg(fs, args)
	if err != nil {
		return err
	}
	if *keyFile == "" {
		return errors.New("map sign needs --key FILE")
	}
	skey, err := os.ReadFile(*keyFile)
	if err != nil {
		return err
	}
	signer, err := note.NewSigner(strings.TrimSpace(string(skey)))
	if err != nil {
		return fmt.Errorf("--key %s: %w", *keyFile, err)
	}
	doc, err := readMap(ctx, src)
	if err != nil {
		return err
	}
	signed, err := federation.Sign(doc, signer)
	if err != nil {
		return err
	}
	return write(signed)
}

func cmdMapVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("map verify", "map verify --map-key VKEY[,VKEY...] [--map-quorum K] MAP", `
Checks a signed map's signatures, its format and its expiry, and prints a
summary. MAP is a file or an http(s) URL.`, stderr)
	mf := addMapKeyFlags(fs)
	src, err := oneArg(fs, args)
	if err != nil {
		return err
	}
	m, err := openMap(ctx, src, mf)
	if err != nil {
		return err
	}
	prefixes := 0
	for _, d := range m.Directories {
		prefixes += len(d.Prefixes)
	}
	fmt.Fprintf(stdout, "OK: map %s version %d: %d directories, %d prefixes, expires %s\n",
		m.Name, m.Version, len(m.Directories), prefixes, m.Expires.Local().Format(time.DateTime))
	return nil
}

func cmdMapShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("map show", "map show [--map-key VKEY[,VKEY...] [--map-quorum K]] MAP", `
Prints a map's routes and keys. The signatures are checked only with
--map-key; without it the map is shown as it is, signed or not. MAP is a
file or an http(s) URL.`, stderr)
	mf := addMapKeyFlags(fs)
	src, err := oneArg(fs, args)
	if err != nil {
		return err
	}
	if *mf.keys != "" {
		m, err := openMap(ctx, src, mf)
		if err != nil {
			return err
		}
		showMap(stdout, m, true)
		return nil
	}
	doc, err := readMap(ctx, src)
	if err != nil {
		return err
	}
	text, err := federation.Text(doc)
	if err != nil {
		return err
	}
	m, err := federation.Parse(text)
	if err != nil {
		return err
	}
	showMap(stdout, m, false)
	return nil
}

// oneArg parses args and returns the one argument they must hold.
func oneArg(fs *flag.FlagSet, args []string) (string, error) {
	if err := parse(fs, args); err != nil {
		return "", err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return "", errUsage
	}
	return fs.Arg(0), nil
}

// addOutFlag adds --out, and returns what writes a command's result there,
// or to stdout without it.
func addOutFlag(fs *flag.FlagSet, stdout io.Writer) func([]byte) error {
	out := fs.String("out", "", "write to this `file` instead of standard output")
	return func(b []byte) error {
		if *out == "" {
			_, err := stdout.Write(b)
			return err
		}
		return os.WriteFile(*out, b, 0o644)
	}
}

// addMapKeyFlags adds the keys a map is checked against (verify, show).
func addMapKeyFlags(fs *flag.FlagSet) mapFlags {
	return mapFlags{
		keys:   fs.String("map-key", "", "comma-separated note verifier `keys`: the map signer's first (its key name is the map's name), then any cosigners'"),
		quorum: fs.Int("map-quorum", 1, "how many of --map-key must have signed the map, one of them a key of the first key's name"),
	}
}

// openMap reads the signed map at src and opens it under mf's keys.
func openMap(ctx context.Context, src string, mf mapFlags) (*federation.Map, error) {
	doc, err := readMap(ctx, src)
	if err != nil {
		return nil, err
	}
	t, err := mf.trust()
	if err != nil {
		return nil, err
	}
	m, err := federation.Open(doc, t, time.Now())
	if err != nil {
		return nil, fmt.Errorf("map NOT verified: %w", err)
	}
	return m, nil
}

// fetchDirectory reads a directory's public parameters from its
// /v1/config.
func fetchDirectory(ctx context.Context, u string) (federation.Directory, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", u+api.PathConfig, nil)
	if err != nil {
		return federation.Directory{}, fmt.Errorf("--directory %s: %w", u, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return federation.Directory{}, fmt.Errorf("--directory %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return federation.Directory{}, fmt.Errorf("--directory %s: /v1/config answered %s", u, resp.Status)
	}
	var cfg api.Config
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&cfg); err != nil {
		return federation.Directory{}, fmt.Errorf("--directory %s: /v1/config: %w", u, err)
	}
	if cfg.Suite != oprf.SuiteID || cfg.Mode != "POPRF" {
		return federation.Directory{}, fmt.Errorf("--directory %s speaks %s %s, want %s POPRF", u, cfg.Suite, cfg.Mode, oprf.SuiteID)
	}
	return federation.Directory{URL: u, OPRFKey: cfg.PublicKey, OPRFInfo: cfg.Info, OPRFEpoch: cfg.Epoch,
		LogKey: cfg.LogKey, CARoots: cfg.CARoots}, nil
}

func showMap(w io.Writer, m *federation.Map, checked bool) {
	fmt.Fprintf(w, "map %s version %d, expires %s", m.Name, m.Version, m.Expires.Local().Format(time.DateTime))
	if checked {
		fmt.Fprintln(w, " (signatures verified)")
	} else {
		fmt.Fprintln(w, " (signatures NOT checked: give --map-key)")
	}
	h := m.Hash()
	fmt.Fprintf(w, "hash %s\n", base64.StdEncoding.EncodeToString(h[:]))
	for _, d := range m.Directories {
		fmt.Fprintf(w, "\n%s\n", d.URL)
		fmt.Fprintf(w, "  prefixes   %s\n", strings.Join(d.Prefixes, " "))
		fmt.Fprintf(w, "  oprf key   %s (info %q, epoch %d or later)\n", base64.StdEncoding.EncodeToString(d.OPRFKey), d.OPRFInfo, d.OPRFEpoch)
		fmt.Fprintf(w, "  log key    %s\n", d.LogKey)
		for _, r := range d.CARoots {
			fmt.Fprintf(w, "  CA root    sha256 %x\n", sha256.Sum256(r))
		}
	}
}
