package disclose

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// A chart is a bar chart, drawn as inline SVG in HTML and as a table with
// text bars in Markdown.
type chart struct {
	id      string
	title   string
	xLabel  string
	yLabel  string
	bars    []bar
	log     bool   // logarithmic value axis; every value must be positive
	ticks   []tick // value-axis ticks for a log chart; default: decades
	legend  string // explains the warn colour
	caption string
}

type bar struct {
	label string  // under the bar
	text  string  // above the bar: the value, formatted
	value float64 // height
	warn  bool    // draw in the warning colour
}

type tick struct {
	value float64
	label string
}

const (
	svgW, svgH                   = 640.0, 330.0
	marginL, marginR             = 104.0, 16.0
	marginT, marginB             = 46.0, 78.0
	plotW                        = svgW - marginL - marginR
	plotH                        = svgH - marginT - marginB
	colourBar, colourWarn        = "#2f6fb0", "#d9822b"
	colourText, colourGrid, axis = "#1d2329", "#e3e8ee", "#5b6670"
)

// maxValueLabels is the most bars whose values are written above them;
// beyond it they would overlap, and the value axis and each bar's tooltip
// give them.
const maxValueLabels = 16

// legendH is the room a legend takes between the title and the plot, so
// that the tallest bar's value label never runs into it.
const legendH = 18.0

// scale maps values to the plot's vertical axis.
type scale struct {
	log    bool
	lo, hi float64 // for log: the decades' exponents
	ticks  []tick
	top, h float64 // the plot's top edge and height, in pixels
}

func (c *chart) scale() scale {
	s := c.values()
	s.top, s.h = marginT, plotH
	if c.legend != "" {
		s.top, s.h = marginT+legendH, plotH-legendH
	}
	return s
}

// values chooses the axis range and ticks.
func (c *chart) values() scale {
	maxV := 0.0
	minV := math.Inf(1)
	for _, b := range c.bars {
		maxV = max(maxV, b.value)
		if b.value > 0 {
			minV = min(minV, b.value)
		}
	}
	if c.log && maxV > 0 {
		lo := math.Floor(math.Log10(minV))
		if math.Pow(10, lo) >= minV { // keep the smallest bar visible
			lo--
		}
		hi := math.Ceil(math.Log10(maxV))
		if hi <= lo {
			hi = lo + 1
		}
		s := scale{log: true, lo: lo, hi: hi}
		for _, tk := range c.ticks {
			if e := math.Log10(tk.value); e >= lo-1e-9 && e <= hi+1e-9 {
				s.ticks = append(s.ticks, tk)
			}
		}
		if len(s.ticks) == 0 {
			for e := lo; e <= hi; e++ {
				s.ticks = append(s.ticks, tick{math.Pow(10, e), fmtCompact(math.Pow(10, e))})
			}
		}
		return s
	}
	step := niceStep(maxV / 4)
	top := math.Max(step, math.Ceil(maxV/step)*step)
	s := scale{lo: 0, hi: top}
	for v := 0.0; v <= top+step/2; v += step {
		s.ticks = append(s.ticks, tick{v, fmtCompact(v)})
	}
	return s
}

// y returns the vertical coordinate of value v.
func (s scale) y(v float64) float64 {
	var f float64
	if s.log {
		if v <= 0 {
			return s.top + s.h
		}
		f = (math.Log10(v) - s.lo) / (s.hi - s.lo)
	} else {
		f = (v - s.lo) / (s.hi - s.lo)
	}
	f = math.Max(0, math.Min(1, f))
	return s.top + s.h*(1-f)
}

// niceStep rounds x up to 1, 2 or 5 times a power of ten.
func niceStep(x float64) float64 {
	if x <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(x)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= x {
			return math.Max(1, m*p)
		}
	}
	return math.Max(1, 10*p)
}

