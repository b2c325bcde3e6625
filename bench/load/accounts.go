package load

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Account is a mailbox login.
type Account struct {
	User string
	Pass string
}

// Placeholder is replaced by a mailbox number in address patterns such as
// "user{n}@example.test".
const Placeholder = "{n}"

// ExpandPattern returns the m addresses of pattern, numbered from 1:
// "user{n}@example.test" with m=3 gives user1@, user2@ and user3@. A pattern
// without the placeholder is returned alone.
func ExpandPattern(pattern string, m int) []string {
	if !strings.Contains(pattern, Placeholder) {
		return []string{pattern}
	}
	out := make([]string, 0, max(m, 1))
	for i := range max(m, 1) {
		out = append(out, fillPattern(pattern, i))
	}
	return out
}

// fillPattern returns mailbox i (from 0) of pattern.
func fillPattern(pattern string, i int) string {
	return strings.ReplaceAll(pattern, Placeholder, strconv.Itoa(i+1))
}

// PatternAccounts returns the accounts of a user pattern sharing one password.
func PatternAccounts(pattern, pass string, m int) []Account {
	var out []Account
	for _, u := range ExpandPattern(pattern, m) {
		out = append(out, Account{User: u, Pass: pass})
	}
	return out
}

// ReadAccounts reads "user:password" lines. The user ends at the first
// colon, so passwords may contain colons; blank lines and lines starting with
// '#' are skipped.
func ReadAccounts(r io.Reader) ([]Account, error) {
	var out []Account
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(text) == "" || strings.HasPrefix(text, "#") {
			continue
		}
		user, pass, ok := strings.Cut(text, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("line %d: want user:password", line)
		}
		out = append(out, Account{User: user, Pass: pass})
	}
	return out, sc.Err()
}
