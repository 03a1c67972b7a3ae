package threatmodel

import (
	"flag"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the disclosure table in docs/threat-model.md")

// TestClaimsHaveTests fails if a claim names no test, or a test that does
// not exist.
func TestClaimsHaveTests(t *testing.T) {
	for _, c := range Claims {
		if len(c.Tests) == 0 {
			t.Errorf("claim %q has no test behind it", c.Party)
		}
		for _, ref := range c.Tests {
			dir, name, ok := strings.Cut(ref, ".")
			if !ok || !strings.HasPrefix(name, "Test") {
				t.Errorf("claim %q: %q is not dir.TestName", c.Party, ref)
				continue
			}
			if !testExists(t, filepath.Join("..", dir), name) {
				t.Errorf("claim %q: no func %s in %s", c.Party, name, dir)
			}
		}
	}
}

func testExists(t *testing.T, dir, name string) bool {
	files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, f := range files {
		file, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv == nil && fn.Name.Name == name {
				return true
			}
		}
	}
	return false
}

const (
	begin = "<!-- BEGIN disclosure table: generated from package threatmodel (go test ./threatmodel -update) -->\n"
	end   = "<!-- END disclosure table -->"
)

// TestDocumentAgrees fails if docs/threat-model.md's disclosure table is not
// the one the claims generate.
func TestDocumentAgrees(t *testing.T) {
	path := filepath.Join("..", "docs", "threat-model.md")
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the generated table markers", path)
	}
	want := s[:i+len(begin)] + Table() + s[j:]
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if want != s {
		t.Errorf("the disclosure table in %s differs from package threatmodel; run go test ./threatmodel -update", path)
	}
}
