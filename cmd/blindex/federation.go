package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"blindex.dev/blindex/client"
	"blindex.dev/blindex/federation"
	"blindex.dev/blindex/server"
	"blindex.dev/blindex/translog"
)

// mapFlags name a federation map and the keys it must be signed by.
type mapFlags struct {
	file, keys *string
	quorum     *int
}

func addMapFlags(fs *flag.FlagSet, use string) mapFlags {
	return mapFlags{
		file:   fs.String("map", "", "federation map `file` or http(s) URL (a signed note, see blindex map): "+use),
		keys:   fs.String("map-key", "", "comma-separated note verifier `keys` for --map: the map signer's first (its key name is the map's name), then any cosigners'"),
		quorum: fs.Int("map-quorum", 1, "how many of --map-key must have signed the map, one of them a key of the first key's name"),
	}
}

func (f mapFlags) given() bool { return *f.file != "" }

// trust parses --map-key and --map-quorum. The first key is the
// federation's own: its name is the name the map must bear.
func (f mapFlags) trust() (federation.Trust, error) {
	var t federation.Trust
	for _, k := range strings.Split(*f.keys, ",") {
		if k = strings.TrimSpace(k); k == "" {
			continue
		}
		v, err := note.NewVerifier(k)
		if err != nil {
			return t, fmt.Errorf("--map-key %q: %w", k, err)
		}
		t.Keys = append(t.Keys, v)
	}
	if len(t.Keys) == 0 {
		return t, errors.New("--map needs --map-key: the verifier key of the map's signer (blindex map keygen prints it)")
	}
	// The name comes from the client's keys, never from the map: a map's
	// name is whatever its signer wrote, and may be a cosigner's.
	t.Name = t.Keys[0].Name()
	if *f.quorum < 1 || *f.quorum > len(t.Keys) {
		return t, fmt.Errorf("--map-quorum must be between 1 and the number of --map-key keys (%d)", len(t.Keys))
	}
	t.Quorum = *f.quorum
	return t, nil
}

// open reads and verifies the map. A map is small and fetched whole, so
// fetching it by URL says nothing about the numbers looked up.
func (f mapFlags) open(ctx context.Context) (*federation.Map, error) {
	t, err := f.trust()
	if err != nil {
		return nil, err
	}
	b, err := readMap(ctx, *f.file)
	if err != nil {
		return nil, err
	}
	m, err := federation.Open(b, t, time.Now())
	if err != nil {
		return nil, fmt.Errorf("--map %s: %w", *f.file, err)
	}
	return m, nil
}

// readMap reads a map from a file, or from an http(s) URL.
func readMap(ctx context.Context, src string) ([]byte, error) {
	if !strings.HasPrefix(src, "https://") && !strings.HasPrefix(src, "http://") {
		f, err := os.Open(src)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return io.ReadAll(io.LimitReader(f, federation.MaxSize+1))
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", src, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching the map %s: %s", src, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, federation.MaxSize+1))
}

// federated returns the federated client of --map.
func (f clientFlags) federated(ctx context.Context) (*client.Federated, error) {
	m, err := f.fed.open(ctx)
	if err != nil {
		return nil, err
	}
	return client.NewFederated(client.FederatedConfig{Map: m, StateDir: *f.state, DefaultRegion: *f.region,
		TrustRoots: f.trust, AllowUnlogged: f.unlogged, MinBucketOwners: f.minCrowd})
}

// home returns, with --map, the client of the directory that holds your
// number.
func (f clientFlags) home() (*client.Client, error) {
	fc, err := f.federated(context.Background())
	if err != nil {
		return nil, err
	}
	c, err := fc.Home()
	if errors.Is(err, client.ErrNoCredential) {
		return nil, fmt.Errorf("%w (with --map this command acts at your number's directory)", err)
	}
	return c, err
}

// verifier is what blindex verify needs: a client, or with --map the
// federation, which sends each number to the directory that holds it.
type verifier interface {
	Verify(ctx context.Context, number string) (time.Time, error)
	VerifyNewKey(ctx context.Context, number string) (time.Time, error)
	Confirm(ctx context.Context, code string) error
	Identity() (string, time.Time, error)
}

func (f clientFlags) verifier() (verifier, error) {
	if f.fed.given() {
		return f.federated(context.Background())
	}
	return f.client()
}

// lookup looks numbers up at --server, or with --map at the directories
// that hold them. With --map the results may be partial: a directory that
// failed gives its numbers an error, and lookup returns it too.
func (f clientFlags) lookup(ctx context.Context, numbers []string) ([]client.Result, error) {
	if f.fed.given() {
		fc, err := f.federated(ctx)
		if err != nil {
			return nil, err
		}
		return fc.Lookup(ctx, numbers...)
	}
	c, err := f.client()
	if err != nil {
		return nil, err
	}
	return c.Lookup(ctx, numbers...)
}

// serveFederation are blindex serve's federation flags.
type serveFederation struct {
	m                   mapFlags
	publicURL, prefixes *string
}

func addServeFederationFlags(fs *flag.FlagSet) *serveFederation {
	return &serveFederation{
		m: addMapFlags(fs, "this directory then verifies numbers and accepts records only for the prefixes the map gives it\n"+
			"(its entry is found by --public-url), answers other numbers with 421 naming their directory, and logs the map's version and hash"),
		publicURL: fs.String("public-url", "", "this directory's base `URL` as the --map lists it"),
		prefixes: fs.String("prefixes", "", "comma-separated E.164 `prefixes` (+1,+44; + for all) this directory holds, without a map:\n"+
			"other numbers are refused with 421 (excludes --map)"),
	}
}

// apply sets the directory's and its CA's range from the flags.
func (f *serveFederation) apply(ctx context.Context, cfg *server.Config) error {
	var holds func(string) (string, bool)
	switch {
	case f.m.given() && *f.prefixes != "":
		return errors.New("--prefixes and --map exclude each other: with --map the directory holds the prefixes of its entry (--public-url)")
	case f.m.given():
		m, err := f.m.open(ctx)
		if err != nil {
			return err
		}
		self := m.ByURL(*f.publicURL)
		if self == nil {
			var urls []string
			for _, d := range m.Directories {
				urls = append(urls, d.URL)
			}
			return fmt.Errorf("--public-url %q is not a directory of the map (it has %s)", *f.publicURL, strings.Join(urls, ", "))
		}
		holds = m.Holds(self.URL)
		cfg.Directory.MapEntry = &translog.Entry{Kind: translog.Map, MapName: m.Name, MapVersion: m.Version,
			MapExpires: m.Expires, MapHash: m.Hash()}
		cfg.Logger.Info("federation map", "name", m.Name, "version", m.Version, "expires", m.Expires,
			"prefixes", strings.Join(self.Prefixes, ","))
	case *f.publicURL != "":
		return errors.New("--public-url is for --map")
	case *f.prefixes != "":
		var own []string
		for _, p := range strings.Split(*f.prefixes, ",") {
			if p = strings.TrimSpace(p); !federation.ValidPrefix(p) {
				return fmt.Errorf("--prefixes: %q is not + and up to 15 digits", p)
			}
			own = append(own, p)
		}
		holds = func(number string) (string, bool) {
			for _, p := range own {
				if strings.HasPrefix(number, p) {
					return "", true
				}
			}
			return "", false
		}
	default:
		return nil
	}
	cfg.CA.Holds, cfg.Directory.Holds = holds, holds
	return nil
}
