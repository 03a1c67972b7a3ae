package record

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"blindex.dev/blindex/credential"
	"blindex.dev/blindex/oprf"
	"blindex.dev/blindex/translog"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/mod/sumdb/note"
)

// protocolVectors reads the named values of docs/protocol.md, Appendix A.2
// to A.5: lines of a code block with a name, at least two spaces and a
// value from column 26 on, and hex continuation lines aligned under it.
func protocolVectors(t *testing.T) (doc string, v map[string]string) {
	t.Helper()
	b, err := os.ReadFile("../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	_, appendix, ok := strings.Cut(string(b), "\n### A.2 Attestation\n")
	if !ok {
		t.Fatal("docs/protocol.md has no Appendix A.2")
	}
	v = map[string]string{}
	last := ""
	hexOnly := regexp.MustCompile(`^[0-9a-f]+$`)
	for line := range strings.SplitSeq(appendix, "\n") {
		if len(line) <= 26 || !strings.HasPrefix(line, "    ") || line[24:26] != "  " {
			last = ""
			continue
		}
		name, value := strings.TrimSpace(line[4:26]), line[26:]
		switch {
		case name == "" && last != "" && hexOnly.MatchString(value):
			v[last] += value
		case name != "" && !strings.Contains(value, " "):
			if _, dup := v[name]; dup {
				t.Fatalf("Appendix A names %q twice", name)
			}
			v[name], last = value, name
		default:
			last = ""
		}
	}
	return string(b), v
}

// TestProtocolProofVectors recomputes the attestation, log promise,
// publisher proof and envelope vectors of docs/protocol.md (Appendix A.2 to
// A.5) from
// their fixed inputs, as §11.1 and §14.7 specify them, checks the signed
// digests and the deterministic promise byte for byte, and checks that
// the document's full examples verify, so the document cannot drift from
// the code.
func TestProtocolProofVectors(t *testing.T) {
	doc, v := protocolVectors(t)
	get := func(name string) []byte {
		t.Helper()
		s, ok := v[name]
		if !ok {
			t.Fatalf("Appendix A lacks %q", name)
		}
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return b
	}
	unix := func(name string) time.Time {
		t.Helper()
		n, err := strconv.ParseInt(v[name], 10, 64)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return time.Unix(n, 0).UTC()
	}
	same := func(name string, got []byte) {
		t.Helper()
		if want := get(name); !bytes.Equal(got, want) {
			t.Errorf("%s = %x, the document says %x", name, got, want)
		}
	}
	contains := func(what, s string) {
		t.Helper()
		if !strings.Contains(doc, s) {
			t.Errorf("docs/protocol.md lacks %s:\n%s", what, s)
		}
	}
	indented := func(s string) string {
		var b strings.Builder
		for l := range strings.SplitSeq(strings.TrimSuffix(s, "\n"), "\n") {
			b.WriteString(strings.TrimRight("    "+l, " ") + "\n")
		}
		return b.String()
	}
	sum := func(parts ...[]byte) []byte {
		h := sha256.Sum256(bytes.Join(parts, nil))
		return h[:]
	}
	be64 := func(tm time.Time) []byte { return binary.BigEndian.AppendUint64(nil, uint64(tm.Unix())) }
	number := "+14155550100"

	// A.2: the keys, the root and the attestation.
	same("root scalar", sum([]byte("root")))
	same("credential scalar", sum([]byte("credential")))
	rootKey, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), get("root scalar"))
	if err != nil {
		t.Fatal(err)
	}
	credKey, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), get("credential scalar"))
	if err != nil {
		t.Fatal(err)
	}
	rootDER := get("root certificate")
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(rootKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := credential.NewCA(rootDER, pkcs8) // the root is a CA for the root key
	if err != nil {
		t.Fatal(err)
	}
	if root.Subject.CommonName != "blindex CA" || root.SerialNumber.Cmp(big.NewInt(1)) != 0 || !root.MaxPathLenZero {
		t.Errorf("root certificate: subject %v, serial %v, pathLen 0 %v", root.Subject, root.SerialNumber, root.MaxPathLenZero)
	}
	same("cert hash", sum([]byte("cert")))
	certHash := [32]byte(get("cert hash"))
	proofTime, notBefore, notAfter := unix("proof time"), unix("not before"), unix("not after")
	if !notBefore.Equal(proofTime.Add(-time.Minute)) || !notAfter.Equal(proofTime.Add(30*24*time.Hour)) {
		t.Errorf("validity %v to %v does not follow the proof time %v as §6 does", notBefore, notAfter, proofTime)
	}
	rootHash := sum(rootDER)
	same("root sha256", rootHash)
	same("root id", rootHash[:8])
	u, err := credKey.PublicKey.Bytes() // 0x04 || x || y
	if err != nil {
		t.Fatal(err)
	}
	compressed := append([]byte{0x02 | u[64]&1}, u[1:33]...)
	same("compressed key", compressed)
	body := bytes.Join([][]byte{{1, byte(len(number) - 1)}, []byte(number[1:]), certHash[:], compressed,
		be64(proofTime), be64(notBefore), be64(notAfter), rootHash[:8]}, nil)
	same("attestation body", body)
	attDigest := sum([]byte("blindex attestation v1"), []byte{0}, rootHash, body)
	same("attestation digest", attDigest)
	att := get("attestation")
	if len(att) != 163+11 || !bytes.Equal(att[:len(att)-64], body) {
		t.Fatalf("attestation (%d bytes) does not start with its body", len(att))
	}
	if !ecdsa.Verify(&rootKey.PublicKey, attDigest, new(big.Int).SetBytes(att[110:142]), new(big.Int).SetBytes(att[142:])) {
		t.Error("the document's attestation signature does not verify over its digest")
	}
	a, err := credential.ParseAttestation(att)
	if err != nil {
		t.Fatal(err)
	}
	if a.Number != number || a.CertHash != certHash || !a.PublicKey.Equal(&credKey.PublicKey) || !a.ProofTime.Equal(proofTime) ||
		!a.NotBefore.Equal(notBefore) || !a.NotAfter.Equal(notAfter) || a.RootID != credential.RootID(root) {
		t.Errorf("ParseAttestation(the document's) = %+v", a)
	}
	if got, err := a.Verify([]*x509.Certificate{root}); err != nil || got != root {
		t.Errorf("Verify(the document's attestation) = %v, %v", got, err)
	}
	// The CA's own attestations follow the same layout and digest.
	leafDER, err := ca.Issue(number, credKey.Public(), notAfter.Sub(proofTime), proofTime, proofTime)
	if err != nil {
		t.Fatal(err)
	}
	mine, err := ca.Attest(leafDER)
	if err != nil {
		t.Fatal(err)
	}
	leafHash := sha256.Sum256(leafDER)
	mineBody := bytes.Join([][]byte{body[:13], leafHash[:], body[45:]}, nil)
	if !bytes.Equal(mine[:len(mine)-64], mineBody) ||
		!ecdsa.Verify(&rootKey.PublicKey, sum([]byte("blindex attestation v1"), []byte{0}, rootHash, mineBody),
			new(big.Int).SetBytes(mine[110:142]), new(big.Int).SetBytes(mine[142:])) {
		t.Errorf("CA.Attest = %x, want the body %x signed as §11.1 says", mine, mineBody)
	}

	// A.3: the log key and the promise, which Ed25519 makes exact.
	same("log key seed", sum([]byte("log")))
	name := "blindex.invalid/log/a1b2c3d4"
	edKey := ed25519.NewKeyFromSeed(get("log key seed"))
	vkey, err := note.NewEd25519VerifierKey(name, edKey.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	if vkey != v["log verifier key"] {
		t.Errorf("log verifier key = %s, the document says %s", vkey, v["log verifier key"])
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	skey := fmt.Sprintf("PRIVATE+KEY+%s+%08x+%s", name, verifier.KeyHash(), base64.StdEncoding.EncodeToString(append([]byte{1}, edKey.Seed()...)))
	if skey != v["log private key"] {
		t.Errorf("log private key = %s, the document says %s", skey, v["log private key"])
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	skS := regexp.MustCompile("`skS = ([0-9a-f]{64})`").FindStringSubmatch(doc)
	if skS == nil {
		t.Fatal("docs/protocol.md, Appendix A, lacks skS")
	}
	skBytes, _ := hex.DecodeString(skS[1])
	sk, err := oprf.ParsePrivateKey(skBytes)
	if err != nil {
		t.Fatal(err)
	}
	ev := oprf.NewEvaluator(sk)
	yL, err := ev.FullEvaluate([]byte(labelInfo), []byte(number))
	if err != nil {
		t.Fatal(err)
	}
	label := oprf.LogLabel(yL)
	spki, err := x509.MarshalPKIXPublicKey(&credKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := translog.CredentialEntryOf(label, certHash, [32]byte(sum(spki)), [32]byte(rootHash), notBefore, notAfter)
	if err != nil {
		t.Fatal(err)
	}
	contains("the credential entry", indented(string(entry)))
	contains("the credential entry's size", fmt.Sprintf("(%d bytes)", len(entry)))
	contains("the key hash", hex.EncodeToString(sum(spki)))
	leaf := base64.StdEncoding.EncodeToString(sum([]byte{0}, entry))
	promiseTime := time.Unix(1796644805, 0).UTC()
	text := "blindex log promise v1\n" + name + "\n" + strconv.FormatInt(promiseTime.Unix(), 10) + "\n" + leaf + "\n"
	contains("the promise's signed text", "signs the text\n\n"+indented(text))
	sig := ed25519.Sign(edKey, []byte(text))
	same("promise signature", sig)
	promise, err := translog.SignPromise(signer, entry, promiseTime)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(promise.Signature[:], sig) {
		t.Errorf("SignPromise = %x, want %x", promise.Signature, sig)
	}
	if err := translog.VerifyPromise(verifier, entry, promise); err != nil {
		t.Errorf("VerifyPromise: %v", err)
	}
	evidence := promise.Note(verifier, entry)
	contains("the promise as evidence", indented(string(evidence)))
	if n, err := note.Open(evidence, note.VerifierList(verifier)); err != nil || n.Text != text {
		t.Errorf("note.Open(evidence) = %v, %v", n, err)
	}

	// A.4: the record, the proof and its digest, and the whole example.
	m := regexp.MustCompile(`(?m)^    (\{"app".*\})$`).FindStringSubmatch(doc)
	if m == nil {
		t.Fatal("Appendix A.4 lacks the record's JSON")
	}
	var rec Record
	dec := json.NewDecoder(strings.NewReader(m[1]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		t.Fatal(err)
	}
	js, err := encodeJSON(rec)
	if err != nil {
		t.Fatal(err)
	}
	if string(js) != m[1] {
		t.Errorf("the record encodes as %s, the document says %s", js, m[1])
	}
	contains("the JSON's size", fmt.Sprintf("Its JSON (%d bytes)", len(js)))
	unblinded, err := oprf.Unblinded([]byte(number))
	if err != nil {
		t.Fatal(err)
	}
	elements, _, err := ev.Evaluate([]byte(labelInfo), [][]byte{unblinded})
	if err != nil {
		t.Fatal(err)
	}
	same("label element", elements[0])
	y, err := oprf.VerifyProved(sk.Public(), []byte(labelInfo), []byte(number), get("label element"), get("label proof"))
	if err != nil || !bytes.Equal(y, yL) {
		t.Errorf("the document's label proof: %v (output %x, want y_L %x)", err, y, yL)
	}
	signed := time.Unix(1796644860, 0).UTC()
	unsigned := bytes.Join([][]byte{{1, byte(len(att))}, att, be64(signed), get("label element"), get("label proof"),
		be64(promiseTime), sig}, nil)
	same("unsigned proof", unsigned)
	prefixed := binary.BigEndian.AppendUint16(nil, uint16(len(js)))
	prefixed = append(prefixed, js...)
	digest := sum([]byte("blindex record signature v1"), []byte{0}, prefixed, unsigned)
	same("signature digest", digest)
	proof := get("proof")
	if len(proof) != 242+len(att) || !bytes.Equal(proof[:len(unsigned)], unsigned) {
		t.Fatalf("proof (%d bytes) does not start with the unsigned proof", len(proof))
	}
	if !ecdsa.Verify(&credKey.PublicKey, digest, new(big.Int).SetBytes(proof[352:384]), new(big.Int).SetBytes(proof[384:])) {
		t.Error("the document's publisher signature does not verify over its digest")
	}
	body = bytes.Join([][]byte{prefixed, binary.BigEndian.AppendUint16(nil, uint16(len(proof))), proof}, nil)
	contains("the payload's layout", fmt.Sprintf("`L` (%04x), the JSON, `L'` (%04x), the proof and\n%d zero bytes: %d bytes, the second class",
		len(js), len(proof), SizeClasses[1]-len(body), SizeClasses[1]))
	padded, err := pad(body)
	if err != nil || len(padded) != SizeClasses[1] {
		t.Fatalf("padded to %d bytes: %v", len(padded), err)
	}

	// A.5: the payload sealed in envelope v2 under the record key of
	// Appendix A, with a fixed nonce, byte for byte.
	yLookup, err := ev.FullEvaluate([]byte("blindex lookup v1"), []byte(number))
	if err != nil {
		t.Fatal(err)
	}
	recordKey := oprf.RecordKey(yLookup)
	same("record key", recordKey[:])
	envKey, err := hkdf.Key(sha256.New, recordKey[:], nil, "blindex record envelope v2", 32)
	if err != nil {
		t.Fatal(err)
	}
	same("envelope key", envKey)
	nonce := get("nonce")
	for i, b := range nonce {
		if b != byte(i) || len(nonce) != 24 {
			t.Fatalf("nonce = %x, want the 24 bytes 00 to 17", nonce)
		}
	}
	aead, err := chacha20poly1305.NewX(envKey)
	if err != nil {
		t.Fatal(err)
	}
	byHand := append(append([]byte{2}, nonce...), aead.Seal(nil, nonce, padded, []byte("blindex record v2"))...)
	ct, err := sealNonce(recordKey, nonce, padded)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ct, byHand) {
		t.Errorf("sealNonce = %x, want %x as §11 specifies", ct, byHand)
	}
	same("sealed record", ct)
	contains("the sealed size", fmt.Sprintf("(%d bytes, 41 more than the class)", len(ct)))
	if len(ct) != envelopeOverhead+SizeClasses[1] || !ValidCiphertextSize(len(ct)) {
		t.Errorf("sealed example is %d bytes, want %d", len(ct), envelopeOverhead+SizeClasses[1])
	}
	r, p, err := OpenProved(recordKey, get("sealed record"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p.signed, digest) {
		t.Errorf("OpenProved's signed digest = %x, want %x", p.signed, digest)
	}
	trust := Trust{Roots: []*x509.Certificate{root}, OPRFKey: sk.Public(), LogKey: verifier}
	now := time.Unix(1796648400, 0).UTC()
	got, err := p.Verify(r, number, now, trust)
	if err != nil {
		t.Fatalf("the document's example: Verify: %v", err)
	}
	if got.Root != root || !got.Logged || !bytes.Equal(got.Entry, entry) || got.Label != label || !got.Signed.Equal(signed) {
		t.Errorf("Verified = %+v", got)
	}
	// The same example under another caller's trust, and too late.
	if _, err := p.Verify(r, number, now, Trust{OPRFKey: sk.Public(), LogKey: verifier}); !errors.Is(err, ErrUntrustedCA) {
		t.Errorf("Verify without the root: %v, want ErrUntrustedCA", err)
	}
	if _, err := p.Verify(r, "+14155550101", now, trust); !errors.Is(err, ErrOtherNumber) {
		t.Errorf("Verify for another number: %v, want ErrOtherNumber", err)
	}
	if _, err := p.Verify(r, number, notAfter.Add(RecordGrace+time.Second), trust); !errors.Is(err, ErrStale) {
		t.Errorf("Verify past notAfter + RecordGrace: %v, want ErrStale", err)
	}
}
