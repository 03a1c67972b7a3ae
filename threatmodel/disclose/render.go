package disclose

import (
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/internal/bucket"
	"blindex.dev/blindex/record"
)

// WriteMarkdown writes the report as Markdown.
func (r *Report) WriteMarkdown(w io.Writer) error { return r.document().writeMarkdown(w) }

// WriteHTML writes the report as one self-contained HTML page: inline CSS
// and SVG, no script, nothing loaded from elsewhere.
func (r *Report) WriteHTML(w io.Writer) error { return r.document().writeHTML(w) }

// Summary returns the report's key findings, one sentence each.
func (r *Report) Summary() []string {
	var out []string
	for _, l := range r.summary() {
		var sb strings.Builder
		for _, s := range l {
			sb.WriteString(s.s)
		}
		out = append(out, sb.String())
	}
	return out
}

func (r *Report) document() *document {
	d := &document{title: "blindex disclosure report"}
	cfg := r.Config
	mode := "while no server had it open (read as an immutable file: no lock taken, no file created)"
	if r.Opened == OpenedLive {
		mode = "while a server had it open (read as one more write-ahead-log reader, in one snapshot)"
	}
	d.add(para{line(tf("Generated %s from the data directory ", r.Generated.Format(time.RFC3339)), c(r.DataDir),
		tf(", schema version %d. The database was read %s. Nothing in the directory was written.", r.SchemaVersion, mode))})
	d.add(heading{2, "summary", "Summary"})
	d.add(list{r.summary()})

	r.ownersSection(d)
	r.anonymitySection(d)
	r.enumerationSection(d)
	r.logSection(d)
	r.forgerySection(d)
	r.databaseSection(d)
	if r.Owner != nil || r.ACLDiff != nil {
		od := &ownerData{}
		if r.Owner != nil {
			r.ownerSection(od)
		}
		if r.ACLDiff != nil {
			r.diffSection(od)
		}
		d.add(od)
	}
	d.add(heading{2, "parameters", "Parameters"})
	d.add(&table{head: []string{"parameter", "value", "flag"}, right: []bool{false, true, false}, rows: [][][]span{
		{cell("target owners per bucket"), cell(fmtInt(cfg.MinBucketOwners)), line(c("--min-bucket-owners"))},
		{cell("evaluation burst per credential"), cell(fmtInt(cfg.Budget.Burst)), line(c("--budget-burst"))},
		{cell("evaluations per credential per day"), cell(fmtInt(cfg.Budget.PerDay)), line(c("--budget-per-day"))},
		{cell("evaluations per second per server process"), cell(fmtInt(cfg.Budget.GlobalPerSecond)), line(c("--budget-global-per-second"))},
		{cell("verification starts per day at the CA"), cell(fmtInt(cfg.VerificationsPerDay)), line(c("--limit-global-per-day"))},
		{cell("verification starts per client network per hour"), cell(fmtInt(cfg.NetworkPerHour)), line(c("--limit-network-per-hour"))},
		{cell("credentials of the many-credential attacker"), cell(fmtInt(cfg.Credentials)), line(c("--credentials"))},
		{cell("numbering plan"), cell(cfg.Region), line(c("--country"))},
		{cell("samples per number length"), cell(fmtInt(cfg.Samples)), line(c("--samples"))},
	}})
	d.add(para{line(t("The budgets and limits are the server's configuration, which the data directory does not record: give disclose the values "),
		c("blindex serve"), t(" runs with (the flags have the same names, and the same BLINDEX_ environment variables set both)."))})
	return d
}

