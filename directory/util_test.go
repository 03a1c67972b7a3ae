package directory_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"blindex.dev/blindex/directory/datadir"
	"blindex.dev/blindex/internal/httpsig"
)

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
}

func signRequest(r *http.Request, body []byte, s signer) error {
	return httpsig.Sign(r, body, s.key, s.cert, time.Now())
}

// pendingRows counts verification rows straight from the database file.
func pendingRows(t *testing.T, e *env) int {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(e.dir, "server", datadir.DBFile)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM verifications").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func publicKeyDER(t *testing.T) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	return b
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
