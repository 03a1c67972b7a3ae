package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
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

func cmdMap(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("map", "map keygen|build|sign|verify|show [flags] [ARG]", `
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
      --directory +=https://intl.example.org > map.txt
      fetch each directory's /v1/config and write the map's text; check the
      keys it shows against what each operator tells you out of band
  blindex map sign --key signer.key map.txt > map.signed
      sign a map's text, or add a cosignature to a signed map
  blindex map verify --map-key VKEY map.signed
      check the signatures, the format and the expiry
  blindex map show [--map-key VKEY] map.signed
      print the routes and keys (the signatures are checked with --map-key)

Each directory logs the version and hash of the map it is started with
(blindex serve --map) in its transparency log.`, stderr)
	keyFile := fs.String("key", "", "the map signer's key `file` (keygen, sign)")
	name := fs.String("name", "", "the federation's `name`, the name of its signer key (build)")
	version := fs.Int64("version", 0, "the map's `version`, higher than every earlier map's (build)")
	expires := fs.Duration("expires", 30*24*time.Hour, "how long from now clients accept the map (build)")
	dirs := &stringList{}
	fs.Var(dirs, "directory", "a directory as `PREFIXES=URL`, prefixes comma-separated; repeat for each (build)")
	out := fs.String("out", "", "write to this `file` instead of standard output (build, sign)")
	mf := mapFlags{keys: fs.String("map-key", "", "comma-separated note verifier `keys`: the map signer's first (its key name is the map's name), then any cosigners' (verify, show)"),
		quorum: fs.Int("map-quorum", 1, "how many of --map-key must have signed the map, one of them a key of the first key's name (verify, show)")}
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() < 1 {
		fs.Usage()
		return errUsage
	}
	write := func(b []byte) error {
		if *out == "" {
			_, err := stdout.Write(b)
			return err
		}
		return os.WriteFile(*out, b, 0o644)
	}
	arg := func() (string, error) {
		if fs.NArg() != 2 {
			fs.Usage()
			return "", errUsage
		}
		return fs.Arg(1), nil
	}
	switch fs.Arg(0) {
	case "keygen":
		n, err := arg()
		if err != nil {
			return err
		}
		if *keyFile == "" {
			return errors.New("map keygen needs --key FILE")
		}
		skey, vkey, err := note.GenerateKey(rand.Reader, n)
		if err != nil {
			return fmt.Errorf("key name %q: %w", n, err)
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
	case "build":
		if fs.NArg() != 1 || *name == "" || *version < 1 || len(*dirs) == 0 {
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
	case "sign":
		src, err := arg()
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
	case "verify", "show":
		src, err := arg()
		if err != nil {
			return err
		}
		doc, err := readMap(ctx, src)
		if err != nil {
			return err
		}
		var m *federation.Map
		checked := *mf.keys != "" || fs.Arg(0) == "verify"
		if checked {
			t, err := mf.trust()
			if err != nil {
				return err
			}
			if m, err = federation.Open(doc, t, time.Now()); err != nil {
				return fmt.Errorf("map NOT verified: %w", err)
			}
		} else {
			text, err := federation.Text(doc)
			if err != nil {
				return err
			}
			if m, err = federation.Parse(text); err != nil {
				return err
			}
		}
		if fs.Arg(0) == "verify" {
			prefixes := 0
			for _, d := range m.Directories {
				prefixes += len(d.Prefixes)
			}
			fmt.Fprintf(stdout, "OK: map %s version %d: %d directories, %d prefixes, expires %s\n",
				m.Name, m.Version, len(m.Directories), prefixes, m.Expires.Local().Format(time.DateTime))
			return nil
		}
		showMap(stdout, m, checked)
		return nil
	default:
		fs.Usage()
		return errUsage
	}
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