func (r *Report) summary() [][]span {
	e := r.Enumeration
	var out [][]span
	out = append(out, line(bf("%s %s", fmtInt(r.Owners), plural(r.Owners, "owner", "owners")),
		tf(" with unexpired records (%s verified %s, held by %s %s, %s on notice); %s public, %s allowlist and %s nobody %s; %s allowlist %s.",
			fmtInt(r.Verified), plural(r.Verified, "number", "numbers"), fmtInt(r.Holders), plural(r.Holders, "key", "keys"), fmtInt(r.OnNotice),
			fmtInt(r.Public), fmtInt(r.Allowlist), fmtInt(r.Nobody),
			plural(r.Public+r.Allowlist+r.Nobody, "record", "records"), fmtInt(r.AllowEdges), plural(r.AllowEdges, "edge", "edges"))))
	out = append(out, r.anonymitySentence())
	if len(e.Rows) > 0 {
		one := e.Rows[0]
		many := e.Rows[slices.IndexFunc(e.Rows, func(x EnumRow) bool { return x.Credentials == r.Config.Credentials })]
		out = append(out, line(tf("Evaluating the ~%s valid %s numbers takes one credential ", fmtBig(e.Valid), e.Space.Region),
			b(fmtDuration(one.Seconds)), tf(" and %s credentials ", fmtInt(many.Credentials)), b(fmtDuration(many.Seconds)),
			tf(" under the budgets (%s at once, then %s a day each).", fmtInt(r.Config.Budget.Burst), fmtInt(r.Config.Budget.PerDay))))
	}
	out = append(out, line(tf("The transparency log names numbers by log label only; resolving a guessed number's label costs one evaluation under a budget of %d a day per credential, so ", directory.LabelPerDay),
		bf("%d credentials resolve at most %s labels a day", r.Config.Credentials, fmtInt(r.Config.Credentials*directory.LabelPerDay)), t(".")))
	keys := "Without the key files the database reveals no number and no record content, only pseudorandom indexes, pseudonyms, ciphertexts and times."
	if r.Database.IdentityInDir {
		keys += " The age identity that decrypts the key files is inside the data directory, so a copy of the directory includes the keys."
	}
	out = append(out, line(t(keys)))
	return out
}

func (r *Report) anonymitySentence() []span {
	a := r.Anonymity
	switch {
	case r.Owners == 0:
		return line(t("No owner is registered, so there is no crowd for a lookup to hide in yet."))
	case a.Buckets == 1:
		return line(tf("Lookups fetch the whole directory (one bucket): "),
			bf("a lookup hides its target among at least %s %s", fmtInt(a.Min), plural(a.Min, "owner", "owners")),
			tf(", every registered owner, and the server learns nothing from the fetch itself."))
	default:
		return line(tf("Among the server's %s buckets, ", fmtInt(a.Buckets)),
			bf("a lookup hides its target among at least %s %s", fmtInt(a.Min), plural(a.Min, "owner", "owners")),
			tf("; in 99%% of buckets among at least %s, in 95%% among at least %s, and in half among at least %s.",
				fmtInt(a.P1), fmtInt(a.P5), fmtInt(a.Median)))
	}
}

func (r *Report) ownersSection(d *document) {
	d.add(heading{2, "owners", "Owners and records"})
	records := r.Public + r.Allowlist + r.Nobody + r.UnknownVis
	rows := [][][]span{
		{cell("registered owners (indexes with an unexpired record)"), cell(fmtInt(r.Owners))},
		{cell("verified numbers (indexes with a holder)"), cell(fmtInt(r.Verified))},
		{cell("… of which have published nothing"), cell(fmtInt(r.PendingHolders))},
		{cell("holders (keys that proved a number by SMS: one per app or device)"), cell(fmtInt(r.Holders))},
		{cell("… of which are on notice (records hidden until they prove the number again)"), cell(fmtInt(r.OnNotice))},
		{cell("records, visibility public"), cell(fmtInt(r.Public))},
		{cell("records, visibility allowlist"), cell(fmtInt(r.Allowlist))},
		{cell("records, visibility nobody"), cell(fmtInt(r.Nobody))},
		{cell("owners with at least one public record"), cell(fmtInt(r.PublicOwners))},
		{cell("allowlist edges (record → caller pseudonym)"), cell(fmtInt(r.AllowEdges))},
		{cell("distinct caller pseudonyms in allowlists"), cell(fmtInt(r.AllowCallers))},
		{cell("owners with an allowlist entry"), cell(fmtInt(r.AllowOwners))},
		{cell("denylist entries"), cell(fmtInt(r.DenyEntries))},
		{cell("records past expiry, awaiting deletion"), cell(fmtInt(r.Expired))},
		{cell("pending SMS verifications"), cell(fmtInt(r.Verifications))},
	}
	if r.UnknownVis > 0 {
		rows = append(rows, [][]span{cell("records with an unknown visibility code"), cell(fmtInt(r.UnknownVis))})
	}
	d.add(row{[]block{&table{head: []string{"what", "count"}, right: []bool{false, true}, rows: rows}, &chart{id: "chart-visibility", title: "Records by visibility class", xLabel: "visibility", yLabel: "records",
		bars: []bar{
			{label: "public", value: float64(r.Public), text: fmtInt(r.Public)},
			{label: "allowlist", value: float64(r.Allowlist), text: fmtInt(r.Allowlist)},
			{label: "nobody", value: float64(r.Nobody), text: fmtInt(r.Nobody)},
		},
		caption: fmt.Sprintf("%s unexpired %s under %s %s.", fmtInt(records), plural(records, "record", "records"), fmtInt(r.Owners), plural(r.Owners, "owner", "owners"))}}})
	d.add(para{line(tf("A public record is visible to anyone with a credential who names the number; %s %s one. "+
		"An owner whose records are all allowlist or nobody answers exactly like an unregistered number to every caller it has not listed.",
		fmtInt(r.PublicOwners), plural(r.PublicOwners, "owner has", "owners have")))})
}

