package disclose_test

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/internal/bucket"
	"blindex.dev/blindex/threatmodel/disclose"
)

// quick keeps the numbering-space sampling short in tests that do not look
// at it.
const quick = 2_000

func TestSyntheticFigures(t *testing.T) {
	f := fixture{owners: 3000, allowPerRecord: 3, denyPerPublic: 1, expired: 7, holdersOnly: 5, joined: 30, budgetRows: 40}
	dir := f.build(t)
	r, err := disclose.Gather(t.Context(), disclose.Config{DataDir: dir, Samples: quick})
	if err != nil {
		t.Fatal(err)
	}
	want := f.counts()
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"owners", r.Owners, f.owners},
		// A number with two holders is one verified number.
		{"verified numbers", r.Verified, f.owners + f.expired + f.holdersOnly},
		{"holders", r.Holders, want.holders},
		{"holders on notice", r.OnNotice, f.joined},
		{"holders without records", r.PendingHolders, f.expired + f.holdersOnly},
		{"public", r.Public, want.public},
		{"allowlist", r.Allowlist, want.allowlist},
		{"nobody", r.Nobody, want.nobody},
		{"public owners", r.PublicOwners, f.owners},
		{"allow edges", r.AllowEdges, want.allowEdges},
		{"allowlisted callers", r.AllowCallers, want.allowCallers},
		{"allowlisting owners", r.AllowOwners, want.allowOwners},
		{"deny entries", r.DenyEntries, want.denies},
		{"expired", r.Expired, f.expired},
		{"linked budgets", r.LinkedBudgets, f.budgetRows},
		// 3000/16 = 187 → 11·2^4 = 176 buckets of 17.0 on average, all
		// of them used.
		{"buckets", int(r.Anonymity.Buckets), 176},
		{"non-empty buckets", r.Anonymity.NonEmpty, 176},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	a := r.Anonymity
	if !(a.Min <= a.P1 && a.P1 <= a.P5 && a.P5 <= a.Median && a.Median <= a.Max) || a.Min < 3 || a.Max > 40 ||
		math.Abs(a.Mean-3000.0/176) > 1e-9 || a.MeanAll != a.Mean {
		t.Errorf("implausible bucket statistics %+v", a)
	}
	sum := 0
	for k, n := range a.Sizes {
		sum += k * n
	}
	if sum != f.owners {
		t.Errorf("the histogram holds %d owners, want %d", sum, f.owners)
	}
	if len(r.SizeClasses) != 3 || r.SizeClasses[0].Bytes != 699 || r.SizeClasses[0].Records != want.public {
		t.Errorf("size classes %+v", r.SizeClasses)
	}
	if r.Database.IdentityInDir {
		t.Error("no identity in the fixture, but the report says so")
	}
	md := render(t, r, (*disclose.Report).WriteMarkdown)
	for _, want := range []string{"(3,012 verified numbers, held by 3,042 keys, 30 on notice)", "… of which are on notice",
		"each of the 3,012 verified numbers has",
		// What a malicious directory can still do, and what it cannot.
		"What the operator can do to answers", "withhold or delay any record", "30 days after its credential ends",
		"make a caller accept a forged record without a credential for the number",
		"**n = 176** buckets, 17.0 owners per bucket on average.", "**Bucket sizes among the 176 buckets**"} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q", want)
		}
	}
	scanReport(t, r, demoNumbers, false)
}

// inBuckets is a fixture whose owners fill the directory's buckets among
// n: sizes[b] owners in bucket b, none in the buckets after the last size.
// It checks that n is the count the directory gives them at m per bucket.
func inBuckets(t *testing.T, n uint64, m int, sizes []int) fixture {
	t.Helper()
	var xs []uint32
	for b, k := range sizes {
		lo, _ := bucket.Range(uint32(b), n)
		for i := range k {
			xs = append(xs, lo+uint32(i))
		}
	}
	if got := bucket.CountFor(len(xs), m, bucket.MaxCount); got != n {
		t.Fatalf("%d owners at %d per bucket: %d buckets, not %d", len(xs), m, got, n)
	}
	return fixture{owners: len(xs), prefix: func(i int) uint32 { return xs[i] }}
}

