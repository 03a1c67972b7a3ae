package disclose

import (
	"regexp"
	"strconv"
	"testing"
)

// TestLegendClearsValueLabels: the tallest bar's value label sits below the
// legend (font size 12: its top is 12 px above its baseline), with or
// without a legend.
func TestLegendClearsValueLabels(t *testing.T) {
	for _, legend := range []string{"", "buckets with fewer owners than the target of 16"} {
		c := &chart{id: "c", title: "Bucket sizes", xLabel: "owners", yLabel: "buckets", legend: legend,
			bars: []bar{{label: "1", value: 3, text: "3", warn: true}, {label: "16", value: 400, text: "400"}}}
		svg := c.svg()
		m := regexp.MustCompile(`<text class="value" x="[0-9.]+" y="([0-9.]+)"`).FindAllStringSubmatch(svg, -1)
		if len(m) != 2 {
			t.Fatalf("legend %q: %d value labels in\n%s", legend, len(m), svg)
		}
		top := 1e9
		for _, v := range m {
			y, _ := strconv.ParseFloat(v[1], 64)
			top = min(top, y-12)
		}
		above, floor := "title", 24.0 // the title's baseline
		if legend != "" {
			above, floor = "legend", 39.0
		}
		if top <= floor {
			t.Errorf("the tallest value label (top %g) runs into the %s (baseline %g)", top, above, floor)
		}
	}
}
