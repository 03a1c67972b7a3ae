package httpapi

import (
	"net/http"
	"testing"
)

func TestAccepts(t *testing.T) {
	const mt = "application/x-blindex-buckets"
	for _, c := range []struct {
		accept []string
		want   bool
	}{
		{nil, false},
		{[]string{"application/json"}, false},
		{[]string{"*/*"}, false},
		{[]string{"application/*"}, false},
		{[]string{mt}, true},
		{[]string{mt + ", application/json;q=0.5"}, true},
		{[]string{"application/json", "Application/X-Blindex-Buckets"}, true},
		{[]string{mt + ";q=0"}, false},
		{[]string{mt + ";q=0.0, application/json"}, false},
		{[]string{mt + ";q=0.1"}, true},
		{[]string{mt + ";q=abc"}, false},
		{[]string{"application/x-blindex-buckets-v2"}, false},
		{[]string{";;;, " + mt}, true},
	} {
		r, _ := http.NewRequest("POST", "/", nil)
		for _, a := range c.accept {
			r.Header.Add("Accept", a)
		}
		if got := Accepts(r, mt); got != c.want {
			t.Errorf("Accept %q: %v, want %v", c.accept, got, c.want)
		}
	}
}