func (r *Report) anonymitySection(d *document) {
	a, cfg := r.Anonymity, r.Config
	m := cfg.MinBucketOwners
	d.add(heading{2, "anonymity", "Lookup anonymity"})
	d.add(para{line(t("A caller fetches whole buckets: the server cuts the space of the index's first 32 bits (pseudorandom, derived from the OPRF output) into "), c("n"),
		t(" ranges of equal width and sees only which of them the index it asks for lies in, so a lookup for a registered number hides among the owners in its bucket. "+
			"The server picks "), c("n"), t(" = the largest "), c("k·2^j"), t(" (8 ≤ k < 16) at most "), c("owners / m"),
		tf(" (m = min_bucket_owners; the quotient itself when it is below 16, and at least 1), so the mean bucket holds between m and 9/8·m owners once there are 8 buckets or more. "+
			"With %s %s and a target of m = %s owners per bucket, ", fmtInt(r.Owners), plural(r.Owners, "owner", "owners"), fmtInt(m)),
		bf("n = %s", fmtInt(a.Buckets)), tf(" %s, %.1f owners per bucket on average.", plural(int(min(a.Buckets, 2)), "bucket", "buckets"), a.MeanAll))})
	d.add(para{r.anonymitySentence()})
	if r.Owners > 0 {
		d.add(para{line(t("Buckets are derived from the pseudorandom index, so their sizes scatter around the mean (about Poisson): "+
			"the floor m holds on average and in the client's check of the signed owner count, not for every single bucket; the table shows how far the smallest fall below it. "),
			bf("%s %s (%s) %s in buckets with fewer than %s owners.", fmtInt(a.OwnersBelowTarget), plural(a.OwnersBelowTarget, "owner", "owners"),
				fmtPct(a.OwnersBelowTarget, r.Owners), plural(a.OwnersBelowTarget, "sits", "sit"), fmtInt(m)))})
	}
	rows := [][][]span{
		{cell("buckets (n)"), cell(fmtInt(a.Buckets))},
		{cell("empty buckets"), cell(fmtInt(a.Empty()))},
		{cell("smallest bucket (k)"), cell(fmtInt(a.Min))},
		{cell("1st percentile (99% of buckets hold at least)"), cell(fmtInt(a.P1))},
		{cell("5th percentile (95% of buckets hold at least)"), cell(fmtInt(a.P5))},
		{cell("median"), cell(fmtInt(a.Median))},
		{cell("mean"), cellf("%.1f", a.Mean)},
	}
	if a.Empty() > 0 && a.NonEmpty > 0 {
		rows = append(rows, [][]span{cell("mean over all n buckets, empty ones included"), cellf("%.1f", a.MeanAll)})
	}
	rows = append(rows,
		[][]span{cell("largest bucket"), cell(fmtInt(a.Max))},
		[][]span{cell(fmt.Sprintf("owners in buckets under the target of %d", m)), cellf("%s (%s)", fmtInt(a.OwnersBelowTarget), fmtPct(a.OwnersBelowTarget, r.Owners))},
	)
	tb := &table{head: []string{"bucket size (owners)", "value"}, right: []bool{false, true}, rows: rows}
	if r.Owners > 0 {
		d.add(row{[]block{tb, r.bucketChart()}})
	} else {
		d.add(tb)
	}
	// A client fetches among at most 2^clientMaxPrefixBits buckets; the
	// next count the rule gives above that is 9/8 of it.
	clientMax := uint64(1) << clientMaxPrefixBits
	p := bucket.PrefixBits(a.Buckets)
	notes := []string{
		"This is k-anonymity, not private information retrieval: the server learns the bucket, and the owners in the bucket are the crowd.",
		"The figure counts owners, not numbers: a lookup for an unregistered number lands in a bucket too, and the server cannot tell it from a lookup for an owner.",
		fmt.Sprintf("Clients fetch among at most %s buckets (client.Config.MaxPrefixBits, %d bits) and fetch wider buckets, each spanning several of the server's, if the server has more; that only happens from %s owners on.",
			fmtInt(clientMax), clientMaxPrefixBits, fmtBig(float64(m)*float64(clientMax/8*9))),
		fmt.Sprintf("Older clients, which only ask for a power of two of buckets, fetch among the largest power of two at most n, 2^%d = %s buckets here, each as wide as one of the server's or wider.",
			p, fmtInt(uint64(1)<<p)),
	}
	var items [][]span
	for _, n := range notes {
		items = append(items, line(t(n)))
	}
	d.add(list{items})
}

