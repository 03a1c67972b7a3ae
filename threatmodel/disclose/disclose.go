// Package disclose analyses, for reviewers, what a blindex directory
// discloses, and writes it as a report in Markdown and self-contained HTML.
//
// It reads a server's data directory without writing to it, safely while the
// server runs, and reports in numbers: who is registered and with which
// visibility; among how many owners a lookup hides its target (the sizes of
// the buckets the server cuts the index space into); how long enumerating a
// country's valid numbers takes under the evaluation budgets; and what the
// database reveals to a thief without the key files, and with them. Given an
// owner's client state it adds who can see each of the owner's records, and
// given two ACL files, who gains and who loses visibility.
//
// The database holds no phone number, so the report holds none either,
// except in its owner sections (the HTML section with id OwnerDataID, the
// Markdown between MarkdownOwnerBegin and MarkdownOwnerEnd), which show the
// owner's own local data. The key files are opened only when asked
// (Config.WithKeys), and nothing is ever decrypted into the report.
//
// Performance: over a directory of 1,000,000 owners built by directory/synth
// (1,125,175 records, 1,053,281 ACL entries, a 1.3 GB database), Gather takes
// 5 to 7 seconds on a shared 2-vCPU machine (Go 1.26.8, load average 5 to 8),
// the US numbering-space estimate at 200,000 samples included:
//
//	go test ./threatmodel/disclose -run TestSynthDirectory -v -count=1 \
//		-synth-owners 1000000 -synth-dir /tmp/synth1m
//
// Building that directory took 3 minutes; a second run reuses it.
package disclose

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"blindex.dev/blindex/ca"
	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/directory/datadir"
	"blindex.dev/blindex/internal/bucket"
)

// The analysis's own defaults.
const (
	DefaultCredentials   = 1_000
	DefaultRegion        = "US"
	DefaultSamples       = 200_000
	clientMaxPrefixBits  = 24 // client.Config.MaxPrefixBits default
	keyTimingEvaluations = 200
)

// The server's defaults, as directory has them; docs/operations.md gives
// the reasoning.
const (
	DefaultMinBucketOwners = directory.DefaultMinBucketOwners
	maxPrefixBits          = directory.DefaultMaxPrefixBits
	defaultInfo            = directory.DefaultInfo
)

// The server's budget defaults, as directory.DefaultBudget has them.
var (
	DefaultBurst           = directory.DefaultBudget.Burst
	DefaultPerDay          = directory.DefaultBudget.PerDay
	DefaultGlobalPerSecond = directory.DefaultBudget.GlobalPerSecond
)

// The CA's defaults, as ca.DefaultLimits has them.
var (
	DefaultVerificationsDay = ca.DefaultLimits.GlobalPerDay   // the CA's overall verification starts per day
	DefaultNetworkPerHour   = ca.DefaultLimits.NetworkPerHour // the CA's verification starts per client network per hour
)

// Errors.
var (
	ErrNoDatabase    = errors.New("disclose: no blindex database in the data directory")
	ErrWALWithoutSHM = errors.New("disclose: the database has a write-ahead log but no shared-memory file (did the server stop uncleanly?): " +
		"start and stop the server once, or run disclose on a copy of the data directory")
	ErrRegion    = errors.New("disclose: unknown region")
	ErrPublished = errors.New("disclose: malformed published file")
)

