package store

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// Rules every backend applies in the same way, so that a name, a flag or a UID set means
// the same thing whichever backend stores it.

// MaxMailboxName bounds the length of a mailbox name in bytes (IMAP clients and Dovecot
// accept names of a few hundred bytes; nobody types more).
const MaxMailboxName = 1000

// CanonicalMailboxName checks a mailbox name for creation or renaming and returns its
// canonical spelling: INBOX is case-insensitive (RFC 9051 §5.1), also as the first level
// of a hierarchy name, and is spelled "INBOX"; every other name is case-sensitive. It
// refuses (ErrInvalid) names IMAP clients could not use or that could be read as a path:
// empty levels, "." and "..", control characters, the LIST wildcards "*" and "%" (RFC 9051
// §5.1), a leading "#" (namespace prefixes, §5.1.2), invalid UTF-8 and over-long names.
func CanonicalMailboxName(name string) (string, error) {
	if name == "" || len(name) > MaxMailboxName || !utf8.ValidString(name) || strings.HasPrefix(name, "#") ||
		strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '*' || r == '%' }) {
		return "", fmt.Errorf("mailbox name %q: %w", name, ErrInvalid)
	}
	for level := range strings.SplitSeq(name, Separator) {
		if level == "" || level == "." || level == ".." {
			return "", fmt.Errorf("mailbox name %q: %w", name, ErrInvalid)
		}
	}
	return LookupMailboxName(name), nil
}

// LookupMailboxName is the spelling under which a name is stored, for looking it up: ""
// and any case of "INBOX" are INBOX, and so is the first level of "inbox/x". It does not
// check the name: a name CanonicalMailboxName refuses is simply never found.
func LookupMailboxName(name string) string {
	first, rest, found := strings.Cut(name, Separator)
	if name == "" || strings.EqualFold(first, Inbox) {
		if found {
			return Inbox + Separator + rest
		}
		return Inbox
	}
	return name
}

// Superiors lists the names above a hierarchy name, outermost first: "a/b/c" gives "a"
// and "a/b".
func Superiors(name string) []string {
	var out []string
	for i := range len(name) {
		if name[i] == Separator[0] {
			out = append(out, name[:i])
		}
	}
	return out
}

// IsInferior reports whether name lies below parent in the hierarchy ("a/b" below "a",
// not "ab" nor "a" itself).
func IsInferior(name, parent string) bool {
	return len(name) > len(parent)+1 && strings.HasPrefix(name, parent) && name[len(parent)] == Separator[0]
}

// systemFlags maps the lower-cased system flags to their canonical spelling.
var systemFlags = map[string]string{
	`\seen`: FlagSeen, `\answered`: FlagAnswered, `\flagged`: FlagFlagged,
	`\deleted`: FlagDeleted, `\draft`: FlagDraft,
}

// SystemFlag reports whether flag is a system flag (RFC 9051 §2.3.2, compared without
// regard to case) and returns its canonical spelling, the one stored.
func SystemFlag(flag string) (string, bool) {
	c, ok := systemFlags[strings.ToLower(flag)]
	return c, ok
}

// NormalizeFlags spells system flags canonically, drops duplicates (flags are
// case-insensitive, RFC 9051 §2.3.2) and sorts. A flag must be an atom (RFC 9051 §9
// flag-keyword); an unknown system flag, \Recent included, is ErrInvalid.
func NormalizeFlags(flags []string) ([]string, error) {
	out := make([]string, 0, len(flags))
	for _, f := range flags {
		if f == "" || strings.ContainsFunc(f, func(r rune) bool {
			return r <= ' ' || r == 0x7f || strings.ContainsRune(`(){%*"]`, r)
		}) {
			return nil, fmt.Errorf("flag %q: %w", f, ErrInvalid)
		}
		if c, ok := systemFlags[strings.ToLower(f)]; ok {
			f = c
		} else if strings.HasPrefix(f, `\`) {
			return nil, fmt.Errorf("unknown system flag %q: %w", f, ErrInvalid)
		}
		if !slices.ContainsFunc(out, func(o string) bool { return strings.EqualFold(o, f) }) {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	slices.Sort(out)
	return out, nil
}

// ApplyFlags returns the flags a message has after a change of the given mode; cur and
// flags are normalized. A flag the message has keeps its spelling (flags are
// case-insensitive), so that a change in case alone is no change. The result is sorted and
// shares no memory with cur.
func ApplyFlags(cur []string, mode FlagMode, flags []string) []string {
	if mode == FlagsReplace {
		out := make([]string, len(flags))
		for i, f := range flags {
			out[i] = f
			if j := slices.IndexFunc(cur, func(c string) bool { return strings.EqualFold(c, f) }); j >= 0 {
				out[i] = cur[j]
			}
		}
		slices.Sort(out)
		return out
	}
	out := slices.Clone(cur)
	for _, f := range flags {
		i := slices.IndexFunc(out, func(c string) bool { return strings.EqualFold(c, f) })
		switch {
		case mode == FlagsAdd && i < 0:
			out = append(out, f)
		case mode == FlagsRemove && i >= 0:
			out = slices.Delete(out, i, i+1)
		}
	}
	slices.Sort(out)
	return out
}

// IsKeyword reports whether a normalized flag is a keyword rather than a system flag.
func IsKeyword(flag string) bool { return !strings.HasPrefix(flag, `\`) }

// MergeUIDRanges returns the ranges sorted, with overlapping and adjacent ones merged, and
// reversed ones (First > Last, as "5:2" means "2:5" in IMAP) turned around.
func MergeUIDRanges(rs []UIDRange) []UIDRange {
	out := make([]UIDRange, 0, len(rs))
	for _, r := range rs {
		if r.First > r.Last {
			r.First, r.Last = r.Last, r.First
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b UIDRange) int { return cmp.Compare(a.First, b.First) })
	merged := out[:0]
	for _, r := range out {
		if n := len(merged); n > 0 && uint64(r.First) <= uint64(merged[n-1].Last)+1 {
			merged[n-1].Last = max(merged[n-1].Last, r.Last)
			continue
		}
		merged = append(merged, r)
	}
	return merged
}