// bucketChart is the histogram of bucket sizes; at most about 40 bars.
func (r *Report) bucketChart() *chart {
	a, target := r.Anonymity, r.Config.MinBucketOwners
	width := max(1, (a.Max-a.Min+1+39)/40)
	// Bins start on the target, so none straddles it.
	start := target - (target-a.Min+width-1)/width*width
	if a.Min >= target {
		start = target + (a.Min-target)/width*width
	}
	var bars []bar
	for lo := start; lo <= a.Max; lo += width {
		hi := lo + width - 1
		n := 0
		for k := lo; k <= hi; k++ {
			n += a.Sizes[k]
		}
		label := fmtInt(lo)
		if hi > lo {
			label = fmtInt(lo) + "–" + fmtInt(hi)
		}
		bars = append(bars, bar{label: label, value: float64(n), text: fmtInt(n), warn: lo < target})
	}
	legend := ""
	if a.Min < target {
		legend = fmt.Sprintf("buckets with fewer owners than the target of %d", target)
	}
	return &chart{id: "chart-buckets", title: fmt.Sprintf("Bucket sizes among the %s %s", fmtInt(a.Buckets), plural(int(min(a.Buckets, 2)), "bucket", "buckets")),
		xLabel: "owners in the bucket", yLabel: "buckets", bars: bars, legend: legend,
		caption: fmt.Sprintf("%s non-empty %s; smallest %d, 1st percentile %d, 5th percentile %d, median %d, largest %d.",
			fmtInt(a.NonEmpty), plural(a.NonEmpty, "bucket", "buckets"), a.Min, a.P1, a.P5, a.Median, a.Max)}
}

