package webmail

// The HTML sanitiser of a message's HTML part: a strict allow-list over golang.org/x/net/html's
// tokenizer. It replaces bluemonday, whose package initialisers compile about a hundred regular
// expressions (with gorilla/css's) in every run of the one binary, `petrel fetch --idle`
// included, where they and the holes their garbage leaves in the heap cost 0.6-0.8 MB at rest
// (docs/architecture.md, "HTML sanitiser").
//
// Invariants that make the output safe whatever the input:
//   - Nothing is copied through: every text token is re-escaped, every tag is written anew from
//     its lower-cased name, and every attribute value is written quoted and escaped. A browser
//     therefore parses the output as exactly the elements written here.
//   - Only the elements of allowedElements are written (their text is kept when they are not);
//     no raw-text element (script, style, textarea, title, xmp, noscript...) is among them, so
//     the output never switches the browser's tokenizer out of its data state.
//   - The content of skippedElements (script, style, embedded documents) is dropped with them.
//   - Only the attributes of allowedAttrs are written, each through its check; no event handler,
//     no style, no id or name (no DOM clobbering), URLs only with http, https and mailto
//     (images: http, https, and data: images in base64), after removing what browsers remove.
// The page's iframe adds a sandbox without scripts and a CSP with default-src 'none'
// (HTMLFrameCSP), so a mistake here would still not run a script or load a resource.

import (
	"bytes"
	"encoding/base64"
	"html"
	"net/url"
	"strings"

	xhtml "golang.org/x/net/html"
)

// skippedElements lose their content too: scripts, styles, and embedded documents or
// objects, whose text is not the message's.
var skippedElements = map[string]bool{
	"script": true, "style": true, "title": true, "template": true, "noscript": true, "iframe": true,
	"frame": true, "frameset": true, "noframes": true, "object": true, "embed": true, "applet": true,
	"noembed": true, "svg": true, "math": true, "textarea": true, "xmp": true, "plaintext": true,
}

// allowedElements are written; void ones have no end tag.
var allowedElements = map[string]bool{
	"a": true, "abbr": true, "acronym": true, "address": true, "article": true, "aside": true,
	"b": true, "bdi": true, "bdo": true, "big": true, "blockquote": true, "br": true, "caption": true,
	"center": true, "cite": true, "code": true, "col": true, "colgroup": true, "dd": true, "del": true,
	"details": true, "dfn": true, "div": true, "dl": true, "dt": true, "em": true, "figcaption": true,
	"figure": true, "h1": true, "h2": true, "h3": true, "h4": true, "h5": true, "h6": true, "hr": true,
	"i": true, "img": true, "ins": true, "kbd": true, "li": true, "mark": true, "ol": true, "p": true,
	"pre": true, "q": true, "rp": true, "rt": true, "ruby": true, "s": true, "samp": true, "section": true,
	"small": true, "span": true, "strike": true, "strong": true, "sub": true, "summary": true, "sup": true,
	"table": true, "tbody": true, "td": true, "tfoot": true, "th": true, "thead": true, "tr": true,
	"tt": true, "u": true, "ul": true, "var": true, "wbr": true,
}

var voidElements = map[string]bool{"br": true, "col": true, "hr": true, "img": true, "wbr": true}

// attrCheck returns the value to write, or false to drop the attribute.
type attrCheck func(v string) (string, bool)

// globalAttrs are allowed on every allowed element; elementAttrs on the named ones.
var globalAttrs = map[string]attrCheck{
	"title": anyText, "lang": oneOf(isLangChar, 35), "dir": keyword("ltr", "rtl", "auto"),
	"align":  keyword("left", "right", "center", "justify", "top", "bottom", "middle"),
	"valign": keyword("top", "middle", "bottom", "baseline"), "width": length, "height": length,
	"bgcolor": color,
}

var elementAttrs = map[string]map[string]attrCheck{
	"a":          {"href": linkURL},
	"img":        {"src": imageURL, "alt": anyText},
	"blockquote": {"cite": linkURL},
	"q":          {"cite": linkURL},
	"del":        {"cite": linkURL},
	"ins":        {"cite": linkURL},
	"td":         {"colspan": number, "rowspan": number, "abbr": anyText},
	"th":         {"colspan": number, "rowspan": number, "abbr": anyText, "scope": keyword("row", "col", "rowgroup", "colgroup")},
	"col":        {"span": number},
	"colgroup":   {"span": number},
	"table":      {"border": number, "cellpadding": number, "cellspacing": number, "summary": anyText},
	"ol":         {"start": number, "type": keyword("1", "a", "i")},
	"ul":         {"type": keyword("disc", "circle", "square")},
	"li":         {"value": number},
	"details":    {"open": keyword("", "open")},
}

// sanitizeHTML is the allowed part of an HTML document, as HTML.
func sanitizeHTML(doc []byte) string {
	var out strings.Builder
	walkHTML(doc, func(t xhtml.Token) {
		switch t.Type {
		case xhtml.TextToken:
			out.WriteString(html.EscapeString(strings.ReplaceAll(t.Data, "\x00", "")))
		case xhtml.StartTagToken, xhtml.SelfClosingTagToken:
			writeStartTag(&out, t)
		case xhtml.EndTagToken:
			if !voidElements[t.Data] {
				out.WriteString("</" + t.Data + ">")
			}
		}
	})
	return out.String()
}