// Config says what to analyse. Zero values take the defaults given.
type Config struct {
	// DataDir is the server's data directory (blindex serve --data).
	// Required. It is only read.
	DataDir string
	// WithKeys opens the key files with the age identity, to check that
	// they decrypt and to measure what their holder can do. Default false:
	// the key files are not read.
	WithKeys bool
	// IdentityPath is the age identity for WithKeys. Default
	// <DataDir>/identity.age-key.
	IdentityPath string
	// MinBucketOwners is the server's --min-bucket-owners. Default 16.
	MinBucketOwners int
	// Budget is the server's evaluation budget. Zero fields take
	// directory.DefaultBudget's.
	Budget directory.Budget
	// VerificationsPerDay is the CA's overall cap on verification starts
	// per day, which bounds how fast an attacker gets credentials.
	// Default 50,000.
	VerificationsPerDay int
	// NetworkPerHour is the CA's cap on verification starts per client
	// network (IPv4 address, IPv6 /64) per hour. Default 30.
	NetworkPerHour int
	// Credentials is how many credentials the many-credential attacker
	// holds. Default 1,000.
	Credentials int
	// Region is the CLDR region whose numbering space the enumeration
	// figures use. Default "US".
	Region string
	// Samples is how many random national numbers are tried per possible
	// length to estimate the numbering space. Default 200,000.
	Samples int
	// OwnerState is a client state directory (blindex --state); its
	// published.json adds the owner view. Optional.
	OwnerState string
	// ACLOld and ACLNew are two files in the published.json shape; they add
	// the ACL diff. Both or neither.
	ACLOld, ACLNew string
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Report is the analysis. Write it with WriteMarkdown and WriteHTML.
type Report struct {
	Generated     time.Time
	DataDir       string
	Opened        string // OpenedLive or OpenedQuiescent
	SchemaVersion int
	Config        Config // with defaults filled in

	Owners         int // distinct indexes with an unexpired record
	Verified       int // numbers (indexes) with at least one holder
	Holders        int // holders: a number has one per key that proved it by SMS
	OnNotice       int // holders on notice: hidden until they prove the number again
	PendingHolders int // verified numbers with no unexpired record
	Verifications  int // pending SMS verifications
	Public         int // unexpired records by visibility
	Allowlist      int
	Nobody         int
	UnknownVis     int
	Expired        int // records past expiry, awaiting housekeeping
	PublicOwners   int // owners with at least one public record
	AllowEdges     int // allow entries (owner record → caller pseudonym)
	AllowCallers   int // distinct caller pseudonyms in allowlists
	AllowOwners    int // owners with at least one allow entry
	DenyEntries    int
	SizeClasses    []SizeClass
	OldestUpdate   time.Time
	NewestUpdate   time.Time
	LinkedBudgets  int    // allowlisted pseudonyms whose budget rows the database links to them
	OPRFPublicKey  []byte // recorded in the database's meta table (public)

	Anonymity   Anonymity
	Enumeration Enumeration
	Database    Database

	Owner    []OwnerRecord // with Config.OwnerState
	ACLDiff  []ACLChange   // with Config.ACLOld and ACLNew
	metaKeys []string
}

// A SizeClass counts records by ciphertext length.
type SizeClass struct {
	Bytes, Records int
}

// Anonymity is the bucket-size distribution among the server's buckets.
type Anonymity struct {
	// Buckets is the directory's bucket count, n = bucket.CountFor(owners,
	// MinBucketOwners, 2^32): the largest k·2^j (8 ≤ k < 16) at most
	// owners / MinBucketOwners, or that quotient itself below 16, at least 1.
	// An owner is in bucket floor(x·n / 2^32), x its index's first 32 bits.
	Buckets  uint64
	NonEmpty int
	// Over the non-empty buckets: a registered target's bucket is never
	// empty. P1 and P5 are the sizes that at least 99% and 95% of them
	// reach.
	Min, P1, P5, Median, Max int
	Mean                     float64 // owners / NonEmpty
	// MeanAll is owners / Buckets, empty buckets included: the mean the
	// rule keeps at MinBucketOwners or more.
	MeanAll float64
	// OwnersBelowTarget counts owners whose bucket holds fewer than
	// MinBucketOwners owners.
	OwnersBelowTarget int
	// Sizes[k] is how many non-empty buckets hold exactly k owners.
	Sizes map[int]int
}

// Enumeration is what walking the numbering space costs.
type Enumeration struct {
	Space                 *Space
	Valid, ValidErr       float64 // estimated valid numbers, standard error
	Mobile, MobileErr     float64
	Rows                  []EnumRow
	CredentialsForAYear   int     // credentials needed to walk the space in a year
	VerifyDaysForAYear    float64 // days of the CA's overall cap those take
	CeilingSeconds        float64 // the global ceiling's floor on any walk, per process
	PublicOwnersReachable int     // owners an enumerator can find: those with a public record
}

// An EnumRow is the time N credentials need to evaluate the whole space.
type EnumRow struct {
	Credentials  int
	Seconds      float64 // the larger of the budget bound and the ceiling bound
	CeilingBound bool    // the per-process ceiling, not the budgets, binds
	VerifyDays   float64 // days of the CA's overall cap that N verifications take
}

// Database is what the data directory holds at rest.
type Database struct {
	Tables        []Table
	Files         []File
	IdentityInDir bool
	Keys          *KeyFindings // with Config.WithKeys
}

// A Table is one table of the database and what it discloses.
type Table struct {
	Name     string
	Rows     int64
	Holds    string // without the key files
	WithKeys string // what the key files add
	Known    bool   // described by this version
}

// A File is one file of the data directory.
type File struct {
	Path    string // relative to the data directory
	Present bool
	Size    int64
	Mode    fs.FileMode
	What    string
}

// KeyFindings is what the key files give their holder, measured without
// decrypting anything from the database.
type KeyFindings struct {
	IdentityPath string
	Err          string // why the keys could not be opened
	OPRFMatches  bool   // the OPRF key is the one the database records
	CAKeyOK      bool   // the CA key decrypts and matches its root
	Evaluations  int
	PerEval      time.Duration // one full OPRF evaluation, one core
	Cores        int
}

// Gather reads the data directory and the owner files and computes the
// report.
func Gather(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	now := cfg.Now()
	// Read the owner files first: a mistyped path should fail before the
	// slow parts.
	var owner, aclOld, aclNew *Published
	var err error
	if cfg.OwnerState != "" {
		if owner, err = LoadPublished(filepath.Join(cfg.OwnerState, PublishedFile)); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("disclose: no %s in %s: give the state directory of a client that has published", PublishedFile, cfg.OwnerState)
			}
			return nil, err
		}
	}
	if cfg.ACLOld != "" {
		if aclOld, err = LoadPublished(cfg.ACLOld); err != nil {
			return nil, err
		}
		if aclNew, err = LoadPublished(cfg.ACLNew); err != nil {
			return nil, err
		}
	}
	f, err := readDB(ctx, cfg.DataDir, now)
	if err != nil {
		return nil, err
	}
	r := &Report{
		Generated: now.UTC(), DataDir: cfg.DataDir, Opened: f.Opened, SchemaVersion: f.SchemaVersion, Config: cfg,
		Owners: f.Owners, Verified: f.Verified, Holders: f.Holders, OnNotice: f.OnNotice,
		PendingHolders: f.PendingHolders, Verifications: f.Verifications,
		Nobody: f.Records[0], Public: f.Records[1], Allowlist: f.Records[2], UnknownVis: f.OtherVis,
		Expired: f.Expired, PublicOwners: f.PublicOwners,
		AllowEdges: f.AllowEdges, AllowCallers: f.AllowCallers, AllowOwners: f.AllowOwners, DenyEntries: f.DenyEntries,
		OldestUpdate: f.OldestUpdate, NewestUpdate: f.NewestUpdate, LinkedBudgets: f.LinkedBudgets,
		OPRFPublicKey: f.OPRFPublicKey, metaKeys: f.MetaKeys,
	}
	for _, sc := range f.SizeClasses {
		r.SizeClasses = append(r.SizeClasses, SizeClass(sc))
	}
	r.Anonymity = anonymity(f.OwnerBuckets, cfg.MinBucketOwners)
	if r.Enumeration, err = enumeration(cfg, f.PublicOwners); err != nil {
		return nil, err
	}
	r.Database = database(cfg, f)
	if cfg.WithKeys {
		r.Database.Keys = openKeys(cfg, f.OPRFPublicKey)
	}
	if owner != nil {
		r.Owner = OwnerView(owner, now)
		if r.Owner == nil {
			r.Owner = []OwnerRecord{}
		}
	}
	if aclOld != nil {
		r.ACLDiff = DiffACLs(aclOld, aclNew, now)
		if r.ACLDiff == nil {
			r.ACLDiff = []ACLChange{}
		}
	}
	return r, nil
}

