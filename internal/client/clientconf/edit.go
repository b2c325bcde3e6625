package clientconf

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
)

// tableHeader matches a TOML table header line, [a.b] or [[a.b]], capturing its dotted name.
var tableHeader = regexp.MustCompile(`^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$`)

// ReplaceAccount returns src with the tables of account name ([accounts.NAME] and its
// sub-tables such as [accounts.NAME.imap]) replaced by block, everything else of the file
// kept byte for byte: the user's other accounts, comments and order. Comment lines directly
// above one of the account's tables go with it (they describe it, as the block's own
// comments do); comments directly above a table that follows belong to that table and stay.
//
// It edits text rather than re-encoding the decoded config, which would drop every comment.
// An account written in another form (dotted keys at the top level, an inline table) is not
// recognised; the caller's parse of the result then finds the duplicate and refuses.
func ReplaceAccount(src []byte, name, block string) ([]byte, error) {
	lines := strings.SplitAfter(string(src), "\n")
	own := func(table string) bool {
		parts := strings.Split(table, ".")
		for i := range parts {
			parts[i] = strings.Trim(strings.TrimSpace(parts[i]), `"'`)
		}
		return len(parts) >= 2 && parts[0] == "accounts" && parts[1] == name
	}
	var out bytes.Buffer
	inserted, inAccount := false, false
	var pending []string // comment and blank lines whose table is not known yet
	flush := func(keep bool) {
		if keep {
			for _, l := range pending {
				out.WriteString(l)
			}
		}
		pending = pending[:0]
	}
	for _, l := range lines {
		trimmed := strings.TrimSpace(l)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			pending = append(pending, l)
			continue
		}
		m := tableHeader.FindStringSubmatch(l)
		if m == nil {
			// A key line: it belongs to the table it follows, and so do the comments before it.
			flush(!inAccount)
			if !inAccount {
				out.WriteString(l)
			}
			continue
		}
		if own(m[1]) {
			// The comments just above one of the account's tables (no blank line between)
			// describe it: replaced too. Blank lines and comments further up stay.
			n := len(pending)
			for n > 0 && strings.HasPrefix(strings.TrimSpace(pending[n-1]), "#") {
				n--
			}
			pending = pending[:n]
			flush(!inAccount)
			if !inserted {
				block = strings.TrimLeft(block, "\n")
				if !strings.HasSuffix(block, "\n") {
					block += "\n"
				}
				out.WriteString(block)
				inserted = true
			}
			inAccount = true
			continue
		}
		// Another table: the comments above it are its own, whatever came before.
		flush(true)
		inAccount = false
		out.WriteString(l)
	}
	flush(true)
	if !inserted {
		return nil, fmt.Errorf("no [accounts.%s] table in the file", name)
	}
	return out.Bytes(), nil
}
