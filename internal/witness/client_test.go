package witness_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"blindex.dev/blindex/internal/witness"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// fake starts an HTTP server answering add-checkpoint with h, and returns a
// Witness for it whose cosignatures verify under vkey.
func fake(t *testing.T, vkey string, h http.HandlerFunc) *witness.Witness {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /add-checkpoint", h)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("unexpected request %s %s", r.Method, r.URL)
		http.NotFound(w, r)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	w, err := witness.New(srv.URL+"/", vkey)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestAddCheckpointRequestAndResponse(t *testing.T) {
	l := newTestLog(t, "log.example.com/a")
	l.grow(t, 9, "")
	cp := l.checkpoint(t, 9)
	proof := l.proof(t, 9, 5)
	cs := newCosigner(t, "witness.example.com/w")
	stranger := newCosigner(t, "witness.example.com/stranger")

	var got []byte
	w := fake(t, cs.Verifier().String(), func(rw http.ResponseWriter, r *http.Request) {
		got, _ = io.ReadAll(r.Body)
		// Another key's cosignature first, which the client must drop.
		rw.Write(cosignLines(t, cp, stranger))
		rw.Write(cosignLines(t, cp, cs))
	})
	sigs, err := w.AddCheckpoint(t.Context(), 5, proof, cp)
	if err != nil {
		t.Fatal(err)
	}

	var want bytes.Buffer
	want.WriteString("old 5\n")
	for _, h := range proof {
		want.WriteString(h.String() + "\n")
	}
	want.WriteString("\n")
	want.Write(cp)
	if !bytes.Equal(got, want.Bytes()) {
		t.Errorf("request body:\n%s\nwant:\n%s", got, want.Bytes())
	}

	if strings.Count(string(sigs), "\n") != 1 {
		t.Errorf("got %d signature lines, want 1:\n%s", strings.Count(string(sigs), "\n"), sigs)
	}
	if !strings.HasPrefix(string(sigs), "— witness.example.com/w ") {
		t.Errorf("signature lines %q are not the witness's", sigs)
	}
	cosigned := append(append([]byte{}, cp...), sigs...)
	if _, err := witness.RequireCosignatures(cosigned, l.verifier(t), []note.Verifier{cs.Verifier()}, 1); err != nil {
		t.Errorf("cosigned checkpoint rejected: %v", err)
	}
}

func TestAddCheckpointFirstRequest(t *testing.T) {
	l := newTestLog(t, "log.example.com/a")
	l.grow(t, 1, "")
	cp := l.checkpoint(t, 1)
	cs := newCosigner(t, "witness.example.com/w")
	w := fake(t, cs.Verifier().String(), func(rw http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if want := "old 0\n\n" + string(cp); string(b) != want {
			t.Errorf("request body %q, want %q", b, want)
		}
		rw.Write(cosignLines(t, cp, cs))
	})
	if _, err := w.AddCheckpoint(t.Context(), 0, nil, cp); err != nil {
		t.Fatal(err)
	}
}

func TestAddCheckpointRefusals(t *testing.T) {
	l := newTestLog(t, "log.example.com/a")
	l.grow(t, 3, "")
	cp := l.checkpoint(t, 3)
	cs := newCosigner(t, "witness.example.com/w")
	tests := []struct {
		status int
		want   error
	}{
		{http.StatusBadRequest, witness.ErrBadRequest},
		{http.StatusForbidden, witness.ErrForbidden},
		{http.StatusNotFound, witness.ErrUnknownLog},
		{http.StatusUnprocessableEntity, witness.ErrInconsistent},
		{http.StatusInternalServerError, witness.ErrUnexpectedStatus},
		{http.StatusTooManyRequests, witness.ErrUnexpectedStatus},
		{http.StatusAccepted, witness.ErrUnexpectedStatus},
		{http.StatusMovedPermanently, witness.ErrUnexpectedStatus},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			w := fake(t, cs.Verifier().String(), func(rw http.ResponseWriter, r *http.Request) {
				rw.WriteHeader(tt.status)
				io.WriteString(rw, "witness secret detail "+strings.Repeat("x", 10000))
			})
			sigs, err := w.AddCheckpoint(t.Context(), 0, nil, cp)
			if !errors.Is(err, tt.want) || sigs != nil {
				t.Fatalf("AddCheckpoint = %q, %v; want %v", sigs, err, tt.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q echoes the response body", err)
			}
		})
	}
}