func (cfg *Config) defaults() error {
	if cfg.DataDir == "" {
		return errors.New("disclose: a data directory is required")
	}
	if (cfg.ACLOld == "") != (cfg.ACLNew == "") {
		return errors.New("disclose: give both ACL files (old and new) or neither")
	}
	set := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	set(&cfg.MinBucketOwners, DefaultMinBucketOwners)
	set(&cfg.Budget.Burst, DefaultBurst)
	set(&cfg.Budget.PerDay, DefaultPerDay)
	set(&cfg.Budget.GlobalPerSecond, DefaultGlobalPerSecond)
	set(&cfg.VerificationsPerDay, DefaultVerificationsDay)
	set(&cfg.NetworkPerHour, DefaultNetworkPerHour)
	set(&cfg.Credentials, DefaultCredentials)
	set(&cfg.Samples, DefaultSamples)
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	if cfg.IdentityPath == "" {
		cfg.IdentityPath = filepath.Join(cfg.DataDir, datadir.IdentityFile)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	for _, v := range []struct {
		name string
		n    int
	}{{"MinBucketOwners", cfg.MinBucketOwners}, {"Budget.Burst", cfg.Budget.Burst}, {"Budget.PerDay", cfg.Budget.PerDay},
		{"Budget.GlobalPerSecond", cfg.Budget.GlobalPerSecond}, {"VerificationsPerDay", cfg.VerificationsPerDay}, {"NetworkPerHour", cfg.NetworkPerHour},
		{"Credentials", cfg.Credentials}, {"Samples", cfg.Samples}} {
		if v.n < 1 {
			return fmt.Errorf("disclose: %s must be at least 1", v.name)
		}
	}
	return nil
}

// anonymity computes the bucket sizes under directory's rule: ownerBuckets
// holds each owner's index's first 32 bits.
func anonymity(ownerBuckets []uint32, minBucket int) Anonymity {
	n := bucket.CountFor(len(ownerBuckets), minBucket, 1<<maxPrefixBits)
	a := Anonymity{Buckets: n, Sizes: map[int]int{}}
	counts := map[uint32]int{}
	for _, x := range ownerBuckets {
		counts[bucket.OfValue(x, n)]++
	}
	sizes := make([]int, 0, len(counts))
	for _, n := range counts {
		sizes = append(sizes, n)
		a.Sizes[n]++
		if n < minBucket {
			a.OwnersBelowTarget += n
		}
	}
	if len(sizes) == 0 {
		return a
	}
	slices.Sort(sizes)
	a.NonEmpty = len(sizes)
	a.Min, a.Max = sizes[0], sizes[len(sizes)-1]
	// At least 99% (95%) of buckets hold sizes[i] or more when i ≤ 0.01
	// (0.05) times their number.
	a.P1 = sizes[len(sizes)/100]
	a.P5 = sizes[len(sizes)*5/100]
	a.Median = sizes[len(sizes)/2]
	a.Mean = float64(len(ownerBuckets)) / float64(len(sizes))
	a.MeanAll = float64(len(ownerBuckets)) / float64(n)
	return a
}

// Empty is the number of buckets no owner falls in.
func (a Anonymity) Empty() uint64 { return a.Buckets - uint64(a.NonEmpty) }

// attackerSizes are the credential counts the enumeration table shows, with
// Config.Credentials added.
var attackerSizes = []int{1, 10, 100, 1_000, 10_000, 100_000}

func enumeration(cfg Config, publicOwners int) (Enumeration, error) {
	sp, err := EstimateSpace(cfg.Region, cfg.Samples)
	if err != nil {
		return Enumeration{}, err
	}
	e := Enumeration{Space: sp, PublicOwnersReachable: publicOwners}
	e.Valid, e.ValidErr = sp.Valid()
	e.Mobile, e.MobileErr = sp.Mobile()
	burst, perDay := float64(cfg.Budget.Burst), float64(cfg.Budget.PerDay)
	e.CeilingSeconds = e.Valid / float64(cfg.Budget.GlobalPerSecond)
	ns := append(slices.Clone(attackerSizes), cfg.Credentials)
	slices.Sort(ns)
	for _, n := range slices.Compact(ns) {
		e.Rows = append(e.Rows, enumRow(cfg, e.Valid, n))
	}
	// Credentials that walk the space within a year: each evaluates its
	// burst plus a year of refills.
	e.CredentialsForAYear = int(math.Ceil(e.Valid / (burst + perDay*365)))
	e.VerifyDaysForAYear = float64(e.CredentialsForAYear) / float64(cfg.VerificationsPerDay)
	return e, nil
}

func enumRow(cfg Config, space float64, n int) EnumRow {
	burst, perDay := float64(cfg.Budget.Burst), float64(cfg.Budget.PerDay)
	nf := float64(n)
	budget := max(0, space-nf*burst) / (nf * perDay) * day
	ceiling := space / float64(cfg.Budget.GlobalPerSecond)
	return EnumRow{
		Credentials:  n,
		Seconds:      max(budget, ceiling),
		CeilingBound: ceiling > budget,
		VerifyDays:   nf / float64(cfg.VerificationsPerDay),
	}
}

// The directory keys a caller's token buckets by a SHA-256 of the purpose
// and the caller pseudonym (directory.budgetKey); a copy of the database can
// therefore match budget rows to the pseudonyms in allowlists.
func budgetKey(purpose string, pseudonym []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte("blindex budget\x00" + purpose + "\x00"))
	h.Write(pseudonym)
	var k [32]byte
	h.Sum(k[:0])
	return k
}

