package disclose

import (
	"fmt"
	"html"
	"io"
	"strings"
)

// The report is built once as a small document model and rendered twice,
// as Markdown and as HTML, so that the two never say different things.

type spanKind int

const (
	plain spanKind = iota
	bold
	code
)

type span struct {
	kind spanKind
	s    string
}

func t(s string) span                 { return span{plain, s} }
func tf(f string, a ...any) span      { return span{plain, fmt.Sprintf(f, a...)} }
func b(s string) span                 { return span{bold, s} }
func bf(f string, a ...any) span      { return span{bold, fmt.Sprintf(f, a...)} }
func c(s string) span                 { return span{code, s} }
func line(spans ...span) []span       { return spans }
func cell(s string) []span            { return []span{t(s)} }
func cellf(f string, a ...any) []span { return []span{tf(f, a...)} }

type block interface{ isBlock() }

type heading struct {
	level int
	id    string
	text  string
}

type para struct{ spans []span }

// callout is a paragraph that needs the reader's attention.
type callout struct{ spans []span }

type list struct{ items [][]span }

type table struct {
	head    []string
	right   []bool // right-align column i (numbers)
	rows    [][][]span
	caption string
}

// row sets its blocks side by side in HTML (a table beside its chart);
// Markdown has them one after another.
type row struct{ blocks []block }

// ownerData holds the sections made from the owner's own files: the only
// part of a report that may contain phone numbers.
type ownerData struct{ blocks []block }

func (heading) isBlock()    {}
func (para) isBlock()       {}
func (callout) isBlock()    {}
func (list) isBlock()       {}
func (*table) isBlock()     {}
func (*chart) isBlock()     {}
func (*ownerData) isBlock() {}
func (row) isBlock()        {}

type document struct {
	title  string
	blocks []block
}

func (d *document) add(bs ...block) { d.blocks = append(d.blocks, bs...) }

// OwnerDataID is the id of the HTML section (and the name in the Markdown
// comments around it) that holds the owner's own data, phone numbers
// included. Nothing outside it holds a number.
const OwnerDataID = "owner-data"

// Markdown markers around the owner's data.
const (
	MarkdownOwnerBegin = "<!-- " + OwnerDataID + ": begin -->"
	MarkdownOwnerEnd   = "<!-- " + OwnerDataID + ": end -->"
)

// --- Markdown ---