// Buckets with known sizes: 10, 14, 18 and 22 owners in 4 buckets.
func TestBucketStatistics(t *testing.T) {
	f := inBuckets(t, 4, 16, []int{10, 14, 18, 22})
	r, err := disclose.Gather(t.Context(), disclose.Config{DataDir: f.build(t), Samples: quick})
	if err != nil {
		t.Fatal(err)
	}
	a := r.Anonymity
	if a.Buckets != 4 || a.NonEmpty != 4 || a.Empty() != 0 {
		t.Fatalf("64 owners at 16 per bucket: %+v", a)
	}
	// At least 99% or 95% of 4 buckets is all of them: P1 and P5 are the
	// smallest.
	if a.Min != 10 || a.P1 != 10 || a.P5 != 10 || a.Median != 18 || a.Max != 22 || a.OwnersBelowTarget != 24 || a.Mean != 16 {
		t.Errorf("statistics %+v", a)
	}
	md := render(t, r, (*disclose.Report).WriteMarkdown)
	for _, want := range []string{
		"**a lookup hides its target among at least 10 owners**; in 99% of buckets among at least 10, in 95% among at least 10, and in half among at least 18.",
		"| owners in buckets under the target of 16 | 24 (37.5%) |",
		"**24 owners (37.5%) sit in buckets with fewer than 16 owners.**",
		"the largest `k·2^j` (8 ≤ k &lt; 16) at most `owners / m`", "between m and 9/8·m owners", "about Poisson", "not for every single bucket",
		"With 64 owners and a target of m = 16 owners per bucket, **n = 4** buckets, 16.0 owners per bucket on average.",
		"| buckets (n) | 4 |", "| 1st percentile (99% of buckets hold at least) | 10 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q", want)
		}
	}

	// The section speaks of buckets, not prefixes (MaxPrefixBits is a name).
	_, sec, _ := strings.Cut(md, "## Lookup anonymity")
	sec, _, _ = strings.Cut(sec, "\n## ")
	if strings.Contains(strings.ReplaceAll(sec, "MaxPrefixBits", ""), "prefix") {
		t.Errorf("the anonymity section still speaks of prefixes:\n%s", sec)
	}

	// A larger target halves the count: 64/32 = 2 buckets of 24 and 40.
	r, err = disclose.Gather(t.Context(), disclose.Config{DataDir: f.build(t), Samples: quick, MinBucketOwners: 32})
	if err != nil {
		t.Fatal(err)
	}
	if a := r.Anonymity; a.Buckets != 2 || a.Min != 24 || a.Max != 40 || a.Median != 40 {
		t.Errorf("at 32 per bucket: %+v", a)
	}
}

// 20 of 44 buckets used, one of them small: P5 must be the second
// smallest, since 19 of 20 buckets (95%) reach it.
func TestFifthPercentile(t *testing.T) {
	sizes := make([]int, 20)
	sizes[0] = 3
	for b := 1; b < 20; b++ {
		sizes[b] = 30 + b
	}
	// 3 + sum(31..49) = 3 + 760 = 763 owners: 763/16 = 47 → 11·2^2 = 44.
	f := inBuckets(t, 44, 16, sizes)
	r, err := disclose.Gather(t.Context(), disclose.Config{DataDir: f.build(t), Samples: quick})
	if err != nil {
		t.Fatal(err)
	}
	a := r.Anonymity
	if a.Buckets != 44 || a.NonEmpty != 20 || a.Empty() != 24 || a.Min != 3 || a.P1 != 3 || a.P5 != 31 || a.Median != 40 {
		t.Errorf("statistics %+v", a)
	}
}

