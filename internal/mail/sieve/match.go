package sieve

import (
	"regexp"
	"strings"
	"unicode/utf8"
)

// matcher is a comparator with a match type (RFC 5228 §2.7).
type matcher struct {
	kind       string // is, contains, matches, regex
	comparator string // i;octet or i;ascii-casemap
	regexps    []*regexp.Regexp
}

// match compares value with key. caps are the match variables of a :matches or :regex
// (nil otherwise or without variables); cost is the work done beyond one pass over both.
func (m matcher) match(value, key string, re *regexp.Regexp, wantCaps bool) (ok bool, caps []string, cost int64) {
	fold := m.comparator == "i;ascii-casemap"
	switch m.kind {
	case "is":
		if fold {
			return asciiEqualFold(value, key), nil, 0
		}
		return value == key, nil, 0
	case "contains":
		if fold {
			return strings.Contains(asciiLower(value), asciiLower(key)), nil, 0
		}
		return strings.Contains(value, key), nil, 0
	case "regex":
		if !wantCaps {
			return re.MatchString(value), nil, 0
		}
		sub := re.FindStringSubmatch(value)
		if sub == nil {
			return false, nil, 0
		}
		if len(sub) > 10 {
			sub = sub[:10]
		}
		return true, sub, 0
	}
	return glob(value, key, fold, wantCaps)
}

// globToken is one element of a :matches pattern: a literal rune, '?' or '*'.
type globToken struct {
	r        rune
	wildcard byte // 0, '?' or '*'
}

func parseGlob(key string) []globToken {
	var out []globToken
	for i := 0; i < len(key); {
		r, n := utf8.DecodeRuneInString(key[i:])
		i += n
		switch r {
		case '*', '?':
			out = append(out, globToken{wildcard: byte(r)})
		case '\\':
			if i < len(key) {
				r, n = utf8.DecodeRuneInString(key[i:])
				i += n
			}
			out = append(out, globToken{r: r})
		default:
			out = append(out, globToken{r: r})
		}
	}
	return out
}

// glob matches value against a :matches pattern in O(len(value)·len(pattern)) time:
// the classic backtrack to the last '*' only, which never explores more than one choice
// per star. Each wildcard takes the shortest text that lets the rest match, except a
// final '*' which takes the rest (RFC 5229 §3.2 leaves the choice to us).
func glob(value, key string, fold, wantCaps bool) (bool, []string, int64) {
	pat := parseGlob(key)
	v := []rune(value)
	pos := make([]int, len(pat)+1) // where each token's match starts
	var cost int64
	pi, vi := 0, 0
	star, starV := -1, 0
	for {
		cost++
		if pi == len(pat) && vi == len(v) {
			break
		}
		if pi < len(pat) {
			t := pat[pi]
			switch {
			case t.wildcard == '*':
				star, starV = pi, vi
				pos[pi] = vi
				pi++
				continue
			case vi < len(v) && (t.wildcard == '?' || runeEqual(t.r, v[vi], fold)):
				pos[pi] = vi
				pi++
				vi++
				continue
			}
		}
		if star < 0 || starV >= len(v) {
			return false, nil, cost
		}
		starV++
		pi, vi = star+1, starV
	}
	pos[len(pat)] = len(v)
	if !wantCaps {
		return true, nil, cost
	}
	caps := []string{value}
	for i, t := range pat {
		if t.wildcard != 0 && len(caps) < 10 {
			caps = append(caps, string(v[pos[i]:pos[i+1]]))
		}
	}
	return true, caps, cost
}

func runeEqual(a, b rune, fold bool) bool {
	if a == b {
		return true
	}
	if !fold || a >= utf8.RuneSelf || b >= utf8.RuneSelf {
		return false
	}
	return lowerByte(byte(a)) == lowerByte(byte(b))
}

func lowerByte(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// asciiLower folds only ASCII letters, as i;ascii-casemap does (RFC 4790 §9.2).
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				b[j] = lowerByte(b[j])
			}
			return string(b)
		}
	}
	return s
}

func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerByte(a[i]) != lowerByte(b[i]) {
			return false
		}
	}
	return true
}
