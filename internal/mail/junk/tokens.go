package junk

import (
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	"petrel/internal/store"
)

// Bounds of the features of one message: they keep a delivery's store read and the work of
// a huge or hostile message small, and a token row short.
const (
	// MaxTokens is how many distinct tokens a message contributes; the header's come first,
	// so a long body cannot push them out.
	MaxTokens = 1000
	// maxBodyText is how much decoded body text is read for tokens. Spam shows itself early;
	// a newsletter's twentieth screen adds little.
	maxBodyText = 64 << 10
	// Word lengths kept, in runes: shorter words are mostly grammar, longer ones are hashes,
	// base64 left-overs and glued URLs, counted only as a length class (skip:N).
	minWord, maxWord = 3, 24
	// maxTokenBytes bounds every token, prefix included.
	maxTokenBytes = 64
)

// Tokens returns the distinct features of a decoded message, at most MaxTokens, in a
// stable order (the same text gives the same tokens):
//   - words of the Subject (s:) and of the From display name (f:), the From domain (fd:);
//   - a few telling header fields (h:): the mailer, the content type, list headers,
//     the Reply-To and Message-ID domains, and our own SPF/DKIM/DMARC results;
//   - words of the text parts (HTML already reduced to text by the message package), and
//     the host names of links in them (url:).
//
// Our own verdict fields (X-Spam-*) and trace fields are left out, so that training on a
// stored message does not learn from the verdict it was filed with.
func Tokens(t *store.SearchText) []string {
	return tokens(t, make(map[string]bool, tokenHint(t)))
}

// tokenHint is about how many distinct tokens a text gives: one per 12 bytes of mail text.
func tokenHint(t *store.SearchText) int {
	return min(MaxTokens, 32+(len(t.Subject)+len(t.Header)+min(len(t.Body), maxBodyText))/12)
}

// tokens is Tokens with seen, an empty set to note the tokens in (Filter reuses one from
// message to message: making a map for each was a third of the work).
func tokens(t *store.SearchText, seen map[string]bool) []string {
	tk := tokenizer{seen: seen, out: make([]string, 0, tokenHint(t))}
	tk.words("s:", t.Subject)
	tk.from(t.From)
	for line := range strings.SplitSeq(t.Header, "\n") {
		tk.header(line)
	}
	body := t.Body
	if len(body) > maxBodyText {
		body = body[:maxBodyText]
	}
	tk.urls(body)
	tk.words("", body)
	return tk.out
}

type tokenizer struct {
	seen map[string]bool
	out  []string
}

func (tk *tokenizer) add(tok string) {
	if len(tok) > maxTokenBytes {
		tok = tok[:maxTokenBytes]
		for !utf8.ValidString(tok) {
			tok = tok[:len(tok)-1]
		}
	}
	if len(tk.out) >= MaxTokens || tk.seen[tok] {
		return
	}
	tk.seen[tok] = true
	tk.out = append(tk.out, tok)
}

// words adds the words of s with prefix. A word is a run of letters, digits and the marks
// spam leans on ($, %, !), lower-cased. ASCII, most of any mail, takes a byte loop; other
// text goes through package unicode.
func (tk *tokenizer) words(prefix, s string) {
	i := 0
	for i < len(s) && len(tk.out) < MaxTokens {
		// Skip to the next word.
		for i < len(s) {
			if c := s[i]; c < utf8.RuneSelf {
				if isWordByte(c) {
					break
				}
				i++
				continue
			}
			r, n := utf8.DecodeRuneInString(s[i:])
			if isWordRune(r) {
				break
			}
			i += n
		}
		start, runes, lower := i, 0, true
		for i < len(s) {
			if c := s[i]; c < utf8.RuneSelf {
				if !isWordByte(c) {
					break
				}
				if 'A' <= c && c <= 'Z' {
					lower = false
				}
				i++
			} else {
				r, n := utf8.DecodeRuneInString(s[i:])
				if !isWordRune(r) {
					break
				}
				lower = false // let strings.ToLower decide
				i += n
			}
			runes++
		}
		switch w := s[start:i]; {
		case runes < minWord:
		case runes > maxWord:
			// Only how long: one token per ten runes (skip:3 is 30-39).
			tk.add(prefix + "skip:" + itoa(min(runes/10, 9)))
		case lower && prefix == "":
			tk.add(w) // no copy
		case lower:
			tk.add(prefix + w)
		default:
			tk.add(prefix + strings.ToLower(w))
		}
	}
}

func isWordByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '$' || c == '%' || c == '!'
}

// from adds the From field's display name words and its domain.
func (tk *tokenizer) from(v string) {
	if v == "" {
		tk.add("fd:none")
		return
	}
	if i := strings.IndexByte(v, '\n'); i >= 0 {
		v = v[:i] // a second From field is not a second sender
	}
	a, err := mail.ParseAddress(v)
	if err != nil {
		tk.add("f:unparsable")
		tk.words("f:", v)
		return
	}
	tk.words("f:", a.Name)
	tk.add("fd:" + domainOf(a.Address))
}

// header adds features of one "name: value" line of the other header fields.
func (tk *tokenizer) header(line string) {
	name, value, ok := strings.Cut(line, ": ")
	if !ok {
		return
	}
	value = strings.TrimSpace(value)
	switch name {
	case "x-mailer", "user-agent":
		tk.add("h:" + name + ":" + strings.ToLower(firstWord(value)))
	case "content-type":
		ct, _, _ := strings.Cut(value, ";")
		tk.add("h:content-type:" + strings.ToLower(strings.TrimSpace(ct)))
	case "list-id", "list-unsubscribe", "list-unsubscribe-post", "precedence", "auto-submitted":
		tk.add("h:" + name)
	case "reply-to":
		if a, err := mail.ParseAddress(value); err == nil {
			tk.add("h:reply-to:" + domainOf(a.Address))
		}
	case "message-id":
		if i := strings.LastIndexByte(value, '@'); i >= 0 {
			tk.add("h:message-id:" + strings.ToLower(strings.Trim(value[i+1:], "> ")))
		} else {
			tk.add("h:message-id:none")
		}
	case "authentication-results":
		// Only the method results (spf=pass, dmarc=fail); the rest names hosts.
		for f := range strings.FieldsSeq(value) {
			f = strings.TrimRight(f, ";")
			if m, res, ok := strings.Cut(f, "="); ok && (m == "spf" || m == "dkim" || m == "dmarc") {
				tk.add("h:" + m + "=" + strings.ToLower(res))
			}
		}
	}
}

// urls adds the host of every http(s) link in s.
func (tk *tokenizer) urls(s string) {
	for len(tk.out) < MaxTokens {
		i := strings.Index(s, "://")
		if i < 0 {
			return
		}
		s = s[i+3:]
		end := strings.IndexFunc(s, func(r rune) bool {
			return !(r == '.' || r == '-' || unicode.IsLetter(r) || unicode.IsDigit(r))
		})
		if end < 0 {
			end = len(s)
		}
		if host := strings.ToLower(strings.Trim(s[:end], ".-")); host != "" {
			tk.add("url:" + host)
		}
		s = s[end:]
	}
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return strings.ToLower(addr[i+1:])
	}
	return "none"
}

func firstWord(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		return f[0]
	}
	return ""
}

func itoa(n int) string { return string(rune('0' + n)) }

func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || r == '$' || r == '%' || r == '!'
}