func TestAddCheckpointConflict(t *testing.T) {
	l := newTestLog(t, "log.example.com/a")
	l.grow(t, 3, "")
	cp := l.checkpoint(t, 3)
	cs := newCosigner(t, "witness.example.com/w")
	tests := []struct {
		desc        string
		contentType string
		body        string
		size        int64 // -1 for ErrMalformedResponse
	}{
		{"size", "text/x.tlog.size", "7\n", 7},
		{"zero", "text/x.tlog.size", "0\n", 0},
		{"max", "text/x.tlog.size", "9223372036854775807\n", 9223372036854775807},
		{"content type parameter", "text/x.tlog.size; charset=utf-8", "7\n", 7},
		{"no content type", "", "7\n", -1},
		{"plain text", "text/plain; charset=utf-8", "7\n", -1},
		{"no newline", "text/x.tlog.size", "7", -1},
		{"two newlines", "text/x.tlog.size", "7\n\n", -1},
		{"leading zero", "text/x.tlog.size", "07\n", -1},
		{"plus sign", "text/x.tlog.size", "+7\n", -1},
		{"negative", "text/x.tlog.size", "-1\n", -1},
		{"overflow", "text/x.tlog.size", "9223372036854775808\n", -1},
		{"space", "text/x.tlog.size", " 7\n", -1},
		{"crlf", "text/x.tlog.size", "7\r\n", -1},
		{"not a number", "text/x.tlog.size", "conflict\n", -1},
		{"empty", "text/x.tlog.size", "", -1},
		{"huge", "text/x.tlog.size", strings.Repeat("1", 1<<20) + "\n", -1},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			w := fake(t, cs.Verifier().String(), func(rw http.ResponseWriter, r *http.Request) {
				if tt.contentType != "" {
					rw.Header().Set("Content-Type", tt.contentType)
				} else {
					rw.Header()["Content-Type"] = nil // no sniffing
				}
				rw.WriteHeader(http.StatusConflict)
				io.WriteString(rw, tt.body)
			})
			_, err := w.AddCheckpoint(t.Context(), 0, nil, cp)
			if tt.size < 0 {
				if !errors.Is(err, witness.ErrMalformedResponse) {
					t.Fatalf("err = %v, want ErrMalformedResponse", err)
				}
				return
			}
			var conflict *witness.ConflictError
			if !errors.As(err, &conflict) || conflict.Size != tt.size {
				t.Fatalf("err = %v, want ConflictError{Size: %d}", err, tt.size)
			}
		})
	}
}

func TestAddCheckpointMalformedCosignatures(t *testing.T) {
	l := newTestLog(t, "log.example.com/a")
	l.grow(t, 3, "")
	cp := l.checkpoint(t, 3)
	otherCp := l.checkpoint(t, 2)
	cs := newCosigner(t, "witness.example.com/w")
	impostor := newCosigner(t, "witness.example.com/w") // same name, other key
	good := cosignLines(t, cp, cs)
	line := strings.TrimSuffix(string(good), "\n")
	i := strings.LastIndex(line, " ")
	raw, err := base64.StdEncoding.DecodeString(line[i+1:])
	if err != nil {
		t.Fatal(err)
	}
	truncated := line[:i+1] + base64.StdEncoding.EncodeToString(raw[:len(raw)-1]) + "\n"
	tests := []struct {
		desc string
		body []byte
		want error
	}{
		{"empty", nil, witness.ErrMalformedResponse},
		{"no newline", bytes.TrimSuffix(good, []byte("\n")), witness.ErrMalformedResponse},
		{"garbage", []byte("hello\n"), witness.ErrMalformedResponse},
		{"html", []byte("<html>ok</html>\n"), witness.ErrMalformedResponse},
		{"blank line first", append([]byte("\n"), good...), witness.ErrMalformedResponse},
		{"blank line after", append(append([]byte{}, good...), '\n'), witness.ErrMalformedResponse},
		{"text smuggled before the signatures", append([]byte("x\n\n"), good...), witness.ErrMalformedResponse},
		{"control character", append([]byte("\x00"), good...), witness.ErrMalformedResponse},
		{"bad base64", []byte("— witness.example.com/w !!!!\n"), witness.ErrMalformedResponse},
		{"too large", append(bytes.Repeat(cosignLines(t, cp, newCosigner(t, "x.example/y")), 2000), good...), witness.ErrMalformedResponse},
		{"only unknown keys", cosignLines(t, cp, newCosigner(t, "witness.example.com/other")), witness.ErrNoCosignature},
		{"impostor key", cosignLines(t, cp, impostor), witness.ErrNoCosignature},
		{"log signature echoed", cosignLines(t, cp, l.signer), witness.ErrNoCosignature},
		{"cosignature of another checkpoint", cosignLines(t, otherCp, cs), witness.ErrNoCosignature},
		{"truncated cosignature", []byte(truncated), witness.ErrNoCosignature},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			w := fake(t, cs.Verifier().String(), func(rw http.ResponseWriter, r *http.Request) {
				rw.Write(tt.body)
			})
			sigs, err := w.AddCheckpoint(t.Context(), 0, nil, cp)
			if !errors.Is(err, tt.want) || sigs != nil {
				t.Fatalf("AddCheckpoint = %q, %v; want %v", sigs, err, tt.want)
			}
		})
	}
}

