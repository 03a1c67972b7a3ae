package demo

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"blindex.dev/blindex/threatmodel/privacyscan"
)

func TestDemo(t *testing.T) {
	var out bytes.Buffer
	res, err := Run(t.Context(), &out, true)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	defer os.RemoveAll(filepath.Dir(res.DataDir))

	both := []string{"org.example.chat https://chat.example.org/u/bob", "org.example.video sip:bob@video.example.org"}
	if got := res.Seen["Carol"][Bob]; !slices.Equal(got, both) {
		t.Errorf("Carol saw %v", got)
	}
	if got := res.Seen["Alice"][Bob]; !slices.Equal(got, both[:1]) {
		t.Errorf("Alice saw %v", got)
	}
	if len(res.Seen["Carol"][Dave]) != 0 || len(res.Seen["Alice"][Dave]) != 0 {
		t.Errorf("someone saw records for the unregistered number: %v", res.Seen)
	}
	if !res.SameBytes {
		t.Error("the answers for denied Bob and absent Dave differ")
	}

	// What the demo says the server observed, and all it kept, holds no number.
	sc, err := privacyscan.New(Bob, Carol, Alice, Dave)
	if err != nil {
		t.Fatal(err)
	}
	found, files, err := sc.Dir(res.DataDir)
	if err != nil || files < 4 {
		t.Fatalf("scanned %d files: %v", files, err)
	}
	var observed strings.Builder
	for _, o := range res.Observations {
		observed.WriteString(describeObservation(o) + "\n")
	}
	found = append(found, sc.Bytes("observations", []byte(observed.String()))...)
	for _, f := range found {
		t.Error(f)
	}
	for _, want := range []string{"server observed: caller", "byte-identical", "Data directory kept at"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("narration lacks %q:\n%s", want, out.String())
		}
	}
}