// textOfHTML is the text of an HTML document: what sanitizeHTML keeps, without tags, with a
// line break for each line-breaking element.
func textOfHTML(doc []byte) string {
	var out strings.Builder
	walkHTML(doc, func(t xhtml.Token) {
		switch {
		case t.Type == xhtml.TextToken:
			out.WriteString(strings.ReplaceAll(t.Data, "\x00", ""))
		case t.Data == "br" && t.Type != xhtml.EndTagToken:
			out.WriteString("\n")
		case t.Type != xhtml.EndTagToken:
		case t.Data == "p":
			out.WriteString("\n\n")
		case t.Data == "div" || t.Data == "tr":
			out.WriteString("\n")
		}
	})
	return out.String()
}

// walkHTML calls emit with each token of doc that is allowed: text outside skipped elements,
// and tags of allowed elements. Comments, doctypes and everything else are dropped.
func walkHTML(doc []byte, emit func(xhtml.Token)) {
	z := xhtml.NewTokenizer(bytes.NewReader(doc))
	skip := 0 // depth inside skipped elements
	for {
		tt := z.Next()
		if tt == xhtml.ErrorToken {
			return // io.EOF: the tokenizer reads from memory, nothing else can fail
		}
		t := z.Token()
		switch tt {
		case xhtml.StartTagToken:
			if skippedElements[t.Data] {
				skip++
				continue
			}
		case xhtml.EndTagToken:
			if skippedElements[t.Data] {
				skip = max(skip-1, 0)
				continue
			}
		case xhtml.SelfClosingTagToken:
			if skippedElements[t.Data] {
				continue
			}
		case xhtml.TextToken:
		default:
			continue
		}
		if skip > 0 || (tt != xhtml.TextToken && !allowedElements[t.Data]) {
			continue
		}
		emit(t)
	}
}

func writeStartTag(out *strings.Builder, t xhtml.Token) {
	out.WriteString("<" + t.Data)
	external := false
	for _, a := range t.Attr {
		if a.Namespace != "" {
			continue
		}
		check := elementAttrs[t.Data][a.Key]
		if check == nil {
			check = globalAttrs[a.Key]
		}
		if check == nil {
			continue
		}
		v, ok := check(a.Val)
		if !ok {
			continue
		}
		if t.Data == "a" && a.Key == "href" {
			external = true
		}
		out.WriteString(" " + a.Key + `="` + html.EscapeString(v) + `"`)
	}
	if external {
		// Links leave the frame without telling the target where they came from.
		out.WriteString(` rel="nofollow noreferrer noopener" target="_blank"`)
	}
	out.WriteString(">")
}

func anyText(v string) (string, bool) { return v, true }

func keyword(words ...string) attrCheck {
	return func(v string) (string, bool) {
		v = strings.ToLower(strings.TrimSpace(v))
		for _, w := range words {
			if v == w {
				return v, true
			}
		}
		return "", false
	}
}

// number is 1 to 4 digits; length also allows a percentage.
func number(v string) (string, bool) {
	v = strings.TrimSpace(v)
	return v, v != "" && len(v) <= 4 && strings.Trim(v, "0123456789") == ""
}

func length(v string) (string, bool) {
	n, _ := strings.CutSuffix(strings.TrimSpace(v), "%")
	if _, ok := number(n); !ok {
		return "", false
	}
	return strings.TrimSpace(v), true
}

// color is #RGB to #RRGGBBAA or a colour name.
func color(v string) (string, bool) {
	v = strings.TrimSpace(v)
	if hex, ok := strings.CutPrefix(v, "#"); ok {
		return v, len(hex) >= 3 && len(hex) <= 8 && strings.Trim(strings.ToLower(hex), "0123456789abcdef") == ""
	}
	return oneOf(func(r rune) bool { return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' }, 20)(v)
}

func isLangChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-'
}

// oneOf accepts 1 to n characters for which ok holds.
func oneOf(ok func(rune) bool, n int) attrCheck {
	return func(v string) (string, bool) {
		v = strings.TrimSpace(v)
		return v, v != "" && len(v) <= n && strings.IndexFunc(v, func(r rune) bool { return !ok(r) }) < 0
	}
}

// linkURL is an absolute http, https or mailto URL.
func linkURL(v string) (string, bool) { return absoluteURL(v, "http", "https", "mailto") }

// imageURL is an absolute http or https URL (whether it loads is the frame CSP's decision), or
// a data: URL of a raster image in base64.
func imageURL(v string) (string, bool) {
	v = cleanURL(v)
	if len(v) >= 5 && strings.EqualFold(v[:5], "data:") {
		mediaType, data, ok := strings.Cut(v[5:], ";base64,")
		switch strings.ToLower(mediaType) {
		case "image/png", "image/jpeg", "image/jpg", "image/gif", "image/webp", "image/bmp":
		default:
			return "", false
		}
		if !ok {
			return "", false
		}
		if _, err := base64.StdEncoding.DecodeString(data); err != nil {
			return "", false
		}
		return "data:" + strings.ToLower(mediaType) + ";base64," + data, true
	}
	return absoluteURL(v, "http", "https")
}

// cleanURL removes what the URL parser of browsers removes before it reads a URL: leading
// and trailing C0 controls and spaces, and tabs and line breaks anywhere ("java\tscript:").
func cleanURL(v string) string {
	v = strings.TrimFunc(v, func(r rune) bool { return r <= ' ' })
	return strings.NewReplacer("\t", "", "\n", "", "\r", "").Replace(v)
}

func absoluteURL(v string, schemes ...string) (string, bool) {
	u, err := url.Parse(cleanURL(v))
	if err != nil || u.Scheme == "" {
		return "", false
	}
	for _, s := range schemes {
		if u.Scheme == s && (s == "mailto" || u.Host != "") {
			return u.String(), true
		}
	}
	return "", false
}