// 200 of 208 buckets used, ten of them small (1 to 10 owners), the rest 17
// to 19: P1 is the third smallest of the non-empty buckets (at least 99%
// of 200 reach it), P5 the eleventh, and the mean is over the non-empty
// ones. Over all 208 buckets the smallest, P1 and P5 would be 0.
func TestFirstPercentile(t *testing.T) {
	sizes := make([]int, 200)
	for b := range sizes {
		if b < 10 {
			sizes[b] = b + 1
		} else {
			sizes[b] = 17 + b%3 // 63 of 17, 64 of 18, 63 of 19
		}
	}
	// 55 + 190·17 + 190 = 3475 owners: 3475/16 = 217 → 13·2^4 = 208.
	f := inBuckets(t, 208, 16, sizes)
	r, err := disclose.Gather(t.Context(), disclose.Config{DataDir: f.build(t), Samples: quick})
	if err != nil {
		t.Fatal(err)
	}
	a := r.Anonymity
	if !(a.Min <= a.P1 && a.P1 <= a.P5 && a.P5 <= a.Median && a.Median <= a.Max) {
		t.Errorf("percentiles out of order: %+v", a)
	}
	if a.Buckets != 208 || a.NonEmpty != 200 || a.Empty() != 8 || a.Min != 1 || a.P1 != 3 || a.P5 != 17 || a.Median != 18 || a.Max != 19 || a.OwnersBelowTarget != 55 {
		t.Errorf("statistics %+v", a)
	}
	if r.Owners != 3475 || a.Mean != 3475.0/200 || a.MeanAll != 3475.0/208 {
		t.Errorf("%d owners: mean %g over the non-empty buckets, %g over all", r.Owners, a.Mean, a.MeanAll)
	}
	md := render(t, r, (*disclose.Report).WriteMarkdown)
	for _, want := range []string{
		"in 99% of buckets among at least 3, in 95% among at least 17, and in half among at least 18.",
		"| 1st percentile (99% of buckets hold at least) | 3 |", "| 5th percentile (95% of buckets hold at least) | 17 |",
		"| mean | 17.4 |", "| mean over all n buckets, empty ones included | 16.7 |", "| empty buckets | 8 |",
		"**55 owners (1.6%) sit in buckets with fewer than 16 owners.**",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q", want)
		}
	}
	charts, _ := parseHTML(t, render(t, r, (*disclose.Report).WriteHTML))
	if !slices.ContainsFunc(charts, func(c *svgChart) bool {
		return c.id == "chart-buckets" && c.title == "Bucket sizes among the 208 buckets"
	}) {
		t.Error("no bucket chart titled for 208 buckets")
	}
}

func TestEnumerationArithmetic(t *testing.T) {
	r, err := disclose.Gather(t.Context(), disclose.Config{
		DataDir: fixture{owners: 10}.build(t), Samples: 20_000, Credentials: 250,
		Budget: directory.Budget{Burst: 2000, PerDay: 500},
	})
	if err != nil {
		t.Fatal(err)
	}
	e := r.Enumeration
	space := e.Valid
	if space < 2.8e9 || space > 3.3e9 {
		t.Fatalf("US valid numbers estimated at %g", space)
	}
	if e.ValidErr <= 0 || e.ValidErr > 0.03*space {
		t.Errorf("standard error %g of %g", e.ValidErr, space)
	}
	ns := []int{}
	for _, row := range e.Rows {
		ns = append(ns, row.Credentials)
		want := math.Max((space-float64(row.Credentials)*2000)/(float64(row.Credentials)*500)*86400, space/50_000)
		if math.Abs(row.Seconds-want) > 1e-6*want {
			t.Errorf("%d credentials: %g s, want %g", row.Credentials, row.Seconds, want)
		}
		if row.VerifyDays != float64(row.Credentials)/50_000 {
			t.Errorf("%d credentials: %g verification days", row.Credentials, row.VerifyDays)
		}
	}
	if got := ns; len(got) != 7 || got[0] != 1 || got[3] != 250 || got[6] != 100_000 {
		t.Errorf("credential counts %v", got)
	}
	if want := int(math.Ceil(space / (2000 + 500*365))); e.CredentialsForAYear != want {
		t.Errorf("credentials for a year %d, want %d", e.CredentialsForAYear, want)
	}
	// 100,000 credentials hold 2·10^8 at once and then 5·10^7 a day: the
	// budgets still bind, not the 50,000/s ceiling (~17 hours).
	if last := e.Rows[len(e.Rows)-1]; last.CeilingBound || last.Seconds < 50*86400 {
		t.Errorf("100,000 credentials: %+v", last)
	}
	// With bursts large enough, the server's ceiling is what binds.
	r, err = disclose.Gather(t.Context(), disclose.Config{DataDir: fixture{owners: 1}.build(t), Samples: quick,
		Budget: directory.Budget{Burst: 1 << 30, GlobalPerSecond: 1000}, VerificationsPerDay: 400, NetworkPerHour: 7})
	if err != nil {
		t.Fatal(err)
	}
	last := r.Enumeration.Rows[len(r.Enumeration.Rows)-1]
	if !last.CeilingBound || last.Seconds != r.Enumeration.CeilingSeconds || r.Enumeration.CeilingSeconds != r.Enumeration.Valid/1000 {
		t.Errorf("huge bursts: %+v", last)
	}
	if last.VerifyDays != 100_000.0/400 {
		t.Errorf("100,000 verifications at 400 a day: %g days", last.VerifyDays)
	}
	md := render(t, r, (*disclose.Report).WriteMarkdown)
	for _, want := range []string{"the CA allows 7 per client network per hour", "| verification starts per day at the CA | 400 | `--limit-global-per-day` |"} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q", want)
		}
	}
}

