package main

import (
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestExplainUnreachable: a server that is down is named, with what to do,
// instead of Go's dial error.
func TestExplainUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	_, err = http.Get("http://" + addr + "/v1/config")
	if err == nil {
		t.Fatal("a closed port answered")
	}
	got := explain(err)
	for _, want := range []string{"nothing is listening at http://" + addr, "blindex serve", "--server"} {
		if !strings.Contains(got, want) {
			t.Errorf("explain = %q, want it to contain %q", got, want)
		}
	}
	if strings.Contains(got, "dial tcp") {
		t.Errorf("explain kept the raw dial error: %q", got)
	}
	if other := errors.New("client: no credential"); explain(other) != other.Error() {
		t.Errorf("explain changed an unrelated error: %q", explain(other))
	}
}
