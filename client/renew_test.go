package client_test

import (
	"crypto/sha256"
	"testing"

	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/internal/sms"
)

// A renewal signs the owner's records again under the new credential, so a
// caller sees them vouched for by it (and they do not go stale RecordGrace
// after the old one ends).
func TestRenewRepublishes(t *testing.T) {
	inbox := sms.NewInbox()
	srv := startServer(t, inbox, directory.Config{MinBucketOwners: 1})
	const bob, carol = "+14155550100", "+14155552671"
	owner := register(t, srv, inbox, t.TempDir(), bob, 0)
	caller := register(t, srv, inbox, t.TempDir(), carol, 0)
	publishPublic(t, owner, "https://chat.example.org/u/bob")

	certHash := func() [32]byte {
		chain, _, err := owner.Chain()
		if err != nil {
			t.Fatal(err)
		}
		return sha256.Sum256(chain[0])
	}
	vouchedFor := func() [32]byte {
		res, err := caller.Lookup(t.Context(), bob)
		if err != nil {
			t.Fatal(err)
		}
		if len(res[0].Records) != 1 || len(res[0].Dropped) != 0 {
			t.Fatalf("lookup: %d records, dropped %v", len(res[0].Records), res[0].Dropped)
		}
		return res[0].Vouched[0].Attestation.CertHash
	}
	old := certHash()
	if got := vouchedFor(); got != old {
		t.Fatalf("record vouched for by credential %x, want the owner's %x", got[:4], old[:4])
	}
	if err := owner.Renew(t.Context()); err != nil {
		t.Fatal(err)
	}
	renewed := certHash()
	if renewed == old {
		t.Fatal("renewal kept the certificate")
	}
	if got := vouchedFor(); got != renewed {
		t.Errorf("after renewal the record is vouched for by %x, want the renewed credential %x", got[:4], renewed[:4])
	}
}
