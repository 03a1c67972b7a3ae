package ca

import (
	"net/http"
	"testing"
)

func TestNetwork(t *testing.T) {
	direct := &Service{}
	proxied := &Service{cfg: Config{ForwardedFor: true}}
	cases := []struct {
		remote string
		xff    []string
		s      *Service
		want   string
	}{
		{"192.0.2.7:5555", nil, direct, "192.0.2.7"},
		{"[2001:db8:1:2:3:4:5:6]:443", nil, direct, "2001:db8:1:2::/64"},
		// Without ForwardedFor the header is ignored: clients can't choose.
		{"192.0.2.7:5555", []string{"198.51.100.1"}, direct, "192.0.2.7"},
		// With it, the proxy's last-appended entry counts, not the
		// client-written ones before it.
		{"10.0.0.1:80", []string{"203.0.113.9, 198.51.100.1"}, proxied, "198.51.100.1"},
		{"10.0.0.1:80", []string{"203.0.113.9", "2001:db8::1"}, proxied, "2001:db8::/64"},
		{"10.0.0.1:80", nil, proxied, "10.0.0.1"},
	}
	for _, c := range cases {
		r := &http.Request{RemoteAddr: c.remote, Header: http.Header{}}
		for _, v := range c.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := c.s.network(r); got != c.want {
			t.Errorf("network(%s, %q, forwarded=%v) = %q, want %q", c.remote, c.xff, c.s.cfg.ForwardedFor, got, c.want)
		}
	}
}
