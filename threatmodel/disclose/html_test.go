package disclose_test

import (
	"context"
	"encoding/xml"
	"flag"

	"image/color"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"blindex.dev/blindex/directory/datadir"
	"blindex.dev/blindex/threatmodel/disclose"
)

// docs/disclose-report.png is made with
//
//	go test ./threatmodel/disclose -run 'TestSynthDirectory|TestScreenshot' -count=1 \
//		-synth-owners 1000000 -synth-dir /tmp/synth1m -screenshot $PWD/docs/disclose-report.png
//
// (run it twice: the first run builds the directory after the screenshot).
var screenshotOut = flag.String("screenshot", "", "also save the screenshot test's PNG here (for docs/disclose-report.png)")

// hostileApp is an app id that would break out of the page if it were not
// escaped.
const hostileApp = `<script>alert("x")</script>&amp;"'`

// showcase is a report over a synthetic directory, with an owner view and
// an ACL diff, for the HTML tests.
func showcase(t *testing.T, owners int) *disclose.Report {
	t.Helper()
	dir := fixture{owners: owners, allowPerRecord: 2, denyPerPublic: 1, budgetRows: 25}.build(t)
	state := t.TempDir()
	pub := `{"records":{"org.example.chat":{"visibility":"public","deny":["` + ann + `"],"expires":"2030-01-01T00:00:00Z"},` +
		`"org.example.video":{"visibility":"allowlist","allow":["` + ben + `","` + cid + `"],"expires":"2030-01-01T00:00:00Z"},` +
		`"` + strings.ReplaceAll(hostileApp, `"`, `\"`) + `":{"visibility":"nobody"}}}`
	old := filepath.Join(state, disclose.PublishedFile)
	if err := os.WriteFile(old, []byte(pub), 0o600); err != nil {
		t.Fatal(err)
	}
	newer := filepath.Join(t.TempDir(), "new.json")
	if err := os.WriteFile(newer, []byte(`{"records":{"org.example.chat":{"visibility":"allowlist","allow":["`+ben+`"]},`+
		`"org.example.video":{"visibility":"allowlist","allow":["`+ann+`","`+ben+`"]}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := disclose.Gather(t.Context(), disclose.Config{DataDir: dir, Samples: 20_000, OwnerState: state, ACLOld: old, ACLNew: newer})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

type svgChart struct {
	id, title         string
	bars              []float64 // heights
	barFills          []string
	barTitles         []string // "label: value"
	labels, values    []string
	axisLabels, ticks int
}

// parseHTML parses the page as XML (it is written to be well-formed) and
// returns its charts and its text, failing on anything that would load a
// resource or run a script.
func parseHTML(t *testing.T, page string) (charts []*svgChart, text string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(page))
	d.Strict = true
	var (
		stack []xml.StartElement
		cur   *svgChart
		sb    strings.Builder
	)
	attr := func(e xml.StartElement, name string) string {
		for _, a := range e.Attr {
			if a.Name.Local == name {
				return a.Value
			}
		}
		return ""
	}
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the page is not well-formed: %v", err)
		}
		switch x := tok.(type) {
		case xml.StartElement:
			switch x.Name.Local {
			case "script", "link", "img", "iframe", "object", "embed", "image", "use", "foreignObject":
				t.Errorf("the page has a <%s> element", x.Name.Local)
			}
			for _, a := range x.Attr {
				if a.Name.Local == "href" || a.Name.Local == "src" || strings.HasPrefix(strings.ToLower(a.Name.Local), "on") {
					t.Errorf("<%s> has a %s attribute", x.Name.Local, a.Name.Local)
				}
			}
			stack = append(stack, x)
			switch {
			case x.Name.Local == "svg":
				cur = &svgChart{id: attr(x, "id")}
				charts = append(charts, cur)
			case cur != nil && x.Name.Local == "rect" && attr(x, "class") == "bar":
				h, err := strconv.ParseFloat(attr(x, "height"), 64)
				if err != nil || h < 0 {
					t.Errorf("%s: bar height %q", cur.id, attr(x, "height"))
				}
				cur.bars = append(cur.bars, h)
				cur.barFills = append(cur.barFills, attr(x, "fill"))
			}
		case xml.EndElement:
			if x.Name.Local == "svg" {
				cur = nil
			}
			stack = stack[:len(stack)-1]
		case xml.CharData:
			s := string(x)
			sb.WriteString(s)
			if len(stack) == 0 {
				continue
			}
			top := stack[len(stack)-1]
			if top.Name.Local == "style" && (strings.Contains(s, "url(") || strings.Contains(s, "@import")) {
				t.Error("the style sheet loads a resource")
			}
			if cur == nil {
				continue
			}
			switch {
			case top.Name.Local == "title" && len(stack) >= 2 && stack[len(stack)-2].Name.Local == "svg":
				cur.title = s
			case top.Name.Local == "title" && len(stack) >= 2 && stack[len(stack)-2].Name.Local == "rect":
				cur.barTitles = append(cur.barTitles, s)
			case top.Name.Local == "text":
				switch attr(top, "class") {
				case "label":
					cur.labels = append(cur.labels, s)
				case "value":
					cur.values = append(cur.values, s)
				case "axis-label":
					cur.axisLabels++
				case "tick":
					cur.ticks++
				}
			}
		}
	}
	if len(stack) != 0 {
		t.Fatalf("unclosed elements: %v", stack)
	}
	return charts, sb.String()
}

func TestHTMLRendersCharts(t *testing.T) {
	r := showcase(t, 3000)
	page := render(t, r, (*disclose.Report).WriteHTML)
	charts, text := parseHTML(t, page)
	byID := map[string]*svgChart{}
	for _, c := range charts {
		byID[c.id] = c
	}
	for _, id := range []string{"chart-visibility", "chart-buckets", "chart-enumeration"} {
		c := byID[id]
		if c == nil {
			t.Errorf("no %s chart", id)
			continue
		}
		positive := 0
		for _, h := range c.bars {
			if h > 0 {
				positive++
			}
		}
		if positive == 0 || positive < len(c.bars)/2 {
			t.Errorf("%s: %d of %d bars have a height", id, positive, len(c.bars))
		}
		if c.title == "" || c.axisLabels != 2 || c.ticks < 2 || len(c.labels) == 0 {
			t.Errorf("%s: title %q, %d axis labels, %d ticks, %d bar labels", id, c.title, c.axisLabels, c.ticks, len(c.labels))
		}
		for _, l := range c.labels {
			if strings.TrimSpace(l) == "" {
				t.Errorf("%s: an empty bar label", id)
			}
		}
		if len(c.bars) <= 16 && len(c.values) != len(c.bars) {
			t.Errorf("%s: %d values for %d bars", id, len(c.values), len(c.bars))
		}
	}
	if c := byID["chart-buckets"]; c != nil {
		checkBucketBars(t, c, 16)
	}
	if c := byID["chart-visibility"]; c != nil && strings.Join(c.labels, ",") != "public,allowlist,nobody" {
		t.Errorf("visibility labels %v", c.labels)
	}
	if c := byID["chart-enumeration"]; c != nil {
		// Log scale: each tenfold increase in credentials is a lower bar.
		for i := 1; i < len(c.bars); i++ {
			if c.bars[i] >= c.bars[i-1] {
				t.Errorf("enumeration bars do not fall: %v", c.bars)
				break
			}
		}
	}
	if strings.Contains(page, "<script") {
		t.Error("the hostile app id was not escaped")
	}
	if !strings.Contains(text, hostileApp) {
		t.Error("the hostile app id is not in the page's text")
	}
	for _, want := range []string{"a lookup hides its target among at least", "labels a day"} {
		if !strings.Contains(text, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	scanReport(t, r, []string{ann, ben, cid}, true)
}

// checkBucketBars checks that buckets under the target are drawn in the
// warning colour, and that no bin straddles the target.
func checkBucketBars(t *testing.T, c *svgChart, target int) {
	t.Helper()
	if len(c.barTitles) != len(c.bars) {
		t.Fatalf("%d bar titles for %d bars", len(c.barTitles), len(c.bars))
	}
	warned := 0
	for i, title := range c.barTitles {
		label, _, _ := strings.Cut(title, ":")
		lo, hi, ok := strings.Cut(label, "–")
		if !ok {
			hi = lo
		}
		l, err1 := strconv.Atoi(lo)
		h, err2 := strconv.Atoi(hi)
		if err1 != nil || err2 != nil || h < l {
			t.Fatalf("bar label %q", label)
		}
		warn := c.barFills[i] == "#d9822b"
		if warn {
			warned++
		}
		if warn != (h < target) || (l < target) != (h < target) {
			t.Errorf("bar %q: warning colour %v", label, warn)
		}
	}
	if warned == 0 {
		t.Error("no bucket under the target is highlighted")
	}
}

// Bucket sizes from 5 to 100: bins three wide (at most 40 bars), aligned on
// the target.
func TestBucketChartBins(t *testing.T) {
	// 333 owners at 16 per bucket: 20 buckets, 8 of them used.
	f := inBuckets(t, 20, 16, []int{5, 15, 16, 17, 30, 60, 90, 100})
	r, err := disclose.Gather(t.Context(), disclose.Config{DataDir: f.build(t), Samples: quick})
	if err != nil {
		t.Fatal(err)
	}
	if a := r.Anonymity; a.Buckets != 20 || a.Empty() != 12 || a.Min != 5 || a.Max != 100 {
		t.Fatalf("anonymity %+v", r.Anonymity)
	}
	charts, _ := parseHTML(t, render(t, r, (*disclose.Report).WriteHTML))
	for _, c := range charts {
		if c.id == "chart-buckets" {
			checkBucketBars(t, c, 16)
			if c.title != "Bucket sizes among the 20 buckets" || c.barTitles[0] != "4–6: 1" || len(c.bars) != 33 {
				t.Errorf("%d bins, the first %q", len(c.bars), c.barTitles[0])
			}
			return
		}
	}
	t.Error("no bucket chart")
}

// TestScreenshot renders the report in headless Chromium and checks that
// the picture holds the charts.
func TestScreenshot(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not on PATH: install Debian's chromium (apt-get install -y chromium) to run the screenshot test")
	}
	var r *disclose.Report
	if _, err := os.Stat(filepath.Join(*synthDir, datadir.DBFile)); *synthDir != "" && err == nil {
		// docs/disclose-report.png: the 1 M-owner directory of TestSynthDirectory.
		if r, err = disclose.Gather(t.Context(), disclose.Config{DataDir: *synthDir}); err != nil {
			t.Fatal(err)
		}
	} else {
		r = showcase(t, 20_000)
	}
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	f, err := os.Create(page)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.WriteHTML(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	shot := filepath.Join(dir, "report.png")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
		"--user-data-dir="+filepath.Join(dir, "profile"), "--screenshot="+shot, "--window-size=1200,2000",
		"--hide-scrollbars", "file://"+page)
	cmd.Env = append(os.Environ(), "HOME="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	pf, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v\n%s", err, out)
	}
	defer pf.Close()
	img, err := png.Decode(pf)
	if err != nil {
		t.Fatalf("the screenshot is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1200 || b.Dy() != 2000 {
		t.Errorf("screenshot is %v", b)
	}
	colours := map[color.RGBA]int{}
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			colours[color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), 255}]++
		}
	}
	// Text is anti-aliased, so a rendered page has many shades; a blank
	// or failed one has a handful.
	if len(colours) < 64 {
		t.Errorf("the screenshot has only %d colours: blank?", len(colours))
	}
	// The charts' bars are drawn in two flat colours.
	bars, warn := colours[color.RGBA{0x2f, 0x6f, 0xb0, 255}], colours[color.RGBA{0xd9, 0x82, 0x2b, 255}]
	if bars < 5000 || warn == 0 {
		t.Errorf("bar colour in %d pixels, warning colour in %d: the charts did not render", bars, warn)
	}
	t.Logf("%d colours; %d bar pixels, %d warning pixels", len(colours), bars, warn)
	if *screenshotOut != "" {
		b, err := os.ReadFile(shot)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(*screenshotOut, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
