// Package threatmodel states, as Go values, what each party of blindex can
// and cannot learn, and names the test that checks each claim. The
// disclosure table in docs/threat-model.md is generated from these values,
// and this package's tests fail if a claim names no test, names a test that
// does not exist, or if the document and the values drift apart.
package threatmodel

import (
	"fmt"
	"strings"
)

// A Claim is one party's disclosure: what it learns and what it never
// learns, with the tests ("dir.TestName", dir relative to the module root)
// that check it.
type Claim struct {
	Party       string
	Learns      string
	NeverLearns string
	Tests       []string
}

// Claims are blindex's disclosure claims, one per party.
var Claims = []Claim{
	{
		Party:       "directory at lookup",
		Learns:      "the caller, how many numbers it blinded, the buckets it fetched (of how many)",
		NeverLearns: "the looked-up numbers; which record in a bucket was wanted",
		Tests: []string{
			"threatmodel/privacyharness.TestInvariants",
			"server/demo.TestDemo",
			"oprf.TestRoundTripMatchesFullEvaluate",
		},
	},
	{
		Party:       "directory at rest (database, WAL, logs, metrics, transcript)",
		Learns:      "indexes, caller pseudonyms, ciphertexts, ACL sets, holder key hashes, tombstones",
		NeverLearns: "any plaintext number, including pending verifications; any record plaintext",
		Tests: []string{
			"threatmodel/privacyharness.TestInvariants",
			"cmd/blindex.TestStoryThroughCLI",
			"directory/sqlite.TestDeletedDataGone",
		},
	},
	{
		Party:       "CA",
		Learns:      "the number being verified, while the verification is pending",
		NeverLearns: "lookups, records, access lists; the number after verification ends",
		Tests: []string{
			"cmd/blindex.TestTwoCAsAndInvites",
			"directory.TestOTP",
		},
	},
	{
		Party:       "caller",
		Learns:      "the records whose owners admit it",
		NeverLearns: "whether a number is registered when it is not admitted; other owners' records",
		Tests: []string{
			"threatmodel/privacyharness.TestInvariants",
			"directory.TestDeniedLooksAbsent",
			"directory.TestStory",
		},
	},
	{
		Party:       "enumerating caller",
		Learns:      "at most its budget of numbers: a one-time burst, then a daily refill, per number it holds",
		NeverLearns: "numbers beyond its budget; buckets beyond the evaluations it bought",
		Tests: []string{
			"directory.TestEnumeration",
			"directory.TestVerificationLimits",
		},
	},
	{
		Party:       "new holder of a number (another app, a recycled number's new owner, a hijacker)",
		Learns:      "the other holders' records only as their access lists admit its number, as any caller; that they exist, from the log (their joins and its notices)",
		NeverLearns: "the other holders' records or access lists beyond what a caller sees; the power to evict a holder that joined before it",
		Tests: []string{
			"directory.TestSeveralApps",
			"directory.TestHiddenLooksAbsent",
			"directory.TestEvict",
			"directory.TestDecideEvict",
		},
	},
	{
		Party:       "directory of a federation, at a lookup",
		Learns:      "that the caller looked up numbers in its own range: how many, and their buckets",
		NeverLearns: "the caller's numbers in other directories' ranges, or how many there were",
		Tests: []string{
			"client.TestFederatedLookup",
			"cmd/blindex.TestFederationThroughCLI",
		},
	},
	{
		Party:       "log reader (anyone)",
		Learns:      "entry counts and times, log labels, certificate and key hashes with validity, owners' state commitments, the OPRF public key and CA roots",
		NeverLearns: "numbers, record contents, ACL members; a number's label without an evaluation from the label budget",
		Tests: []string{
			"cmd/blindex.TestStoryThroughCLI",
			"cmd/blindex.TestHijackThroughCLI",
			"threatmodel/privacyscan.TestFindsHashes",
			"translog.TestEntryRoundTrip",
		},
	},
	{
		Party:       "owner running the monitor",
		Learns:      "every credential and holder change for its own number, and whether the directory's stored and logged state equals what it published",
		NeverLearns: "other owners' numbers (it sees their labels only)",
		Tests: []string{
			"client.TestMonitorCatchesHijack",
			"client.TestMonitorCatchesDatabaseEdit",
			"client.TestForkAndRollbackDetected",
			"cmd/blindex.TestHijackThroughCLI",
		},
	},
	{
		Party:       "callee of an invite",
		Learns:      "the caller's number and credential chain",
		NeverLearns: "anything else about the caller",
		Tests: []string{
			"passport.TestSignVerify",
			"cmd/blindex.TestTwoCAsAndInvites",
		},
	},
	{
		Party:       "network observer (with TLS in front)",
		Learns:      "request sizes and timing",
		NeverLearns: "the numbers; a replayable request",
		Tests: []string{
			"directory.TestReplay",
			"directory.TestReplayAfterRestart",
			"internal/httpsig.TestVerify",
		},
	},
	{
		Party:       "database thief without the key files",
		Learns:      "ciphertexts, indexes, pseudonyms, ACL sets",
		NeverLearns: "numbers, record contents, pending SMS codes",
		Tests: []string{
			"cmd/blindex.TestStoryThroughCLI",
			"internal/keyfile.TestRoundTripAndModes",
			"ca.TestDatabaseHoldsNoUnkeyedCode",
		},
	},
}

// Table renders the claims as the Markdown disclosure table of
// docs/threat-model.md.
func Table() string {
	var b strings.Builder
	b.WriteString("| party | learns | never learns | checked by |\n|---|---|---|---|\n")
	for _, c := range Claims {
		tests := make([]string, len(c.Tests))
		for i, t := range c.Tests {
			tests[i] = "`" + t + "`"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", c.Party, c.Learns, c.NeverLearns, strings.Join(tests, ", "))
	}
	return b.String()
}
