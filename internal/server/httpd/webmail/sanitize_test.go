package webmail

import (
	"strings"
	"testing"

	xhtml "golang.org/x/net/html"
)

// XSS vectors (after the OWASP filter evasion cheat sheet and html5sec.org): none may leave a
// script, an event handler, a style, a dangerous URL or an embedded document in the output.
var xssVectors = []string{
	`<script>alert(1)</script>`,
	`<SCRIPT SRC=http://evil.example/xss.js></SCRIPT>`,
	`<IMG SRC="javascript:alert('XSS');">`,
	`<IMG SRC=javascript:alert('XSS')>`,
	`<IMG SRC=JaVaScRiPt:alert('XSS')>`,
	`<IMG SRC=&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;&#97;&#108;&#101;&#114;&#116;&#40;&#39;&#88;&#83;&#83;&#39;&#41;>`,
	`<IMG SRC=&#x6A&#x61&#x76&#x61&#x73&#x63&#x72&#x69&#x70&#x74&#x3A&#x61&#x6C&#x65&#x72&#x74&#x28&#x27&#x58&#x53&#x53&#x27&#x29>`,
	"<IMG SRC=\"jav\tascript:alert('XSS');\">",
	"<IMG SRC=\"jav&#x09;ascript:alert('XSS');\">",
	"<IMG SRC=\"jav&#x0A;ascript:alert('XSS');\">",
	"<a href=\" \x01javascript:alert(1)\">x</a>",
	`<a href="java&#0000115;cript:alert(1)">x</a>`,
	`<a href="&#x6a;avascript&colon;alert(1)">x</a>`,
	`<a href="vbscript:msgbox(1)">x</a>`,
	`<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>`,
	`<img src="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+">`,
	`<img src="data:text/html,<script>alert(1)</script>">`,
	`<IMG """><SCRIPT>alert("XSS")</SCRIPT>">`,
	`<IMG SRC=# onmouseover="alert('xxs')">`,
	`<IMG SRC=/ onerror="alert(String.fromCharCode(88,83,83))"></img>`,
	`<img src=x onerror=alert(1)//`,
	`<BODY ONLOAD=alert('XSS')>`,
	`<<SCRIPT>alert("XSS");//<</SCRIPT>`,
	`<SCRIPT/XSS SRC="http://evil.example/xss.js"></SCRIPT>`,
	`<iframe src="javascript:alert(1)"></iframe>`,
	`<iframe srcdoc="&lt;script&gt;alert(1)&lt;/script&gt;"></iframe>`,
	`<svg/onload=alert(1)>`,
	`<svg><script>alert(1)</script></svg>`,
	`<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>`,
	`<noscript><p title="</noscript><img src=x onerror=alert(1)>">`,
	`<style>@import 'http://evil.example/css';</style>`,
	`<div style="background:url(javascript:alert(1))">x</div>`,
	`<p style="width: expression(alert(1))">x</p>`,
	`<LINK REL="stylesheet" HREF="javascript:alert('XSS');">`,
	`<META HTTP-EQUIV="refresh" CONTENT="0;url=javascript:alert('XSS');">`,
	`<TABLE BACKGROUND="javascript:alert('XSS')">`,
	`<DIV STYLE="background-image: url(javascript:alert('XSS'))">`,
	`<BASE HREF="javascript:alert('XSS');//">`,
	`<OBJECT TYPE="text/x-scriptlet" DATA="http://evil.example/scriptlet.html"></OBJECT>`,
	`<EMBED SRC="data:image/svg+xml;base64,PHN2Zz48c2NyaXB0PmFsZXJ0KDEpPC9zY3JpcHQ+PC9zdmc+" AllowScriptAccess="always"></EMBED>`,
	`<form action="javascript:alert(1)"><button>x</button></form>`,
	`<a href="https://example.org/" onclick="alert(1)">x</a>`,
	`<a href="https://example.org/"/onclick=alert(1)>x</a>`,
	`<img src="https://example.org/a.png" alt="x" onerror="alert(1)">`,
	`<xmp><img src=x onerror=alert(1)></xmp>`,
	`<textarea></textarea><img src=x onerror=alert(1)></textarea>`,
	`<title><img src=x onerror=alert(1)></title>`,
	`<!--<img src="--><img src=x onerror=alert(1)//">`,
	`<![CDATA[<img src=x onerror=alert(1)>]]>`,
	`<a href="https://example.org/" title="&quot; onmouseover=&quot;alert(1)">x</a>`,
	`<img src="https://example.org/" alt="&#34;&#62;&#60;script&#62;alert(1)&#60;/script&#62;">`,
	`<template><script>alert(1)</script></template>`,
	`<details open ontoggle=alert(1)>`,
	`<a href="javas&#99;ript:alert(1)">x</a>`,
	"<a href=\"javascript\x00:alert(1)\">x</a>",
	`<plaintext><script>alert(1)</script>`,
	`<table><td background="javascript:alert(1)">`,
	`<a id="x" name="location" href="https://example.org/">clobber</a>`,
	`<input type="image" src="javascript:alert(1)">`,
	`<isindex type=image src=1 onerror=alert(1)>`,
}