func (r *Report) enumerationSection(d *document) {
	e, cfg := r.Enumeration, r.Config
	sp := e.Space
	d.add(heading{2, "enumeration", "Enumeration cost"})
	d.add(para{line(t("An OPRF alone does not stop enumeration: whoever may ask for evaluations without limit can walk every valid number. " +
		"Every evaluated element costs budget, keyed by the caller's number, so a new credential for the same number does not reset it. " +
		"How long walking a whole country takes depends on the size of its numbering space and on how many credentials (numbers, each verified by SMS) the attacker holds."))})

	d.add(heading{3, "space", fmt.Sprintf("The numbering space of %s (+%d)", sp.Region, sp.CountryCode)})
	d.add(para{line(tf("Estimated by deterministic Monte-Carlo sampling of libphonenumber's metadata: for each possible national-number length, %s uniformly random national numbers (fixed seed, so the figures are reproducible) are checked with ",
		fmtInt(sp.Samples)), c("IsValidNumberForRegion"), tf("; the valid fraction times 10^length estimates the count. ± is 1.96 standard errors (95%%)."))})
	var rows [][][]span
	for _, l := range sp.Lengths {
		est, se := l.Estimate(sp.Samples)
		estCell := cellf("%s ± %s", fmtBig(est), fmtBig(1.96*se))
		if l.Valid == 0 {
			estCell = cellf("0 (under %s at 95%%)", fmtBig(l.UpperBound95(sp.Samples)))
		}
		m, _ := estimate(l.Mobile, sp.Samples, l.Length)
		rows = append(rows, [][]span{cell(fmt.Sprint(l.Length)), cell(fmtInt(l.Valid)), cellf("%.2f%%", 100*float64(l.Valid)/float64(sp.Samples)), estCell, cell(fmtBig(m))})
	}
	rows = append(rows, [][]span{line(b("all")), cell(""), cell(""), line(bf("%s ± %s", fmtBig(e.Valid), fmtBig(1.96*e.ValidErr))), line(b(fmtBig(e.Mobile)))})
	d.add(&table{head: []string{"national length", "valid samples", "valid fraction", "valid numbers", "of which mobile (or may be)"},
		right: []bool{true, true, true, true, true}, rows: rows})
	d.add(para{line(tf("libphonenumber's patterns describe the numbering plan, not the numbers in service, so this counts what an enumerator must try. "+
		"An attacker after messaging users may walk only the mobile part (~%s).", fmtBig(e.Mobile)))})

	d.add(heading{3, "budgets", "Time to evaluate the whole space"})
	d.add(para{line(tf("Each credential evaluates %s numbers at once, then %s a day. N credentials walk the space in (space − N × burst) / (N × per-day) days; "+
		"no walk is faster than the space divided by the ceiling of %s evaluations per second per server process (%s here).",
		fmtInt(cfg.Budget.Burst), fmtInt(cfg.Budget.PerDay), fmtInt(cfg.Budget.GlobalPerSecond), fmtDuration(e.CeilingSeconds)))})
	rows = nil
	var bars []bar
	for _, row := range e.Rows {
		bound := "budgets"
		if row.CeilingBound {
			bound = "server ceiling"
		}
		name := fmtInt(row.Credentials)
		if row.Credentials == cfg.Credentials {
			name += " (--credentials)"
		}
		rows = append(rows, [][]span{cell(name), line(b(fmtDuration(row.Seconds))), cell(bound), cell(fmtDuration(row.VerifyDays * day))})
		bars = append(bars, bar{label: fmtInt(row.Credentials), value: row.Seconds / day, text: fmtDuration(row.Seconds), warn: row.Credentials == cfg.Credentials})
	}
	if k := r.Database.Keys; k != nil && k.Err == "" && k.PerEval > 0 {
		sec := e.Valid * k.PerEval.Seconds()
		rows = append(rows, [][]span{cell("the OPRF key's holder, one core"), line(b(fmtDuration(sec))), cell("CPU"), cell("none")})
		bars = append(bars, bar{label: "key holder", value: sec / day, text: fmtDuration(sec), warn: true})
	}
	d.add(&table{head: []string{"credentials", "time to evaluate every valid number", "bound by", "time to verify that many numbers at the CA's overall cap"},
		right: []bool{true, true, false, true}, rows: rows})
	d.add(&chart{id: "chart-enumeration", title: fmt.Sprintf("Time to evaluate every valid %s number", sp.Region),
		xLabel: "credentials held by the attacker", yLabel: "time (log scale)", bars: bars, log: true, ticks: durationTicks,
		legend:  enumLegend(r.Database.Keys),
		caption: "Bars on a logarithmic scale; each step on the axis is a factor of ten or a named unit."})
	items := [][]span{
		line(tf("To walk the space within a year an attacker needs about %s credentials, each for a distinct number it controls, and as many SMS verifications: "+
			"at the CA's overall cap of %s verification starts a day those alone take %s, and the CA allows %s per client network per hour.",
			fmtInt(e.CredentialsForAYear), fmtInt(cfg.VerificationsPerDay), fmtDuration(e.VerifyDaysForAYear*day), fmtInt(cfg.NetworkPerHour))),
		line(tf("What a complete walk finds: the owners with a public record (%s here). Allowlist and nobody records answer like unregistered numbers to every caller the owner has not listed.",
			fmtInt(e.PublicOwnersReachable))),
		line(t("The real bound is the cost of numbers (SIMs, virtual numbers) and of their verifications; the budgets make each one worth a fixed, small number of evaluations a day.")),
	}
	d.add(list{items})
}

func enumLegend(k *KeyFindings) string {
	if k != nil && k.Err == "" && k.PerEval > 0 {
		return "highlighted: the configured attacker (--credentials) and the OPRF key's holder"
	}
	return "highlighted: the configured attacker (--credentials)"
}

// durationTicks label the enumeration chart's axis (values in days).
var durationTicks = []tick{
	{1.0 / 24, "1 hour"}, {1, "1 day"}, {30, "1 month"}, {365.25, "1 year"}, {3652.5, "10 years"},
	{36525, "100 years"}, {365250, "1,000 years"}, {3652500, "10,000 years"}, {36525000, "100,000 years"},
	{365250000, "1M years"}, {3652500000, "10M years"},
}