func TestSpaceEstimate(t *testing.T) {
	a, err := disclose.EstimateSpace("us", 10_000)
	if err != nil {
		t.Fatal(err)
	}
	b, err := disclose.EstimateSpace("US", 10_000)
	if err != nil {
		t.Fatal(err)
	}
	if a.Region != "US" || a.CountryCode != 1 || len(a.Lengths) != 1 || a.Lengths[0].Length != 10 {
		t.Fatalf("US: %+v", a)
	}
	if a.Lengths[0] != b.Lengths[0] {
		t.Errorf("two runs differ: %+v and %+v", a.Lengths[0], b.Lengths[0])
	}
	// Italy has several lengths and national numbers with a leading zero.
	it, err := disclose.EstimateSpace("IT", 5_000)
	if err != nil {
		t.Fatal(err)
	}
	if len(it.Lengths) < 3 {
		t.Errorf("IT lengths %+v", it.Lengths)
	}
	v, se := it.Valid()
	if v <= 0 || se <= 0 {
		t.Errorf("IT: %g ± %g", v, se)
	}
	// A length where no sample is valid has an estimate of 0 and a bound.
	l := disclose.LengthEstimate{Length: 7}
	if e, se := l.Estimate(1000); e != 0 || se != 0 || l.UpperBound95(1000) != 30_000 {
		t.Errorf("zero valid: %g ± %g, bound %g", e, se, l.UpperBound95(1000))
	}
	for _, bad := range []string{"", "XX", "ZZZ", "001"} {
		if _, err := disclose.EstimateSpace(bad, 100); !errors.Is(err, disclose.ErrRegion) {
			t.Errorf("region %q accepted", bad)
		}
	}
	if _, err := disclose.EstimateSpace("US", 0); err == nil {
		t.Error("0 samples accepted")
	}
}

func TestConfigErrors(t *testing.T) {
	dir := fixture{owners: 1}.build(t)
	for _, c := range []disclose.Config{
		{},
		{DataDir: dir, ACLOld: "x"},
		{DataDir: dir, ACLNew: "x"},
		{DataDir: dir, Credentials: -1},
		{DataDir: dir, Region: "XX", Samples: 10},
		{DataDir: dir, OwnerState: t.TempDir()},
		{DataDir: t.TempDir()},
	} {
		if _, err := disclose.Gather(t.Context(), c); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
}

func TestExpiredRecordsDoNotCount(t *testing.T) {
	f := fixture{owners: 40}
	dir := f.build(t)
	c := f.counts()
	later := func() time.Time { return time.Now().Add(60 * 24 * time.Hour) }
	r, err := disclose.Gather(t.Context(), disclose.Config{DataDir: dir, Samples: quick, Now: later})
	if err != nil {
		t.Fatal(err)
	}
	if r.Owners != 0 || r.Expired != c.public+c.allowlist+c.nobody || r.Public+r.Allowlist+r.Nobody != 0 || r.Anonymity.NonEmpty != 0 {
		t.Errorf("after every record expired: owners %d, expired %d, anonymity %+v", r.Owners, r.Expired, r.Anonymity)
	}
	md := render(t, r, (*disclose.Report).WriteMarkdown)
	if !strings.Contains(md, "No owner is registered") {
		t.Error("an empty directory is not described as such")
	}
}