func TestSanitizeXSS(t *testing.T) {
	for _, v := range xssVectors {
		out := sanitizeHTML([]byte(v))
		// What a browser makes of the output: no element or attribute outside the allow-list,
		// no dangerous URL.
		checkAllowed(t, v, out)
		// The output is a fixed point: sanitising it again changes nothing, so there is no
		// second reading of it (mutation XSS) that differs from ours.
		if again := sanitizeHTML([]byte(out)); again != out {
			t.Errorf("%q: not stable: %q then %q", v, out, again)
		}
	}
}

// checkAllowed parses out as a browser does and fails on anything outside the allow-list.
func checkAllowed(t *testing.T, in, out string) {
	t.Helper()
	// The output is served as the document of the message's frame.
	doc, err := xhtml.Parse(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	var walk func(n *xhtml.Node)
	walk = func(n *xhtml.Node) {
		if n.Type == xhtml.ElementNode {
			implied := n.Data == "html" || n.Data == "head" || n.Data == "body" // made by the parser
			if (!allowedElements[n.Data] && !implied) || n.Namespace != "" {
				t.Errorf("%q gave element %q: %q", in, n.Data, out)
			}
			for _, a := range n.Attr {
				lower := strings.ToLower(a.Val)
				switch {
				case a.Key == "rel" || a.Key == "target":
				case elementAttrs[n.Data][a.Key] == nil && globalAttrs[a.Key] == nil:
					t.Errorf("%q gave attribute %q: %q", in, a.Key, out)
				case (a.Key == "href" || a.Key == "src" || a.Key == "cite") && !strings.HasPrefix(lower, "https://") &&
					!strings.HasPrefix(lower, "http://") && !strings.HasPrefix(lower, "mailto:") && !strings.HasPrefix(lower, "data:image/png;base64,"):
					t.Errorf("%q gave URL %q: %q", in, a.Val, out)
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	// Text and attribute values are escaped, so none of these can be there but as a tag.
	lower := strings.ToLower(out)
	for _, bad := range []string{"<script", "<style", "<iframe", "<svg", "<math", "<object", "<embed", "<form", "<base", "<meta", "<link"} {
		if strings.Contains(lower, bad) {
			t.Errorf("%q gave %q: %q", in, bad, out)
		}
	}
}

func TestSanitizeKeeps(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`<p>Hello <b>you</b> &amp; <i>me</i></p>`, `<p>Hello <b>you</b> &amp; <i>me</i></p>`},
		{`<A HREF="https://example.org/x?a=1&amp;b=2">link</A>`, `<a href="https://example.org/x?a=1&amp;b=2" rel="nofollow noreferrer noopener" target="_blank">link</a>`},
		{`<a href="mailto:bob@example.org">bob</a>`, `<a href="mailto:bob@example.org" rel="nofollow noreferrer noopener" target="_blank">bob</a>`},
		{`<a href="#top">top</a>`, `<a>top</a>`},
		{`<img src="https://example.org/logo.png" alt="Logo" width="120" height="40">`, `<img src="https://example.org/logo.png" alt="Logo" width="120" height="40">`},
		{`<img src="data:image/png;base64,iVBORw0KGgo=">`, `<img src="data:image/png;base64,iVBORw0KGgo=">`},
		{`<table border="0" cellpadding="4" width="100%"><tr><td colspan="2" align="CENTER" bgcolor="#FFEEDD">x</td></tr></table>`,
			`<table border="0" cellpadding="4" width="100%"><tr><td colspan="2" align="center" bgcolor="#FFEEDD">x</td></tr></table>`},
		{`<font color="red">kept text</font><center>c</center>`, `kept text<center>c</center>`},
		{`<html><head><title>T</title><style>p{}</style></head><body><div>body</div></body></html>`, `<div>body</div>`},
		{`<html><head><meta charset="utf-8"><body>no end of head`, `no end of head`},
		{`a<br>b<br/>c`, `a<br>b<br>c`},
		{`x < y > z "q"`, `x &lt; y &gt; z &#34;q&#34;`},
		{`<td width="1e9" colspan="-1" rowspan="99999">`, `<td>`},
	} {
		if got := sanitizeHTML([]byte(c.in)); got != c.want {
			t.Errorf("sanitizeHTML(%q)\n got %q\nwant %q", c.in, got, c.want)
		}
	}
}

func TestTextOfHTML(t *testing.T) {
	in := `<style>p{color:red}</style><p>One &amp; two</p><div>three<br>four</div><table><tr><td>a</td></tr></table><script>x()</script>`
	want := "One & two\n\nthree\nfour\na\n"
	if got := textOfHTML([]byte(sanitizeHTML([]byte(in)))); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func FuzzSanitize(f *testing.F) {
	for _, v := range xssVectors {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := sanitizeHTML([]byte(in))
		checkAllowed(t, in, out)
		if again := sanitizeHTML([]byte(out)); again != out {
			t.Errorf("not stable: %q then %q", out, again)
		}
	})
}