func (r *Report) logSection(d *document) {
	d.add(heading{2, "log", "Log exposure"})
	d.add(para{line(t("The transparency log is public: every reader sees each entry's log label, certificate and key hashes, validity, and owners' state commitments, never a number. A label is an OPRF output under its own POPRF info (\"blindex log label v1\"), so only the key holder computes it; anyone else must ask the server, which answers a credential holder "),
		bf("%d evaluations at once and %d a day", directory.LabelBurst, directory.LabelPerDay),
		tf(". An adversary with %s credentials therefore resolves at most ", fmtInt(r.Config.Credentials)),
		bf("%s labels a day", fmtInt(r.Config.Credentials*directory.LabelPerDay)),
		t(" (whether a guessed number holds a credential, and when its owner changed records), against the lookup budget's much larger enumeration rate above. The operator, who holds the OPRF key, resolves every label."))})
}

// forgerySection says what the operator of this directory can and cannot
// do to callers' answers (docs/threat-model.md, issue 17): its keys let it
// read and withhold, but a record a caller accepts must carry a publisher
// proof it cannot make without leaving evidence.
func (r *Report) forgerySection(d *document) {
	d.add(heading{2, "forgery", "What the operator can do to answers"})
	d.add(para{line(t("Callers check every record themselves: it must be signed by a key that a CA the caller trusts attested for that number, and carry the log's signed promise that the credential is logged. " +
		"Bucket sizes are bounded by an owner count the log key signs. So this directory's operator, even with every key in this data directory:"))})
	d.add(list{[][]span{
		line(b("Can still"), t(" withhold or delay any record, or a whole answer (a withheld record looks absent); replay an older record of an owner until the record expires or, at the latest, "),
			tf("%d days after its credential ends", int(record.RecordGrace.Hours()/24)),
			t("; see which buckets each caller fetches and who asks for log promises; and, with its built-in CA key, issue a credential for any number without an SMS.")),
		line(b("Cannot"), t(" make a caller accept a forged record without a credential for the number: one it logs shows in the log the owner's monitor reads, and one it only promises is reported, with the signed promise, by the caller's next "),
			c("blindex log verify"), t(". It cannot pass off a record vouched for by a CA the caller does not trust, nor one signed for another number or outside its credential's validity.")),
		line(b("Cannot"), t(" shrink a caller's buckets below the caller's own floor ("), c("--min-bucket-owners"),
			t(") without signing an owner count that the caller's audit holds against the logged credentials.")),
	}})
}

