package client

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"blindex.dev/blindex/credential"
	"blindex.dev/blindex/internal/api"
)

// checkIssued refuses a credential that Confirm or Renew did not ask for.
func TestCheckIssued(t *testing.T) {
	now := time.Now()
	ca, err := credential.GenerateCA("test CA", now)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	issue := func(number string, k *ecdsa.PrivateKey) api.VerifyConfirmResponse {
		der, err := ca.Issue(number, &k.PublicKey, time.Hour, now, now)
		if err != nil {
			t.Fatal(err)
		}
		att, err := ca.Attest(der)
		if err != nil {
			t.Fatal(err)
		}
		return api.VerifyConfirmResponse{Certificate: der, Chain: [][]byte{ca.Root().Raw}, Attestation: att}
	}
	const number = "+14155550100"
	if err := checkIssued(issue(number, key), &key.PublicKey, number, "the CA"); err != nil {
		t.Fatalf("the credential asked for: %v", err)
	}
	garbled := issue(number, key)
	garbled.Certificate = garbled.Certificate[:len(garbled.Certificate)-1]
	noAttestation := issue(number, key)
	noAttestation.Attestation = nil
	otherAttestation := issue(number, key)
	otherAttestation.Attestation = issue(number, key).Attestation // another certificate's
	forgedAttestation := issue(number, key)
	forgedAttestation.Attestation[len(forgedAttestation.Attestation)-1] ^= 1
	otherCA, err := credential.GenerateCA("other CA", now)
	if err != nil {
		t.Fatal(err)
	}
	otherRoot := issue(number, key)
	otherRoot.Chain = [][]byte{otherCA.Root().Raw}
	for _, c := range []struct {
		name string
		resp api.VerifyConfirmResponse
		want string
	}{
		{"unreadable", garbled, "the directory returned an unreadable credential"},
		{"another key", issue(number, other), "the directory returned a credential for another key"},
		{"another number", issue("+14155550101", key), "the directory returned a credential for another number"},
		{"no attestation", noAttestation, "the directory returned no valid attestation"},
		{"another certificate's attestation", otherAttestation, "an attestation that does not match"},
		{"forged attestation", forgedAttestation, "an attestation that does not match"},
		{"attestation under another root", otherRoot, "an attestation that does not match"},
	} {
		if err := checkIssued(c.resp, &key.PublicKey, number, "the directory"); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}
