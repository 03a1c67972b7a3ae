package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"blindex.dev/blindex/server/demo"
	"blindex.dev/blindex/threatmodel/privacyscan"
)

// TestDisclose runs "blindex disclose" over the directory "blindex demo
// --keep" leaves, as a reviewer would.
func TestDisclose(t *testing.T) {
	res, err := demo.Run(t.Context(), io.Discard, true)
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(res.DataDir)
	defer os.RemoveAll(root)
	out := filepath.Join(t.TempDir(), "report")
	var stdout, stderr bytes.Buffer
	err = cmdDisclose(t.Context(), []string{"--data", res.DataDir, "--out", out, "--samples", "2000", "--credentials", "500"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	for _, want := range []string{"1 owner with unexpired records", "a lookup hides its target among at least 1 owner", "500 credentials", "wrote " + out + ".md and " + out + ".html"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
	sc, err := privacyscan.New(demo.Bob, demo.Carol, demo.Alice, demo.Dave)
	if err != nil {
		t.Fatal(err)
	}
	for _, ext := range []string{".md", ".html"} {
		fi, err := os.Stat(out + ext)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v", ext, fi.Mode())
		}
		b, _ := os.ReadFile(out + ext)
		for _, f := range sc.Bytes(out+ext, b) {
			t.Error(f)
		}
	}
	for _, f := range sc.Bytes("stdout", stdout.Bytes()) {
		t.Error(f)
	}

	// The owner view holds Bob's own contacts, and stdout still holds none.
	stdout.Reset()
	err = cmdDisclose(t.Context(), []string{"--data", res.DataDir, "--out", out, "--samples", "2000", "--owner-state", filepath.Join(root, "bob")}, &stdout, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(out + ".md")
	if !strings.Contains(string(md), "**only 1 number**: "+demo.Carol) {
		t.Error("the owner view does not show Bob's allowlist")
	}
	for _, f := range sc.Bytes("stdout", stdout.Bytes()) {
		t.Error(f)
	}
}

func TestDiscloseFlags(t *testing.T) {
	data := t.TempDir()
	for _, args := range [][]string{
		{"--data", data, "--acl-old", "a.json"},
		{"--data", data, "--acl-new", "b.json"},
		{"--data", data, "--credentials", "0"},
		{"--data", data, "--budget-burst", "-5"},
		{"--data", data, "--out", ""},
		{"--data", data}, // no database there
		{"--data", data, "extra"},
		{"--frobnicate"},
	} {
		var stdout, stderr bytes.Buffer
		if err := cmdDisclose(t.Context(), args, &stdout, &stderr); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
	var stdout, stderr bytes.Buffer
	if err := cmdDisclose(t.Context(), []string{"--data", data, "extra"}, &stdout, &stderr); !errors.Is(err, errUsage) {
		t.Errorf("a positional argument: %v", err)
	}
}

// TestDiscloseHelp pins "blindex disclose -h" in the same golden file the
// CLI's TestHelp uses (run with -update to rewrite it).
func TestDiscloseHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := cmdDisclose(t.Context(), []string{"-h"}, &stdout, &stderr); !errors.Is(err, errHelp) {
		t.Fatalf("-h: %v", err)
	}
	golden := filepath.Join("testdata", "help", "disclose.txt")
	if *update {
		if err := os.WriteFile(golden, stderr.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestDiscloseHelp -update)", err)
	}
	if !bytes.Equal(stderr.Bytes(), want) {
		t.Errorf("help changed:\n%s", stderr.String())
	}
}