func (r *Report) databaseSection(d *document) {
	db := r.Database
	d.add(heading{2, "database", "What the data directory reveals"})
	var rows [][][]span
	for _, f := range db.Files {
		if !f.Present {
			rows = append(rows, [][]span{line(c(f.Path)), cell("absent"), cell(""), cell(""), cell(f.What)})
			continue
		}
		rows = append(rows, [][]span{line(c(f.Path)), cell("present"), cell(fmtInt(f.Size) + " B"), line(c(f.Mode.String())), cell(f.What)})
	}
	d.add(&table{head: []string{"file", "", "size", "mode", "what it is"}, right: []bool{false, false, true, false, false}, rows: rows})
	if db.IdentityInDir {
		d.add(callout{line(b("The age identity is inside the data directory"),
			t(": a copy of the directory (a backup, a snapshot, a stolen disk) is a copy of the keys, and the \"with the key files\" column below applies to whoever holds it. "+
				"Keep the identity elsewhere: "), c("blindex serve --identity /run/secrets/blindex-identity"), t("."))})
	} else {
		d.add(para{line(t("The age identity is not in the data directory: a copy of the directory alone reveals no key, and the \"without the key files\" column applies to it."))})
	}

	d.add(heading{3, "tables", "Tables"})
	rows = nil
	for _, tb := range db.Tables {
		holds, with := tb.Holds, tb.WithKeys
		if !tb.Known {
			holds, with = "not described by this version of disclose (a newer schema?)", "unknown"
		}
		rows = append(rows, [][]span{line(c(tb.Name)), cell(fmtInt(tb.Rows)), cell(holds), cell(with)})
	}
	d.add(&table{head: []string{"table", "rows", "without the key files", "what the key files add"}, right: []bool{false, true, false, false}, rows: rows})
	if len(r.SizeClasses) > 0 {
		var parts []string
		for _, s := range r.SizeClasses {
			parts = append(parts, fmt.Sprintf("%s %s of %s bytes", fmtInt(s.Records), plural(s.Records, "record", "records"), fmtInt(s.Bytes)))
		}
		d.add(para{line(t("Ciphertext sizes: " + strings.Join(parts, ", ") + ". Records are padded to a few size classes, so a length reveals the class, not the content."))})
	}

	d.add(heading{3, "without-keys", "Without the key files"})
	items := [][]span{
		line(t("No phone number: the tables hold indexes, pseudonyms and tags derived from numbers under keys, never a number (the project's privacy scans check every file of the directory for five spellings of every number).")),
		line(t("No record content: records are age ciphertexts under keys derived from the OPRF output.")),
		line(tf("Structure: %s %s, how many holders (apps or devices, and newcomers) each of the %s verified %s has, which of their records are public, allowlist or nobody, and a pseudonymous graph of %s allowlist %s between owners' records and %s distinct caller %s.",
			fmtInt(r.Owners), plural(r.Owners, "owner", "owners"), fmtInt(r.Verified), plural(r.Verified, "number", "numbers"),
			fmtInt(r.AllowEdges), plural(r.AllowEdges, "edge", "edges"),
			fmtInt(r.AllowCallers), plural(r.AllowCallers, "pseudonym", "pseudonyms"))),
		line(tf("Activity: when each record last changed, when each holder first and last proved its number, and which holders are on notice, until when. Budget rows are keyed by an HMAC under a server secret, so they should not link to the allowlisted pseudonyms; a check with the plain-hash construction links %s of the %s allowlisted pseudonyms to lookup activity (anything but 0 is a finding).",
			fmtInt(r.LinkedBudgets), fmtInt(r.AllowCallers))),
	}
	if !r.OldestUpdate.IsZero() {
		items = append(items, line(tf("Record updates span %s to %s.", r.OldestUpdate.Format(time.DateOnly), r.NewestUpdate.Format(time.DateOnly))))
	}
	d.add(list{items})
	if len(r.metaKeys) > 0 {
		d.add(para{line(t("The meta table holds: "), c(strings.Join(r.metaKeys, ", ")), t(" (public values)."))})
	}
	if len(r.OPRFPublicKey) > 0 {
		// The OPRF public key is public (GET /v1/config serves it): printing
		// it lets a reviewer match this directory to a running server.
		d.add(para{line(t("The database belongs to the OPRF public key "), c(hex.EncodeToString(r.OPRFPublicKey)), t(", the key a server on it serves at "), c("GET /v1/config"), t("."))})
	}

	d.add(heading{3, "with-keys", "With the key files"})
	d.add(para{line(t("Whoever holds the key files and the identity has the operator's power: it can evaluate the OPRF on any number it chooses. " +
		"Evaluating a candidate gives its index (is it registered, with which visibility), its pseudonym (whose allowlists name it) and its record key (the record's plaintext). " +
		"With the CA key it can also issue a credential for any number without an SMS, so the per-credential budgets do not bind it."))})
	k := db.Keys
	switch {
	case k == nil:
		d.add(para{line(t("The key files were not opened (run with "), c("--with-keys"), t(" to check that they open and to time an evaluation)."))})
	case k.Err != "":
		d.add(callout{line(t("--with-keys: "), t(k.Err))})
	default:
		match := "matches"
		if !k.OPRFMatches {
			match = "does NOT match"
		}
		ca := "decrypts and matches its root certificate"
		if !k.CAKeyOK {
			ca = "does not open or does not match its root"
		}
		sec := r.Enumeration.Valid * k.PerEval.Seconds()
		d.add(para{line(t("With the identity "), c(k.IdentityPath), tf(" the key files open (in memory; nothing was decrypted into this report). The OPRF key %s the public key the database records; the CA key %s. ", match, ca),
			tf("One full OPRF evaluation took %s on this machine (the mean of %d, on inputs that are not numbers), so evaluating all ~%s valid %s numbers takes ",
				k.PerEval.Round(time.Microsecond), k.Evaluations, fmtBig(r.Enumeration.Valid), r.Enumeration.Space.Region),
			b(fmtDuration(sec)+" on one core"), tf(" (%s on this machine's %d %s), after which every index, pseudonym and record key in the database is known.",
				fmtDuration(sec/float64(max(1, k.Cores))), k.Cores, plural(k.Cores, "core", "cores")))})
	}
}