var mdEscaper = strings.NewReplacer(`\`, `\\`, "*", `\*`, "_", `\_`, "`", "\\`", "[", `\[`, "]", `\]`, "<", "&lt;", ">", "&gt;", "|", `\|`, "#", `\#`)

func mdSpans(spans []span) string {
	var sb strings.Builder
	for _, s := range spans {
		switch s.kind {
		case bold:
			sb.WriteString("**" + mdEscaper.Replace(s.s) + "**")
		case code:
			// Inside a table a pipe ends the cell even in a code span.
			v := strings.ReplaceAll(strings.ReplaceAll(s.s, "\n", " "), "|", `\|`)
			fence := "`"
			for strings.Contains(v, fence) {
				fence += "`"
			}
			if strings.HasPrefix(v, "`") || strings.HasSuffix(v, "`") {
				v = " " + v + " "
			}
			sb.WriteString(fence + v + fence)
		default:
			sb.WriteString(mdEscaper.Replace(s.s))
		}
	}
	return sb.String()
}

func (d *document) writeMarkdown(w io.Writer) error {
	var sb strings.Builder
	sb.WriteString("# " + mdEscaper.Replace(d.title) + "\n")
	var walk func(bs []block)
	walk = func(bs []block) {
		for _, bl := range bs {
			if _, ok := bl.(row); !ok {
				sb.WriteString("\n")
			}
			switch x := bl.(type) {
			case heading:
				sb.WriteString(strings.Repeat("#", x.level) + " " + mdEscaper.Replace(x.text) + "\n")
			case para:
				sb.WriteString(mdSpans(x.spans) + "\n")
			case callout:
				sb.WriteString("> " + mdSpans(x.spans) + "\n")
			case list:
				for _, it := range x.items {
					sb.WriteString("- " + mdSpans(it) + "\n")
				}
			case *table:
				if x.caption != "" {
					sb.WriteString(mdEscaper.Replace(x.caption) + "\n\n")
				}
				sb.WriteString("|")
				for _, h := range x.head {
					sb.WriteString(" " + mdEscaper.Replace(h) + " |")
				}
				sb.WriteString("\n|")
				for i := range x.head {
					if i < len(x.right) && x.right[i] {
						sb.WriteString("---:|")
					} else {
						sb.WriteString("---|")
					}
				}
				sb.WriteString("\n")
				for _, r := range x.rows {
					sb.WriteString("|")
					for _, cl := range r {
						sb.WriteString(" " + mdSpans(cl) + " |")
					}
					sb.WriteString("\n")
				}
			case *chart:
				sb.WriteString(x.markdown())
			case row:
				walk(x.blocks)
			case *ownerData:
				sb.WriteString(MarkdownOwnerBegin + "\n")
				walk(x.blocks)
				sb.WriteString("\n" + MarkdownOwnerEnd + "\n")
			}
		}
	}
	walk(d.blocks)
	_, err := io.WriteString(w, sb.String())
	return err
}

// --- HTML ---

// The page is well-formed XML as well as HTML, so tests can parse it with
// encoding/xml. It has no script and loads nothing.
const htmlStyle = `
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: #1d2329; background: #fff; margin: 0; }
main { max-width: 1060px; margin: 0 auto; padding: 24px 32px 48px; }
h1 { font-size: 28px; margin: 0 0 4px; }
h2 { font-size: 21px; margin: 32px 0 8px; padding-top: 8px; border-top: 2px solid #e3e8ee; }
h3 { font-size: 17px; margin: 20px 0 6px; }
p, ul { margin: 8px 0; }
code { font: 13px/1.4 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; background: #f2f4f7; padding: 1px 4px; border-radius: 3px; }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: 14px; }
caption { text-align: left; font-weight: 600; padding-bottom: 4px; }
th, td { border: 1px solid #d5dbe1; padding: 4px 10px; vertical-align: top; text-align: left; }
th { background: #f2f4f7; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.callout { border-left: 4px solid #d9822b; background: #fff6ec; padding: 8px 12px; }
figure { margin: 12px 0 16px; }
.row { display: flex; gap: 24px; align-items: flex-start; }
.row table { flex: 0 0 auto; }
.row figure { flex: 1 1 auto; min-width: 0; }
figure svg { max-width: 100%; height: auto; border: 1px solid #e3e8ee; border-radius: 4px; }
figcaption { font-size: 13px; color: #4a5561; }
.owner-data { border: 2px solid #b0413e; border-radius: 6px; padding: 4px 20px 12px; margin-top: 32px; }
.owner-data h2 { border-top: none; }
.owner-warning { color: #b0413e; font-weight: 600; }
.summary li { margin: 4px 0; }
`

func htmlSpans(spans []span) string {
	var sb strings.Builder
	for _, s := range spans {
		e := html.EscapeString(s.s)
		switch s.kind {
		case bold:
			sb.WriteString("<strong>" + e + "</strong>")
		case code:
			sb.WriteString("<code>" + e + "</code>")
		default:
			sb.WriteString(e)
		}
	}
	return sb.String()
}

func (d *document) writeHTML(w io.Writer) error {
	var sb strings.Builder
	sb.WriteString("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n")
	sb.WriteString("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n")
	sb.WriteString("<title>" + html.EscapeString(d.title) + "</title>\n<style>" + htmlStyle + "</style>\n</head>\n<body>\n<main>\n")
	sb.WriteString("<h1>" + html.EscapeString(d.title) + "</h1>\n")
	var walk func(bs []block)
	walk = func(bs []block) {
		for _, bl := range bs {
			switch x := bl.(type) {
			case heading:
				id := ""
				if x.id != "" {
					id = ` id="` + html.EscapeString(x.id) + `"`
				}
				fmt.Fprintf(&sb, "<h%d%s>%s</h%d>\n", x.level, id, html.EscapeString(x.text), x.level)
			case para:
				sb.WriteString("<p>" + htmlSpans(x.spans) + "</p>\n")
			case callout:
				sb.WriteString(`<p class="callout">` + htmlSpans(x.spans) + "</p>\n")
			case list:
				sb.WriteString("<ul>\n")
				for _, it := range x.items {
					sb.WriteString("<li>" + htmlSpans(it) + "</li>\n")
				}
				sb.WriteString("</ul>\n")
			case *table:
				sb.WriteString("<table>\n")
				if x.caption != "" {
					sb.WriteString("<caption>" + html.EscapeString(x.caption) + "</caption>\n")
				}
				sb.WriteString("<thead><tr>")
				for i, h := range x.head {
					sb.WriteString("<th" + numClass(x.right, i) + ">" + html.EscapeString(h) + "</th>")
				}
				sb.WriteString("</tr></thead>\n<tbody>\n")
				for _, r := range x.rows {
					sb.WriteString("<tr>")
					for i, cl := range r {
						sb.WriteString("<td" + numClass(x.right, i) + ">" + htmlSpans(cl) + "</td>")
					}
					sb.WriteString("</tr>\n")
				}
				sb.WriteString("</tbody>\n</table>\n")
			case *chart:
				sb.WriteString("<figure>\n" + x.svg() + "\n")
				if x.caption != "" {
					sb.WriteString("<figcaption>" + html.EscapeString(x.caption) + "</figcaption>\n")
				}
				sb.WriteString("</figure>\n")
			case row:
				sb.WriteString(`<div class="row">` + "\n")
				walk(x.blocks)
				sb.WriteString("</div>\n")
			case *ownerData:
				sb.WriteString(`<section id="` + OwnerDataID + `" class="owner-data">` + "\n")
				walk(x.blocks)
				sb.WriteString("</section>\n")
			}
		}
	}
	walk(d.blocks)
	sb.WriteString("</main>\n</body>\n</html>\n")
	_, err := io.WriteString(w, sb.String())
	return err
}

func numClass(right []bool, i int) string {
	if i < len(right) && right[i] {
		return ` class="num"`
	}
	return ""
}