func TestAddCheckpointArguments(t *testing.T) {
	l := newTestLog(t, "log.example.com/a")
	l.grow(t, 5, "")
	cp := l.checkpoint(t, 5)
	cs := newCosigner(t, "witness.example.com/w")
	w := fake(t, cs.Verifier().String(), func(rw http.ResponseWriter, r *http.Request) {
		t.Error("request sent for invalid arguments")
	})
	long := make(tlog.TreeProof, 64)
	tests := []struct {
		desc  string
		old   int64
		proof tlog.TreeProof
		cp    []byte
		want  error
	}{
		{"negative old size", -1, nil, cp, witness.ErrInvalidArgument},
		{"old size beyond checkpoint", 6, nil, cp, witness.ErrInvalidArgument},
		{"proof from zero", 0, l.proof(t, 5, 1), cp, witness.ErrInvalidArgument},
		{"proof too long", 1, long, cp, witness.ErrInvalidArgument},
		{"unsigned", 0, nil, []byte(l.text(t, 5)), witness.ErrMalformedCheckpoint},
		{"not a checkpoint", 0, nil, l.sign(t, "hello\n"), witness.ErrMalformedCheckpoint},
		{"empty", 0, nil, nil, witness.ErrMalformedCheckpoint},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			if _, err := w.AddCheckpoint(t.Context(), tt.old, tt.proof, tt.cp); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := (&witness.Witness{URL: w.URL}).AddCheckpoint(t.Context(), 0, nil, cp); !errors.Is(err, witness.ErrInvalidArgument) {
		t.Errorf("no verifier: err = %v, want ErrInvalidArgument", err)
	}
}

func TestAddCheckpointTimeout(t *testing.T) {
	l := newTestLog(t, "log.example.com/a")
	l.grow(t, 1, "")
	cs := newCosigner(t, "witness.example.com/w")
	release := make(chan struct{})
	w := fake(t, cs.Verifier().String(), func(rw http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select { // a witness that does not answer
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := w.AddCheckpoint(ctx, 0, nil, l.checkpoint(t, 1))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestNew(t *testing.T) {
	vkey := newCosigner(t, "witness.example.com/w").Verifier().String()
	for _, u := range []string{"", "witness.example.com", "ftp://witness.example.com", "http://", "/add-checkpoint", "https://w.example/?a=b", "https://w.example/#x", "http://[::1"} {
		if _, err := witness.New(u, vkey); !errors.Is(err, witness.ErrInvalidArgument) {
			t.Errorf("New(%q): err = %v, want ErrInvalidArgument", u, err)
		}
	}
	if _, err := witness.New("https://witness.example.com/prefix", "bad"); !errors.Is(err, witness.ErrMalformedVerifierKey) {
		t.Errorf("bad vkey: err = %v", err)
	}
	w, err := witness.New("https://witness.example.com/prefix", vkey)
	if err != nil || w.URL != "https://witness.example.com/prefix" || w.Verifier == nil {
		t.Errorf("New = %+v, %v", w, err)
	}
}
