package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"blindex.dev/blindex/client"
)

func cmdInvite(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("invite", "invite sign DEST | invite verify [--dest NUMBER] [--trust-ca FILES] TOKEN", `
Proves a caller's number to the callee, with a PASSporT (RFC 8225) signed by
the caller's credential:

  blindex invite sign +12025550173     the caller prints a token for this callee
  blindex invite verify TOKEN          the callee checks it

verify checks the ES256 signature, the credential's chain to a CA the callee
trusts, that the credential holds the calling number, that the token is for
the callee's number (--dest, default: your own credential's number), and that
it was signed within the last 60 seconds. By default the callee trusts the
CAs the directory published when it was first used; --trust-ca replaces them
with the given PEM root files.`, stderr)
	cf := addClientFlags(fs)
	dest := fs.String("dest", "", "the callee `number` the token must be for (verify; default: your own)")
	trust := fs.String("trust-ca", "", "comma-separated PEM `files` of the CA roots to trust (verify)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 || (fs.Arg(0) != "sign" && fs.Arg(0) != "verify") {
		fs.Usage()
		return errUsage
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	if fs.Arg(0) == "sign" {
		token, err := c.SignInvite(fs.Arg(1))
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, token)
		return nil
	}

	token := strings.TrimSpace(fs.Arg(1))
	if token == "-" {
		b, err := io.ReadAll(io.LimitReader(os.Stdin, 64<<10))
		if err != nil {
			return err
		}
		token = strings.TrimSpace(string(b))
	}
	to := *dest
	if to == "" {
		if to, _, err = c.Identity(); err != nil {
			return fmt.Errorf("--dest not given and %w", err)
		}
	}
	var roots *x509.CertPool
	if *trust != "" {
		certs, err := loadRootFiles(*trust)
		if err != nil {
			return err
		}
		roots = x509.NewCertPool()
		for _, r := range certs {
			roots.AddCert(r)
		}
	} else if roots, err = c.TrustedRoots(); err != nil {
		return err
	}
	claims, err := client.VerifyInvite(token, to, roots)
	if err != nil {
		return fmt.Errorf("invite NOT verified: %w", err)
	}
	fmt.Fprintf(stdout, "Verified: %s is calling %s (signed %s ago; credential valid until %s).\n",
		claims.Orig, claims.Dest, time.Since(claims.IssuedAt).Round(time.Second),
		claims.Certificate.NotAfter.Local().Format(time.DateOnly))
	return nil
}