func (r *Report) ownerSection(od *ownerData) {
	od.blocks = append(od.blocks,
		heading{2, "owner-view", "Owner view"},
		para{line(t("From the owner's own client state ("), c(joinPath(r.Config.OwnerState, PublishedFile)),
			t("). "), span{bold, "This section shows the owner's own contacts' numbers: share it only with the owner."})},
	)
	if len(r.Owner) == 0 {
		od.blocks = append(od.blocks, para{line(t("The owner has published no record."))})
		return
	}
	var rows [][][]span
	for _, o := range r.Owner {
		exp := "—"
		if !o.Expires.IsZero() {
			exp = o.Expires.UTC().Format(time.DateOnly)
		}
		rows = append(rows, [][]span{line(c(o.App)), cell(o.Visibility), cell(exp), who(o.Audience), cell(strings.Join(o.Notes, "; "))})
	}
	od.blocks = append(od.blocks, &table{head: []string{"app", "visibility", "expires", "who can see it", "notes"}, rows: rows})
}

// who describes an audience in words, with its numbers.
func who(a Audience) []span {
	switch {
	case a.Everyone && len(a.Numbers) == 0:
		return line(b("everyone with a credential"))
	case a.Everyone:
		return line(b("everyone with a credential"), tf(" except %d denied: ", len(a.Numbers)), t(strings.Join(a.Numbers, ", ")))
	case len(a.Numbers) == 0:
		return line(b("no one"))
	default:
		return line(bf("only %d %s", len(a.Numbers), plural(len(a.Numbers), "number", "numbers")), t(": "+strings.Join(a.Numbers, ", ")))
	}
}

func (r *Report) diffSection(od *ownerData) {
	od.blocks = append(od.blocks,
		heading{2, "acl-diff", "ACL changes"},
		para{line(t("From "), c(r.Config.ACLOld), t(" to "), c(r.Config.ACLNew),
			t(", per app: who gains and who loses visibility of the record. "), span{bold, "This section shows the owner's own contacts' numbers."})},
	)
	var rows [][][]span
	for _, ch := range r.ACLDiff {
		vis := func(v string) string {
			if v == "" {
				return "(no record)"
			}
			return v
		}
		var gain, lose []span
		if ch.GainEveryone {
			gain = append(gain, b("everyone with a credential who could not see it"))
			if len(ch.GainExcept) > 0 {
				gain = append(gain, t(", except "+strings.Join(ch.GainExcept, ", ")))
			}
		}
		if len(ch.Gain) > 0 {
			if len(gain) > 0 {
				gain = append(gain, t("; "))
			}
			gain = append(gain, t(strings.Join(ch.Gain, ", ")))
		}
		if ch.LoseEveryone {
			lose = append(lose, b("everyone with a credential who could see it"))
			if len(ch.LoseExcept) > 0 {
				lose = append(lose, t(", except "+strings.Join(ch.LoseExcept, ", ")))
			}
		}
		if len(ch.Lose) > 0 {
			if len(lose) > 0 {
				lose = append(lose, t("; "))
			}
			lose = append(lose, t(strings.Join(ch.Lose, ", ")))
		}
		if len(gain) == 0 {
			gain = cell("no one")
		}
		if len(lose) == 0 {
			lose = cell("no one")
		}
		note := ""
		if ch.ExpiresChanged {
			note = fmt.Sprintf("expiry %s → %s", fmtDate(ch.OldExpires), fmtDate(ch.NewExpires))
		}
		if !ch.Changed() && note == "" {
			note = "unchanged"
		}
		rows = append(rows, [][]span{line(c(ch.App)), cellf("%s → %s", vis(ch.Old), vis(ch.New)), gain, lose, cell(note)})
	}
	if len(rows) == 0 {
		od.blocks = append(od.blocks, para{line(t("Neither file has a record."))})
		return
	}
	od.blocks = append(od.blocks, &table{head: []string{"app", "visibility", "gain visibility", "lose visibility", "notes"}, rows: rows})
}

func fmtDate(t time.Time) string {
	if t.IsZero() {
		return "none"
	}
	return t.UTC().Format(time.DateOnly)
}

func joinPath(dir, name string) string {
	if dir == "" {
		return name
	}
	return strings.TrimRight(dir, "/") + "/" + name
}