func database(cfg Config, f *dbFacts) Database {
	var d Database
	for _, tb := range f.Tables {
		desc, ok := tableDescriptions[tb.Name]
		d.Tables = append(d.Tables, Table{Name: tb.Name, Rows: tb.Rows, Holds: desc.holds, WithKeys: desc.withKeys, Known: ok})
	}
	known := map[string]bool{}
	for _, kf := range knownFiles {
		known[kf.path] = true
		fi, err := os.Lstat(filepath.Join(cfg.DataDir, kf.path))
		file := File{Path: kf.path, What: kf.what}
		if err == nil {
			file.Present, file.Size, file.Mode = true, fi.Size(), fi.Mode()
		}
		d.Files = append(d.Files, file)
	}
	// Anything else in the directory, named but never opened.
	for _, sub := range []string{".", "keys"} {
		entries, _ := os.ReadDir(filepath.Join(cfg.DataDir, sub))
		for _, e := range entries {
			p := filepath.ToSlash(filepath.Join(sub, e.Name()))
			if known[p] || (sub == "." && e.Name() == "keys" && e.IsDir()) {
				continue
			}
			fi, err := e.Info()
			if err != nil {
				continue
			}
			d.Files = append(d.Files, File{Path: p, Present: true, Size: fi.Size(), Mode: fi.Mode(), What: "not part of a blindex data directory"})
		}
	}
	d.IdentityInDir = exists(filepath.Join(cfg.DataDir, datadir.IdentityFile)) ||
		(exists(cfg.IdentityPath) && inside(cfg.IdentityPath, cfg.DataDir))
	return d
}