func (c *chart) svg() string {
	s := c.scale()
	var sb strings.Builder
	esc := html.EscapeString
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" id="%s" class="chart" width="%g" height="%g" viewBox="0 0 %g %g" role="img" aria-labelledby="%s-title" font-family="system-ui, sans-serif">`,
		esc(c.id), svgW, svgH, svgW, svgH, esc(c.id))
	fmt.Fprintf(&sb, "\n<title id=\"%s-title\">%s</title>\n", esc(c.id), esc(c.title))
	fmt.Fprintf(&sb, `<rect x="0" y="0" width="%g" height="%g" fill="#ffffff"/>`+"\n", svgW, svgH)
	fmt.Fprintf(&sb, `<text class="chart-title" x="%g" y="24" text-anchor="middle" font-size="16" font-weight="600" fill="%s">%s</text>`+"\n", svgW/2, colourText, esc(c.title))
	if c.legend != "" {
		fmt.Fprintf(&sb, `<text x="%g" y="39" text-anchor="end" font-size="12" fill="%s">%s</text><rect x="%g" y="30" width="10" height="10" fill="%s"/>`+"\n",
			svgW-marginR-14, colourText, esc(c.legend), svgW-marginR-10, colourWarn)
	}
	// Grid and value axis.
	for _, tk := range s.ticks {
		y := s.y(tk.value)
		fmt.Fprintf(&sb, `<line x1="%g" y1="%.1f" x2="%g" y2="%.1f" stroke="%s" stroke-width="1"/>`, marginL, y, marginL+plotW, y, colourGrid)
		fmt.Fprintf(&sb, `<text class="tick" x="%g" y="%.1f" text-anchor="end" font-size="12" fill="%s">%s</text>`+"\n", marginL-6, y+4, axis, esc(tk.label))
	}
	fmt.Fprintf(&sb, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="%s" stroke-width="1.5"/>`, marginL, s.top, marginL, s.top+s.h, axis)
	fmt.Fprintf(&sb, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="%s" stroke-width="1.5"/>`+"\n", marginL, s.top+s.h, marginL+plotW, s.top+s.h, axis)
	// Bars, their values and their labels.
	n := len(c.bars)
	slot := plotW / float64(max(n, 1))
	bw := math.Max(1, slot*0.72)
	every := max(1, (n+23)/24) // label at most 24 bars
	rotate := false
	for _, b := range c.bars {
		if float64(len(b.label))*7.2 > slot*float64(every) {
			rotate = true
		}
	}
	base := s.top + s.h
	for i, b := range c.bars {
		x := marginL + float64(i)*slot + (slot-bw)/2
		y := s.y(b.value)
		fill := colourBar
		if b.warn {
			fill = colourWarn
		}
		fmt.Fprintf(&sb, `<rect class="bar" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %s</title></rect>`,
			x, y, bw, base-y, fill, esc(b.label), esc(b.text))
		cx := x + bw/2
		if n <= maxValueLabels {
			fmt.Fprintf(&sb, `<text class="value" x="%.1f" y="%.1f" text-anchor="middle" font-size="12" fill="%s">%s</text>`, cx, y-4, colourText, esc(b.text))
		}
		if i%every == 0 {
			if rotate {
				fmt.Fprintf(&sb, `<text class="label" x="%.1f" y="%.1f" text-anchor="end" font-size="12" fill="%s" transform="rotate(-45 %.1f %.1f)">%s</text>`,
					cx, base+14, colourText, cx, base+14, esc(b.label))
			} else {
				fmt.Fprintf(&sb, `<text class="label" x="%.1f" y="%.1f" text-anchor="middle" font-size="12" fill="%s">%s</text>`, cx, base+16, colourText, esc(b.label))
			}
		}
		sb.WriteString("\n")
	}
	fmt.Fprintf(&sb, `<text class="axis-label" x="%g" y="%g" text-anchor="middle" font-size="13" fill="%s">%s</text>`+"\n", marginL+plotW/2, svgH-10, colourText, esc(c.xLabel))
	fmt.Fprintf(&sb, `<text class="axis-label" x="16" y="%g" text-anchor="middle" font-size="13" fill="%s" transform="rotate(-90 16 %g)">%s</text>`+"\n",
		s.top+s.h/2, colourText, s.top+s.h/2, esc(c.yLabel))
	sb.WriteString("</svg>")
	return sb.String()
}

// markdown renders the chart as a table with text bars.
func (c *chart) markdown() string {
	s := c.scale()
	var sb strings.Builder
	sb.WriteString("**" + mdEscaper.Replace(c.title) + "**")
	if c.log {
		sb.WriteString(" (bars on a logarithmic scale)")
	}
	sb.WriteString("\n\n| " + mdEscaper.Replace(c.xLabel) + " | " + mdEscaper.Replace(c.yLabel) + " | |\n|---|---:|---|\n")
	for _, b := range c.bars {
		f := 1 - (s.y(b.value)-s.top)/s.h
		bar := strings.Repeat("█", int(math.Round(f*40)))
		if b.warn {
			bar += " ◀"
		}
		fmt.Fprintf(&sb, "| %s | %s | %s |\n", mdEscaper.Replace(b.label), mdEscaper.Replace(b.text), bar)
	}
	if c.legend != "" {
		sb.WriteString("\n◀ " + mdEscaper.Replace(c.legend) + "\n")
	}
	if c.caption != "" {
		sb.WriteString("\n" + mdEscaper.Replace(c.caption) + "\n")
	}
	return sb.String()
}