// inside reports whether path lies under dir.
func inside(path, dir string) bool {
	ap, err1 := filepath.Abs(path)
	ad, err2 := filepath.Abs(dir)
	if err1 != nil || err2 != nil {
		return false
	}
	rel, err := filepath.Rel(ad, ap)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

type tableDescription struct{ holds, withKeys string }

// tableDescriptions say what each table of directory/sqlite's current
// schema (schema.sql and the migrations after it) holds, and what the key files add to it.
var tableDescriptions = map[string]tableDescription{
	"meta": {
		"the OPRF public key and the CA root the database was created with: public values",
		"nothing"},
	"verifications": {
		"pending SMS verifications, one per start: a keyed tag of the number, a keyed MAC of the code, times; deleted when the verification ends",
		"the CA key tests guessed numbers against the tags: which numbers are verifying right now"},
	"records": {
		"sealed records: the owner's pseudorandom index (its first 32 bits are the bucket), record id, the key hash of the holder that published it, age ciphertext (padded to a size class), visibility class, expiry and last-update time",
		"the OPRF key gives the index of any guessed number (who is registered, with which visibility) and its record key (the record's plaintext)"},
	"acl_members": {
		"allow and deny lists, a row per member: a record's caller pseudonyms, a pseudonymous graph of who may see whom",
		"evaluating guessed numbers turns the pseudonyms into numbers: the owners' contact lists"},
	"counters": {
		"abuse-limit counters per time window, keyed by an HMAC of the subject (a number, a client network) under a CA secret",
		"the CA key tests guessed numbers and networks: who verified recently, and from where"},
	"holders": {
		"the set of credential keys (hashes) that proved each index by SMS, one row per app or device (or newcomer): first and last proof, whether and until when it is on notice, and the number's log label",
		"which number each holder holds, by index: how many apps or devices hold it, and which numbers a new key joined recently (a new app, owner or hijacker)"},
	"tombstones": {
		"records of holders that were retired (their notice ran out without a new proof) or evicted: index, record id, the holder's key hash, time",
		"which numbers lost a holder (a new owner, a lost device, or a hijacker's notice left unanswered), and when"},
	"revoked_keys": {
		"hashes of revoked credential keys (retired and evicted holders' among them), and when",
		"nothing by themselves: key hashes are not derived from numbers"},
	"token_buckets": {
		"evaluation budgets: an HMAC of each caller's pseudonym under a server secret and how much budget it has left, updated at each lookup",
		"which number looked up how much, and when last"},
	"log_entries": {
		"the transparency log's entries, public by design: log labels (OPRF outputs under their own info), certificate and key hashes, validity, state commitments, the OPRF public key and CA roots",
		"the OPRF key gives the log label of any guessed number: which numbers hold credentials, and when their owners' records changed"},
	"log_hashes": {
		"the log's Merkle tree hashes (RFC 6962), derived from the entries",
		"nothing more than the entries"},
	"log_head": {
		"the log's size and root, and the latest checkpoint signed by the log key and cosigned by witnesses",
		"nothing"},
	"outcomes": {
		"answers to retried writes (24 hours), sealed under keys derived from the clients' idempotency keys, which the server does not keep",
		"nothing: the server's keys do not open them"},
}

var knownFiles = []struct{ path, what string }{
	{datadir.DBFile, "the database (tables below)"},
	{datadir.DBFile + "-wal", "its write-ahead log: recent writes, present while a server has it open"},
	{datadir.DBFile + "-shm", "the write-ahead log's index, present while a server has it open"},
	{datadir.OPRFKeyFile, "the OPRF private key, age-encrypted"},
	{datadir.CAKeyFile, "the built-in CA's private key, age-encrypted"},
	{datadir.LogKeyFile, "the transparency log's signing key, age-encrypted"},
	{datadir.CACertFile, "the CA root certificate (public)"},
	{datadir.LogCheckpointFile, "the newest checkpoint the log published (public), kept beside the keys so that an older database is refused"},
	{datadir.IdentityFile, "the age identity that decrypts the key files"},
}

// timingInput is what the key-holder timing evaluates: never a number.
func timingInput(i int) []byte { return fmt.Appendf(nil, "blindex disclose timing input %d", i) }
